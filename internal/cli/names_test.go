package cli_test

import (
	"strings"
	"testing"
)

// TestNodeNames: commands accept a node's member name and its address,
// print the member name, and suggest it for near misses.
func TestNodeNames(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "names", 1, 0)
	if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	defer hv(t, dir, "", "down", "main.hcl")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"state show by member name", []string{"state", "show", "onprem.wn[0]"}, 0, `# site.onprem.pool.wn.node[0]`, ""},
		{"state show by address", []string{"state", "show", "site.onprem.pool.wn.node[0]"}, 0, `# site.onprem.pool.wn.node[0]`, ""},
		{"state show near miss", []string{"state", "show", "onprem.wn0"}, 1, "", `Did you mean "onprem.wn[0]"?`},
		{"exec near miss", []string{"exec", "onprem.wn0", "main.hcl", "--", "true"}, 1, "", `Did you mean "onprem.wn[0]"?`},
		{"exec address near miss", []string{"exec", "site.onprem.pool.wn.node[1]", "main.hcl", "--", "true"}, 1, "", `Did you mean "site.onprem.pool.wn.node[0]"?`},
		{"status prints member names", []string{"status", "main.hcl"}, 0, "onprem.wn[0]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := hv(t, dir, "", tt.args...)
			if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("hvctl %s: exit %d, want %d with stdout ~%q, stderr ~%q:\n%s%s", strings.Join(tt.args, " "), r.code, tt.code, tt.stdout, tt.stderr, r.stdout, r.stderr)
			}
		})
	}
}
