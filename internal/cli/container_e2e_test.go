package cli_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/internal/testimage"
	"github.com/hvctl/hvctl/scheduler"
)

const containerJobs = `
job "boxed-onprem" {
  command = ["sh", "-c", "cat /etc/hvctl-image > $HVCTL_OUTPUT_DIR/r.txt; echo out-$HVCTL_ARRAY_INDEX-$HVCTL_SITE >> $HVCTL_OUTPUT_DIR/r.txt; cat $HVCTL_INPUT_DIR/words >> $HVCTL_OUTPUT_DIR/r.txt"]
  count   = 5
  site    = "onprem"
  inputs  = ["busybox-image", "words"]
  resources {
    cpus   = 1
    memory = "64MiB"
  }
  container {
    image   = "%[1]s"
    archive = "busybox-image"
  }
}

job "boxed-cloud" {
  command = ["sh", "-c", "cat /etc/hvctl-image > $HVCTL_OUTPUT_DIR/r.txt; echo out-$HVCTL_ARRAY_INDEX-$HVCTL_SITE >> $HVCTL_OUTPUT_DIR/r.txt; cat $HVCTL_INPUT_DIR/words >> $HVCTL_OUTPUT_DIR/r.txt"]
  count   = 5
  site    = "cloud"
  inputs  = ["busybox-image", "words"]
  resources {
    cpus   = 1
    memory = "64MiB"
  }
  container {
    image   = "%[1]s"
    archive = "busybox-image"
  }
}

job "hog" {
  command = ["sh", "-c", "x=$(head -c 134217728 /dev/zero | tr '\\0' a); echo survived"]
  site    = "cloud"
  inputs  = ["busybox-image"]
  resources {
    memory = "32MiB"
  }
  container {
    image   = "%[1]s"
    archive = "busybox-image"
  }
}
`

// TestContainerJobs: 10 container jobs over two sites, from an image
// archive (a busybox root filesystem made here, no registry) given as a
// dataset, produce their outputs; each node loads the image once; a job
// over its memory limit is killed and reported as such.
func TestContainerJobs(t *testing.T) {
	requireRoot(t)
	for _, bin := range []string{"podman", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("HVCTL_E2E") != "" {
				t.Fatalf("%s is not installed (apt-get install podman runc busybox); HVCTL_E2E=1 makes this a failure", bin)
			}
			t.Skipf("%s is not installed (apt-get install podman runc busybox)", bin)
		}
	}
	dir, api := upRuntime(t, false)
	tarball := filepath.Join(t.TempDir(), "image.tar")
	if err := testimage.BusyboxRootfs(tarball); err != nil {
		t.Fatal(err)
	}
	img, _ := os.ReadFile(tarball)
	for name, data := range map[string][]byte{"busybox-image": img, "words": []byte("hello from the input\n")} {
		if code, b := api.do(t, "PUT", "/v1/datasets/"+name, api.token, data); code != 200 {
			t.Fatalf("put dataset %s: %d %s", name, code, b)
		}
	}
	image := fmt.Sprintf("localhost/hvctl-e2e-%d:1", rand.IntN(1e6))
	os.WriteFile(filepath.Join(dir, "jobs.hcl"), []byte(fmt.Sprintf(containerJobs, image)), 0o644)
	r := hv(t, dir, "", "submit", "-json", "-f", "jobs.hcl", "main.hcl")
	if r.code != 0 {
		t.Fatalf("submit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	jobs := waitJobs(t, dir, 11, 4*time.Minute)
	sites, nodes := map[string]int{}, map[string]bool{}
	for _, j := range jobs {
		if j.Spec.Name == "hog" {
			if j.State != scheduler.Failed || j.ExitCode == nil || *j.ExitCode != 137 || !strings.Contains(j.Error, "out of memory") {
				t.Errorf("memory hog: state %s exit %d error %q, want failed, 137, out of memory", j.State, deref(j.ExitCode), j.Error)
			}
			t.Logf("memory hog: %s", j.Error)
			continue
		}
		if j.State != scheduler.Done {
			t.Errorf("job %s: %s exit %d %q\n%s", j.ID, j.State, deref(j.ExitCode), j.Error, hv(t, dir, "", "logs", "main.hcl", j.ID).stdout)
			continue
		}
		sites[j.Site]++
		nodes[j.Node] = true
		code, b := api.do(t, "GET", "/v1/jobs/"+j.ID+"/results/r.txt", api.token, nil)
		// The marker file is the image's: the host has none.
		want := fmt.Sprintf("%sout-%d-%s\nhello from the input\n", testimage.Marker, j.Index, j.Site)
		if code != 200 || string(b) != want {
			t.Errorf("job %s result: %d %q, want %q", j.ID, code, b, want)
		}
	}
	t.Logf("container jobs per site: %v on %d nodes", sites, len(nodes))
	if sites["onprem"] != 5 || sites["cloud"] != 5 {
		t.Errorf("jobs per site %v, want 5 and 5", sites)
	}
	// Each node that ran container jobs loaded the image once.
	logs, _ := filepath.Glob(filepath.Join(dir, ".hvctl", "local", "nodes", "*", "agent.log"))
	loaded := 0
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		n := strings.Count(string(b), "container: loaded image "+image)
		if n > 1 {
			t.Errorf("%s: image loaded %d times", l, n)
		}
		loaded += n
	}
	// The hog's node may be one that ran no other job.
	if loaded < len(nodes) || loaded > len(nodes)+1 {
		t.Errorf("image loaded %d times on %d nodes", loaded, len(nodes))
	}
	t.Logf("image loaded %d times for 11 jobs", loaded)
}

func deref(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}
