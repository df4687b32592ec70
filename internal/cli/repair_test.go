package cli_test

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// updating reports -update, which the package's internal tests define.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// ids and addresses change from run to run; goldens hold placeholders.
var unstable = regexp.MustCompile(`sim-(i|net)-[0-9a-f]+|\b\d+\.\d+\.\d+\.\d+\b`)

func normalize(s string) string {
	return unstable.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "sim-") {
			return "SIM-ID"
		}
		return "IP"
	})
}

// TestRepairGolden: the plans of -replace, -target (with its warning),
// -refresh-only, taint and import, and the orphan scenario: state rm a
// node, import it back, plan shows no changes, down leaves nothing.
func TestRepairGolden(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "rep", 2, 0)
	if r := hv(t, dir, "", "apply", "-auto-approve", "main.hcl"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	const wn0, wn1 = "site.onprem.pool.wn.node[0]", "site.onprem.pool.wn.node[1]"
	var ids []struct{ ID, Address string }
	out, _ := exec.Command(hvctl, "sim", "list", "-json", filepath.Join(dir, "main.hcl")).Output()
	if err := json.Unmarshal(out, &ids); err != nil {
		t.Fatalf("sim list: %v %s", err, out)
	}
	wn1ID := ""
	for _, m := range ids {
		if m.Address == wn1 {
			wn1ID = m.ID
		}
	}
	steps := []struct {
		golden string // "" = no golden, only the exit code and want
		args   []string
		code   int
		want   string
	}{
		{"replace", []string{"plan", "-replace=site.onprem.node.frontend", "main.hcl"}, 0, "replacement was asked for with -replace"},
		{"target", []string{"plan", "-target=" + wn0, "-replace=" + wn0, "main.hcl"}, 0, "Warning: Resource targeting is in effect"},
		{"", []string{"plan", "-target=site.onprem.pool.wn.node[7]", "main.hcl"}, 1, `Did you mean "site.onprem.pool.wn.node[0]"?`},
		{"", []string{"plan", "-refresh-only", "-target=" + wn0, "main.hcl"}, 1, "-refresh-only cannot be combined with -replace or -target"},
		{"refresh-only", []string{"plan", "-refresh-only", "main.hcl"}, 0, "Your infrastructure still matches the state."},
		{"", []string{"taint", wn0, "main.hcl"}, 0, "has been marked as tainted"},
		{"taint", []string{"plan", "main.hcl"}, 0, "hvctl taint marked it"},
		{"", []string{"untaint", wn0, "main.hcl"}, 0, "successfully untainted"},
		{"", []string{"untaint", wn0, "main.hcl"}, 1, "is not tainted"},
		{"", []string{"plan", "-detailed-exitcode", "main.hcl"}, 0, "No changes."},
		{"", []string{"state", "rm", wn1}, 0, "They still exist at their provider."},
		{"orphan", []string{"plan", "main.hcl"}, 0, "1 to add"},
		{"", []string{"import", wn1, "sim-i-0000", "main.hcl"}, 1, `has no instance with ID "sim-i-0000"; nothing was imported`},
		{"", []string{"import", "site.onprem.pool.nope.node[0]", wn1ID, "main.hcl"}, 1, "the configuration declares no resource at this address"},
		{"import", []string{"import", wn1, wn1ID, "main.hcl"}, 0, "Import successful!"},
		{"", []string{"import", wn1, wn1ID, "main.hcl"}, 1, "the state already has a resource at this address"},
		{"imported", []string{"plan", "-detailed-exitcode", "main.hcl"}, 0, "No changes."},
		{"", []string{"down", "main.hcl"}, 0, "Destroy complete!"},
	}
	for _, s := range steps {
		r := hv(t, dir, "", s.args...)
		text := r.stdout + r.stderr
		if r.code != s.code || !strings.Contains(text, s.want) {
			t.Fatalf("hvctl %s: exit %d (want %d), want %q in:\n%s", strings.Join(s.args, " "), r.code, s.code, s.want, text)
		}
		if s.golden == "" {
			continue
		}
		golden := filepath.Join("testdata", "repair", s.golden+".golden")
		got := normalize(r.stdout)
		if updating() {
			os.MkdirAll(filepath.Dir(golden), 0o755)
			os.WriteFile(golden, []byte(got), 0o644)
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (go test -run TestRepairGolden -update writes it)", err)
		}
		if got != string(want) {
			t.Errorf("hvctl %s differs from %s:\n%s", strings.Join(s.args, " "), golden, got)
		}
	}
	if out, _ := exec.Command(hvctl, "sim", "list", "-json", filepath.Join(dir, "main.hcl")).Output(); strings.TrimSpace(string(out)) != "[]" {
		t.Errorf("machines left after down (an orphan): %s", out)
	}
}

