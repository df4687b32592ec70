package elastic

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Decide is the elasticity policy: a pure function of the snapshot. It
// returns the actions to take now, each with its reason, in a stable
// order: repairs (Reconcile, Replace, ScaleDown of failed nodes), then
// Hold, CancelPowerOff, ScaleUp, and last ScaleDown of idle nodes.
//
// The rules, after CLUES and the cluster autoscaler:
//   - A node not joined within boot_timeout, or failed, is replaced; a
//     node the queue shows down while the cloud shows it running is
//     reconciled, and replaced only if it stays down for boot_timeout.
//   - After max_failures consecutive failures, or at once on a capacity
//     error, a pool is held for hold_time; its work goes to the next pool.
//   - Queued work is placed on free capacity, then booting capacity, then
//     on nodes whose power-off is pending (which are got back). What is
//     left, once the oldest of it has waited scale_up_window, grows pools
//     in order of tier, then price, within max and max_booting.
//   - A node idle for idle_time is powered off, never one running a job,
//     never below a pool's min, and keeping keep_idle idle nodes.
func Decide(s Snapshot) []Action {
	d := newDecision(s)
	d.observeNodes()
	d.holdFailingPools()
	d.repair()
	d.placeQueue()
	d.newForecast()
	d.cancelPowerOffs()
	d.scaleUp()
	d.keepIdle()
	d.scaleDown()
	d.destroyStopped()
	out := make([]Action, 0, len(d.repairs)+len(d.holds)+len(d.cancels)+len(d.starts)+len(d.ups)+len(d.downs))
	out = append(out, d.repairs...)
	out = append(out, d.holds...)
	out = append(out, d.cancels...)
	out = append(out, d.starts...)
	out = append(out, d.ups...)
	out = append(out, d.downs...)
	return out
}

// poolCalc is a pool's bookkeeping during one decision.
type poolCalc struct {
	p     *Pool
	order int  // position in tier, price, name order
	held  bool // held now (before or during this decision)
	// size counts every machine of the pool (any state) plus creates in
	// flight and planned: it must stay within Max.
	size int
	// live counts the machines that are or will be usable: booting, idle,
	// busy, down and creates in flight (not failed, not powering off).
	live     int
	failed   []*Node // failed or timed out, no operation in flight
	planned  int     // nodes this decision adds
	idle     int     // idle nodes (joined, no job)
	removing int     // idle nodes this decision powers off
	// idleLimit is how long an idle node may stay (idleLimit), with its
	// reason; computed once per decision.
	idleLimit time.Duration
	idleWhy   string
	// stopped are the pool's stopped nodes, by name; those this
	// decision starts are taken off the front.
	stopped []*Node
}

// capEntry is the free capacity of one node, existing or planned.
type capEntry struct {
	pc      *poolCalc
	node    *Node // nil for a planned or in-flight node
	free    Resources
	full    bool // nothing placed on it and nothing running
	joined  bool
	idleFor time.Duration
}

// group is queued demand of one shape and constraint.
type group struct {
	need     Resources
	labels   map[string]string
	site     string
	pool     string
	total    int
	ripe     int // queued for at least scale_up_window
	oldest   time.Time
	unplaced int
	fits     []int8 // by pool order: 0 unknown, 1 matches, -1 does not
}

// fitsPool is matches, remembered per pool.
func (g *group) fitsPool(pc *poolCalc) bool {
	if g.fits == nil {
		g.fits = make([]int8, pc.order+1)
	}
	if pc.order >= len(g.fits) {
		g.fits = append(g.fits, make([]int8, pc.order+1-len(g.fits))...)
	}
	if g.fits[pc.order] == 0 {
		g.fits[pc.order] = -1
		if g.matches(pc.p) {
			g.fits[pc.order] = 1
		}
	}
	return g.fits[pc.order] == 1
}

type decision struct {
	s        Snapshot
	now      time.Time
	pools    map[string]*poolCalc
	ordered  []*poolCalc
	opOn     map[string]Operation // node → operation in flight on it
	booting  int                  // booting nodes, creates in flight and planned
	entries  []*capEntry          // capacity of existing, booting and planned nodes
	planned  []*capEntry          // capacity this decision adds
	powering []*Node              // nodes whose power-off is pending
	groups   []*group
	fc       forecast

	repairs, holds, cancels, starts, ups, downs []Action
}

