package elastic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// TuneGrid is the fixed settings a sweep tries: every idle_time with
// every max_booting.
type TuneGrid struct {
	IdleTimes  []time.Duration
	MaxBooting []int
}

// DefaultTuneGrid is what `hvctl elastic tune` sweeps: 10 idle times
// from 30 s to 1 h, max_booting 1, 2 and 10: 30 simulations.
var DefaultTuneGrid = TuneGrid{
	IdleTimes:  []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 20 * time.Minute, 30 * time.Minute, 45 * time.Minute, time.Hour},
	MaxBooting: []int{1, 2, 10},
}

// ParseTuneGrid reads comma-separated idle times and max_booting values
// ("1m,5m,15m", "1,10"); an empty list keeps DefaultTuneGrid's.
func ParseTuneGrid(idleTimes, maxBooting string) (TuneGrid, error) {
	g := DefaultTuneGrid
	if strings.TrimSpace(idleTimes) != "" {
		g.IdleTimes = nil
		for _, f := range strings.Split(idleTimes, ",") {
			d, err := templates.ParseDuration(strings.TrimSpace(f))
			if err != nil {
				return g, fmt.Errorf("-idle-times: %q: %v", f, err)
			}
			if d < 0 {
				return g, fmt.Errorf("-idle-times: %q is negative", f)
			}
			g.IdleTimes = append(g.IdleTimes, d)
		}
	}
	if strings.TrimSpace(maxBooting) != "" {
		g.MaxBooting = nil
		for _, f := range strings.Split(maxBooting, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return g, fmt.Errorf("-max-booting: %q is not a whole number ≥ 0 (0 = no limit)", f)
			}
			g.MaxBooting = append(g.MaxBooting, n)
		}
	}
	if n := len(g.IdleTimes) * len(g.MaxBooting); n > 400 {
		return g, fmt.Errorf("%d settings to simulate: at most 400", n)
	}
	return g, nil
}

// TunePoint is one simulated setting.
type TunePoint struct {
	// Setting names it: "idle_time 15m, max_booting 2", or "default
	// (idle_time auto, max_booting 10)".
	Setting    string  `json:"setting"`
	IdleTime   string  `json:"idle_time"` // a duration or "auto"
	MaxBooting int     `json:"max_booting"`
	Makespan   float64 `json:"makespan_s"`
	// Cost is the elastic pools' cost; Efficiency their busy ÷ paid.
	Cost       float64 `json:"cost"`
	Efficiency float64 `json:"efficiency"`
	PaidHours  float64 `json:"paid_h"`
	NodesMade  int     `json:"nodes_made"`
	// Frontier marks settings no other setting beats on both makespan
	// and cost.
	Frontier bool `json:"frontier"`
}

// TuneResult is a sweep: every fixed setting, the frontier among them,
// and the default policy.
type TuneResult struct {
	Cluster  string      `json:"cluster"`
	Workload string      `json:"workload"`
	Seed     int64       `json:"seed"`
	Points   []TunePoint `json:"points"`
	Default  TunePoint   `json:"default"`
	// Nearest is the frontier setting the default comes closest to
	// matching on both axes, and Ratio the larger of the default's
	// makespan and cost over that setting's (1.03 = within 3% on both;
	// below 1 = the default beats it on both).
	Nearest TunePoint `json:"nearest"`
	Ratio   float64   `json:"ratio"`
}

