package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestElasticTune runs `hvctl elastic tune` on the paper's workload with
// a small sweep: JSON with the frontier and the default, the HTML page,
// and a bad sweep value named in the error.
func TestElasticTune(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	tmpl := filepath.Join(root, "examples", "hybrid-audio.hcl")
	wl := filepath.Join(root, "examples", "workloads", "hybrid-audio.json")
	dir := t.TempDir()
	page := filepath.Join(dir, "tune.html")
	r := hv(t, dir, "", "elastic", "tune", "-f", tmpl, "-w", wl, "-idle-times", "1m,15m", "-max-booting", "10", "-json", "-report", page)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var res struct {
		Points []struct {
			Setting  string `json:"setting"`
			Frontier bool   `json:"frontier"`
		} `json:"points"`
		Default struct {
			IdleTime string `json:"idle_time"`
		} `json:"default"`
		Ratio float64 `json:"ratio"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if len(res.Points) != 2 || res.Default.IdleTime != "auto" || res.Ratio <= 0 {
		t.Errorf("sweep %+v", res)
	}
	html, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(html), "chart-frontier") {
		t.Errorf("page: %v", err)
	}
	r = hv(t, dir, "", "elastic", "tune", "-f", tmpl, "-w", wl, "-idle-times", "soon")
	if r.code == 0 || !strings.Contains(r.stderr, `-idle-times: "soon"`) {
		t.Errorf("bad -idle-times: exit %d, %s", r.code, r.stderr)
	}
}

// TestReportCommand: hvctl report renders the daemon's history next to
// the template, says what to do without one, and names a bad line.
func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte("# any template\n"), 0o644)
	r := hv(t, dir, "", "report", "main.hcl")
	if r.code == 0 || !strings.Contains(r.stderr, "No elastic history at") || !strings.Contains(r.stderr, "hvctl elastic simulate -report") {
		t.Errorf("without a history: exit %d\n%s", r.code, r.stderr)
	}
	os.MkdirAll(filepath.Join(dir, ".hvctl"), 0o700)
	hist := filepath.Join(dir, ".hvctl", "elastic-history.jsonl")
	os.WriteFile(hist, []byte(`{"run":{"cluster":"c1","start":"2024-05-01T15:00:00Z","pools":[{"name":"cloud.burst","site":"cloud","tier":1,"Min":0,"Max":3,"price":0.5}]}}
{"t":"2024-05-01T15:00:01Z","nodes":[{"n":"cloud.burst[0]","p":"cloud.burst","s":"booting","at":"2024-05-01T15:00:00Z"}],"queues":{"any":4},"actions":["scale-up cloud.burst +1: queued work does not fit"]}
{"t":"2024-05-01T15:30:00Z","nodes":[{"n":"cloud.burst[0]","p":"cloud.burst","s":"busy","u":2,"c":2,"at":"2024-05-01T15:00:00Z"}]}
{"t":"2024-05-01T16:00:00Z","nodes":[]}
`), 0o600)
	page := filepath.Join(dir, "r.html")
	r = hv(t, dir, "", "report", "main.hcl", "-o", page)
	if r.code != 0 || !strings.Contains(r.stdout, "Report of cluster c1 (3 steps recorded") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	b, _ := os.ReadFile(page)
	for _, want := range []string{"Elastic report: c1", "chart-states", "scale-up cloud.burst +1", "$0.500"} { // 1 h at $0.5
		if !strings.Contains(string(b), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	os.WriteFile(hist, []byte("{\"run\":{\"cluster\":\"c1\"}}\nnot json\n{\"t\":\"2024-05-01T15:00:01Z\",\"nodes\":[]}\n"), 0o600)
	r = hv(t, dir, "", "report", "main.hcl")
	if r.code == 0 || !strings.Contains(r.stderr, "elastic-history.jsonl:2:") {
		t.Errorf("a bad line: exit %d\n%s", r.code, r.stderr)
	}
}