func newDecision(s Snapshot) *decision {
	d := &decision{s: s, now: s.Now, pools: make(map[string]*poolCalc, len(s.Pools)), opOn: map[string]Operation{}}
	for i := range s.Pools {
		p := &s.Pools[i]
		if _, dup := d.pools[p.Name]; dup {
			continue
		}
		pc := &poolCalc{p: p, held: p.Held(s.Now)}
		d.pools[p.Name] = pc
		d.ordered = append(d.ordered, pc)
	}
	slices.SortStableFunc(d.ordered, func(a, b *poolCalc) int {
		return cmp.Or(cmp.Compare(a.p.Tier, b.p.Tier), cmp.Compare(a.p.Price, b.p.Price), strings.Compare(a.p.Name, b.p.Name))
	})
	for i, pc := range d.ordered {
		pc.order = i
	}
	for _, op := range s.InFlight {
		switch op.Kind {
		case OpCreate:
			if pc := d.pools[op.Pool]; pc != nil {
				pc.size++
				pc.live++
				d.booting++
				d.entries = append(d.entries, &capEntry{pc: pc, free: pc.p.Node, full: true})
			}
		default:
			if op.Node != "" {
				d.opOn[op.Node] = op
			}
		}
	}
	return d
}

// observeNodes sorts the nodes into capacity, failures and candidates.
func (d *decision) observeNodes() {
	st := d.s.Settings
	for i := range d.s.Nodes {
		n := &d.s.Nodes[i]
		pc := d.pools[n.Pool]
		if pc != nil {
			pc.size++
		}
		offer := n.Capacity
		if offer == (Resources{}) && pc != nil {
			offer = pc.p.Node
		}
		if op, busy := d.opOn[n.Name]; busy && op.On(n.Name, n.CreatedAt) {
			continue // being destroyed or reconciled: leave it alone
		}
		switch n.State {
		case Booting:
			// A started node's boot began at its start, not its create.
			from := n.CreatedAt
			if n.Since.After(from) {
				from = n.Since
			}
			if !n.Joined && st.BootTimeout > 0 && d.now.Sub(from) > st.BootTimeout {
				if pc != nil {
					pc.failed = append(pc.failed, n)
				}
				continue
			}
			d.booting++
			if pc != nil {
				pc.live++
			}
			d.entries = append(d.entries, &capEntry{pc: pc, node: n, free: offer.Sub(n.Used), full: n.Running == 0})
		case Failed:
			if pc != nil {
				pc.failed = append(pc.failed, n)
			}
		case Down:
			if st.BootTimeout > 0 && d.now.Sub(n.Since) > st.BootTimeout {
				if pc != nil {
					pc.failed = append(pc.failed, n)
				}
				continue
			}
			if pc != nil {
				pc.live++
			}
			d.repairs = append(d.repairs, Reconcile{Node: n.Name, Pool: n.Pool,
				Reason: fmt.Sprintf("queue shows it down since %s while the cloud shows it running: restart its agent instead of power-cycling it", n.Since.UTC().Format(time.TimeOnly))})
			// It should be back soon: count it like a booting node so
			// its work does not start another machine.
			d.entries = append(d.entries, &capEntry{pc: pc, node: n, free: offer, full: true})
		case Idle, Busy:
			if pc != nil {
				pc.live++
			}
			e := &capEntry{pc: pc, node: n, free: offer.Sub(n.Used), full: n.Running == 0, joined: true}
			if n.Running == 0 {
				e.idleFor = d.now.Sub(n.Since)
				if pc != nil {
					pc.idle++
				}
			}
			d.entries = append(d.entries, e)
		case PoweringOff:
			if pc != nil && n.Running == 0 {
				d.powering = append(d.powering, n)
			}
		case Stopped:
			if pc != nil {
				pc.stopped = append(pc.stopped, n)
			}
		}
	}
	for _, pc := range d.ordered {
		slices.SortStableFunc(pc.stopped, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	}
	// Place on joined nodes first, then booting ones; lower tier and
	// cheaper first, the way the scheduler fills them.
	slices.SortStableFunc(d.entries, func(a, b *capEntry) int {
		if a.joined != b.joined {
			if a.joined {
				return -1
			}
			return 1
		}
		return cmp.Compare(orderOf(a.pc), orderOf(b.pc))
	})
}

func orderOf(pc *poolCalc) int {
	if pc == nil {
		return -1
	}
	return pc.order
}

// holdFailingPools holds pools that hit a capacity error or max_failures.
func (d *decision) holdFailingPools() {
	st := d.s.Settings
	until := d.now.Add(st.HoldTime)
	for _, pc := range d.ordered {
		if pc.held {
			continue
		}
		p := pc.p
		switch {
		case !p.CapacityErrorAt.IsZero():
			pc.held = true
			d.holds = append(d.holds, Hold{Pool: p.Name, Until: until,
				Reason: fmt.Sprintf("capacity error at %s: work goes to the next pool", p.CapacityErrorAt.UTC().Format(time.TimeOnly))})
		case st.MaxFailures > 0 && p.ConsecutiveFailures+len(pc.failed) >= st.MaxFailures:
			pc.held = true
			d.holds = append(d.holds, Hold{Pool: p.Name, Until: until,
				Reason: fmt.Sprintf("%d consecutive failures (max_failures %d): work goes to the next pool", p.ConsecutiveFailures+len(pc.failed), st.MaxFailures)})
		}
	}
}

// repair replaces failed nodes, or only destroys them when their pool is
// held or max_booting is reached.
func (d *decision) repair() {
	st := d.s.Settings
	for _, pc := range d.ordered {
		for _, n := range pc.failed {
			why := "failed to boot"
			switch n.State {
			case Booting:
				why = fmt.Sprintf("not joined within boot_timeout %s", st.BootTimeout)
			case Down:
				why = fmt.Sprintf("down for more than boot_timeout %s although reconciled", st.BootTimeout)
			}
			if pc.held || (st.MaxBooting > 0 && d.booting >= st.MaxBooting) {
				if pc.held {
					why += "; pool held, not replaced"
				} else {
					why += "; max_booting reached, not replaced"
				}
				d.repairs = append(d.repairs, ScaleDown{Node: n.Name, Pool: n.Pool, Reason: why, Failed: true})
				continue
			}
			d.booting++
			pc.live++
			d.repairs = append(d.repairs, Replace{Node: n.Name, Pool: n.Pool, Reason: why})
			d.entries = append(d.entries, &capEntry{pc: pc, free: pc.p.Node, full: true})
		}
	}
}

// placeQueue groups the queue by shape and places it on the capacity
// there is, oldest first.
func (d *decision) placeQueue() {
	type key struct {
		need       Resources
		site, pool string
		labels     string
	}
	idx := map[key]*group{}
	ripeBefore := d.now.Add(-d.s.Settings.ScaleUpWindow)
	for i := range d.s.Queue {
		q := &d.s.Queue[i]
		k := key{need: q.need(), site: q.Site, pool: q.Pool}
		if len(q.Labels) > 0 {
			k.labels = labelKey(q.Labels)
		}
		g := idx[k]
		if g == nil {
			g = &group{need: k.need, labels: q.Labels, site: q.Site, pool: q.Pool, oldest: q.Since}
			idx[k] = g
			d.groups = append(d.groups, g)
		}
		c := q.count()
		g.total += c
		if !q.Since.After(ripeBefore) {
			g.ripe += c
		}
		if q.Since.Before(g.oldest) {
			g.oldest = q.Since
		}
	}
	slices.SortStableFunc(d.groups, func(a, b *group) int { return a.oldest.Compare(b.oldest) })
	for _, g := range d.groups {
		g.unplaced = d.place(g, g.total, d.entries)
	}
}

// place puts up to n jobs of g on entries and returns how many are left.
func (d *decision) place(g *group, n int, entries []*capEntry) int {
	for _, e := range entries {
		if n == 0 {
			break
		}
		if e.pc == nil || !g.fitsPool(e.pc) {
			continue
		}
		k := min(g.need.times(e.free), n)
		if k <= 0 {
			continue
		}
		e.free = e.free.Sub(Resources{g.need.CPUs * k, g.need.Memory * int64(k), g.need.GPUs * k})
		e.full = false
		n -= k
	}
	return n
}

func (g *group) matches(p *Pool) bool {
	if g.pool != "" && g.pool != p.Name {
		return false
	}
	if g.site != "" && g.site != p.Site && !(strings.HasPrefix(p.Site, g.site) && len(p.Site) > len(g.site) && p.Site[len(g.site)] == '.') {
		return false
	}
	for k, v := range g.labels {
		if pv, ok := p.Labels[k]; !ok || pv != v {
			return false
		}
	}
	return g.need.times(p.Node) > 0
}

func labelKey(l map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(l[k])
		b.WriteByte(0)
	}
	return b.String()
}

