package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
)

func init() {
	register(&command{name: "check", usage: "[PATH] [-all-pairs] [-json]", help: "Check overlay reachability between nodes with ping and TCP", run: runCheck})
}

// checkPort is the TCP port check connects to on each node. Nothing need
// listen there: a refused connection (a reset) has crossed the overlay
// both ways as surely as an accepted one; only silence is a failure.
const checkPort = 51821

// PairCheck is one source-destination pair of a check.
type PairCheck struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Address string `json:"address"`
	Ping    bool   `json:"ping"`
	TCP     bool   `json:"tcp"`
	// Error says why a check failed, as the command on the node put it.
	Error string `json:"error,omitempty"`
}

func (p PairCheck) ok() bool { return p.Ping && p.TCP }

func runCheck(a *App, args []string) int {
	c := findCommand("check")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, 0)
	allPairs := fs.Bool("all-pairs", false, "check every node from every node (default: the hubs and gateways each node needs; every pair in a mesh)")
	jsonOut := fs.Bool("json", false, "print the results as JSON")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	o.lock = false
	s, ok := a.open(templatePath(pos), &o, "check")
	if !ok {
		return exitError
	}
	defer s.close()
	mc := s.managerFor(s.State)
	if mc == nil {
		return a.fail("No cluster manager to ask", "hvctl check needs a cluster whose nodes run the hvctl agent (the local provider); run hvctl up first.")
	}
	nodes, err := mc.nodes(a.Ctx)
	if err != nil {
		return a.failErr(fmt.Errorf("check: list the nodes: %w", err))
	}
	byID := map[string]*provision.ResourceState{}
	for _, r := range s.State.Resources {
		if r.Kind == provision.KindInstance {
			byID[manager.MemberID(r.Address)] = r
		}
	}
	type job struct {
		from *provision.ResourceState
		ex   executor
		pair PairCheck
	}
	var jobs []job
	for _, n := range nodes {
		r := byID[n.ID]
		if r == nil || n.State != manager.StateJoined {
			continue
		}
		p, _ := s.Engine.Provider(r.Provider)
		ex, ok := p.(executor)
		if !ok {
			return a.fail(fmt.Sprintf("Cannot run commands on %s", n.ID), fmt.Sprintf("hvctl check runs ping and TCP through exec; the %s provider has no way to run commands on its machines.", r.Type))
		}
		var targets []PairCheck
		if *allPairs {
			for _, to := range nodes {
				if to.ID != n.ID && to.OverlayIP.IsValid() {
					targets = append(targets, PairCheck{From: n.ID, To: to.ID, Address: to.OverlayIP.String()})
				}
			}
		} else {
			for _, p := range n.Paths {
				targets = append(targets, PairCheck{From: n.ID, To: p.To, Address: p.Address.String()})
			}
		}
		for _, t := range targets {
			jobs = append(jobs, job{from: r, ex: ex, pair: t})
		}
	}
	if len(jobs) == 0 {
		return a.fail("Nothing to check", "No joined node has a path to check; hvctl status shows the nodes.")
	}
	results := make([]PairCheck, len(jobs))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = checkPair(a.Ctx, j.ex, j.from.ID, j.pair)
		}()
	}
	wg.Wait()
	if a.Ctx.Err() != nil {
		return a.failErr(a.Ctx.Err())
	}
	broken := 0
	for _, r := range results {
		if !r.ok() {
			broken++
		}
	}
	if *jsonOut {
		if code := a.writeJSON(map[string]any{"cluster": s.Config.Cluster.Name, "all_pairs": *allPairs, "pairs": results, "broken": broken}); code != exitOK {
			return code
		}
	} else {
		a.printMatrix(results)
		if broken == 0 {
			fmt.Fprintf(a.Stdout, "\nAll %d paths answer ping and TCP.\n", len(results))
		} else {
			fmt.Fprintf(a.Stdout, "\n%d of %d paths are broken:\n", broken, len(results))
			for _, r := range results {
				if !r.ok() {
					fmt.Fprintf(a.Stdout, "  %s -> %s (%s): %s\n", r.From, r.To, r.Address, r.Error)
				}
			}
		}
	}
	if broken > 0 {
		return exitError
	}
	return exitOK
}

// checkPair pings the pair's address once from the source node, then
// opens a TCP connection to it, both through the provider's exec.
func checkPair(ctx context.Context, ex executor, id string, p PairCheck) PairCheck {
	run := func(argv ...string) (int, string) {
		var out bytes.Buffer
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		rc, err := ex.Exec(cctx, id, argv, strings.NewReader(""), &out, &out)
		if err != nil {
			return -1, err.Error()
		}
		return rc, strings.TrimSpace(out.String())
	}
	var errs []string
	for try := 0; try < 3 && !p.Ping; try++ {
		rc, _ := run("ping", "-n", "-c", "1", "-W", "2", p.Address)
		p.Ping = rc == 0
	}
	if !p.Ping {
		errs = append(errs, "ping: no answer")
	}
	// bash's /dev/tcp: exit 0 when connected; "Connection refused" is an
	// answer too. timeout(1) ends a connect that nothing answers.
	rc, out := run("timeout", "5", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", p.Address, checkPort))
	p.TCP = rc == 0 || strings.Contains(out, "Connection refused")
	if !p.TCP {
		msg := "tcp: no answer"
		if rc != 124 && out != "" {
			msg = "tcp: " + lastLine(out)
		}
		errs = append(errs, msg)
	}
	p.Error = strings.Join(errs, "; ")
	return p
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// printMatrix prints sources as rows and destinations as numbered
// columns: "ok", or which of ping and TCP failed.
func (a *App) printMatrix(results []PairCheck) {
	var names []string
	index := map[string]int{}
	add := func(n string) {
		if _, ok := index[n]; !ok {
			index[n] = len(names)
			names = append(names, n)
		}
	}
	for _, r := range results {
		add(r.From)
	}
	for _, r := range results {
		add(r.To)
	}
	cell := map[[2]int]string{}
	for _, r := range results {
		v := "ok"
		switch {
		case !r.Ping && !r.TCP:
			v = "DEAD"
		case !r.Ping:
			v = "no-ping"
		case !r.TCP:
			v = "no-tcp"
		}
		cell[[2]int{index[r.From], index[r.To]}] = v
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 1, ' ', 0)
	fmt.Fprint(tw, "FROM \\ TO")
	for i := range names {
		fmt.Fprintf(tw, "\t%d", i+1)
	}
	fmt.Fprintln(tw)
	for i, n := range names {
		row := false
		for j := range names {
			if _, ok := cell[[2]int{i, j}]; ok {
				row = true
			}
		}
		if !row {
			continue
		}
		fmt.Fprintf(tw, "%d %s", i+1, n)
		for j := range names {
			v, ok := cell[[2]int{i, j}]
			switch {
			case i == j:
				v = `\`
			case !ok:
				v = "."
			}
			fmt.Fprintf(tw, "\t%s", v)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(a.Stdout, "\nColumns:")
	for i, n := range names {
		fmt.Fprintf(a.Stdout, "  %d %s\n", i+1, n)
	}
}