// Tune simulates workload w on cfg under every fixed setting of grid and
// under the template's own settings with idle_time "auto" (the default
// policy, keeping the template's max_booting), and finds the
// cost/makespan frontier.
func Tune(cfg *templates.Config, w Workload, grid TuneGrid, opts Options) (*TuneResult, error) {
	if cfg == nil || cfg.Cluster == nil {
		return nil, errors.New("tune: the template has no cluster")
	}
	if len(grid.IdleTimes) == 0 || len(grid.MaxBooting) == 0 {
		return nil, errors.New("tune: the grid is empty")
	}
	res := &TuneResult{Cluster: cfg.Cluster.Name, Workload: w.Name, Seed: opts.Seed}
	run := func(e templates.Elastic, name string) (TunePoint, error) {
		c := *cfg
		cl := *cfg.Cluster
		cl.Elastic = e
		c.Cluster = &cl
		r, err := SimulateWith(&c, w, opts)
		if err != nil {
			return TunePoint{}, err
		}
		if r.Finished != r.Jobs {
			name += fmt.Sprintf(" (%d of %d jobs finished)", r.Finished, r.Jobs)
		}
		idle := e.IdleTime.String()
		if e.IdleAuto {
			idle = "auto"
		}
		return TunePoint{Setting: name, IdleTime: idle, MaxBooting: e.MaxBooting, Makespan: r.Makespan, Cost: r.Elastic.Cost,
			Efficiency: r.Elastic.Efficiency, PaidHours: r.Elastic.PaidHours, NodesMade: r.Operations.NodesCreated}, nil
	}
	for _, mb := range grid.MaxBooting {
		for _, it := range grid.IdleTimes {
			e := cfg.Cluster.Elastic
			e.IdleTime, e.IdleAuto, e.MaxBooting = it, false, mb
			p, err := run(e, fmt.Sprintf("idle_time %s, max_booting %d", shortDur(it), mb))
			if err != nil {
				return nil, err
			}
			res.Points = append(res.Points, p)
		}
	}
	markFrontier(res.Points)
	e := cfg.Cluster.Elastic
	e.IdleAuto = true
	d, err := run(e, fmt.Sprintf("default (idle_time auto, max_booting %d)", e.MaxBooting))
	if err != nil {
		return nil, err
	}
	res.Default = d
	res.Ratio = 1e18
	for _, p := range res.Points {
		if !p.Frontier {
			continue
		}
		if r := max(ratio(d.Makespan, p.Makespan), ratio(d.Cost, p.Cost)); r < res.Ratio {
			res.Ratio, res.Nearest = r, p
		}
	}
	return res, nil
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		if a <= 0 {
			return 1
		}
		return 1e18
	}
	return a / b
}

// markFrontier sets Frontier on the points no other point beats on both
// makespan and cost (at least as good on both, better on one).
func markFrontier(ps []TunePoint) {
	for i := range ps {
		ps[i].Frontier = true
		for j := range ps {
			a, b := ps[j], ps[i]
			if a.Makespan <= b.Makespan && a.Cost <= b.Cost && (a.Makespan < b.Makespan || a.Cost < b.Cost) {
				ps[i].Frontier = false
				break
			}
		}
	}
}

// FrontierPoints returns the frontier, by makespan.
func (t *TuneResult) FrontierPoints() []TunePoint {
	var out []TunePoint
	for _, p := range t.Points {
		if p.Frontier {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b TunePoint) int {
		switch {
		case a.Makespan < b.Makespan:
			return -1
		case a.Makespan > b.Makespan:
			return 1
		}
		return 0
	})
	return out
}

// WriteJSON writes the sweep as indented JSON.
func (t *TuneResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// WriteText writes the frontier, the default and where it lands.
func (t *TuneResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s on %s: %d fixed settings simulated (seed %d)\n\n", t.Workload, t.Cluster, len(t.Points), t.Seed)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tsetting\tmakespan\tcost\tefficiency\tnodes made")
	row := func(mark string, p TunePoint) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t$%.3f\t%.0f%%\t%d\n", mark, p.Setting, hm(p.Makespan), p.Cost, 100*p.Efficiency, p.NodesMade)
	}
	for _, p := range t.FrontierPoints() {
		row("frontier", p)
	}
	row("default", t.Default)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s\n", t.Verdict())
	return err
}

// Verdict says where the default lands.
func (t *TuneResult) Verdict() string {
	n := t.Nearest
	switch {
	case t.Ratio <= 1:
		return fmt.Sprintf("The default is as fast and as cheap as the frontier setting %q or better (makespan %s vs %s, cost $%.3f vs $%.3f).",
			n.Setting, hm(t.Default.Makespan), hm(n.Makespan), t.Default.Cost, n.Cost)
	default:
		return fmt.Sprintf("The default is within %.1f%% of the frontier setting %q on both makespan (%s vs %s) and cost ($%.3f vs $%.3f).",
			100*(t.Ratio-1), n.Setting, hm(t.Default.Makespan), hm(n.Makespan), t.Default.Cost, n.Cost)
	}
}

// shortDur renders a duration without zero units: "15m", "1h", "30s".
func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