// cancelPowerOffs gets back nodes whose power-off is pending when queued
// work (of any age) fits on them: cheaper than booting another.
func (d *decision) cancelPowerOffs() {
	if len(d.powering) == 0 {
		return
	}
	slices.SortStableFunc(d.powering, func(a, b *Node) int {
		return cmp.Or(cmp.Compare(d.pools[a.Pool].order, d.pools[b.Pool].order), strings.Compare(a.Name, b.Name))
	})
	for _, n := range d.powering {
		pc := d.pools[n.Pool]
		offer := n.Capacity
		if offer == (Resources{}) {
			offer = pc.p.Node
		}
		e := &capEntry{pc: pc, node: n, free: offer.Sub(n.Used), full: true, joined: true}
		placed := 0
		for _, g := range d.groups {
			if g.unplaced == 0 {
				continue
			}
			left := d.place(g, g.unplaced, []*capEntry{e})
			placed += g.unplaced - left
			g.unplaced = left
		}
		if placed > 0 {
			pc.live++
			d.fc.joined += float64(offer.CPUs)
			d.cancels = append(d.cancels, CancelPowerOff{Node: n.Name, Pool: n.Pool,
				Reason: fmt.Sprintf("new work arrived: %d queued jobs fit on it", placed)})
			d.entries = append(d.entries, e)
		}
	}
}

