package elastic

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chart draws one SVG plot by hand: a frame with ticks, gridlines and
// axis titles with units on the left, bottom and (optionally) right
// axes. Hand-written SVG keeps the report one self-contained file with
// no script, no dependency and a stable text form the tests can check;
// a plotting library (go-echarts needs its JavaScript from a CDN or
// inlined, gonum/plot brings a font and image stack) would add more than
// the four chart kinds here need.
//
// The SVG has a viewBox and scales to the page's width.
type chart struct {
	w, h                  int
	left, right, top, bot int
	xmax, ymax, y2max     float64
	xmin, ymin            float64 // ymin only for the left axis
	xTitle, yTitle        string
	y2Title               string
	// xTime formats x as a duration from seconds; else xFmt is used.
	xTime bool
	xFmt  func(float64) string
	yFmt  func(float64) string
	y2Fmt func(float64) string
	class string // CSS class and test hook: "chart-states", ...
	b     strings.Builder
}

func newChart(class string, h int) *chart {
	return &chart{w: 960, h: h, left: 64, right: 20, top: 14, bot: 44, class: class,
		yFmt: numFmt, y2Fmt: numFmt}
}

func (c *chart) x(v float64) float64 {
	span := max(c.xmax-c.xmin, 1e-9)
	return float64(c.left) + (v-c.xmin)/span*float64(c.w-c.left-c.right)
}
func (c *chart) y(v float64) float64 {
	return float64(c.h-c.bot) - (v-c.ymin)/max(c.ymax-c.ymin, 1e-9)*float64(c.h-c.top-c.bot)
}
func (c *chart) y2(v float64) float64 {
	return float64(c.h-c.bot) - v/max(c.y2max, 1e-9)*float64(c.h-c.top-c.bot)
}

// begin opens the SVG and draws the frame. Call after setting the
// ranges: they are rounded up to a tick.
func (c *chart) begin() {
	if c.y2Title != "" {
		c.right = max(c.right, 64)
	}
	ys := niceStep(c.ymax-c.ymin, 5)
	c.ymin = math.Floor(c.ymin/ys+1e-9) * ys
	c.ymax = max(math.Ceil(c.ymax/ys-1e-9)*ys, c.ymin+ys)
	var y2s float64
	if c.y2Title != "" {
		y2s = niceStep(c.y2max, 5)
		c.y2max = max(math.Ceil(c.y2max/y2s-1e-9)*y2s, y2s)
	}
	var xs float64
	if c.xTime {
		xs = timeStep(c.xmax - c.xmin)
	} else {
		xs = niceStep(c.xmax-c.xmin, 6)
	}
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart %s" viewBox="0 0 %d %d" width="100%%" preserveAspectRatio="xMinYMin meet" role="img">`, c.class, c.w, c.h)
	fmt.Fprintf(&c.b, `<g class="grid" stroke="#e4e4e4" stroke-width="1">`)
	for v := c.ymin; v <= c.ymax+1e-9; v += ys {
		fmt.Fprintf(&c.b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, c.left, c.w-c.right, c.y(v), c.y(v))
	}
	for v := math.Ceil(c.xmin/xs-1e-9) * xs; v <= c.xmax+1e-9; v += xs {
		fmt.Fprintf(&c.b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>`, c.x(v), c.x(v), c.top, c.h-c.bot)
	}
	c.b.WriteString(`</g>`)
	// Axes with ticks and labels.
	fmt.Fprintf(&c.b, `<g class="axis axis-x" font-size="12" fill="#333"><line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`, c.left, c.w-c.right, c.h-c.bot, c.h-c.bot)
	for v := math.Ceil(c.xmin/xs-1e-9) * xs; v <= c.xmax+1e-9; v += xs {
		label := numFmt(v)
		switch {
		case c.xTime:
			label = clock(v)
		case c.xFmt != nil:
			label = c.xFmt(v)
		}
		fmt.Fprintf(&c.b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#333"/><text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`,
			c.x(v), c.x(v), c.h-c.bot, c.h-c.bot+5, c.x(v), c.h-c.bot+18, html.EscapeString(label))
	}
	fmt.Fprintf(&c.b, `<text class="title" x="%.1f" y="%d" text-anchor="middle">%s</text></g>`, float64(c.left+c.w-c.right)/2, c.h-6, html.EscapeString(c.xTitle))
	fmt.Fprintf(&c.b, `<g class="axis axis-y" font-size="12" fill="#333"><line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`, c.left, c.left, c.top, c.h-c.bot)
	for v := c.ymin; v <= c.ymax+1e-9; v += ys {
		fmt.Fprintf(&c.b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/><text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			c.left-5, c.left, c.y(v), c.y(v), c.left-8, c.y(v)+4, html.EscapeString(c.yFmt(v)))
	}
	mid := float64(c.top+c.h-c.bot) / 2
	fmt.Fprintf(&c.b, `<text class="title" x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text></g>`, mid, mid, html.EscapeString(c.yTitle))
	if c.y2Title != "" {
		r := c.w - c.right
		fmt.Fprintf(&c.b, `<g class="axis axis-y2" font-size="12" fill="#333"><line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`, r, r, c.top, c.h-c.bot)
		for v := 0.0; v <= c.y2max+1e-9; v += y2s {
			fmt.Fprintf(&c.b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/><text class="tick" x="%d" y="%.1f" text-anchor="start">%s</text>`,
				r, r+5, c.y2(v), c.y2(v), r+8, c.y2(v)+4, html.EscapeString(c.y2Fmt(v)))
		}
		fmt.Fprintf(&c.b, `<text class="title" x="%d" y="%.1f" text-anchor="middle" transform="rotate(90 %d %.1f)">%s</text></g>`, c.w-14, mid, c.w-14, mid, html.EscapeString(c.y2Title))
	}
}

func (c *chart) end() string {
	c.b.WriteString(`</svg>`)
	return c.b.String()
}

// niceStep is a tick step of 1, 2 or 5 × 10^k giving at most about n
// ticks up to v.
func niceStep(v float64, n int) float64 {
	if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 1
	}
	raw := v / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// timeStep is a tick step for a time axis of span seconds: at most 10
// ticks on whole seconds, minutes or hours.
func timeStep(span float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400} {
		if span/s <= 10 {
			return s
		}
	}
	return 86400 * math.Ceil(span/86400/10)
}

// clock renders seconds from the start for a time axis, one form for
// every tick: "0", "45s", "30m", "1h", "1h30m", "2d".
func clock(sec float64) string {
	s := int64(math.Round(sec))
	switch {
	case s == 0:
		return "0"
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s%86400 == 0:
		return fmt.Sprintf("%dd", s/86400)
	case s < 3600 && s%60 == 0:
		return fmt.Sprintf("%dm", s/60)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
}

func numFmt(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

func dollars(v float64) string { return "$" + numFmt(v) }

// legendHTML renders a legend: one swatch per (name, colour); a colour
// starting with "line:" is drawn as a line.
func legendHTML(items [][2]string) string {
	var b strings.Builder
	b.WriteString(`<ul class="legend">`)
	for _, it := range items {
		col, cls := it[1], "sw"
		if c, ok := strings.CutPrefix(col, "line:"); ok {
			col, cls = c, "sw line"
		}
		fmt.Fprintf(&b, `<li><i class="%s" style="background:%s"></i>%s</li>`, cls, col, html.EscapeString(it[0]))
	}
	b.WriteString(`</ul>`)
	return b.String()
}
