package elastic

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

// stateColors follow paper 003's Figure 11: busy blue, booting green,
// idle orange, powering off purple.
var stateColors = map[string]string{
	"busy": "#1f77b4", "booting": "#2ca02c", "idle": "#ff7f0e",
	"powering-off": "#9467bd", "failed": "#d62728", "down": "#7f7f7f",
	"stopped": "#bcbd22",
}

var stateOrder = []string{"busy", "idle", "booting", "powering-off", "stopped", "down", "failed"}

// seriesColors are for lines that are not node states (queues per site).
var seriesColors = []string{"#000000", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#d62728", "#9467bd"}

// WriteHTML writes one self-contained page (inline SVG, no script): the
// summary as tables; nodes per state stacked with the queue depth on a
// second axis (paper 003's Figure 11 summed over nodes); queued jobs by
// where they wait; used and joined slots with the utilisation (Figure
// 10); cost over time; every node's states (Figure 11); the decisions.
// Each chart has ticks, gridlines and titled axes with units, and a
// legend beside it listing only what occurs.
func (r *Report) WriteHTML(w io.Writer) error {
	title := "Elastic simulation"
	if !r.Start.IsZero() {
		title = "Elastic report"
	}
	name := r.Cluster
	if r.Workload != "" && r.Workload != r.Cluster {
		name += " · " + r.Workload
	}
	data := struct {
		Title, Name, Billing   string
		CSS                    template.CSS
		Summary, Pools         []kv
		PoolRows               []PoolReport
		States, Queues, Slots  template.HTML
		Cost, Nodes, Decisions template.HTML
		Notes                  []string
		Seed                   int64
		Live                   bool
	}{Title: title, Name: name, Billing: r.Billing, CSS: template.CSS(pageCSS), Summary: r.summary(), PoolRows: r.Pools,
		States: template.HTML(r.htmlStates()), Queues: template.HTML(r.htmlQueues()), Slots: template.HTML(r.htmlSlots()),
		Cost: template.HTML(r.htmlCost()), Nodes: template.HTML(r.htmlNodes()), Decisions: template.HTML(r.htmlDecisions()),
		Notes: r.Notes, Seed: r.Seed, Live: !r.Start.IsZero()}
	return pageTmpl.Execute(w, data)
}

type kv struct{ K, V string }

func (r *Report) summary() []kv {
	out := []kv{}
	if r.Workload != "" && r.Jobs > 0 {
		out = append(out, kv{"workload", fmt.Sprintf("%s: %d jobs, %d finished", r.Workload, r.Jobs, r.Finished)})
	}
	if !r.Start.IsZero() {
		out = append(out, kv{"recorded", fmt.Sprintf("from %s for %s", r.Start.UTC().Format("2006-01-02 15:04:05 UTC"), hm(r.Duration))})
	}
	out = append(out,
		kv{"makespan", hm(r.Makespan) + " (first queued job to last busy node)"},
		kv{"power-off tail", hm(r.PowerOffTail)},
	)
	if r.Jobs > 0 {
		out = append(out, kv{"job wait p50 / p95", hm(r.WaitP50) + " / " + hm(r.WaitP95)})
	}
	e := r.Elastic
	out = append(out,
		kv{"elastic pools: paid / busy / paid idle", fmt.Sprintf("%.2f h / %.2f h / %.2f h (booting %.2f h, powering off %.2f h)", e.PaidHours, e.BusyHours, e.IdleHours, e.BootingHours, e.PoweringOffHours)},
		kv{"efficiency (busy ÷ paid, elastic pools)", fmt.Sprintf("%.0f%%", 100*e.Efficiency)},
		kv{"cost", fmt.Sprintf("$%.3f", r.Cost)},
	)
	o := r.Operations
	if r.Start.IsZero() {
		ops := fmt.Sprintf("%d scale-ups (%d nodes), %d power-offs, %d cancelled, %d replaced, %d holds, %d reconciles, %d capacity errors, %d boot failures, %d agents lost",
			o.ScaleUps, o.NodesCreated, o.ScaleDowns, o.CancelledPowerOffs, o.Replacements, o.Holds, o.Reconciles, o.CapacityErrors, o.BootFailures, o.AgentsLost)
		if o.Stops+o.Starts > 0 {
			ops += fmt.Sprintf(", %d stops, %d starts", o.Stops, o.Starts)
		}
		out = append(out, kv{"operations", ops})
	}
	s := r.Settings
	if s.Interval != "" {
		out = append(out, kv{"settings", fmt.Sprintf("interval %s, idle_time %s, scale_up_window %s, max_booting %d, boot_timeout %s, power-off %s",
			s.Interval, s.IdleTime, s.ScaleUpWindow, s.MaxBooting, s.BootTimeout, s.PowerOffTime)})
	}
	return out
}

var pageTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"f2":  func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"pct": func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) },
	"usd": func(v float64) string { return fmt.Sprintf("$%.3f", v) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>hvctl {{.Title}}: {{.Name}}</title><style>{{.CSS}}</style></head><body>
<h1>{{.Title}}: {{.Name}}</h1>
<table class="summary"><tbody>{{range .Summary}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{end}}</tbody></table>
<h2>Pools</h2>
<table class="pools"><thead><tr><th>pool</th><th class="n">tier</th><th>elastic</th><th class="n">$/h</th><th class="n">nodes</th><th class="n">paid h</th><th class="n">busy h</th><th class="n">stopped h</th><th class="n">efficiency</th><th class="n">cost</th></tr></thead><tbody>
{{range .PoolRows}}<tr><td>{{.Name}}</td><td class="n">{{.Tier}}</td><td>{{if .Elastic}}yes{{end}}</td><td class="n">{{.Price}}</td><td class="n">{{.Nodes}}</td><td class="n">{{f2 .PaidHours}}</td><td class="n">{{f2 .BusyHours}}</td><td class="n">{{f2 .StoppedHours}}</td><td class="n">{{pct .Efficiency}}</td><td class="n">{{usd .Cost}}</td></tr>
{{end}}</tbody></table>
<p class="note">Billing: {{.Billing}}.{{if not .Live}} Seed {{.Seed}}.{{end}}</p>
<h2>Nodes per state and queued jobs</h2>
{{.States}}
<h2>Queued jobs by where they wait</h2>
{{.Queues}}
<h2>Job slots and utilisation</h2>
{{.Slots}}
<h2>Cost so far</h2>
{{.Cost}}
<h2>Node states</h2>
{{.Nodes}}
<h2>Decisions</h2>
{{.Decisions}}
{{if .Notes}}<h2>Notes</h2><ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
</body></html>
`))

// tEnd is the end of the time axis.
func (r *Report) tEnd() float64 {
	t := max(r.Duration, 1)
	if n := len(r.Series); n > 0 {
		t = max(t, r.Series[n-1].T)
	}
	return t
}

func (r *Report) timeChart(class string, h int) *chart {
	c := newChart(class, h)
	c.xTime, c.xmax = true, r.tEnd()
	c.right = 64 // the same plot width with or without a right axis: the time axes line up
	c.xTitle = "time since the start (h:m)"
	if !r.Start.IsZero() {
		c.xTitle = "time since " + r.Start.UTC().Format("2006-01-02 15:04:05 UTC") + " (h:m)"
	}
	return c
}

func withLegend(svg string, items [][2]string) string {
	return `<div class="row"><div class="plot">` + svg + `</div>` + legendHTML(items) + `</div>`
}

// stepPath is a step line through the points (t, v), held until tEnd.
func stepPath(ts, vs []float64, tEnd float64, x, y func(float64) float64) string {
	var b strings.Builder
	for i := range ts {
		if i == 0 {
			fmt.Fprintf(&b, "M%.1f %.1f", x(ts[i]), y(vs[i]))
			continue
		}
		fmt.Fprintf(&b, "H%.1fV%.1f", x(ts[i]), y(vs[i]))
	}
	if len(ts) > 0 {
		fmt.Fprintf(&b, "H%.1f", x(tEnd))
	}
	return b.String()
}

func stateCount(s Sample, st string) int {
	switch st {
	case "busy":
		return s.Busy
	case "idle":
		return s.Idle
	case "booting":
		return s.Booting
	case "powering-off":
		return s.PoweringOff
	case "down":
		return s.Down
	case "stopped":
		return s.Stopped
	}
	return s.Failed
}

func (r *Report) htmlStates() string {
	c := r.timeChart("chart-states", 300)
	c.yTitle, c.y2Title = "nodes", "queued jobs"
	c.ymax, c.y2max = 1, 1
	occurs := map[string]bool{}
	for _, s := range r.Series {
		total := 0
		for _, st := range stateOrder {
			if n := stateCount(s, st); n > 0 {
				occurs[st] = true
				total += n
			}
		}
		c.ymax = max(c.ymax, float64(total))
		c.y2max = max(c.y2max, float64(s.Queued))
	}
	c.begin()
	tEnd := c.xmax
	// Stacked areas, drawn top layer first: each polygon covers the sum
	// of its state and those below it.
	var items [][2]string
	for k := len(stateOrder) - 1; k >= 0; k-- {
		if !occurs[stateOrder[k]] {
			continue
		}
		var pts strings.Builder
		fmt.Fprintf(&pts, "%.1f,%.1f ", c.x(0), c.y(0))
		for i, s := range r.Series {
			sum := 0
			for _, st := range stateOrder[:k+1] {
				sum += stateCount(s, st)
			}
			next := tEnd
			if i+1 < len(r.Series) {
				next = r.Series[i+1].T
			}
			fmt.Fprintf(&pts, "%.1f,%.1f %.1f,%.1f ", c.x(s.T), c.y(float64(sum)), c.x(next), c.y(float64(sum)))
		}
		fmt.Fprintf(&pts, "%.1f,%.1f", c.x(tEnd), c.y(0))
		fmt.Fprintf(&c.b, `<polygon class="area state-%s" points="%s" fill="%s" stroke="none"/>`, stateOrder[k], pts.String(), stateColors[stateOrder[k]])
	}
	for _, st := range stateOrder {
		if occurs[st] {
			items = append(items, [2]string{st + " (left axis)", stateColors[st]})
		}
	}
	var ts, qs []float64
	for _, s := range r.Series {
		ts = append(ts, s.T)
		qs = append(qs, float64(s.Queued))
	}
	fmt.Fprintf(&c.b, `<path class="line queued" d="%s" fill="none" stroke="#000" stroke-width="1.5"/>`, stepPath(ts, qs, tEnd, c.x, c.y2))
	items = append(items, [2]string{"queued jobs (right axis)", "line:#000"})
	return withLegend(c.end(), items)
}

func (r *Report) htmlQueues() string {
	c := r.timeChart("chart-queues", 240)
	c.yTitle, c.ymax = "queued jobs", 1
	names := r.QueueNames
	if len(names) == 0 {
		names = []string{"any"}
	}
	val := func(s Sample, i int) float64 {
		if len(r.QueueNames) == 0 {
			return float64(s.Queued)
		}
		if i < len(s.Queues) {
			return float64(s.Queues[i])
		}
		return 0
	}
	for _, s := range r.Series {
		for i := range names {
			c.ymax = max(c.ymax, val(s, i))
		}
	}
	c.begin()
	var items [][2]string
	var ts []float64
	for _, s := range r.Series {
		ts = append(ts, s.T)
	}
	for i, n := range names {
		vs := make([]float64, len(r.Series))
		for k, s := range r.Series {
			vs[k] = val(s, i)
		}
		col := seriesColors[i%len(seriesColors)]
		fmt.Fprintf(&c.b, `<path class="line queue" d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, stepPath(ts, vs, c.xmax, c.x, c.y), col)
		items = append(items, [2]string{n, "line:" + col})
	}
	return withLegend(c.end(), items)
}

