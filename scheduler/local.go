package scheduler

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// DefaultLossAfter is how long a node may stay silent (no poll, no
// progress report) before its jobs are run elsewhere.
const DefaultLossAfter = 10 * time.Second

// MaxOutput bounds the output kept per job.
const MaxOutput = 1 << 20

// Work is one job handed to a node: run Job.Spec.Command as attempt
// Attempt, after fetching Fetches.
type Work struct {
	Job     *Job    `json:"job"`
	Attempt int     `json:"attempt"`
	Fetches []Fetch `json:"fetches,omitempty"`
	// ResultGrant lets the node store this attempt's results on the
	// global tier (set by the site's local manager server).
	ResultGrant string `json:"result_grant,omitempty"`
	// Cancel tells the node to kill this attempt of the job (cancelled,
	// or run elsewhere after the node was lost); Job has only its ID.
	Cancel bool `json:"cancel,omitempty"`
}

// Report is what a node says about a job it was given.
type Report struct {
	JobID    string `json:"job_id"`
	Attempt  int    `json:"attempt"`
	State    State  `json:"state"` // running, done or failed
	ExitCode int    `json:"exit_code"`
	Output   string `json:"output,omitempty"`
	Error    string `json:"error,omitempty"`
}

type nodeEntry struct {
	Node
	lastSeen time.Time
	lost     bool
	idleFrom time.Time
	wake     chan struct{}
	cache    *LRU
}

// Local is a site's local manager: the node registry, the queue, matching
// with priorities, dispatch to node agents, the job state machine,
// retries when a node is lost, output capture and the site cache.
type Local struct {
	Site      string
	LossAfter time.Duration
	Clock     func() time.Time
	// DatasetSize gives a dataset's size for cache accounting.
	DatasetSize func(name string) int64
	// GlobalSite is the site of the global data tier.
	GlobalSite string
	NodeCache  int64 // bytes per node cache
	// SeedHold is how long placement waits after Seed (0 =
	// DefaultSeedHold).
	SeedHold time.Duration

	mu     sync.Mutex
	jobs   map[string]*Job
	queued map[string]*Job // jobs in state Queued
	dirty  bool            // the queue or capacity changed since the last match
	// order is the queue in QueueOrder, rebuilt only when jobs join it;
	// jobs that left it are skipped.
	order      []*Job
	orderStale bool
	output     map[string][]byte
	nodes      map[string]*nodeEntry
	cache      *LRU
	version    uint64
	changed    map[string]uint64 // job id -> version of its last change
	moved      int64             // bytes fetched across sites
	fetched    map[Tier]int64
	cancels    map[string][]Work // node -> attempts it must kill
	// epoch names this instance: the global manager seeds a local
	// manager whose epoch it has not seen.
	epoch       string
	holdUntil   time.Time       // no placement before (after Seed)
	unconfirmed map[string]bool // seeded as running, until their node polls
}

// NewLocal makes the local manager of site with a site cache of
// cacheBytes.
func NewLocal(site string, cacheBytes int64) *Local {
	return &Local{Site: site, LossAfter: DefaultLossAfter, Clock: time.Now, DatasetSize: func(string) int64 { return 0 },
		jobs: map[string]*Job{}, queued: map[string]*Job{}, output: map[string][]byte{}, nodes: map[string]*nodeEntry{}, cache: NewLRU(cacheBytes),
		changed: map[string]uint64{}, fetched: map[Tier]int64{}, cancels: map[string][]Work{}, epoch: newID()}
}

func (l *Local) touch(j *Job) {
	l.version++
	l.changed[j.ID] = l.version
	if j.State == Queued {
		if _, ok := l.queued[j.ID]; !ok {
			l.orderStale = true
		}
		l.queued[j.ID] = j
	} else {
		delete(l.queued, j.ID)
	}
	l.dirty = true
}

// Enqueue adds jobs routed to this site.
func (l *Local) Enqueue(jobs []*Job) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, j := range jobs {
		if _, ok := l.jobs[j.ID]; ok {
			continue // already here (a retried forward)
		}
		c := *j
		c.State, c.Site = Queued, l.Site
		l.jobs[c.ID] = &c
		l.touch(&c)
	}
	l.scheduleLocked()
}

// Cancel cancels a job that has not ended.
func (l *Local) Cancel(id string) (*Job, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	j := l.jobs[id]
	if j == nil {
		return nil, fmt.Errorf("no job %s at site %s", id, l.Site)
	}
	if !j.State.Final() {
		if n := l.nodes[j.Node]; n != nil && (j.State == Assigned || j.State == Running) {
			n.Release(j.Spec.Resources)
			l.dirty = true
			if j.State == Running {
				l.cancelOnLocked(j.Node, j)
			}
			l.wakeLocked(n)
		}
		j.State, j.Ended = Cancelled, l.Clock()
		l.touch(j)
	}
	c := *j
	return &c, nil
}

