package elastic

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The automatic policy (idle_time = "auto", the default). It differs
// from fixed settings in two places:
//
//   - How long an idle node is kept: rent-or-buy. Keeping a node through
//     a gap costs the gap; powering it off costs a new boot and setup
//     (the pool's Ready time) when work comes back. Over the gaps between
//     bursts the queue has shown so far, the policy picks the idle limit
//     that would have cost least; before any gap is seen it keeps a node
//     for Ready (the classic break-even, never more than twice the best
//     choice).
//   - How many nodes a scale-up starts: only those that pay off. From the
//     observed mean job time and the capacity there is, the policy
//     forecasts when the queue drains; a node that would be ready after
//     that (or work less than a job's time once ready) is not started.

// idleLimit is how long an idle node of pc may stay idle, and why.
func (d *decision) idleLimit(pc *poolCalc) (time.Duration, string) {
	if pc.idleWhy != "" {
		return pc.idleLimit, pc.idleWhy
	}
	pc.idleLimit, pc.idleWhy = d.computeIdleLimit(pc)
	return pc.idleLimit, pc.idleWhy
}

func (d *decision) computeIdleLimit(pc *poolCalc) (time.Duration, string) {
	st := d.s.Settings
	if !st.IdleAuto {
		return st.IdleTime, fmt.Sprintf("idle_time %s", st.IdleTime)
	}
	r := pc.p.Ready
	if r <= 0 {
		return st.IdleTime, fmt.Sprintf("idle_time auto: the pool's boot time is unknown, so %s", st.IdleTime)
	}
	readyWhy := readySource(pc.p)
	floor := 2 * st.Interval
	if pc.p.StartTime > 0 {
		// Stopping, not destroying: what getting the node back costs is
		// a start.
		r = pc.p.StartTime
		if len(d.s.Gaps) == 0 {
			return max(r, floor), fmt.Sprintf("idle_time auto: no gap between bursts seen yet, so the break-even %s (a start of a stopped node)", human(max(r, floor)))
		}
		tau, cost, keepAll, offAll := rentOrBuy(r, d.s.Gaps, floor)
		longest := slices.Max(d.s.Gaps)
		return tau, fmt.Sprintf("idle_time auto = %s: over the %d gaps between bursts seen (longest %s) and a next one of up to %s, keeping an idle node that long costs %s of node time, through every gap %s, stopping it at once %s (a start %s per gap)",
			human(tau), len(d.s.Gaps), human(longest), human(longest+longest/time.Duration(len(d.s.Gaps))), human(cost), human(keepAll), human(offAll), human(r))
	}
	if len(d.s.Gaps) == 0 {
		return max(r, floor), fmt.Sprintf("idle_time auto: no gap between bursts seen yet, so the break-even %s (a new node's boot and setup, %s)", human(r), readyWhy)
	}
	tau, cost, keepAll, offAll := rentOrBuy(r, d.s.Gaps, floor)
	longest := slices.Max(d.s.Gaps)
	return tau, fmt.Sprintf("idle_time auto = %s: over the %d gaps between bursts seen (longest %s) and a next one of up to %s, keeping an idle node that long costs %s of node time, through every gap %s, powering it off at once %s (boot and setup %s, %s, per gap)",
		human(tau), len(d.s.Gaps), human(longest), human(longest+longest/time.Duration(len(d.s.Gaps))), human(cost), human(keepAll), human(offAll), human(r), readyWhy)
}

// rentOrBuy picks the idle limit tau that would have cost least over the
// observed gaps, when powering off and booting again costs ready: a gap
// no longer than tau costs itself, a longer one tau + ready. The next gap
// may be longer than any seen (with n gaps seen, one time in n+1), so
// the gaps are joined by a guess: the longest seen × (1 + 1/n). The
// candidates are floor and each gap plus floor (a node goes idle a
// little after the queue empties). It returns tau and the costs of tau,
// of keeping through every gap and of powering off at once (floor).
func rentOrBuy(ready time.Duration, seen []time.Duration, floor time.Duration) (tau, cost, keepAll, offAll time.Duration) {
	longest := slices.Max(seen)
	gaps := append(slices.Clone(seen), longest+longest/time.Duration(len(seen)))
	costOf := func(t time.Duration) time.Duration {
		var c time.Duration
		for _, g := range gaps {
			if g <= t {
				c += g
			} else {
				c += t + ready
			}
		}
		return c
	}
	tau, cost = floor, costOf(floor)
	offAll = cost
	slices.Sort(gaps)
	for _, g := range gaps {
		t := g + floor
		if c := costOf(t); c < cost {
			tau, cost = t, c
		}
	}
	keepAll = costOf(gaps[len(gaps)-1] + floor)
	return tau, cost, keepAll, offAll
}