func (r *Report) htmlSlots() string {
	c := r.timeChart("chart-slots", 260)
	c.yTitle, c.y2Title, c.ymax, c.y2max = "job slots (CPUs)", "utilisation (%)", 1, 100
	c.y2Fmt = func(v float64) string { return numFmt(v) + "%" }
	var ts, used, total, util []float64
	for _, s := range r.Series {
		c.ymax = max(c.ymax, float64(s.Slots))
		ts = append(ts, s.T)
		used = append(used, float64(s.UsedSlots))
		total = append(total, float64(s.Slots))
		u := 0.0
		if s.Slots > 0 {
			u = 100 * float64(s.UsedSlots) / float64(s.Slots)
		}
		util = append(util, u)
	}
	c.begin()
	fmt.Fprintf(&c.b, `<path class="line util" d="%s" fill="none" stroke="#2ca02c" stroke-width="1" stroke-dasharray="3 2"/>`, stepPath(ts, util, c.xmax, c.x, c.y2))
	fmt.Fprintf(&c.b, `<path class="line joined" d="%s" fill="none" stroke="#999" stroke-width="1.5"/>`, stepPath(ts, total, c.xmax, c.x, c.y))
	fmt.Fprintf(&c.b, `<path class="line used" d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, stepPath(ts, used, c.xmax, c.x, c.y), stateColors["busy"])
	return withLegend(c.end(), [][2]string{{"joined slots (left axis)", "line:#999"}, {"used slots (left axis)", "line:" + stateColors["busy"]}, {"utilisation, used ÷ joined (right axis)", "line:#2ca02c"}})
}

func (r *Report) htmlCost() string {
	c := r.timeChart("chart-cost", 220)
	c.yTitle, c.yFmt = "cost so far (US$)", dollars
	c.ymax = max(r.Cost, 0.001)
	var ts, cs []float64
	for _, s := range r.Series {
		ts = append(ts, s.T)
		cs = append(cs, s.Cost)
		c.ymax = max(c.ymax, s.Cost)
	}
	c.begin()
	// Cost grows linearly between samples: a polyline, not steps.
	var b strings.Builder
	for i := range ts {
		op := "L"
		if i == 0 {
			op = "M"
		}
		fmt.Fprintf(&b, "%s%.1f %.1f", op, c.x(ts[i]), c.y(cs[i]))
	}
	if len(ts) > 0 {
		fmt.Fprintf(&b, "L%.1f %.1f", c.x(c.xmax), c.y(r.Cost))
	}
	fmt.Fprintf(&c.b, `<path class="line cost" d="%s" fill="none" stroke="#8c564b" stroke-width="1.8"/>`, b.String())
	return withLegend(c.end(), [][2]string{{fmt.Sprintf("every pool's cost ($%.3f in all)", r.Cost), "line:#8c564b"}})
}

func (r *Report) htmlNodes() string {
	const row = 16
	nodes := r.Nodes
	if len(nodes) > 200 {
		nodes = nodes[:200]
	}
	c := r.timeChart("chart-nodes", 0)
	c.left = 150
	c.h = c.top + c.bot + row*max(len(nodes), 1)
	c.yTitle, c.ymax, c.yFmt = "", float64(max(len(nodes), 1)), func(float64) string { return "" }
	c.begin()
	occurs := map[string]bool{}
	for i, n := range nodes {
		top := c.top + i*row
		fmt.Fprintf(&c.b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%s</text>`, c.left-6, top+12, html.EscapeString(shortName(n.Name)))
		for _, sg := range n.Segments {
			occurs[sg.State] = true
			fmt.Fprintf(&c.b, `<rect x="%.1f" y="%d" width="%.2f" height="%d" fill="%s"><title>%s %s: %s–%s</title></rect>`,
				c.x(sg.From), top+2, max(c.x(sg.To)-c.x(sg.From), 0.3), row-4, stateColors[sg.State],
				html.EscapeString(n.Name), sg.State, clock(sg.From), clock(sg.To))
		}
	}
	var items [][2]string
	for _, st := range stateOrder {
		if occurs[st] {
			items = append(items, [2]string{st, stateColors[st]})
		}
	}
	out := withLegend(c.end(), items)
	if len(r.Nodes) > len(nodes) {
		out += fmt.Sprintf(`<p class="note">The first %d of %d nodes.</p>`, len(nodes), len(r.Nodes))
	}
	return out
}

