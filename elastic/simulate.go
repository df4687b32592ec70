package elastic

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/sim"
	"github.com/hvctl/hvctl/templates"
)

// Options tune a simulation beyond the template and the workload.
type Options struct {
	// Seed drives every random choice the simulation makes (job
	// durations, boot failures, lost agents): the same seed gives the
	// same report.
	Seed int64
	// Policy decides; nil means Decide. Tests and comparisons put a
	// variant here.
	Policy func(Snapshot) []Action
	// PowerOffTime is how long a power-off takes once chosen (draining
	// and destroying). Default one elastic interval: the daemon destroys
	// a pending power-off that is still idle at its next step, and the
	// destroy itself is quick (a live run on the local provider, and EC2,
	// which stops billing when termination begins). Until session 4 the
	// default was 1m, which let new work cancel power-offs the daemon
	// would already have carried out (TestElasticSimVsLive). The node is
	// paid for meanwhile, and the power-off can be cancelled. Negative
	// means 0.
	PowerOffTime time.Duration
	// ReconcileTime is how long restarting a node's agent takes.
	// Default 1m.
	ReconcileTime time.Duration
	// AgentLossRate is the probability that a node's agent is lost
	// AgentLossAfter (default 3m) after the node joined: the queue then
	// shows the node down while the cloud shows it running (paper 003's
	// vnode-5). Its running jobs go back to the queue. Default 0.
	AgentLossRate  float64
	AgentLossAfter time.Duration
	// MinBilled is the shortest time a machine is billed for (EC2:
	// per second, one minute minimum). Default 1m; negative means 0.
	MinBilled time.Duration
	// Limit stops a simulation that has not finished after this much
	// simulated time. Default 7 days.
	Limit time.Duration
	// Start is the virtual clock's start; zero means 2024-01-01 00:00 UTC.
	Start time.Time
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		switch {
		case *d == 0:
			*d = v
		case *d < 0:
			*d = 0
		}
	}
	if o.PowerOffTime < 0 {
		o.PowerOffTime = 0
	}
	def(&o.ReconcileTime, time.Minute)
	def(&o.AgentLossAfter, 3*time.Minute)
	def(&o.MinBilled, time.Minute)
	def(&o.Limit, 7*24*time.Hour)
	if o.Policy == nil {
		o.Policy = Decide
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
}

// Simulate runs workload w on the template's pools under the default
// policy, on a virtual clock, and reports what happened. The same seed
// gives the same report.
func Simulate(cfg *templates.Config, w Workload, seed int64) (*Report, error) {
	return SimulateWith(cfg, w, Options{Seed: seed})
}

// SimulateWith is Simulate with options.
//
// It is a discrete-event simulation: job submissions and ends, node boot
// completions and failures, power-offs and policy ticks (every elastic
// interval) are events on a virtual clock, and each tick runs the same
// Decide the daemon runs. Boot times, boot failures and site capacity
// are each site's sim provider settings (boot_time, boot_fail_rate,
// capacity); a site on another provider boots at once. Pools start at
// their min size, booted; a node runs one job per CPU slot.
func SimulateWith(cfg *templates.Config, w Workload, opts Options) (*Report, error) {
	if cfg == nil || cfg.Cluster == nil {
		return nil, errors.New("simulate: the template has no cluster")
	}
	if w.Size() == 0 {
		return nil, errors.New("simulate: the workload has no jobs")
	}
	opts.defaults()
	s := &simulator{opts: opts, w: w, st: cfg.Cluster.Elastic, now: opts.Start, start: opts.Start,
		pools: map[string]*simPool{}, sites: map[string]*simSite{},
		rng: rand.New(rand.NewPCG(uint64(opts.Seed), 0x6a6f6273))}
	if s.st.Interval <= 0 {
		s.st.Interval = templates.DefaultElastic.Interval
	}
	if opts.PowerOffTime == 0 {
		s.opts.PowerOffTime = s.st.Interval
	}
	s.report = &Report{Cluster: cfg.Cluster.Name, Workload: w.Name, Seed: opts.Seed, Jobs: w.Size(),
		Billing:  fmt.Sprintf("per second of machine lifetime (create request to destroy), %s minimum, at the pool's instance price per hour; stopped time at the pool's stopped price", opts.MinBilled),
		Settings: reportSettings(s.st, opts)}
	if err := s.load(cfg); err != nil {
		return nil, err
	}
	s.schedule()
	s.run()
	return s.finish(), nil
}