// stoppedLimit is how long a stopped node of pc is kept before it is
// destroyed, and why: rent-or-buy again, where keeping it costs the
// stopped price and destroying it costs a new node's boot and setup
// minus a start, at the running price, when work comes back. Both are
// counted in stopped time: the come-back cost is (Ready - StartTime) x
// Price / StoppedPrice.
func (d *decision) stoppedLimit(pc *poolCalc) (time.Duration, string) {
	p := pc.p
	if p.StoppedPrice <= 0 {
		return time.Duration(math.MaxInt64), "a stopped node costs nothing: kept until the cluster is destroyed"
	}
	back := max(p.Ready-p.StartTime, 0)
	ratio := 1.0
	if p.StoppedPrice > 0 && p.Price > 0 {
		ratio = p.Price / p.StoppedPrice
	}
	r := time.Duration(float64(back) * ratio)
	floor := 2 * d.s.Settings.Interval
	if len(d.s.Gaps) == 0 {
		return max(r, floor), fmt.Sprintf("no gap between bursts seen yet, so the break-even %s (a new node's boot and setup less a start, %s, at %.0fx the stopped price)", human(r), human(back), ratio)
	}
	tau, _, _, _ := rentOrBuy(r, d.s.Gaps, floor)
	return tau, fmt.Sprintf("over the %d gaps between bursts seen (longest %s), a new node's boot and setup less a start costs as much as %s stopped", len(d.s.Gaps), human(slices.Max(d.s.Gaps)), human(r))
}

func readySource(p *Pool) string {
	if p.ReadyObserved > 0 {
		return fmt.Sprintf("observed mean over %d nodes", p.ReadyObserved)
	}
	return "provider setting"
}

// forecast is the queue's expected drain, for the pays-off rule.
type forecast struct {
	on      bool
	work    float64 // queued slot-seconds
	jobs    int
	joined  float64 // slots of joined nodes
	coming  float64 // slots of nodes booting, in flight or planned
	refused map[string]string
}

func (d *decision) newForecast() {
	f := &d.fc
	if !d.s.Settings.IdleAuto || d.s.JobTime <= 0 {
		return
	}
	f.on = true
	jt := d.s.JobTime.Seconds()
	for _, g := range d.groups {
		f.work += float64(g.total*max(g.need.CPUs, 1)) * jt
		f.jobs += g.total
	}
	for _, e := range d.entries {
		if e.pc == nil && e.node != nil {
			f.joined += float64(e.node.Capacity.CPUs)
			continue
		}
		slots := float64(e.pc.p.Node.CPUs)
		if e.node != nil && e.node.Capacity.CPUs > 0 {
			slots = float64(e.node.Capacity.CPUs)
		}
		if e.joined {
			f.joined += slots
		} else {
			f.coming += slots
		}
	}
}

// drain is when the queue is forecast to drain if the coming capacity
// is ready after ready.
func (f *forecast) drain(ready time.Duration, coming float64) time.Duration {
	r := ready.Seconds()
	if f.joined > 0 && f.work <= f.joined*r {
		return secs(f.work / f.joined)
	}
	if f.joined+coming <= 0 {
		return time.Duration(1<<62 - 1)
	}
	return secs(r + (f.work-f.joined*r)/(f.joined+coming))
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// paysOff reports whether one more node of pc would be ready before the
// queue drains and then work at least a job's time.
func (d *decision) paysOff(pc *poolCalc) bool {
	f := &d.fc
	if !f.on || pc.p.Ready <= 0 {
		return true
	}
	slots := float64(max(pc.p.Node.CPUs, 1))
	work := f.drain(pc.p.Ready, f.coming+slots) - pc.p.Ready
	if work >= max(d.s.JobTime, d.s.Settings.Interval) {
		return true
	}
	if f.refused == nil {
		f.refused = map[string]string{}
	}
	if _, ok := f.refused[pc.p.Name]; !ok {
		f.refused[pc.p.Name] = fmt.Sprintf("another %s node would be ready in %s (%s) and then work %s: not started",
			pc.p.Name, human(pc.p.Ready), readySource(pc.p), human(max(work, 0)))
	}
	return false
}

// forecastWhy explains the forecast behind a scale-up.
func (d *decision) forecastWhy() string {
	f := &d.fc
	if !d.s.Settings.IdleAuto {
		return ""
	}
	if !f.on {
		return "; no job has finished yet, so every node that fits the work is started"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "; forecast: %d queued jobs × %s (observed mean) = %s of slot time, on %.0f joined slots",
		f.jobs, human(d.s.JobTime), human(secs(f.work)), f.joined)
	if f.joined > 0 {
		fmt.Fprintf(&b, " it drains in %s", human(secs(f.work/f.joined)))
	}
	for _, name := range sortedKeys(f.refused) {
		b.WriteString("; ")
		b.WriteString(f.refused[name])
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// human renders a duration for people: "1h03m", "24m30s", "17.5s".
func human(d time.Duration) string {
	switch {
	case d >= time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}