// at renders a decision's time: h:mm:ss from the start, and the wall
// clock of a live run.
func (r *Report) at(t float64) string {
	s := int64(math.Round(t))
	out := fmt.Sprintf("%d:%02d:%02d", s/3600, s%3600/60, s%60)
	if !r.Start.IsZero() {
		out += " (" + r.Start.Add(time.Duration(s)*time.Second).UTC().Format("15:04:05") + ")"
	}
	return out
}

func (r *Report) htmlDecisions() string {
	if len(r.Decisions) == 0 {
		return `<p class="note">No decisions.</p>`
	}
	var b strings.Builder
	b.WriteString(`<div class="scroll"><table class="decisions"><thead><tr><th class="n">time</th><th>action</th><th>reason</th></tr></thead><tbody>`)
	for _, d := range r.Decisions {
		act, why, _ := strings.Cut(d.Action, ": ")
		fmt.Fprintf(&b, `<tr><td class="n">%s</td><td>%s</td><td>%s</td></tr>`, r.at(d.T), html.EscapeString(act), html.EscapeString(why))
	}
	b.WriteString(`</tbody></table></div>`)
	return b.String()
}

func shortName(s string) string {
	if len(s) > 20 {
		if i := strings.LastIndexByte(s, '.'); i >= 0 && len(s)-i-1 <= 20 {
			return s[i+1:]
		}
		return "…" + s[len(s)-19:]
	}
	return s
}
