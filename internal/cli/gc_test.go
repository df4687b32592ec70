package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGCSim: gc destroys only clusters whose ttl has passed, found by
// their tags in the sim cloud, and -dry-run destroys nothing.
func TestGCSim(t *testing.T) {
	dir := t.TempDir()
	tmpl := func(name, ttl string) string {
		return strings.Replace(strings.Replace(simTemplate, `cluster "%s" {`, `cluster "`+name+`" {
  ttl = "`+ttl+`"`, 1), `boot_time = "%s"`, `boot_time = "0s"`, 1)
	}
	for _, c := range []struct{ file, name, ttl string }{{"old.hcl", "old", "1s"}, {"new.hcl", "new", "1h"}} {
		src := strings.Replace(strings.Replace(tmpl(c.name, c.ttl), "count = %d", "count = 1", 1), "min = %d", "min = 0", 1)
		if c.name == "old" {
			src = "provider \"sim\" \"other\" {\n  boot_time = \"0s\"\n}\n" + src
		}
		os.WriteFile(filepath.Join(dir, c.file), []byte(src), 0o644)
		if r := hv(t, dir, "", "up", "-state", ".hvctl/"+c.name+".json", c.file); r.code != 0 {
			t.Fatalf("up %s: %s", c.name, r.stderr)
		}
	}
	live := func() map[string]int {
		out := map[string]int{}
		for _, it := range simList(t, dir) {
			out[it.Cluster]++
		}
		return out
	}
	if got := live(); got["old"] != 4 || got["new"] != 4 {
		t.Fatalf("before gc: %v", got)
	}
	time.Sleep(1100 * time.Millisecond) // let the 1 s ttl pass
	r := hv(t, dir, "", "gc", "-dry-run", "-json", "-state", ".hvctl/x.json", "old.hcl")
	var doc struct {
		Expired []struct {
			Cluster   string
			Resources []json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Expired) != 1 || doc.Expired[0].Cluster != "old" || len(doc.Expired[0].Resources) != 4 {
		t.Fatalf("gc -dry-run -json: %v %s %s", err, r.stdout, r.stderr)
	}
	if got := live(); got["old"] != 4 {
		t.Fatalf("dry run destroyed something: %v", got)
	}
	// Without -auto-approve gc asks; anything but yes destroys nothing.
	if r := hv(t, dir, "no\n", "gc", "-state", ".hvctl/x.json", "old.hcl"); r.code != 1 || !strings.Contains(r.stdout, "Do you really want to destroy these expired clusters?") || !strings.Contains(r.stderr, "gc cancelled.") {
		t.Fatalf("gc without yes: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, dir, "", "gc", "-input=false", "-state", ".hvctl/x.json", "old.hcl"); r.code != 1 || !strings.Contains(r.stderr, "Add -auto-approve") {
		t.Fatalf("gc -input=false: %d %s", r.code, r.stderr)
	}
	if got := live(); got["old"] != 4 {
		t.Fatalf("a refused gc destroyed something: %v", got)
	}
	r = hv(t, dir, "yes\n", "gc", "-state", ".hvctl/x.json", "old.hcl")
	if r.code != 0 {
		t.Fatalf("gc: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// Two sim providers see one world: each resource once.
	if n := strings.Count(r.stdout, "of expired cluster old"); n != 4 {
		t.Errorf("gc destroyed %d resources, want each of the 4 once:\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stdout, "Updated the state of cluster old: ") {
		t.Errorf("gc did not update the cluster's state:\n%s", r.stdout)
	}
	if got := live(); got["old"] != 0 || got["new"] != 4 {
		t.Errorf("after gc: %v, want only the expired cluster gone", got)
	}
	// The expired cluster's state knows it is gone: its plan creates it
	// again instead of reporting deletions outside hvctl.
	if r := hv(t, dir, "", "plan", "-state", ".hvctl/old.json", "old.hcl"); strings.Contains(r.stdout, "deleted outside hvctl") || !strings.Contains(r.stdout, "4 to add") {
		t.Errorf("plan of the collected cluster:\n%s", r.stdout)
	}
	if r := hv(t, dir, "", "gc", "-json", "-auto-approve", "-state", ".hvctl/x.json", "old.hcl"); r.code != 0 || !strings.Contains(r.stdout, `"destroyed": []`) {
		t.Errorf("gc -json with nothing expired: %d %s %s", r.code, r.stdout, r.stderr)
	}
	hv(t, dir, "", "down", "-state", ".hvctl/new.json", "new.hcl")
}
