package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/scheduler"
)

// TestRuntimeArray100k: an array of 100,000 jobs goes through the CLI
// (one submit answer of a few hundred bytes, not every job), and
// `hvctl jobs` reads them back page by page, in one -json document.
func TestRuntimeArray100k(t *testing.T) {
	dir, _ := upRuntime(t, false)
	const n = 100000
	// Long sleeps: few jobs run while the test reads the list, so the
	// machine stays quiet; down ends them.
	start := time.Now()
	r := hv(t, dir, "", "submit", "-n", "100000", "main.hcl", "--", "sleep", "60")
	t.Logf("hvctl submit -n 100000: %s", time.Since(start).Round(time.Millisecond))
	if r.code != 0 || !strings.Contains(r.stdout, "Submitted 100000 jobs") {
		t.Fatalf("submit -n 100000: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	start = time.Now()
	r = hv(t, dir, "", "jobs", "-json", "main.hcl")
	t.Logf("hvctl jobs -json (100,000 jobs, %d MB): %s", len(r.stdout)>>20, time.Since(start).Round(time.Millisecond))
	var jobs []scheduler.Job
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil {
		t.Fatalf("jobs -json is not one JSON document: %v\n%s", err, r.stderr)
	}
	seen := map[string]bool{}
	for _, j := range jobs {
		seen[j.ID] = true
	}
	if len(jobs) != n || len(seen) != n {
		t.Fatalf("jobs -json: %d jobs, %d distinct, want %d", len(jobs), len(seen), n)
	}
	if jobs[0].Index != 0 || jobs[n-1].Index != n-1 || jobs[0].ArrayID == "" || jobs[0].ArrayID != jobs[n-1].ArrayID {
		t.Fatalf("jobs out of submission order: first %s (index %d), last %s (index %d)", jobs[0].ID, jobs[0].Index, jobs[n-1].ID, jobs[n-1].Index)
	}
	r = hv(t, dir, "", "jobs", "main.hcl")
	if lines := strings.Count(r.stdout, "\n"); r.code != 0 || lines != n+1 {
		t.Fatalf("jobs: exit %d, %d lines, want a header and %d jobs\n%s", r.code, lines, n, r.stderr)
	}
}
