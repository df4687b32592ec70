package elastic

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hvctl/hvctl/templates"
)

func loadExample(t testing.TB, vars ...templates.VarArg) (*templates.Config, Workload) {
	t.Helper()
	cfg, diags := templates.Load(filepath.Join("..", "examples", "hybrid-audio.hcl"), templates.LoadOptions{Args: vars})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	f, err := os.Open(filepath.Join("..", "examples", "workloads", "hybrid-audio.json"))
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

// powerCycle is paper 003's CLUES behaviour for a node the queue shows
// down: mark it failed, power it off and start another.
func powerCycle(s Snapshot) []Action {
	acts := Decide(s)
	for i, a := range acts {
		if r, ok := a.(Reconcile); ok {
			acts[i] = Replace{Node: r.Node, Pool: r.Pool, Reason: "down: power-cycle (CLUES)"}
		}
	}
	return acts
}

// TestPaperComparison replays paper 003's workload under the default
// policy and variants; run with -v for the table in docs/elastic.md.
func TestPaperComparison(t *testing.T) {
	type variant struct {
		name string
		vars []templates.VarArg
		opts Options
	}
	variants := []variant{
		{name: "default (idle_time auto, max_booting 10)"},
		{name: "idle_time 5m (the old default)", vars: []templates.VarArg{{Name: "idle_time", Value: "5m"}}},
		{name: "idle_time 15m", vars: []templates.VarArg{{Name: "idle_time", Value: "15m"}}},
		{name: "max_booting 1 (one node at a time, like the paper), idle_time 5m", vars: []templates.VarArg{{Name: "max_booting", Value: "1"}, {Name: "idle_time", Value: "5m"}}},
		{name: "max_booting 1, idle_time auto", vars: []templates.VarArg{{Name: "max_booting", Value: "1"}}},
		{name: "max_booting 1, idle_time 15m", vars: []templates.VarArg{{Name: "max_booting", Value: "1"}, {Name: "idle_time", Value: "15m"}}},
		{name: "a cloud that cannot stop (start_time 0s): idle nodes destroyed", vars: []templates.VarArg{{Name: "start_time", Value: "0s"}}},
		{name: "lost agents (60%), reconciled", opts: Options{AgentLossRate: 0.6}},
		{name: "lost agents (60%), power-cycled like CLUES", opts: Options{AgentLossRate: 0.6, Policy: powerCycle}},
	}
	t.Log("| run (seed 1) | makespan (seeds 1–5) | power-off tail | cloud paid h | cloud busy h | efficiency | cloud workers $ | + vRouter $ | cloud nodes made | scale-ups | wait p50 / p95 |")
	t.Log("|---|---|---|---|---|---|---|---|---|---|---|")
	t.Log("| paper 003 (CLUES) | 5h20m | 20m | 14.68 | 9.70 | 66% | 0.68 | 0.75 | 3 (+1 power-cycle) | one at a time | — |")
	for _, v := range variants {
		cfg, w := loadExample(t, v.vars...)
		var first *Report
		lo, hi := 1e18, 0.0
		for seed := int64(1); seed <= 5; seed++ {
			o := v.opts
			o.Seed = seed
			r, err := SimulateWith(cfg, w, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Finished != r.Jobs {
				t.Fatalf("%s: %d of %d jobs finished", v.name, r.Finished, r.Jobs)
			}
			if first == nil {
				first = r
			}
			lo, hi = min(lo, r.Makespan), max(hi, r.Makespan)
		}
		r := first
		cloud := poolReport(r, "aws.wn")
		vrouter := r.Duration / 3600 * 0.0116
		name := v.name
		if o := r.Operations; o.AgentsLost > 0 {
			name += fmt.Sprintf(": %d lost, %d reconciled, %d replaced", o.AgentsLost, o.Reconciles, o.Replacements)
		}
		t.Logf("| %s | %s (%s–%s) | %s | %.2f | %.2f | %.0f%% | %.2f | %.2f | %d | %d | %s / %s |", name, hm(r.Makespan), hm(lo), hm(hi), hm(r.PowerOffTail),
			cloud.PaidHours, cloud.BusyHours, 100*cloud.Efficiency, cloud.Cost, cloud.Cost+vrouter, cloud.Nodes, r.Operations.ScaleUps, hm(r.WaitP50), hm(r.WaitP95))
	}
}

func TestPaperHTML(t *testing.T) {
	out := os.Getenv("HVCTL_ELASTIC_REPORT")
	if out == "" {
		t.Skip("set HVCTL_ELASTIC_REPORT=FILE.html to write the hybrid-audio report")
	}
	cfg, w := loadExample(t)
	r, err := Simulate(cfg, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := r.WriteHTML(f); err != nil {
		t.Fatal(err)
	}
}

func TestPaperMaxBootingOne(t *testing.T) {
	// A fixed idle_time: the automatic policy would not start the third
	// node while the first batch drains (it would be ready too late).
	// start_time 0s: the paper's cloud nodes were destroyed, not stopped.
	cfg, w := loadExample(t, templates.VarArg{Name: "max_booting", Value: "1"}, templates.VarArg{Name: "idle_time", Value: "5m"}, templates.VarArg{Name: "start_time", Value: "0s"})
	r, err := Simulate(cfg, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The paper's orchestrator added one node at a time: the cloud nodes
	// joined about 20, 40 and 60 minutes after the first jobs.
	var joined []float64
	for _, n := range r.Nodes[:5] {
		if !n.Elastic {
			continue
		}
		for _, sg := range n.Segments {
			if sg.State == "booting" {
				joined = append(joined, sg.To/60)
			}
		}
	}
	if len(joined) != 3 || joined[0] < 19 || joined[0] > 22 || joined[1] < 39 || joined[1] > 42 || joined[2] < 59 || joined[2] > 62 {
		t.Errorf("cloud nodes joined at %v minutes, want about 20, 40, 60", joined)
	}
}
