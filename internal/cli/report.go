package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/provision"
)

func init() {
	register(&command{name: "report", usage: "[PATH] [-o FILE] [-json]", help: "An HTML report of a live or past cluster from the elastic daemon's history: node states, queues, utilisation and cost over time, decisions", run: runReport,
		examples: []string{"hvctl report examples/local-hybrid.hcl -o report.html"}})
}

func runReport(a *App, args []string) int {
	c := findCommand("report")
	fs := a.flagSet(c)
	var t tmplFlags
	t.add(fs)
	t.addBackend(fs)
	out := fs.String("o", "", "write the HTML report to FILE (default: standard output)")
	jsonOut := fs.Bool("json", false, "print the report's data as JSON instead")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	tmpl := templatePath(pos)
	if _, err := os.Stat(tmpl); err != nil {
		return a.fail("No template at "+tmpl, fmt.Sprintf("hvctl report finds the cluster's state directory next to its template: %v", err))
	}
	// The template's state block says whether the history is sealed.
	store, err := a.readStore(&t, tmpl)
	if err != nil {
		return a.failErr(err)
	}
	path := filepath.Join(store.Dir(), elastic.HistoryFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return a.fail("No elastic history at "+path, "The elastic daemon writes it while it runs (hvctl up starts it for a template with elastic pools, or run hvctl elastic run). A cluster without elastic pools has no history; hvctl elastic simulate -report reports a simulated run.")
	}
	if err != nil {
		return a.failErr(err)
	}
	defer f.Close()
	run, steps, err := elastic.ReadSealedHistory(path, f, store.Sealer)
	if err != nil {
		return a.fail("Unreadable elastic history", err.Error())
	}
	// A run whose last step is recent is live: it goes on until now.
	until := time.Time{}
	if n := len(steps); n > 0 && time.Since(steps[n-1].T) < 2*time.Minute {
		until = time.Now()
	}
	rep := elastic.ReportFromHistory(run, steps, until)
	var buf bytes.Buffer
	if *jsonOut {
		err = rep.WriteJSON(&buf)
	} else {
		err = rep.WriteHTML(&buf)
	}
	if err != nil {
		return a.failErr(err)
	}
	if *out == "" {
		a.Stdout.Write(buf.Bytes())
		return exitOK
	}
	if err := provision.WriteFileAtomic(*out, buf.Bytes()); err != nil {
		return a.failErr(err)
	}
	fmt.Fprintf(a.Stdout, "Report of cluster %s (%d steps recorded since %s) written to %s\n", run.Cluster, len(steps), run.Start.Format(time.RFC3339), *out)
	return exitOK
}
