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

	"github.com/hvctl/hvctl/provision/local"
)

// TestSlurmElastic: examples/slurm-elastic.hcl on the local provider, in
// both elasticity modes. 50 jobs submitted with sbatch on the hub make
// burst nodes appear; the jobs run on nodes of both sites (their output
// names the SLURM node); the burst nodes go after they have been idle;
// down leaves no daemon, namespace or file.
func TestSlurmElastic(t *testing.T) {
	for _, mode := range []string{"hvctl", "power_save"} {
		t.Run(mode, func(t *testing.T) {
			requireRoot(t)
			for _, bin := range []string{"slurmctld", "slurmd", "munged", "sbatch"} {
				if _, err := exec.LookPath(bin); err != nil {
					if os.Getenv("HVCTL_E2E") != "" {
						t.Fatalf("%s is not installed (apt-get install slurm-wlm munge); HVCTL_E2E=1 makes this a failure", bin)
					}
					t.Skipf("%s is not installed (apt-get install slurm-wlm munge)", bin)
				}
			}
			dir := t.TempDir()
			src, err := os.ReadFile("../../examples/slurm-elastic.hcl")
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("sl%d", rand.IntN(1e6))
			os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(strings.Replace(string(src), `cluster "slurm"`, `cluster "`+name+`"`, 1)), 0o644)
			out := filepath.Join(dir, "out")
			os.Mkdir(out, 0o755)
			vars := []string{"-var", "elastic_mode=" + mode}
			t.Cleanup(func() {
				hv(t, dir, "", append([]string{"down"}, append(vars, "main.hcl")...)...)
				local.Cleanup(filepath.Join(dir, ".hvctl"), "")
			})
			if r := hv(t, dir, "", append([]string{"up", "-join-timeout=120s"}, append(vars, "main.hcl")...)...); r.code != 0 {
				t.Fatalf("up: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			exe := func(cmd string) result {
				return hv(t, dir, "", append([]string{"exec", "onprem.frontend"}, append(vars, "main.hcl", "--", "sh", "-c", cmd)...)...)
			}
			t.Cleanup(func() { // runs before down: say why a wait failed
				if !t.Failed() {
					return
				}
				t.Logf("squeue:\n%s", exe("squeue -a").stdout)
				t.Logf("sinfo:\n%s", exe("sinfo -N -p all").stdout)
				logs, _ := filepath.Glob(filepath.Join(dir, ".hvctl/local/nodes/*/slurm/log/power.log"))
				logs2, _ := filepath.Glob(filepath.Join(dir, ".hvctl/local/nodes/*/elastic.log"))
				for _, f := range append(logs, logs2...) {
					b, _ := os.ReadFile(f)
					if len(b) > 4000 {
						b = b[len(b)-4000:]
					}
					t.Logf("%s (end):\n%s", f, b)
				}
			})
			waitFor(t, "SLURM knows the on-prem nodes idle", 60*time.Second, func() bool {
				r := exe("sinfo -h -N -p onprem -o '%N %T'")
				return strings.Count(r.stdout, " idle") == 2
			})
			sub := fmt.Sprintf(`for i in $(seq 50); do sbatch -Q -c 2 -o %s/%%j.out --wrap 'sleep 2; echo $SLURMD_NODENAME' || exit 1; done`, out)
			if r := exe(sub); r.code != 0 {
				t.Fatalf("sbatch: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			waitFor(t, "burst nodes appear", 3*time.Minute, func() bool {
				s, _ := burstNodes(t, dir)
				return len(s) > 0
			})
			waitFor(t, "the 50 jobs complete", 5*time.Minute, func() bool {
				r := exe("squeue -h | wc -l")
				files, _ := filepath.Glob(filepath.Join(out, "*.out"))
				return strings.TrimSpace(r.stdout) == "0" && r.code == 0 && len(files) == 50
			})
			sites := map[string]int{}
			files, _ := filepath.Glob(filepath.Join(out, "*.out"))
			for _, f := range files {
				b, _ := os.ReadFile(f)
				node := strings.TrimSpace(string(b))
				switch {
				case strings.HasPrefix(node, "onprem-wn-"):
					sites["onprem"]++
				case strings.HasPrefix(node, "cloud-burst-"):
					sites["cloud"]++
				default:
					t.Errorf("%s: ran on %q", f, node)
				}
			}
			t.Logf("jobs per site: %v", sites)
			if sites["onprem"] == 0 || sites["cloud"] == 0 {
				t.Errorf("jobs did not run in both sites: %v", sites)
			}
			waitFor(t, "the burst nodes are removed after idle_time", 4*time.Minute, func() bool {
				s, n := burstNodes(t, dir)
				return len(s) == 0 && len(n) == 0
			})
			stateDir := filepath.Join(dir, ".hvctl")
			if r := hv(t, dir, "", append([]string{"down"}, append(vars, "main.hcl")...)...); r.code != 0 {
				t.Fatalf("down: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if b, _ := exec.Command("pgrep", "-af", "slurmctld|slurmd|munged").Output(); strings.Contains(string(b), dir) {
				t.Errorf("SLURM daemons left after down:\n%s", b)
			}
			if b, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(b), "hv-"+name) {
				t.Errorf("namespaces left after down:\n%s", b)
			}
			left, _ := filepath.Glob(filepath.Join(stateDir, "*"))
			for _, f := range left {
				// The elastic daemon's history stays for hvctl report of a
				// past cluster.
				if base := filepath.Base(f); !strings.HasPrefix(base, "state.json") && base != "elastic-history.jsonl" {
					t.Errorf("%s left after down (only the state, its backup, journal and lock, and the elastic history for hvctl report stay)", f)
				}
			}
		})
	}
}
