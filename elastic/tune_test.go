package elastic

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// testGrid is a small sweep: 8 idle times × max_booting 1 and 10.
var testGrid = TuneGrid{
	IdleTimes:  []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 20 * time.Minute, 30 * time.Minute, 45 * time.Minute},
	MaxBooting: []int{1, 10},
}

type variant struct {
	name     string
	workload string // file under testdata/variants, or "" for the paper's
	boot     string
}

var variants = []variant{
	{name: "paper (boot 20m, gaps 8/12/6m)", boot: "20m"},
	{name: "boot 5m", boot: "5m"},
	{name: "gaps 1–3m", workload: "gaps-short.json", boot: "20m"},
	{name: "gaps 25–45m", workload: "gaps-long.json", boot: "20m"},
	{name: "uneven batches (1500/150/1800/226)", workload: "uneven.json", boot: "20m"},
}

func loadVariant(t testing.TB, v variant) (*templates.Config, Workload) {
	t.Helper()
	cfg, diags := templates.Load(filepath.Join("testdata", "variants", "hybrid.hcl"), templates.LoadOptions{Args: []templates.VarArg{{Name: "boot_time", Value: v.boot}}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	path := filepath.Join("..", "examples", "workloads", "hybrid-audio.json")
	if v.workload != "" {
		path = filepath.Join("testdata", "variants", v.workload)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := ParseWorkload(f.Name(), f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, w
}

// TestPaperDefault: on paper 003's workload the default policy (idle_time
// auto) is at least as fast and as cheap as the paper's run and as the
// issue's targets: makespan ≤ 2h35m, cost ≤ $0.40, efficiency ≥ 67%
// (the example's cloud stops idle nodes, as EC2 can).
func TestPaperDefault(t *testing.T) {
	cfg, w := loadExample(t)
	if !cfg.Cluster.Elastic.IdleAuto {
		t.Fatal("examples/hybrid-audio.hcl does not default to idle_time auto")
	}
	r, err := Simulate(cfg, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	cloud := poolReport(r, "aws.wn")
	t.Logf("default: makespan %s, cost $%.3f, efficiency %.1f%%, %d nodes made, tail %s", hm(r.Makespan), cloud.Cost, 100*cloud.Efficiency, cloud.Nodes, hm(r.PowerOffTail))
	if r.Makespan > (2*time.Hour + 35*time.Minute).Seconds() {
		t.Errorf("makespan %s, want ≤ 2h35m", hm(r.Makespan))
	}
	if cloud.Cost > 0.40 {
		t.Errorf("cost $%.3f, want ≤ $0.40", cloud.Cost)
	}
	if cloud.Efficiency < 0.67 {
		t.Errorf("efficiency %.1f%%, want ≥ 67%%", 100*cloud.Efficiency)
	}
	if cloud.Nodes != 3 {
		t.Errorf("%d cloud nodes made, want 3 (kept through the gaps)", cloud.Nodes)
	}
}

// TestVariants: on each variant the default policy is within 5% of a
// setting on the frontier of a fixed-setting sweep, on makespan and on
// cost at once. Run with -v for the table in docs/elastic.md.
func TestVariants(t *testing.T) {
	if testing.Short() {
		t.Skip("sweeps 16 settings × 5 variants")
	}
	t.Log("| variant | default: makespan, cost, efficiency, nodes | nearest frontier setting: makespan, cost, efficiency | default vs it | frontier (fastest → cheapest) |")
	t.Log("|---|---|---|---|---|")
	for _, v := range variants {
		cfg, w := loadVariant(t, v)
		res, err := Tune(cfg, w, testGrid, Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		d, n := res.Default, res.Nearest
		var front string
		for i, p := range res.FrontierPoints() {
			if i > 0 {
				front += "; "
			}
			front += fmt.Sprintf("%s %s $%.3f", p.Setting, hm(p.Makespan), p.Cost)
		}
		t.Logf("| %s | %s, $%.3f, %.0f%%, %d | %s: %s, $%.3f, %.0f%% | %+.1f%% | %s |", v.name, hm(d.Makespan), d.Cost, 100*d.Efficiency, d.NodesMade,
			n.Setting, hm(n.Makespan), n.Cost, 100*n.Efficiency, 100*(res.Ratio-1), front)
		if res.Ratio > 1.05 {
			t.Errorf("%s: %s", v.name, res.Verdict())
		}
	}
}

func TestParseTuneGrid(t *testing.T) {
	tests := []struct {
		idle, booting string
		want          TuneGrid
		err           string
	}{
		{"", "", DefaultTuneGrid, ""},
		{"1m, 15m", "1,10", TuneGrid{IdleTimes: []time.Duration{time.Minute, 15 * time.Minute}, MaxBooting: []int{1, 10}}, ""},
		{"5 minutes", "", TuneGrid{}, `-idle-times: "5 minutes"`},
		{"", "one", TuneGrid{}, `-max-booting: "one" is not a whole number`},
		{"", "-1", TuneGrid{}, `-max-booting: "-1"`},
	}
	for _, tt := range tests {
		g, err := ParseTuneGrid(tt.idle, tt.booting)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseTuneGrid(%q, %q) error %v, want %q", tt.idle, tt.booting, err, tt.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(g) != fmt.Sprint(tt.want) {
			t.Errorf("ParseTuneGrid(%q, %q) = %v, %v; want %v", tt.idle, tt.booting, g, err, tt.want)
		}
	}
}

// TestTuneOutputs: the frontier has no dominated setting, the text names
// the default and where it lands, and the page plots every setting, the
// frontier and the default on titled axes.
func TestTuneOutputs(t *testing.T) {
	cfg, w := loadExample(t)
	res, err := Tune(cfg, w, TuneGrid{IdleTimes: []time.Duration{time.Minute, 15 * time.Minute}, MaxBooting: []int{1, 10}}, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Points) != 4 {
		t.Fatalf("%d points, want 4", len(res.Points))
	}
	for _, p := range res.FrontierPoints() {
		for _, q := range res.Points {
			if q.Makespan < p.Makespan && q.Cost < p.Cost {
				t.Errorf("frontier %s is dominated by %s", p.Setting, q.Setting)
			}
		}
	}
	var text, page strings.Builder
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default (idle_time auto, max_booting 10)", "frontier  idle_time 15m, max_booting 10", fmt.Sprintf("the frontier setting %q", res.Nearest.Setting)} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	h := page.String()
	for _, want := range []string{`class="chart chart-frontier"`, `class="axis axis-x"`, `class="axis axis-y"`, "makespan (h:m from the first submission)", "elastic pools&#39; cost (US$)", `class="pt default"`, `class="frontier"`} {
		if !strings.Contains(h, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(h, `<circle class="pt`); n != 4 {
		t.Errorf("%d setting points plotted, want 4", n)
	}
}
