package elastic

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"strings"
)

// pageCSS is shared by the reports: a readable column that grows with
// the window, charts at full width with their legend beside them, and
// tables that scroll rather than overflow.
const pageCSS = `body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 2em;max-width:1400px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.8em}
.row{display:flex;gap:1em;align-items:flex-start}.row>.plot{flex:1 1 auto;min-width:0}
.legend{list-style:none;margin:0;padding:0;font-size:.85em;flex:0 0 16em;width:16em}.legend li{margin:.2em 0;white-space:nowrap}
.legend .sw{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle}.legend .sw.line{height:3px}
svg.chart{display:block;background:#fff}svg.chart text{font-family:system-ui,sans-serif}
table{border-collapse:collapse;font-size:.9em}td,th{border-bottom:1px solid #ddd;padding:.25em .7em;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-height:28em;overflow:auto;border:1px solid #ddd}
.note{color:#555;font-size:.9em}
@media (max-width:760px){td,th{padding:.25em .3em}.row{flex-direction:column}.row>.plot{width:100%}.row>.legend{flex:none;width:auto;display:flex;flex-wrap:wrap;gap:0 1em}}`

// WriteHTML writes the sweep as a page: the frontier plot (makespan
// against cost, every setting, the frontier and the default) and a table.
func (t *TuneResult) WriteHTML(w io.Writer) error {
	data := struct {
		T       *TuneResult
		CSS     template.CSS
		Plot    template.HTML
		Verdict string
		Rows    []tuneRow
	}{T: t, CSS: template.CSS(pageCSS), Plot: template.HTML(t.svgFrontier()), Verdict: t.Verdict()}
	for _, p := range append([]TunePoint{t.Default}, t.Points...) {
		data.Rows = append(data.Rows, tuneRow{p, hm(p.Makespan), fmt.Sprintf("$%.3f", p.Cost), fmt.Sprintf("%.0f%%", 100*p.Efficiency)})
	}
	return tuneTmpl.Execute(w, data)
}

type tuneRow struct {
	TunePoint
	MakespanH, CostH, EffH string
}

var tuneTmpl = template.Must(template.New("tune").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>hvctl elastic tune: {{.T.Cluster}} · {{.T.Workload}}</title><style>{{.CSS}}</style></head><body>
<h1>Elastic tune: {{.T.Cluster}} · {{.T.Workload}}</h1>
<p>{{len .T.Points}} fixed settings simulated (seed {{.T.Seed}}). {{.Verdict}}</p>
<h2>Cost against makespan</h2>
<div class="row"><div class="plot">{{.Plot}}</div>
<ul class="legend"><li><i class="sw" style="background:#bbb"></i>fixed setting</li><li><i class="sw" style="background:#1f77b4"></i>frontier</li><li><i class="sw" style="background:#ff7f0e"></i>default (idle_time auto)</li></ul></div>
<h2>Settings</h2>
<table><thead><tr><th>setting</th><th class="n">makespan</th><th class="n">cost</th><th class="n">efficiency</th><th class="n">nodes made</th><th>frontier</th></tr></thead><tbody>
{{range .Rows}}<tr><td>{{.Setting}}</td><td class="n">{{.MakespanH}}</td><td class="n">{{.CostH}}</td><td class="n">{{.EffH}}</td><td class="n">{{.NodesMade}}</td><td>{{if .Frontier}}yes{{end}}</td></tr>
{{end}}</tbody></table>
</body></html>
`))

func (t *TuneResult) svgFrontier() string {
	c := newChart("chart-frontier", 420)
	c.xTime, c.xTitle, c.yTitle = true, "makespan (h:m from the first submission)", "elastic pools' cost (US$)"
	c.yFmt = dollars
	lo, hi, cmin, cmax := t.Default.Makespan, t.Default.Makespan, t.Default.Cost, t.Default.Cost
	for _, p := range t.Points {
		lo, hi, cmin, cmax = min(lo, p.Makespan), max(hi, p.Makespan), min(cmin, p.Cost), max(cmax, p.Cost)
	}
	pad := max((hi-lo)*0.08, 60)
	cpad := max((cmax-cmin)*0.1, 0.001)
	c.xmin, c.xmax, c.ymin, c.ymax = max(lo-pad, 0), hi+pad, max(cmin-cpad, 0), cmax+cpad
	st := timeStep(c.xmax - c.xmin)
	c.xmin = float64(int(c.xmin/st)) * st
	c.begin()
	b := &c.b
	for _, p := range t.Points {
		if !p.Frontier {
			fmt.Fprintf(b, `<circle class="pt" cx="%.1f" cy="%.1f" r="4" fill="#bbb"><title>%s: %s, $%.3f</title></circle>`, c.x(p.Makespan), c.y(p.Cost), html.EscapeString(p.Setting), hm(p.Makespan), p.Cost)
		}
	}
	front := t.FrontierPoints()
	var path strings.Builder
	for i, p := range front {
		if i == 0 {
			fmt.Fprintf(&path, "M%.1f %.1f", c.x(p.Makespan), c.y(p.Cost))
			continue
		}
		fmt.Fprintf(&path, "H%.1fV%.1f", c.x(p.Makespan), c.y(p.Cost))
	}
	fmt.Fprintf(b, `<path class="frontier" d="%s" fill="none" stroke="#1f77b4" stroke-width="1.5" stroke-dasharray="4 3"/>`, path.String())
	lastX := -1e9
	for i, p := range front {
		x, y := c.x(p.Makespan), c.y(p.Cost)
		fmt.Fprintf(b, `<circle class="pt frontier" cx="%.1f" cy="%.1f" r="5" fill="#1f77b4"><title>%s: %s, $%.3f</title></circle>`, x, y, html.EscapeString(p.Setting), hm(p.Makespan), p.Cost)
		// Labels above and below in turn, none closer than 150 px to
		// the last on the same side; the tooltip names every point.
		if x-lastX < 75 {
			continue
		}
		lastX = x
		dy, anchor, dx := -9.0, "start", 7.0
		if i%2 == 1 {
			dy = 18
		}
		if x > float64(c.w-c.right)-170 {
			anchor, dx = "end", -7
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11" fill="#1f77b4" text-anchor="%s">%s</text>`, x+dx, y+dy, anchor, html.EscapeString(strings.ReplaceAll(p.Setting, "max_booting", "mb")))
	}
	d := t.Default
	x, y := c.x(d.Makespan), c.y(d.Cost)
	fmt.Fprintf(b, `<path class="pt default" d="M%.1f %.1fl7 7l-7 7l-7 -7z" fill="#ff7f0e" stroke="#000" stroke-width=".8"><title>%s: %s, $%.3f</title></path>`, x, y-7, html.EscapeString(d.Setting), hm(d.Makespan), d.Cost)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="12" font-weight="bold" fill="#c55a00">default</text>`, x+9, y+14)
	return c.end()
}