// scaleUp grows pools for the work that fits nowhere, once the oldest of
// it has waited scale_up_window.
func (d *decision) scaleUp() {
	st := d.s.Settings
	// Restore elastic pools below min first (fixed pools are apply's).
	for _, pc := range d.ordered {
		if pc.held || !pc.p.Elastic() || pc.live >= pc.p.Min {
			continue
		}
		n := min(pc.p.Min-pc.live, pc.p.Max-pc.size)
		if n <= 0 {
			continue
		}
		d.grow(pc, n)
	}
	ripe := false
	for _, g := range d.groups {
		if g.unplaced > 0 && g.ripe > g.total-g.unplaced {
			ripe = true // some of the unplaced jobs have waited long enough
			break
		}
	}
	if !ripe {
		d.flushUps("below min")
		return
	}
	waiting := 0
	for _, g := range d.groups {
		if g.unplaced == 0 {
			continue
		}
		for _, pc := range d.ordered {
			if g.unplaced == 0 {
				break
			}
			if pc.held || !pc.p.Elastic() || !g.fitsPool(pc) {
				continue
			}
			g.unplaced = d.place(g, g.unplaced, d.plannedIn(pc))
			for g.unplaced > 0 && len(pc.stopped) > 0 {
				g.unplaced = d.place(g, g.unplaced, []*capEntry{d.start(pc, fmt.Sprintf("%d queued jobs fit nowhere", g.unplaced))})
			}
			for g.unplaced > 0 && pc.size < pc.p.Max && (st.MaxBooting <= 0 || d.booting < st.MaxBooting) && d.paysOff(pc) {
				e := d.grow(pc, 1)
				g.unplaced = d.place(g, g.unplaced, []*capEntry{e})
			}
		}
		waiting += g.unplaced
	}
	var oldest time.Time
	for _, g := range d.groups {
		if g.unplaced < g.total && (oldest.IsZero() || g.oldest.Before(oldest)) {
			oldest = g.oldest
		}
	}
	reason := fmt.Sprintf("queued work does not fit free or booting capacity (oldest queued %s ago, scale_up_window %s)",
		d.now.Sub(oldest).Round(time.Second), st.ScaleUpWindow)
	if waiting > 0 {
		reason += fmt.Sprintf("; %d jobs still wait for max, max_booting, a held pool or capacity that pays off", waiting)
	}
	d.flushUps(reason + d.forecastWhy())
}

// start starts pc's first stopped node (for why) and returns its
// capacity: cheaper and sooner than a new node.
func (d *decision) start(pc *poolCalc, why string) *capEntry {
	n := pc.stopped[0]
	pc.stopped = pc.stopped[1:]
	offer := n.Capacity
	if offer == (Resources{}) {
		offer = pc.p.Node
	}
	e := &capEntry{pc: pc, node: n, free: offer, full: true}
	d.entries = append(d.entries, e)
	d.planned = append(d.planned, e)
	pc.live++
	d.fc.coming += float64(max(offer.CPUs, 1))
	d.starts = append(d.starts, Start{Node: n.Name, Pool: pc.p.Name,
		Reason: fmt.Sprintf("%s: starting a stopped node takes %s, a new one %s", why, human(pc.p.StartTime), human(pc.p.Ready))})
	return e
}

