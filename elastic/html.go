package elastic

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"strings"
)

// stateColors follow paper 003's Figure 11: busy blue, booting green,
// idle orange, powering off purple.
var stateColors = map[string]string{
	"busy": "#1f77b4", "booting": "#2ca02c", "idle": "#ff7f0e",
	"powering-off": "#9467bd", "failed": "#d62728", "down": "#7f7f7f",
}

var stateOrder = []string{"busy", "idle", "booting", "powering-off", "down", "failed"}

const (
	plotW, plotH = 900, 220
	padL, padR   = 60, 60
	padT, padB   = 20, 30
)

// WriteHTML writes a self-contained HTML page: the summary, a timeline
// of nodes per state with the queue depth (paper 003's Figure 11 summed
// over nodes), used and total slots (Figure 10), and every node's states.
func (r *Report) WriteHTML(w io.Writer) error {
	var summary strings.Builder
	if err := r.WriteText(&summary); err != nil {
		return err
	}
	data := struct {
		R                    *Report
		Summary              string
		States, Slots, Nodes template.HTML
		Legend               template.HTML
	}{R: r, Summary: summary.String(), States: r.svgStates(), Slots: r.svgSlots(), Nodes: r.svgNodes(), Legend: legend()}
	return pageTmpl.Execute(w, data)
}

var pageTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>hvctl elastic simulation: {{.R.Cluster}}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1000px}pre{background:#f6f6f6;padding:1em}svg{background:#fff;border:1px solid #ddd}
h2{font-size:1.1em;margin-top:2em}.lg span{display:inline-block;margin-right:1em}.lg i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}</style>
</head><body>
<h1>Elastic simulation: {{.R.Cluster}}{{if .R.Workload}} · {{.R.Workload}}{{end}}</h1>
<pre>{{.Summary}}</pre>
<p>Billing: {{.R.Billing}}. Seed {{.R.Seed}}.</p>
<div class="lg">{{.Legend}}</div>
<h2>Nodes per state and queued jobs</h2>
{{.States}}
<h2>Used and total job slots</h2>
{{.Slots}}
<h2>Node states</h2>
{{.Nodes}}
<h2>Decisions</h2>
<pre>{{range .R.Decisions}}{{printf "%8.0fs" .T}}  {{.Action}}
{{end}}</pre>
</body></html>
`))

func legend() template.HTML {
	var b strings.Builder
	for _, s := range stateOrder {
		fmt.Fprintf(&b, `<span><i style="background:%s"></i>%s</span>`, stateColors[s], s)
	}
	b.WriteString(`<span><i style="background:#000;height:2px"></i>queued jobs (right axis)</span>`)
	return template.HTML(b.String())
}

// axes draws the frame and the time axis; it returns x and y scalers.
func (r *Report) axes(b *strings.Builder, h int, ymax float64, ylabel string) (func(float64) float64, func(float64) float64) {
	tmax := max(r.Duration, 1)
	if n := len(r.Series); n > 0 {
		tmax = max(tmax, r.Series[n-1].T)
	}
	x := func(t float64) float64 { return padL + t/tmax*float64(plotW-padL-padR) }
	y := func(v float64) float64 { return float64(h-padB) - v/max(ymax, 1)*float64(h-padT-padB) }
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000"/>`, padL, h-padB, plotW-padR, h-padB)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000"/>`, padL, padT, padL, h-padB)
	step := tickStep(tmax)
	for t := 0.0; t <= tmax; t += step {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%s</text>`, x(t), h-padB+14, hm(t))
	}
	if ymax > 0 {
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="10" text-anchor="end">%g</text>`, padL-4, y(ymax)+4, ymax)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="10" text-anchor="end">0</text>`, padL-4, y(0)+4)
	}
	fmt.Fprintf(b, `<text x="12" y="%d" font-size="10" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`, h/2, h/2, html.EscapeString(ylabel))
	return x, y
}

func tickStep(tmax float64) float64 {
	for _, s := range []float64{10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400} {
		if tmax/s <= 10 {
			return s
		}
	}
	return 86400 * 7
}

// stepPath is a step line through (t, v) points ending at tEnd.
func stepPath(xs []float64, vs []float64, tEnd float64, x, y func(float64) float64) string {
	var b strings.Builder
	for i := range xs {
		if i == 0 {
			fmt.Fprintf(&b, "M%.1f %.1f", x(xs[i]), y(vs[i]))
			continue
		}
		fmt.Fprintf(&b, "H%.1fV%.1f", x(xs[i]), y(vs[i]))
	}
	if len(xs) > 0 {
		fmt.Fprintf(&b, "H%.1f", x(tEnd))
	}
	return b.String()
}

func (r *Report) svgStates() template.HTML {
	var b strings.Builder
	ymax, qmax := 1.0, 1.0
	for _, s := range r.Series {
		ymax = max(ymax, float64(s.Booting+s.Idle+s.Busy+s.PoweringOff+s.Failed+s.Down))
		qmax = max(qmax, float64(s.Queued))
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">`, plotW, plotH)
	x, y := r.axes(&b, plotH, ymax, "nodes")
	tEnd := r.Duration
	if n := len(r.Series); n > 0 {
		tEnd = max(tEnd, r.Series[n-1].T)
	}
	// Stacked areas, drawn top layer first: each polygon covers the sum
	// of its state and those below it.
	get := func(s Sample, st string) int {
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
		}
		return s.Failed
	}
	for k := len(stateOrder) - 1; k >= 0; k-- {
		var pts strings.Builder
		fmt.Fprintf(&pts, "%.1f,%.1f ", x(0), y(0))
		for i, s := range r.Series {
			sum := 0
			for _, st := range stateOrder[:k+1] {
				sum += get(s, st)
			}
			next := tEnd
			if i+1 < len(r.Series) {
				next = r.Series[i+1].T
			}
			fmt.Fprintf(&pts, "%.1f,%.1f %.1f,%.1f ", x(s.T), y(float64(sum)), x(next), y(float64(sum)))
		}
		fmt.Fprintf(&pts, "%.1f,%.1f", x(tEnd), y(0))
		fmt.Fprintf(&b, `<polygon points="%s" fill="%s" stroke="none"/>`, pts.String(), stateColors[stateOrder[k]])
	}
	// Queue depth on its own scale (right axis).
	var ts, qs []float64
	for _, s := range r.Series {
		ts = append(ts, s.T)
		qs = append(qs, float64(s.Queued))
	}
	yq := func(v float64) float64 { return float64(plotH-padB) - v/qmax*float64(plotH-padT-padB) }
	fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#000" stroke-width="1.2"/>`, stepPath(ts, qs, tEnd, x, yq))
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="10">%g queued</text>`, plotW-padR+4, yq(qmax)+4, qmax)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (r *Report) svgSlots() template.HTML {
	var b strings.Builder
	ymax := 1.0
	var ts, used, total []float64
	for _, s := range r.Series {
		ymax = max(ymax, float64(s.Slots))
		ts = append(ts, s.T)
		used = append(used, float64(s.UsedSlots))
		total = append(total, float64(s.Slots))
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">`, plotW, plotH)
	x, y := r.axes(&b, plotH, ymax, "slots")
	tEnd := r.Duration
	if n := len(ts); n > 0 {
		tEnd = max(tEnd, ts[n-1])
	}
	fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#999" stroke-width="1.5"/>`, stepPath(ts, total, tEnd, x, y))
	fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, stepPath(ts, used, tEnd, x, y), stateColors["busy"])
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#999">joined slots</text>`, plotW-padR+4, padT+10)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="%s">used</text>`, plotW-padR+4, padT+24, stateColors["busy"])
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (r *Report) svgNodes() template.HTML {
	const row = 16
	nodes := r.Nodes
	if len(nodes) > 200 {
		nodes = nodes[:200]
	}
	h := padT + padB + row*max(len(nodes), 1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">`, plotW, h)
	x, _ := r.axes(&b, h, 0, "")
	for i, n := range nodes {
		top := padT + i*row
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="9" text-anchor="end">%s</text>`, padL-4, top+11, html.EscapeString(shortName(n.Name)))
		for _, sg := range n.Segments {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.2f" height="%d" fill="%s"><title>%s %s: %s–%s</title></rect>`,
				x(sg.From), top+2, max(x(sg.To)-x(sg.From), 0.3), row-4, stateColors[sg.State],
				html.EscapeString(n.Name), sg.State, hm(sg.From), hm(sg.To))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func shortName(s string) string {
	if len(s) > 12 {
		if i := strings.LastIndexByte(s, '.'); i >= 0 && len(s)-i-1 <= 12 {
			return s[i+1:]
		}
		return s[len(s)-12:]
	}
	return s
}
