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
