package elastic

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// Report is what a simulation measured. Times are seconds from the start
// of the run (suffix _s) or hours (suffix _h).
type Report struct {
	Cluster  string `json:"cluster"`
	Workload string `json:"workload,omitempty"`
	Seed     int64  `json:"seed"`
	// Billing states the billing model the costs use.
	Billing  string         `json:"billing"`
	Settings ReportSettings `json:"settings"`

	Jobs     int `json:"jobs"`
	Finished int `json:"finished"`
	// Makespan is from the first submission to the end of the last job.
	Makespan float64 `json:"makespan_s"`
	// PowerOffTail is from the end of the last job until every elastic
	// pool is back at its min (paper 003: 20 minutes).
	PowerOffTail float64 `json:"power_off_tail_s"`
	// Duration is the whole run: Makespan plus the tail.
	Duration float64 `json:"duration_s"`
	WaitP50  float64 `json:"wait_p50_s"`
	WaitP95  float64 `json:"wait_p95_s"`

	Pools []PoolReport `json:"pools"`
	// Elastic sums the elastic pools: paid time, what part of it was
	// busy (a job running, its node setup included), and the rest.
	Elastic Usage `json:"elastic"`
	// Cost is every pool's paid hours times its price.
	Cost float64 `json:"cost"`

	Operations Operations `json:"operations"`
	// Series are the node counts per state, used slots and queue depth
	// after every policy tick at which something changed.
	Series []Sample `json:"series"`
	// Nodes are every node's state timeline.
	Nodes []NodeTimeline `json:"nodes"`
	// Decisions are the policy's actions with their reasons (the first
	// 10,000), and the capacity errors it met.
	Decisions []Decision `json:"decisions"`
	Notes     []string   `json:"notes,omitempty"`
	// QueueNames name the Queues of the samples: a pin ("any", "site
	// aws") in a simulation, a site in a live run.
	QueueNames []string `json:"queue_names,omitempty"`
	// Start is the wall clock at T = 0 of a live run (zero in a
	// simulation).
	Start time.Time `json:"start,omitzero"`
}

// ReportSettings are the settings the run used, as text.
type ReportSettings struct {
	Interval      string `json:"interval"`
	IdleTime      string `json:"idle_time"`
	ScaleUpWindow string `json:"scale_up_window"`
	MaxBooting    int    `json:"max_booting"`
	BootTimeout   string `json:"boot_timeout"`
	MaxFailures   int    `json:"max_failures"`
	HoldTime      string `json:"hold_time"`
	KeepIdle      int    `json:"keep_idle"`
	PowerOffTime  string `json:"power_off_time"`
}

func reportSettings(e templates.Elastic, o Options) ReportSettings {
	idle := e.IdleTime.String()
	if e.IdleAuto {
		idle = "auto"
	}
	return ReportSettings{Interval: e.Interval.String(), IdleTime: idle, ScaleUpWindow: e.ScaleUpWindow.String(),
		MaxBooting: e.MaxBooting, BootTimeout: e.BootTimeout.String(), MaxFailures: e.MaxFailures, HoldTime: e.HoldTime.String(),
		KeepIdle: e.KeepIdle, PowerOffTime: o.PowerOffTime.String()}
}

// PoolReport is one pool's use.
type PoolReport struct {
	Name    string  `json:"name"`
	Tier    int     `json:"tier"`
	Elastic bool    `json:"elastic"`
	Price   float64 `json:"price"`
	Nodes   int     `json:"nodes"` // machines over the run
	Usage
}

// Usage is paid machine time split by what it was spent on.
type Usage struct {
	// PaidHours is machine lifetime; NodeHours in the words.
	PaidHours float64 `json:"paid_h"`
	BusyHours float64 `json:"busy_h"`
	// IdleHours is paid but not busy: booting, idle, powering off,
	// failed or down.
	IdleHours        float64 `json:"paid_idle_h"`
	BootingHours     float64 `json:"booting_h"`
	PoweringOffHours float64 `json:"powering_off_h"`
	// StoppedHours is machine time stopped: not in PaidHours, billed at
	// the stopped price.
	StoppedHours float64 `json:"stopped_h,omitempty"`
	// Efficiency is BusyHours / PaidHours.
	Efficiency float64 `json:"efficiency"`
	Cost       float64 `json:"cost"`
}