// cancelOnLocked tells node, at its next poll, to kill its attempt of j.
func (l *Local) cancelOnLocked(node string, j *Job) {
	l.cancels[node] = append(l.cancels[node], Work{Job: &Job{ID: j.ID}, Attempt: j.Attempt, Cancel: true})
}

func (l *Local) wakeLocked(n *nodeEntry) {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// scheduleLocked matches queued jobs to live nodes.
func (l *Local) scheduleLocked() {
	if !l.dirty || len(l.queued) == 0 || l.Clock().Before(l.holdUntil) {
		return
	}
	l.dirty = false
	if l.orderStale {
		l.order = l.order[:0]
		for _, j := range l.queued {
			l.order = append(l.order, j)
		}
		QueueOrder(l.order)
		l.orderStale = false
	}
	queue := l.order[:0:0]
	keep := l.order[:0]
	for _, j := range l.order {
		if j.State == Queued {
			keep = append(keep, j)
		}
	}
	l.order = keep
	queue = append(queue, keep...)
	var nodes []*Node
	byPtr := map[*Node]*nodeEntry{}
	ids := make([]string, 0, len(l.nodes))
	for id := range l.nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := l.nodes[id]
		if n.lost {
			continue
		}
		n.Cached = n.cache.Names()
		nodes = append(nodes, &n.Node)
		byPtr[&n.Node] = n
	}
	now := l.Clock()
	for _, a := range Match(queue, nodes) {
		j := a.Job
		j.State, j.Node, j.Attempt = Assigned, a.Node.ID, j.Attempt+1
		j.Started = now
		l.touch(j)
		n := byPtr[a.Node]
		n.idleFrom = time.Time{}
		l.wakeLocked(n)
	}
}

// Poll registers a node (or refreshes it) and returns the work assigned
// to it that it has not started, waiting up to wait for some.
func (l *Local) Poll(info Node, wait time.Duration) []Work {
	l.mu.Lock()
	n := l.nodes[info.ID]
	now := l.Clock()
	if n == nil {
		n = &nodeEntry{wake: make(chan struct{}, 1), cache: NewLRU(l.NodeCache), idleFrom: now}
		l.nodes[info.ID] = n
	}
	used := [3]int64{int64(n.UsedCPUs), n.UsedMiB, int64(n.UsedGPUs)}
	n.Node = info
	n.Site = l.Site
	n.UsedCPUs, n.UsedMiB, n.UsedGPUs = int(used[0]), used[1], int(used[2])
	if n.lost || n.lastSeen.IsZero() {
		l.dirty = true // new or returning capacity
	}
	n.lastSeen, n.lost = now, false
	l.scheduleLocked()
	work := l.workLocked(info.ID)
	l.mu.Unlock()
	if len(work) > 0 || wait <= 0 {
		return work
	}
	select {
	case <-n.wake:
	case <-time.After(wait):
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n.lastSeen = l.Clock()
	l.scheduleLocked() // woken by freed capacity or new work: match now
	return l.workLocked(info.ID)
}

// workLocked hands out the node's assigned jobs, marking them running,
// after the attempts it must kill.
func (l *Local) workLocked(node string) []Work {
	out := l.cancels[node]
	delete(l.cancels, node)
	for _, j := range l.jobs {
		if j.State != Assigned || j.Node != node {
			continue
		}
		w := Work{Attempt: j.Attempt}
		tiers := &Tiers{Site: l.cache, GlobalSite: l.GlobalSite, SiteName: l.Site}
		if n := l.nodes[node]; n != nil {
			tiers.Node = n.cache
		}
		for _, in := range j.Spec.Inputs {
			f := tiers.Resolve(in, l.DatasetSize(in))
			l.fetched[f.From]++
			if f.CrossSite {
				l.moved += f.Bytes
			}
			w.Fetches = append(w.Fetches, f)
		}
		j.State = Running
		l.touch(j)
		c := *j
		w.Job = &c
		out = append(out, w)
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Cancel != out[b].Cancel {
			return out[a].Cancel
		}
		return out[a].Job.ID < out[b].Job.ID
	})
	return out
}

// ErrStaleAttempt is returned for a report about an attempt that is no
// longer current (the job was given to another node after this one was
// lost): it is ignored, so a job completes exactly once.
var ErrStaleAttempt = fmt.Errorf("stale attempt")