// TestStateMvPullPush: state mv renames in place, refusing a taken or
// other-kind address; pull prints the state; push refuses another
// lineage or an older serial unless -force, and a file that is not a
// state, naming it.
func TestStateMvPullPush(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "mv", 2, 0)
	if r := hv(t, dir, "", "apply", "-auto-approve", "main.hcl"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	pulled := hv(t, dir, "", "state", "pull")
	if pulled.code != 0 || !strings.Contains(pulled.stdout, `"lineage"`) {
		t.Fatalf("pull: exit %d %s", pulled.code, pulled.stderr)
	}
	file := filepath.Join(dir, "pulled.json")
	os.WriteFile(file, []byte(pulled.stdout), 0o600)
	other := filepath.Join(dir, "other.json")
	os.WriteFile(other, []byte(strings.Replace(pulled.stdout, `"lineage": "`, `"lineage": "0`, 1)), 0o600)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version": 1, "lineage": "x", "resources": [{"address": ""}]}`), 0o600)
	const wn1 = "site.onprem.pool.wn.node[1]"
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"state", "mv", wn1, "site.onprem.pool.wn.node[0]"}, 1, "The state already has site.onprem.pool.wn.node[0]"},
		{[]string{"state", "mv", wn1, "site.onprem.network"}, 1, "is an instance"},
		{[]string{"state", "mv", "site.onprem.pool.wn.node[9]", "site.onprem.pool.wn.node[8]"}, 1, "No resource site.onprem.pool.wn.node[9] in the state"},
		{[]string{"state", "mv", wn1, "site.onprem.pool.wn.node[5]"}, 0, "Successfully moved 1 object."},
		{[]string{"plan", "main.hcl"}, 0, "1 to add, 0 to change, 1 to destroy"},
		{[]string{"state", "mv", "site.onprem.pool.wn.node[5]", wn1}, 0, "Successfully moved 1 object."},
		{[]string{"plan", "-detailed-exitcode", "main.hcl"}, 0, "No changes."},
		{[]string{"state", "push", bad}, 1, "resources[0] has no address"},
		{[]string{"state", "push", other}, 1, "of another lineage"},
		{[]string{"state", "push", file}, 1, "older than the current one"},
		{[]string{"state", "push", "-force", file}, 0, "Pushed"},
		{[]string{"plan", "-detailed-exitcode", "main.hcl"}, 0, "No changes."},
		{[]string{"down", "main.hcl"}, 0, "Destroy complete!"},
	}
	for _, s := range steps {
		r := hv(t, dir, "", s.args...)
		if r.code != s.code || !strings.Contains(r.stdout+r.stderr, s.want) {
			t.Fatalf("hvctl %s: exit %d (want %d), want %q in:\n%s%s", strings.Join(s.args, " "), r.code, s.code, s.want, r.stdout, r.stderr)
		}
	}
}

// TestOutputsStoredAtApply: apply records the outputs in the state and
// prints them; output reads them (a name quoted, -raw bare, -json
// without sensitive values); destroy forgets them.
func TestOutputsStoredAtApply(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "outs", 1, 0)
	f, _ := os.OpenFile(filepath.Join(dir, "main.hcl"), os.O_APPEND|os.O_WRONLY, 0o644)
	f.WriteString(`
output "cluster_name" {
  value = cluster.outs.name
}
output "sizes" {
  value = [1, 2]
}
output "token" {
  value     = "s3cr3t-value"
  sensitive = true
}
`)
	f.Close()
	r := hv(t, dir, "", "output", "main.hcl")
	if r.code != 0 || !strings.Contains(r.stdout, "No outputs are recorded") {
		t.Fatalf("before apply: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	r = hv(t, dir, "", "apply", "-auto-approve", "main.hcl")
	if r.code != 0 || !strings.Contains(r.stdout, "Outputs:\n\ncluster_name = \"outs\"\nsizes = [1, 2]\ntoken = <sensitive>\n") {
		t.Fatalf("apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "s3cr3t") {
		t.Errorf("apply printed a sensitive output")
	}
	cases := []struct {
		args     []string
		code     int
		want     string
		wantNone string
	}{
		{[]string{"output", "cluster_name"}, 0, "\"outs\"\n", ""},
		{[]string{"output", "-raw", "cluster_name"}, 0, "outs\n", "\""},
		{[]string{"output", "-raw", "sizes"}, 1, "-raw prints primitive values only", ""},
		{[]string{"output", "-json"}, 0, `"token": {`, "s3cr3t"},
		{[]string{"output", "clustr_name"}, 1, `Did you mean "cluster_name"?`, ""},
		{[]string{"output"}, 0, "token = <sensitive>", "s3cr3t"},
	}
	for _, c := range cases {
		r := hv(t, dir, "", c.args...)
		if r.code != c.code || !strings.Contains(r.stdout+r.stderr, c.want) || (c.wantNone != "" && strings.Contains(r.stdout, c.wantNone)) {
			t.Errorf("hvctl %s: exit %d\n%s%s", strings.Join(c.args, " "), r.code, r.stdout, r.stderr)
		}
	}
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := hv(t, dir, "", "output"); !strings.Contains(r.stdout, "No outputs are recorded") {
		t.Errorf("after down: %s", r.stdout)
	}
}