func (u *Usage) add(o Usage) {
	u.PaidHours += o.PaidHours
	u.BusyHours += o.BusyHours
	u.IdleHours += o.IdleHours
	u.BootingHours += o.BootingHours
	u.PoweringOffHours += o.PoweringOffHours
	u.StoppedHours += o.StoppedHours
	u.Cost += o.Cost
	if u.PaidHours > 0 {
		u.Efficiency = u.BusyHours / u.PaidHours
	}
}

// Operations counts what the policy did and what the cloud did to it.
type Operations struct {
	ScaleUps           int `json:"scale_ups"` // ScaleUp actions
	NodesCreated       int `json:"nodes_created"`
	ScaleDowns         int `json:"scale_downs"` // power-offs begun
	CancelledPowerOffs int `json:"cancelled_power_offs"`
	Replacements       int `json:"replacements"`
	Destroys           int `json:"destroys"` // failed nodes destroyed, not replaced
	Holds              int `json:"holds"`
	Reconciles         int `json:"reconciles"`
	CapacityErrors     int `json:"capacity_errors"`
	BootFailures       int `json:"boot_failures"`
	AgentsLost         int `json:"agents_lost"`
	Stops              int `json:"stops,omitempty"`
	Starts             int `json:"starts,omitempty"`
}

// Sample is the cluster at one instant.
type Sample struct {
	T            float64 `json:"t_s"`
	Booting      int     `json:"booting"`
	Idle         int     `json:"idle"`
	Busy         int     `json:"busy"`
	PoweringOff  int     `json:"powering_off"`
	Failed       int     `json:"failed"`
	Down         int     `json:"down"`
	Stopped      int     `json:"stopped,omitempty"`
	ElasticNodes int     `json:"elastic_nodes"`
	Slots        int     `json:"slots"`
	UsedSlots    int     `json:"used_slots"`
	Queued       int     `json:"queued"`
	// Queues splits Queued by where the jobs wait (Report.QueueNames).
	Queues []int `json:"queues,omitempty"`
	// Cost is what every pool has cost so far, in the pools' currency.
	Cost float64 `json:"cost"`
}

// NodeTimeline is one node's states over time.
type NodeTimeline struct {
	Name     string    `json:"name"`
	Pool     string    `json:"pool"`
	Elastic  bool      `json:"elastic"`
	Segments []Segment `json:"segments"`
}

// Segment is a node's state from From to To (seconds).
type Segment struct {
	State string  `json:"state"`
	From  float64 `json:"from_s"`
	To    float64 `json:"to_s"`
}

// Decision is one action at a time (seconds).
type Decision struct {
	T      float64 `json:"t_s"`
	Action string  `json:"action"`
}

