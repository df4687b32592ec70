package cli_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/internal/testimage"
	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/scheduler/agent"
	"github.com/hvctl/hvctl/scheduler/slurm"
)

// acctTemplate: a fixed SLURM cluster over two sites, with accounting.
const acctTemplate = `
provider "local" "lab" {}

cluster "%s" {
  overlay {
    cidr = "10.211.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.91.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" {
      count = 1
      instance {
        cpus   = 2
        memory = "512MiB"
      }
    }
  }
  site "cloud" {
    provider = provider.local.lab
    tier     = 1
    gateway  = "gw"
    network { cidr = "10.91.0.0/24" }
    node "gw" { roles = ["gateway"] }
    pool "w" {
      count = 1
      instance {
        cpus   = 2
        memory = "512MiB"
      }
    }
  }
  scheduler {
    type       = "slurm"
    accounting = true
  }
}
`

// TestSlurmAccounting: with accounting = true the hub runs MariaDB and
// slurmdbd; 20 sbatch jobs over both sites and one from a user who is
// not root are all in sacct with their nodes and states, and hvctl jobs
// lists them from it. A SLURM job runs a container through hvctl
// container run.
func TestSlurmAccounting(t *testing.T) {
	requireRoot(t)
	for _, bin := range []string{"slurmctld", "slurmd", "munged", "sbatch", "slurmdbd", "mariadbd", "runuser"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("HVCTL_E2E") != "" {
				t.Fatalf("%s is not installed (apt-get install slurm-wlm slurmdbd munge mariadb-server); HVCTL_E2E=1 makes this a failure", bin)
			}
			t.Skipf("%s is not installed (apt-get install slurm-wlm slurmdbd munge mariadb-server)", bin)
		}
	}
	dir := t.TempDir()
	name := fmt.Sprintf("sa%d", rand.IntN(1e6))
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(acctTemplate, name)), 0o644)
	// Job output goes where the user nobody may write (t.TempDir is 0700).
	out, err := os.MkdirTemp("", "hvacct")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(out, 0o1777)
	t.Cleanup(func() { os.RemoveAll(out) })
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=120s", "main.hcl"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, agentLogs(dir))
	}
	exe := func(cmd string) result {
		return hv(t, dir, "", "exec", "onprem.frontend", "main.hcl", "--", "sh", "-c", cmd)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("squeue:\n%s", exe("squeue -a").stdout)
		t.Logf("sinfo:\n%s", exe("sinfo -N").stdout)
		logs, _ := filepath.Glob(filepath.Join(dir, ".hvctl/local/nodes/*/slurm/log/*"))
		for _, f := range logs {
			b, _ := os.ReadFile(f)
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("%s (end):\n%s", f, b)
		}
	})
	waitFor(t, "SLURM knows both workers idle", 60*time.Second, func() bool {
		return strings.Count(exe("sinfo -h -N -p all -o '%N %T'").stdout, " idle") == 2
	})
	sub := fmt.Sprintf(`for p in onprem cloud; do for i in $(seq 10); do sbatch -Q -p $p -o %s/%%j.out --wrap 'echo $SLURMD_NODENAME' || exit 1; done; done`, out)
	if r := exe(sub); r.code != 0 {
		t.Fatalf("sbatch: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// A user other than root submits (the munge socket and slurm.conf
	// are where any user reaches them).
	r := exe(fmt.Sprintf(`runuser -u nobody -- sbatch -D /tmp -o %s/nobody-%%j.out --wrap 'id -un; echo $SLURMD_NODENAME'`, out))
	if r.code != 0 || !strings.Contains(r.stdout, "Submitted batch job") {
		t.Fatalf("sbatch as nobody: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	nobodyJob := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.stdout), "Submitted batch job"))
	// A container job through the wrapper, where podman is installed.
	ctrJob := ""
	if _, err := exec.LookPath("podman"); err == nil {
		_, runDir := agent.StoreDirs(filepath.Join(dir, "ctr-store"))
		t.Cleanup(func() { os.RemoveAll(runDir) })
		tarball := filepath.Join(out, "image.tar")
		if err := testimage.BusyboxRootfs(tarball); err != nil {
			t.Fatal(err)
		}
		r := exe(fmt.Sprintf(`sbatch -p cloud --mem=64 -o %s/ctr-%%j.out --wrap '%s container run -image localhost/hvctl-slurm-%s:1 -archive %s -store %s -- cat /etc/hvctl-image'`,
			out, hvctl, name, tarball, filepath.Join(dir, "ctr-store")))
		if r.code != 0 {
			t.Fatalf("sbatch container job: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		ctrJob = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.stdout), "Submitted batch job"))
	} else if os.Getenv("HVCTL_E2E") != "" {
		t.Fatal("podman is not installed (apt-get install podman runc); HVCTL_E2E=1 makes this a failure")
	}
	want := 21
	if ctrJob != "" {
		want = 22
	}
	var jobs []slurm.AcctJob
	waitFor(t, "sacct shows every job completed", 3*time.Minute, func() bool {
		r := hv(t, dir, "", "jobs", "-json", "main.hcl")
		jobs = nil
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &jobs) != nil {
			return false
		}
		done := 0
		for _, j := range jobs {
			if j.State == "COMPLETED" {
				done++
			}
		}
		return len(jobs) == want && done == want
	})
	sites := map[string]int{}
	for _, j := range jobs {
		if len(j.Nodes) != 1 {
			t.Errorf("job %s ran on %v", j.ID, j.Nodes)
			continue
		}
		switch n := j.Nodes[0]; {
		case strings.HasPrefix(n, "onprem-wn-"):
			sites["onprem"]++
		case strings.HasPrefix(n, "cloud-w-"):
			sites["cloud"]++
		default:
			t.Errorf("job %s ran on %q", j.ID, n)
		}
		if j.ID == nobodyJob && j.User != "nobody" {
			t.Errorf("job %s of nobody is recorded for %q", j.ID, j.User)
		}
		if j.Started.IsZero() || j.Ended.Before(j.Started) {
			t.Errorf("job %s: start %v end %v", j.ID, j.Started, j.Ended)
		}
	}
	t.Logf("jobs per site in sacct: %v", sites)
	if sites["onprem"] < 10 || sites["cloud"] < 10 {
		t.Errorf("sacct: want at least 10 jobs on each site, got %v", sites)
	}
	if ctrJob != "" {
		b, _ := os.ReadFile(filepath.Join(out, "ctr-"+ctrJob+".out"))
		if string(b) != testimage.Marker {
			t.Errorf("SLURM container job output %q, want the image's marker %q", b, testimage.Marker)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "nobody-"+nobodyJob+".out"))
	if !strings.HasPrefix(string(b), "nobody\n") {
		t.Errorf("nobody's job output %q, want it to run as nobody", b)
	}
	// sacct itself, on the hub, as the user.
	r = exe("runuser -u nobody -- sacct -a -X -n -P -o JobID,State,NodeList")
	if n := strings.Count(r.stdout, "|COMPLETED|"); r.code != 0 || n != want {
		t.Errorf("sacct as nobody: exit %d, %d completed jobs, want %d\n%s%s", r.code, n, want, r.stdout, r.stderr)
	}
	r = hv(t, dir, "", "jobs", "main.hcl")
	if r.code != 0 || !strings.Contains(r.stdout, "COMPLETED") || !strings.Contains(r.stdout, "nobody") {
		t.Errorf("hvctl jobs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatalf("down: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := exec.Command("pgrep", "-af", "mariadbd|slurmdbd").Output(); strings.Contains(string(b), dir) {
		t.Errorf("accounting daemons left after down:\n%s", b)
	}
}