// grow plans n more nodes in pc and returns the capacity of the last.
func (d *decision) grow(pc *poolCalc, n int) *capEntry {
	var e *capEntry
	for range n {
		e = &capEntry{pc: pc, free: pc.p.Node, full: true}
		d.entries = append(d.entries, e)
		d.planned = append(d.planned, e)
	}
	pc.planned += n
	pc.size += n
	pc.live += n
	d.booting += n
	d.fc.coming += float64(n * max(pc.p.Node.CPUs, 1))
	return e
}

// plannedIn returns the capacity this decision plans in pc.
func (d *decision) plannedIn(pc *poolCalc) []*capEntry {
	var out []*capEntry
	for _, e := range d.planned {
		if e.pc == pc {
			out = append(out, e)
		}
	}
	return out
}

func (d *decision) flushUps(reason string) {
	for _, pc := range d.ordered {
		if pc.planned == 0 {
			continue
		}
		r := reason
		if pc.live-pc.planned < pc.p.Min {
			r = fmt.Sprintf("pool below min %d", pc.p.Min)
		}
		d.ups = append(d.ups, ScaleUp{Pool: pc.p.Name, Count: pc.planned, Reason: r})
		pc.planned = 0
	}
}

// spare counts idle capacity nobody's work is placed on: idle nodes and
// booting ones.
func (d *decision) spare() int {
	n := 0
	for _, e := range d.entries {
		if e.full && e.pc != nil {
			n++
		}
	}
	return n
}

// keepIdle grows the cheapest pools until keep_idle nodes are spare.
func (d *decision) keepIdle() {
	st := d.s.Settings
	if st.KeepIdle <= 0 {
		return
	}
	want := st.KeepIdle - d.spare()
	for _, pc := range d.ordered {
		if want <= 0 {
			break
		}
		for want > 0 && !pc.held && len(pc.stopped) > 0 {
			d.start(pc, fmt.Sprintf("keep_idle %d spare nodes", st.KeepIdle))
			want--
		}
		for want > 0 && !pc.held && pc.p.Elastic() && pc.size < pc.p.Max && (st.MaxBooting <= 0 || d.booting < st.MaxBooting) {
			d.grow(pc, 1)
			want--
		}
	}
	d.flushUps(fmt.Sprintf("keep_idle %d spare nodes", st.KeepIdle))
}

// scaleDown powers off nodes idle for idle_time: most expensive first,
// never below min, keeping keep_idle.
func (d *decision) scaleDown() {
	st := d.s.Settings
	var cands []*capEntry
	for _, e := range d.entries {
		if e.node == nil || e.pc == nil || !e.joined || !e.full || e.node.Running != 0 || e.node.State != Idle {
			continue
		}
		if !e.pc.p.Elastic() {
			continue
		}
		if limit, _ := d.idleLimit(e.pc); e.idleFor < limit {
			continue
		}
		cands = append(cands, e)
	}
	if len(cands) == 0 {
		return
	}
	slices.SortStableFunc(cands, func(a, b *capEntry) int {
		return cmp.Or(-cmp.Compare(a.pc.order, b.pc.order), -cmp.Compare(a.idleFor, b.idleFor), strings.Compare(a.node.Name, b.node.Name))
	})
	spare := d.spare()
	for _, e := range cands {
		if spare <= st.KeepIdle {
			break
		}
		pc := e.pc
		if pc.live-1 < pc.p.Min {
			continue
		}
		pc.live--
		spare--
		_, why := d.idleLimit(pc)
		reason := fmt.Sprintf("idle for %s (%s)", human(e.idleFor), why)
		if pc.p.StartTime > 0 {
			d.downs = append(d.downs, Stop{Node: e.node.Name, Pool: pc.p.Name, Reason: reason})
			continue
		}
		d.downs = append(d.downs, ScaleDown{Node: e.node.Name, Pool: pc.p.Name, Reason: reason})
	}
}

// destroyStopped destroys stopped nodes kept longer than the stopped
// limit (stoppedLimit), never below a pool's min.
func (d *decision) destroyStopped() {
	for _, pc := range d.ordered {
		if len(pc.stopped) == 0 {
			continue
		}
		limit, why := d.stoppedLimit(pc) // once per pool and decision
		for _, n := range pc.stopped {
			// One the queue still shows running work is left alone.
			if d.now.Sub(n.Since) < limit || pc.size-1 < pc.p.Min || n.Running > 0 {
				continue
			}
			pc.size--
			d.downs = append(d.downs, ScaleDown{Node: n.Name, Pool: pc.p.Name,
				Reason: fmt.Sprintf("stopped for %s (%s)", human(d.now.Sub(n.Since)), why)})
		}
	}
}