// finish closes the books at the end of the run.
func (s *simulator) finish() *Report {
	r := s.report
	end := s.now
	r.Finished = s.done
	if s.done > 0 {
		r.Makespan = s.lastEnd.Sub(s.firstSub).Seconds()
		r.PowerOffTail = max(end.Sub(s.lastEnd).Seconds(), 0)
	}
	r.Duration = end.Sub(s.firstSub).Seconds()
	slices.Sort(s.waits)
	r.WaitP50 = percentile(s.waits, 0.50).Seconds()
	r.WaitP95 = percentile(s.waits, 0.95).Seconds()
	byPool := map[*simPool]*PoolReport{}
	for _, p := range s.ordered {
		r.Pools = append(r.Pools, PoolReport{Name: p.Name, Tier: p.Tier, Elastic: p.Elastic(), Price: p.Price})
	}
	for i, p := range s.ordered {
		byPool[p] = &r.Pools[i]
	}
	for _, n := range s.nodes {
		if n.alive {
			n.inState[n.state] += end.Sub(n.since)
			n.segments = append(n.segments, Segment{State: n.state.String(), From: s.secs(n.since), To: s.secs(end)})
			n.gone, n.since = end, end
		}
		paid := n.gone.Sub(n.created) - n.inState[Stopped]
		u := Usage{
			PaidHours:        paid.Hours(),
			BusyHours:        n.inState[Busy].Hours(),
			BootingHours:     n.inState[Booting].Hours(),
			PoweringOffHours: n.inState[PoweringOff].Hours(),
			StoppedHours:     n.inState[Stopped].Hours(),
			Cost:             s.costOf(n, n.gone),
		}
		u.IdleHours = u.PaidHours - u.BusyHours
		pr := byPool[n.pool]
		pr.Nodes++
		pr.add(u)
		if n.pool.Elastic() {
			r.Elastic.add(u)
		}
		r.Cost += u.Cost
		r.Nodes = append(r.Nodes, NodeTimeline{Name: n.name, Pool: n.pool.Name, Elastic: n.pool.Elastic(), Segments: mergeSegments(n.segments)})
	}
	if len(r.Series) > 4000 {
		k := (len(r.Series) + 3999) / 4000
		var thin []Sample
		for i, x := range r.Series {
			if i%k == 0 || i == len(r.Series)-1 {
				thin = append(thin, x)
			}
		}
		r.Series = thin
	}
	return r
}

// mergeSegments joins adjacent segments of the same state.
func mergeSegments(in []Segment) []Segment {
	var out []Segment
	for _, sg := range in {
		if l := len(out); l > 0 && out[l-1].State == sg.State && out[l-1].To == sg.From {
			out[l-1].To = sg.To
			continue
		}
		out = append(out, sg)
	}
	return out
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[min(i, len(sorted)-1)]
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a short human summary.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "cluster\t%s\n", r.Cluster)
	if r.Workload != "" {
		fmt.Fprintf(tw, "workload\t%s (%d jobs, %d finished)\n", r.Workload, r.Jobs, r.Finished)
	}
	fmt.Fprintf(tw, "makespan\t%s\n", hm(r.Makespan))
	fmt.Fprintf(tw, "power-off tail\t%s\n", hm(r.PowerOffTail))
	fmt.Fprintf(tw, "job wait p50 / p95\t%s / %s\n", hm(r.WaitP50), hm(r.WaitP95))
	fmt.Fprintf(tw, "elastic paid / busy / paid-idle\t%.2f h / %.2f h / %.2f h\n", r.Elastic.PaidHours, r.Elastic.BusyHours, r.Elastic.IdleHours)
	fmt.Fprintf(tw, "efficiency (elastic)\t%.0f%%\n", 100*r.Elastic.Efficiency)
	fmt.Fprintf(tw, "cost\t$%.2f\n", r.Cost)
	o := r.Operations
	stops := ""
	if o.Stops+o.Starts > 0 {
		stops = fmt.Sprintf(", %d stops, %d starts", o.Stops, o.Starts)
	}
	fmt.Fprintf(tw, "operations\t%d scale-ups (%d nodes), %d power-offs, %d cancelled, %d replaced, %d holds, %d reconciles%s\n",
		o.ScaleUps, o.NodesCreated, o.ScaleDowns, o.CancelledPowerOffs, o.Replacements, o.Holds, o.Reconciles, stops)
	fmt.Fprintf(tw, "\npool\ttier\tnodes\tpaid h\tbusy h\tstopped h\tcost\n")
	for _, p := range r.Pools {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t$%.2f\n", p.Name, p.Tier, p.Nodes, p.PaidHours, p.BusyHours, p.StoppedHours, p.Cost)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(tw, "note\t%s\n", n)
	}
	return tw.Flush()
}

// hm renders seconds as "5h20m" or "45s".
func hm(sec float64) string {
	d := time.Duration(sec * float64(time.Second)).Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return d.String()
}