type simSite struct {
	capacity int // sim.Unlimited for none
	live     int
}

type simPool struct {
	Pool
	order    int
	site     *simSite
	settings sim.Settings
	rng      *rand.Rand
	made     int // nodes ever made, for names
}

type simNode struct {
	name     string
	pool     *simPool
	state    NodeState
	since    time.Time
	created  time.Time
	gone     time.Time
	alive    bool
	joined   bool
	failBoot bool
	// stopping: the pending power-off ends in a stop.
	stopping  bool
	running   []*simJob
	used      Resources
	setupDone time.Time
	joinedAt  time.Time
	firstDone bool // a job has finished on it
	gen       int  // invalidates scheduled events
	reconcile bool
	inState   [numStates]time.Duration
	segments  []Segment
}

type simJob struct {
	submit   time.Time
	duration time.Duration
	work     Work
	need     Resources
	batch    int // -1 for a single job
	attempt  int
	start    time.Time
	node     *simNode
}

type eventKind int

const (
	evJobEnd eventKind = iota
	evBootDone
	evReconcileDone
	evAgentLost
	evPowerOffDone
	evSubmitJob
	evSubmitBatch
	evTick
)

type event struct {
	at   time.Time
	kind eventKind
	seq  uint64
	node *simNode
	job  *simJob
	gen  int
	i    int
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.seq < b.seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

type simulator struct {
	opts   Options
	w      Workload
	st     templates.Elastic
	start  time.Time
	now    time.Time
	events eventHeap
	seq    uint64
	rng    *rand.Rand

	pools   map[string]*simPool
	ordered []*simPool
	sites   map[string]*simSite
	nodes   []*simNode
	queue   []*simJob
	hist    History

	batchLeft  []int
	submitted  int
	done       int
	firstSub   time.Time
	lastEnd    time.Time
	waits      []time.Duration
	report     *Report
	queueIdx   map[string]int
	costGone   float64 // cost of the nodes destroyed so far
	lastSample Sample
	sampled    bool
}

func (s *simulator) load(cfg *templates.Config) error {
	env := &provision.Env{Cluster: cfg.Cluster.Name}
	for _, site := range cfg.Cluster.AllSites() {
		settings := sim.DefaultSettings()
		if site.Provider != nil && site.Provider.Type == "sim" {
			st, diags := sim.ParseSettings(site.Provider, env)
			if diags.HasErrors() {
				return fmt.Errorf("simulate: provider %s: %s", site.Provider.Ref(), diags.Error())
			}
			settings = st
		} else if site.Provider != nil && len(site.Pools) > 0 {
			s.report.Notes = append(s.report.Notes, fmt.Sprintf("site %s uses provider %s, not sim: its nodes boot at once and never fail", site.Path, site.Provider.Ref()))
		}
		ss := &simSite{capacity: settings.Capacity, live: len(site.Nodes)}
		s.sites[site.Path] = ss
		for _, p := range site.Pools {
			node := Resources{CPUs: p.Instance.CPUs, Memory: p.Instance.Memory, GPUs: p.Instance.GPUs}
			if node.CPUs <= 0 {
				node.CPUs = 1
				s.report.Notes = append(s.report.Notes, fmt.Sprintf("pool %s sets no cpus: simulated with 1", p.Path()))
			}
			h := fnv.New64a()
			h.Write([]byte(p.Path()))
			sp := &simPool{
				Pool:     Pool{Name: p.Path(), Site: site.Path, Tier: site.Tier, Min: p.Min, Max: p.Max, Price: p.Instance.Price, Node: node, Labels: p.Labels, Ready: settings.BootTime},
				site:     ss,
				settings: settings,
				rng:      rand.New(rand.NewPCG(uint64(s.opts.Seed)^h.Sum64(), uint64(settings.Seed))),
			}
			if settings.StartTime > 0 && sp.Elastic() && !p.Instance.Spot {
				// The sim provider can stop machines (provision.Stopper).
				sp.StartTime, sp.StoppedPrice = settings.StartTime, settings.StoppedPrice
			}
			s.pools[sp.Name] = sp
			s.ordered = append(s.ordered, sp)
		}
	}
	if len(s.ordered) == 0 {
		return errors.New("simulate: the template has no pools")
	}
	slices.SortStableFunc(s.ordered, func(a, b *simPool) int {
		if a.Tier != b.Tier {
			return a.Tier - b.Tier
		}
		if a.Price != b.Price {
			if a.Price < b.Price {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	for i, p := range s.ordered {
		p.order = i
		for range p.Min {
			n := s.newNode(p)
			n.joined = true
			s.setState(n, Idle)
		}
	}
	return nil
}

func (s *simulator) push(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.events, e)
}

func (s *simulator) schedule() {
	for i := range s.w.Jobs {
		s.push(&event{at: s.start.Add(s.w.Jobs[i].Submit), kind: evSubmitJob, i: i})
	}
	s.batchLeft = make([]int, len(s.w.Batches))
	if len(s.w.Batches) > 0 {
		s.push(&event{at: s.start.Add(s.w.Batches[0].Gap), kind: evSubmitBatch, i: 0})
	}
	s.push(&event{at: s.start, kind: evTick})
}

func (s *simulator) run() {
	limit := s.start.Add(s.opts.Limit)
	for s.events.Len() > 0 {
		e := heap.Pop(&s.events).(*event)
		if e.at.After(limit) {
			s.now = limit
			s.report.Notes = append(s.report.Notes, fmt.Sprintf("stopped at the %s limit with %d jobs unfinished", s.opts.Limit, s.w.Size()-s.done))
			return
		}
		s.now = e.at
		switch e.kind {
		case evTick:
			s.tick()
			if s.finished() {
				return
			}
			s.push(&event{at: s.now.Add(s.st.Interval), kind: evTick})
			continue
		case evSubmitJob:
			j := s.w.Jobs[e.i]
			s.submit(&simJob{duration: j.Duration, work: j.Work, batch: -1})
		case evSubmitBatch:
			s.submitBatch(e.i)
		case evJobEnd:
			if e.job.attempt != e.gen || e.job.node == nil {
				continue
			}
			s.jobEnd(e.job)
		case evBootDone:
			if !s.current(e) {
				continue
			}
			s.bootDone(e.node)
		case evReconcileDone:
			if !s.current(e) {
				continue
			}
			n := e.node
			n.reconcile = false
			n.joined = true
			s.setState(n, Idle)
			s.maybeLoseAgent(n)
		case evAgentLost:
			if !s.current(e) || (e.node.state != Idle && e.node.state != Busy) {
				continue
			}
			s.loseAgent(e.node)
		case evPowerOffDone:
			if !s.current(e) || e.node.state != PoweringOff {
				continue
			}
			if n := e.node; n.stopping {
				n.stopping, n.joined = false, false
				s.setState(n, Stopped)
				continue
			}
			s.destroy(e.node)
		}
		s.dispatch()
	}
}

func (s *simulator) current(e *event) bool { return e.node.alive && e.node.gen == e.gen }

func (s *simulator) submit(j *simJob) {
	j.submit = s.now
	j.need = Demand{Resources: j.work.Resources}.need()
	if s.submitted == 0 {
		s.firstSub = s.now
	}
	s.submitted++
	s.queue = append(s.queue, j)
}

func (s *simulator) submitBatch(i int) {
	b := s.w.Batches[i]
	s.batchLeft[i] = b.Count
	for range b.Count {
		d := b.Duration
		if b.DurationMax > b.Duration {
			span := int64((b.DurationMax - b.Duration) / time.Millisecond)
			d += time.Duration(s.rng.Int64N(span+1)) * time.Millisecond
		}
		s.submit(&simJob{duration: d, work: b.Work, batch: i})
	}
	if i+1 < len(s.w.Batches) && s.w.Batches[i+1].After != "done" {
		s.push(&event{at: s.now.Add(s.w.Batches[i+1].Gap), kind: evSubmitBatch, i: i + 1})
	}
}

func (s *simulator) newNode(p *simPool) *simNode {
	p.made++
	n := &simNode{name: fmt.Sprintf("%s-%d", p.Name, p.made), pool: p, state: Booting, since: s.now, created: s.now, alive: true}
	p.site.live++
	s.nodes = append(s.nodes, n)
	return n
}

func (s *simulator) setState(n *simNode, st NodeState) {
	if n.state == st {
		return
	}
	if s.now.After(n.since) {
		n.inState[n.state] += s.now.Sub(n.since)
		n.segments = append(n.segments, Segment{State: n.state.String(), From: s.secs(n.since), To: s.secs(s.now)})
	}
	n.state = st
	n.since = s.now
}

func (s *simulator) secs(t time.Time) float64 { return t.Sub(s.start).Seconds() }

// create asks the simulated cloud for a node of p, as the sim provider
// would: a capacity error when the site is full, else a machine that
// boots in boot_time and may fail to.
func (s *simulator) create(p *simPool) bool {
	if c := p.site.capacity; c != sim.Unlimited && p.site.live >= c {
		s.hist.CapacityError(p.Name, s.now)
		s.report.Operations.CapacityErrors++
		s.logf("capacity error: %s site already has %d of its %d machines", p.Name, p.site.live, c)
		return false
	}
	n := s.newNode(p)
	n.failBoot = p.settings.BootFailRate > 0 && p.rng.Float64() < p.settings.BootFailRate
	s.report.Operations.NodesCreated++
	s.push(&event{at: s.now.Add(p.settings.BootTime), kind: evBootDone, node: n, gen: n.gen})
	return true
}

func (s *simulator) bootDone(n *simNode) {
	if n.failBoot {
		s.report.Operations.BootFailures++
		s.setState(n, Failed)
		return
	}
	n.joined = true
	n.joinedAt = s.now
	s.hist.Joined(n.pool.Name)
	s.setState(n, Idle)
	s.maybeLoseAgent(n)
}

func (s *simulator) maybeLoseAgent(n *simNode) {
	if s.opts.AgentLossRate > 0 && n.pool.rng.Float64() < s.opts.AgentLossRate {
		s.push(&event{at: s.now.Add(s.opts.AgentLossAfter), kind: evAgentLost, node: n, gen: n.gen})
	}
}

// loseAgent makes the queue show n down while its machine runs on; its
// jobs go back to the front of the queue.
func (s *simulator) loseAgent(n *simNode) {
	s.report.Operations.AgentsLost++
	back := make([]*simJob, 0, len(n.running))
	for _, j := range n.running {
		j.attempt++
		j.node = nil
		back = append(back, j)
	}
	s.queue = append(back, s.queue...)
	n.running, n.used, n.joined = nil, Resources{}, false
	n.gen++
	s.setState(n, Down)
}

func (s *simulator) destroy(n *simNode) {
	n.inState[n.state] += s.now.Sub(n.since)
	n.segments = append(n.segments, Segment{State: n.state.String(), From: s.secs(n.since), To: s.secs(s.now)})
	n.since = s.now
	n.alive = false
	n.gone = s.now
	s.costGone += s.costOf(n, s.now)
	n.gen++
	n.pool.site.live--
}

// costOf is what n has cost until t: its running time (its lifetime
// but for the time it was stopped; at least MinBilled) at the pool's
// price, and its stopped time at the stopped price.
func (s *simulator) costOf(n *simNode, t time.Time) float64 {
	stopped := n.inState[Stopped]
	if n.alive && n.state == Stopped {
		stopped += t.Sub(n.since)
	}
	return max(t.Sub(n.created)-stopped, s.opts.MinBilled).Hours()*n.pool.Price + stopped.Hours()*n.pool.StoppedPrice
}

func (s *simulator) jobEnd(j *simJob) {
	n := j.node
	n.used = n.used.Sub(j.need)
	if i := slices.Index(n.running, j); i >= 0 {
		n.running = slices.Delete(n.running, i, i+1)
	}
	j.node = nil
	if len(n.running) == 0 {
		s.setState(n, Idle)
	}
	// What the daemon would learn: a job's run time, and for a node's
	// first job, how long after its create request it ran at full speed
	// (the first job's excess over the mean is the one-time setup).
	run := s.now.Sub(j.start)
	if !n.firstDone {
		n.firstDone = true
		if n.pool.Elastic() && !n.joinedAt.IsZero() {
			setup := time.Duration(0)
			if jt := s.hist.Queue.JobTime; jt > 0 && run > jt {
				setup = run - jt
			}
			s.hist.Ready(n.pool.Name, n.joinedAt.Sub(n.created)+setup)
		}
	} else {
		s.hist.JobDone(run)
	}
	s.done++
	s.lastEnd = s.now
	s.waits = append(s.waits, j.start.Sub(j.submit))
	if j.batch >= 0 {
		s.batchLeft[j.batch]--
		if s.batchLeft[j.batch] == 0 && j.batch+1 < len(s.w.Batches) && s.w.Batches[j.batch+1].After == "done" {
			s.push(&event{at: s.now.Add(s.w.Batches[j.batch+1].Gap), kind: evSubmitBatch, i: j.batch + 1})
		}
	}
}

// dispatch is the queue system: it starts queued jobs, first come first
// served with backfill, on joined nodes — lower tier and cheaper pools
// first, fuller nodes first.
func (s *simulator) dispatch() {
	if len(s.queue) == 0 {
		return
	}
	var cands []*simNode
	free := 0
	for _, n := range s.nodes {
		if n.alive && n.joined && (n.state == Idle || n.state == Busy) {
			if f := n.pool.Node.CPUs - n.used.CPUs; f > 0 {
				cands = append(cands, n)
				free += f
			}
		}
	}
	if free == 0 {
		return
	}
	slices.SortStableFunc(cands, func(a, b *simNode) int {
		if a.pool.order != b.pool.order {
			return a.pool.order - b.pool.order
		}
		return b.used.CPUs - a.used.CPUs
	})
	type shape struct {
		need       Resources
		site, pool string
		labels     string
	}
	stuck := map[shape]bool{}
	kept := s.queue[:0]
	for i, j := range s.queue {
		if free <= 0 {
			kept = append(kept, s.queue[i:]...)
			break
		}
		k := shape{need: j.need, site: j.work.Site, pool: j.work.Pool}
		if len(j.work.Labels) > 0 {
			k.labels = labelKey(j.work.Labels)
		}
		var to *simNode
		if !stuck[k] {
			g := group{need: j.need, labels: j.work.Labels, site: j.work.Site, pool: j.work.Pool}
			for _, n := range cands {
				if j.need.Fits(n.pool.Node.Sub(n.used)) && g.matches(&n.pool.Pool) {
					to = n
					break
				}
			}
		}
		if to == nil {
			stuck[k] = true
			kept = append(kept, j)
			continue
		}
		s.startJob(j, to)
		free -= j.need.CPUs
	}
	clear(s.queue[len(kept):])
	s.queue = kept
}

func (s *simulator) startJob(j *simJob, n *simNode) {
	j.start = s.now
	j.node = n
	n.running = append(n.running, j)
	n.used = n.used.Add(j.need)
	if len(n.running) == 1 {
		s.setState(n, Busy)
	}
	if s.w.Setup > 0 && n.setupDone.IsZero() {
		n.setupDone = s.now.Add(s.w.Setup)
	}
	end := s.now
	if n.setupDone.After(end) {
		end = n.setupDone
	}
	s.push(&event{at: end.Add(j.duration), kind: evJobEnd, job: j, gen: j.attempt})
}

// snapshot is what the daemon would read from the queue and the cloud.
func (s *simulator) snapshot() Snapshot {
	snap := Snapshot{Now: s.now, Settings: s.st}
	for _, p := range s.ordered {
		snap.Pools = append(snap.Pools, p.Pool)
	}
	s.hist.ObserveQueue(s.now, len(s.queue))
	s.hist.FillSnapshot(&snap)
	for _, n := range s.nodes {
		if !n.alive {
			continue
		}
		snap.Nodes = append(snap.Nodes, Node{Name: n.name, Pool: n.pool.Name, State: n.state, Since: n.since,
			CreatedAt: n.created, Joined: n.joined, Running: len(n.running), Used: n.used})
		if n.reconcile {
			snap.InFlight = append(snap.InFlight, Operation{ID: "reconcile-" + n.name, Kind: OpReconcile, Pool: n.pool.Name, Node: n.name, Started: n.since})
		}
	}
	for _, j := range s.queue {
		if l := len(snap.Queue); l > 0 {
			d := &snap.Queue[l-1]
			if d.Since.Equal(j.submit) && d.Resources == j.work.Resources && d.Site == j.work.Site && d.Pool == j.work.Pool && sameLabels(d.Labels, j.work.Labels) {
				d.Count++
				continue
			}
		}
		snap.Queue = append(snap.Queue, Demand{Count: 1, Resources: j.work.Resources, Labels: j.work.Labels, Site: j.work.Site, Pool: j.work.Pool, Since: j.submit})
	}
	return snap
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (s *simulator) tick() {
	snap := s.snapshot()
	nodes := map[string]*simNode{}
	for _, n := range s.nodes {
		if n.alive {
			nodes[n.name] = n
		}
	}
	for _, a := range s.opts.Policy(snap) {
		s.hist.Record(a)
		s.logf("%s", a)
		ops := &s.report.Operations
		switch a := a.(type) {
		case ScaleUp:
			ops.ScaleUps++
			p := s.pools[a.Pool]
			if p == nil {
				continue
			}
			for range a.Count {
				if !s.create(p) {
					break
				}
			}
		case ScaleDown:
			n := nodes[a.Node]
			if n == nil {
				continue
			}
			switch n.state {
			case Idle:
				ops.ScaleDowns++
				s.setState(n, PoweringOff)
				n.gen++
				s.push(&event{at: s.now.Add(s.opts.PowerOffTime), kind: evPowerOffDone, node: n, gen: n.gen})
			case Busy, PoweringOff:
				s.report.Notes = append(s.report.Notes, fmt.Sprintf("%s: policy asked to power off %s node %s; ignored", s.now.Sub(s.start), n.state, n.name))
			default:
				ops.Destroys++
				s.destroy(n)
			}
		case Stop:
			// Drained for PowerOffTime like a power-off, as the daemon
			// does, then stopped (evPowerOffDone).
			if n := nodes[a.Node]; n != nil && n.state == Idle && n.pool.StartTime > 0 {
				ops.Stops++
				n.stopping = true
				s.setState(n, PoweringOff)
				n.gen++
				s.push(&event{at: s.now.Add(s.opts.PowerOffTime), kind: evPowerOffDone, node: n, gen: n.gen})
			}
		case Start:
			if n := nodes[a.Node]; n != nil && n.state == Stopped {
				ops.Starts++
				n.gen++
				s.setState(n, Booting)
				s.push(&event{at: s.now.Add(n.pool.StartTime), kind: evBootDone, node: n, gen: n.gen})
			}
		case CancelPowerOff:
			if n := nodes[a.Node]; n != nil && n.state == PoweringOff {
				ops.CancelledPowerOffs++
				n.stopping = false
				n.gen++
				s.setState(n, Idle)
			}
		case Replace:
			if n := nodes[a.Node]; n != nil {
				ops.Replacements++
				s.destroy(n)
				s.create(n.pool)
			}
		case Hold:
			ops.Holds++
		case Reconcile:
			if n := nodes[a.Node]; n != nil && !n.reconcile {
				ops.Reconciles++
				n.reconcile = true
				s.push(&event{at: s.now.Add(s.opts.ReconcileTime), kind: evReconcileDone, node: n, gen: n.gen})
			}
		}
	}
	s.dispatch()
	s.sample()
}

// finished reports whether all work is done and every elastic pool is
// back at its min with nothing booting or powering off.
func (s *simulator) finished() bool {
	if s.done < s.w.Size() {
		return false
	}
	for _, n := range s.nodes {
		if n.alive && n.pool.Elastic() && n.state != Idle {
			return false
		}
	}
	for _, p := range s.ordered {
		live := 0
		for _, n := range s.nodes {
			if n.alive && n.pool == p {
				live++
			}
		}
		if p.Elastic() && live > max(p.Min, 0) {
			return false
		}
	}
	return true
}

func (s *simulator) logf(format string, args ...any) {
	const maxLog = 10000
	if len(s.report.Decisions) < maxLog {
		s.report.Decisions = append(s.report.Decisions, Decision{T: s.secs(s.now), Action: fmt.Sprintf(format, args...)})
	}
}

func (s *simulator) sample() {
	x := Sample{T: s.secs(s.now), Queued: len(s.queue)}
	for _, n := range s.nodes {
		if !n.alive {
			continue
		}
		switch n.state {
		case Booting:
			x.Booting++
		case Idle:
			x.Idle++
		case Busy:
			x.Busy++
		case PoweringOff:
			x.PoweringOff++
		case Failed:
			x.Failed++
		case Down:
			x.Down++
		case Stopped:
			x.Stopped++
		}
		if n.joined && (n.state == Idle || n.state == Busy) {
			x.Slots += n.pool.Node.CPUs
			x.UsedSlots += n.used.CPUs
		}
		if n.pool.Elastic() {
			x.ElasticNodes++
		}
	}
	for _, j := range s.queue {
		where := "any"
		switch {
		case j.work.Pool != "":
			where = "pool " + j.work.Pool
		case j.work.Site != "":
			where = "site " + j.work.Site
		}
		i, ok := s.queueIdx[where]
		if !ok {
			if s.queueIdx == nil {
				s.queueIdx = map[string]int{}
			}
			i = len(s.report.QueueNames)
			s.queueIdx[where] = i
			s.report.QueueNames = append(s.report.QueueNames, where)
		}
		if len(x.Queues) <= i {
			x.Queues = append(x.Queues, make([]int, i+1-len(x.Queues))...)
		}
		x.Queues[i]++
	}
	x.Cost = s.costGone
	for _, n := range s.nodes {
		if n.alive {
			x.Cost += s.costOf(n, s.now)
		}
	}
	if s.sampled && sameSample(s.lastSample, x) {
		return
	}
	s.report.Series = append(s.report.Series, x)
	s.lastSample, s.sampled = x, true
}

// sameSample reports whether two samples differ only in time and cost
// (cost grows linearly while nothing else changes).
func sameSample(a, b Sample) bool {
	return a.Booting == b.Booting && a.Idle == b.Idle && a.Busy == b.Busy && a.PoweringOff == b.PoweringOff &&
		a.Failed == b.Failed && a.Down == b.Down && a.Stopped == b.Stopped && a.ElasticNodes == b.ElasticNodes && a.Slots == b.Slots &&
		a.UsedSlots == b.UsedSlots && a.Queued == b.Queued && slices.Equal(a.Queues, b.Queues)
}
