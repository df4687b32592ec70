package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

func init() {
	register(&command{name: "elastic", usage: "run [PATH] | simulate|tune -f TEMPLATE -w WORKLOAD [-json] [-report FILE.html] [-seed N]", help: "Elasticity: the daemon, and the simulator over a workload file", run: runElastic,
		subs: []*command{
			{name: "run", usage: "[PATH] [options]", help: "Run the elasticity daemon against a live cluster", examples: []string{"hvctl elastic run examples/local-hybrid.hcl -metrics 127.0.0.1:9108"}},
			{name: "simulate", usage: "-f TEMPLATE -w WORKLOAD [options]", help: "Replay a workload on a virtual clock with the daemon's policy", examples: []string{"hvctl elastic simulate -f examples/hybrid-audio.hcl -w examples/workloads/hybrid-audio.json -report r.html"}},
			{name: "tune", usage: "-f TEMPLATE -w WORKLOAD [options]", help: "Sweep fixed elastic settings in the simulator: the cost/makespan frontier, and where the default policy lands", examples: []string{"hvctl elastic tune -f examples/hybrid-audio.hcl -w examples/workloads/hybrid-audio.json -report tune.html"}},
		},
		examples: []string{"hvctl elastic simulate -f examples/hybrid-audio.hcl -w examples/workloads/hybrid-audio.json"}})
}

func runElastic(a *App, args []string) int {
	if len(args) > 0 && args[0] == "run" {
		return runElasticRun(a, args[1:])
	}
	if len(args) > 0 && args[0] == "tune" {
		return runElasticTune(a, args[1:])
	}
	if len(args) == 0 || args[0] != "simulate" {
		return a.fail("Usage: hvctl elastic simulate -f TEMPLATE -w WORKLOAD", "simulate replays a workload (JSON or CSV) on a virtual clock with the same policy the daemon runs, and reports makespan, node-hours, efficiency and cost. hvctl elastic tune sweeps fixed settings. hvctl elastic run [PATH] runs the daemon against a live cluster.")
	}
	c := findCommand("elastic").sub("simulate")
	fs := a.flagSet(c)
	var t tmplFlags
	t.add(fs)
	tmpl := fs.String("f", "", "template (.hcl file or directory)")
	wl := fs.String("w", "", "workload file (JSON or CSV)")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	report := fs.String("report", "", "write an HTML report with plots to FILE")
	seed := fs.Int64("seed", 1, "random seed (same seed, same figures)")
	if _, code, ok := a.parse(fs, args[1:]); !ok {
		return code
	}
	if *tmpl == "" || *wl == "" {
		return a.fail("simulate needs -f TEMPLATE and -w WORKLOAD", "Example: hvctl elastic simulate -f examples/hybrid-audio.hcl -w examples/workloads/hybrid-audio.json")
	}
	cfg, w, ok := a.simInputs(*tmpl, *wl, t.vars)
	if !ok {
		return exitError
	}
	rep, err := elastic.Simulate(cfg, w, *seed)
	if err != nil {
		return a.failErr(err)
	}
	return a.writeReport(rep, *report, *jsonOut)
}

// simInputs loads the template and the workload that simulate and tune
// replay; ok=false once the error is printed.
func (a *App) simInputs(tmpl, workload string, vars []templates.VarArg) (*templates.Config, elastic.Workload, bool) {
	cfg, ok := a.load(tmpl, vars)
	if !ok {
		return nil, elastic.Workload{}, false
	}
	f, err := os.Open(workload)
	if err != nil {
		a.failErr(err)
		return nil, elastic.Workload{}, false
	}
	defer f.Close()
	w, err := elastic.ParseWorkload(workload, f)
	if err != nil {
		a.fail("Invalid workload", err.Error())
		return nil, elastic.Workload{}, false
	}
	return cfg, w, true
}

// report is what simulate and tune print, in each of its forms.
type report interface {
	WriteText(io.Writer) error
	WriteJSON(io.Writer) error
	WriteHTML(io.Writer) error
}

// writeReport writes r's HTML to file (when given, atomically) and
// prints its text, or its JSON with jsonOut.
func (a *App) writeReport(r report, file string, jsonOut bool) int {
	if file != "" {
		var buf bytes.Buffer
		if err := r.WriteHTML(&buf); err != nil {
			return a.failErr(err)
		}
		if err := provision.WriteFileAtomic(file, buf.Bytes()); err != nil {
			return a.failErr(err)
		}
	}
	if jsonOut {
		if err := r.WriteJSON(a.Stdout); err != nil {
			return a.failErr(err)
		}
		return exitOK
	}
	if err := r.WriteText(a.Stdout); err != nil {
		return a.failErr(err)
	}
	if file != "" {
		fmt.Fprintf(a.Stdout, "\nReport written to %s\n", file)
	}
	return exitOK
}

func runElasticTune(a *App, args []string) int {
	c := findCommand("elastic").sub("tune")
	fs := a.flagSet(c)
	var t tmplFlags
	t.add(fs)
	tmpl := fs.String("f", "", "template (.hcl file or directory)")
	wl := fs.String("w", "", "workload file (JSON or CSV)")
	jsonOut := fs.Bool("json", false, "print the sweep as JSON")
	report := fs.String("report", "", "write an HTML page with the frontier plot to FILE")
	seed := fs.Int64("seed", 1, "random seed (same seed, same figures)")
	idle := fs.String("idle-times", "", "idle_time values to sweep, comma-separated (default 30s,1m,2m,5m,10m,15m,20m,30m,45m,1h)")
	booting := fs.String("max-booting", "", "max_booting values to sweep, comma-separated (default 1,2,10)")
	if _, code, ok := a.parse(fs, args); !ok {
		return code
	}
	if *tmpl == "" || *wl == "" {
		return a.fail("tune needs -f TEMPLATE and -w WORKLOAD", "Example: hvctl elastic tune -f examples/hybrid-audio.hcl -w examples/workloads/hybrid-audio.json")
	}
	grid, err := elastic.ParseTuneGrid(*idle, *booting)
	if err != nil {
		return a.fail("Invalid sweep", err.Error())
	}
	cfg, w, ok := a.simInputs(*tmpl, *wl, t.vars)
	if !ok {
		return exitError
	}
	res, err := elastic.Tune(cfg, w, grid, elastic.Options{Seed: *seed})
	if err != nil {
		return a.failErr(err)
	}
	return a.writeReport(res, *report, *jsonOut)
}
