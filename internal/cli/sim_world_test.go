package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/provision/sim"
)

// TestSimWorldShared: two working directories with one template share
// one sim cloud through the provider's world setting (relative to the
// template; it wins over HVCTL_SIM_WORLD) or through HVCTL_SIM_WORLD,
// and one state file (the state block's path): apply from A, plan
// without changes from B, sim list the same from both, destroy from B
// leaves nothing. The world file is where the setting puts it, not in
// either state directory.
func TestSimWorldShared(t *testing.T) {
	tests := []struct {
		name    string
		setting bool // world = "../world" in the provider block
	}{
		{"world setting", true},
		{"HVCTL_SIM_WORLD", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			world, decoy := filepath.Join(root, "world"), filepath.Join(root, "decoy")
			if tt.setting {
				t.Setenv(sim.WorldEnv, decoy)
			} else {
				t.Setenv(sim.WorldEnv, world)
			}
			a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
			for _, d := range []string{a, b} {
				os.MkdirAll(d, 0o755)
				writeTemplate(t, d, "0s", "state-world", 2, 0)
				if tt.setting {
					src, _ := os.ReadFile(filepath.Join(d, "main.hcl"))
					src = []byte(strings.Replace(string(src), `boot_time = "0s"`, "boot_time = \"0s\"\n  world     = \"../world\"", 1))
					os.WriteFile(filepath.Join(d, "main.hcl"), src, 0o644)
				}
				appendState(t, d, "state {\n  path = \"../team-state.json\"\n}")
			}
			if r := hv(t, a, "", "apply", "-auto-approve", "-input=false", "main.hcl"); r.code != 0 {
				t.Fatalf("apply from A: %s", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(world, "world.json")); err != nil {
				t.Errorf("no world file in the shared directory: %v", err)
			}
			for _, d := range []string{a, b} {
				if _, err := os.Stat(filepath.Join(d, ".hvctl", "sim", "world.json")); err == nil {
					t.Errorf("a world file in %s's state directory", filepath.Base(d))
				}
			}
			if _, err := os.Stat(decoy); err == nil {
				t.Errorf("the world setting lost to HVCTL_SIM_WORLD: %s exists", decoy)
			}
			if r := hv(t, b, "", "plan", "-detailed-exitcode", "-input=false", "main.hcl"); r.code != 0 {
				t.Fatalf("plan from B: exit %d, want 0 (B sees A's machines)\n%s%s", r.code, r.stdout, r.stderr)
			}
			fromA, fromB := simList(t, a), simList(t, b)
			if len(fromA) != 5 || len(fromB) != len(fromA) {
				t.Errorf("sim list: %d items from A, %d from B; want 5 (2 networks, 3 machines) from both", len(fromA), len(fromB))
			}
			if r := hv(t, b, "", "destroy", "-auto-approve", "-input=false", "main.hcl"); r.code != 0 {
				t.Fatalf("destroy from B: %s", r.stderr)
			}
			if items := simList(t, a); len(items) != 0 {
				t.Errorf("destroy from B left %d resources seen from A", len(items))
			}
		})
	}
}