// Record takes a node's report on a job.
func (l *Local) Record(node string, r Report) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.nodes[node]; n != nil {
		n.lastSeen = l.Clock()
	}
	j := l.jobs[r.JobID]
	if j == nil {
		return fmt.Errorf("no job %s at site %s", r.JobID, l.Site)
	}
	if j.Node != node || j.Attempt != r.Attempt || j.State.Final() {
		return ErrStaleAttempt
	}
	switch r.State {
	case Running:
		return nil
	case Done, Failed:
	default:
		return fmt.Errorf("report on %s: state %q is not running, done or failed", r.JobID, r.State)
	}
	out := append(l.output[j.ID], r.Output...)
	if len(out) > MaxOutput {
		out = out[len(out)-MaxOutput:]
	}
	l.output[j.ID] = out
	n := l.nodes[node]
	if n != nil {
		n.Release(j.Spec.Resources)
		if n.UsedCPUs == 0 {
			n.idleFrom = l.Clock()
		}
		l.dirty = true // freed capacity
	}
	code := r.ExitCode
	j.ExitCode, j.Error = &code, r.Error
	if r.State == Failed && j.Retries < j.Spec.MaxRetries {
		j.Retries++
		j.State, j.Node = Queued, ""
		l.touch(j)
		return nil
	}
	j.State, j.Ended = r.State, l.Clock()
	l.touch(j)
	// Freed capacity is used at the next poll (every node polls).
	for _, n := range l.nodes {
		if !n.lost && n.FreeSlots() > 0 {
			l.wakeLocked(n)
		}
	}
	return nil
}

// Sweep marks nodes silent for LossAfter as lost and queues their jobs
// again: no job is lost with a dead node.
func (l *Local) Sweep() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Clock()
	var lost []string
	for id, n := range l.nodes {
		if n.lost || now.Sub(n.lastSeen) <= l.LossAfter {
			continue
		}
		n.lost = true
		n.UsedCPUs, n.UsedMiB, n.UsedGPUs = 0, 0, 0
		lost = append(lost, id)
		for _, j := range l.jobs {
			if j.Node == id && (j.State == Assigned || j.State == Running) {
				if j.State == Running {
					l.cancelOnLocked(id, j) // should it come back
				}
				j.State, j.Node = Queued, ""
				j.Error = "node " + id + " was lost; running again"
				l.touch(j)
			}
		}
	}
	if len(lost) > 0 {
		l.scheduleLocked()
	}
	sort.Strings(lost)
	return lost
}

// Output returns a job's captured output.
func (l *Local) Output(id string) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.jobs[id]; !ok {
		return nil, false
	}
	return append([]byte(nil), l.output[id]...), true
}

// SiteState is what a local manager reports to the global manager.
type SiteState struct {
	Site string `json:"site"`
	// Epoch names the local manager instance (new at each start).
	Epoch   string      `json:"epoch,omitempty"`
	Version uint64      `json:"version"`
	Jobs    []*Job      `json:"jobs"` // changed since the version asked for
	Nodes   []NodeState `json:"nodes"`
	// Pending is queued demand in CPU slots.
	Pending                int            `json:"pending_slots"`
	Cached                 []string       `json:"cached,omitempty"`
	Fetched                map[Tier]int64 `json:"fetches_by_tier"`
	Moved                  int64          `json:"bytes_moved_between_sites"`
	CacheHits, CacheMisses int64
}

// NodeState is a node in a site report.
type NodeState struct {
	Node
	Lost    bool    `json:"lost"`
	IdleFor float64 `json:"idle_seconds"`
	Running int     `json:"running_jobs"`
}

// State reports jobs changed since version since, and the nodes.
func (l *Local) State(since uint64) SiteState {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Clock()
	s := SiteState{Site: l.Site, Epoch: l.epoch, Version: l.version, Jobs: []*Job{}, Fetched: map[Tier]int64{}, Moved: l.moved}
	for id, v := range l.changed {
		if v > since {
			c := *l.jobs[id]
			s.Jobs = append(s.Jobs, &c)
		}
	}
	sort.Slice(s.Jobs, func(a, b int) bool { return s.Jobs[a].ID < s.Jobs[b].ID })
	running := map[string]int{}
	for _, j := range l.jobs {
		switch j.State {
		case Queued:
			s.Pending += j.Spec.Resources.CPUSlots()
		case Assigned, Running:
			running[j.Node]++
		}
	}
	for id, n := range l.nodes {
		ns := NodeState{Node: n.Node, Lost: n.lost, Running: running[id]}
		ns.Cached = nil
		if running[id] == 0 && !n.idleFrom.IsZero() {
			ns.IdleFor = now.Sub(n.idleFrom).Seconds()
		}
		s.Nodes = append(s.Nodes, ns)
	}
	sort.Slice(s.Nodes, func(a, b int) bool { return s.Nodes[a].ID < s.Nodes[b].ID })
	for k := range l.cache.Names() {
		s.Cached = append(s.Cached, k)
	}
	sort.Strings(s.Cached)
	for k, v := range l.fetched {
		s.Fetched[k] = v
	}
	s.CacheHits, s.CacheMisses, _ = l.cache.Stats()
	return s
}
