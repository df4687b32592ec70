package scheduler

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"
)

// SiteLink is how the global manager reaches a site's local manager.
// The HTTP client over the overlay is the real one; tests plug in the
// Local itself.
type SiteLink interface {
	Enqueue(jobs []*Job) error
	Cancel(id string) error
	State(since uint64) (SiteState, error)
	Output(id string) ([]byte, error)
}

// SiteInfo is what the global manager knows of a site besides its
// link: its tier, and the node shapes its elastic pools can still add.
type SiteInfo struct {
	Name   string
	Tier   int
	Shapes []*Node
}

type siteRec struct {
	info    SiteInfo
	link    SiteLink // nil until the site has a local manager
	state   SiteState
	version uint64
	// gen counts SetLink calls: the answer of a pull through an older
	// link is dropped.
	gen     uint64
	pulling bool // a State pull is in flight (sync.go)
	// down says why the site's local manager is unreachable ("" =
	// reachable): its last pull or enqueue failed. No job is routed
	// there until a pull succeeds again.
	down      string
	downSince time.Time
	epoch     string // of the local manager last seeded
}

// Global is the global manager's job table: it takes submissions, routes
// each job to a site, hands it to that site's local manager when there is
// one, and follows its state from the sites' reports.
type Global struct {
	Clock func() time.Time
	// SyncWait bounds how long Sync waits for the sites (sync.go).
	SyncWait time.Duration
	// Journal, when set, records every change of a job before it is
	// acted on (see Journal).
	Journal Journal

	mu    sync.Mutex
	jobs  map[string]*Job
	order []string
	sites map[string]*siteRec
	// waiting are queued jobs not yet given to a site: they go to a site
	// when it has room. They are the demand that makes pools grow.
	waiting []*Job
	// keys are the idempotency keys of recent submits (submit.go).
	keys     map[string]*submission
	keyOrder []string
}

// NewGlobal returns a global manager over sites.
func NewGlobal(sites []SiteInfo) *Global {
	g := &Global{Clock: time.Now, jobs: map[string]*Job{}, sites: map[string]*siteRec{}}
	for _, s := range sites {
		g.sites[s.Name] = &siteRec{info: s}
	}
	return g
}

// SetSites replaces what the table knows of each site (a changed
// template): sites new to it are added, known ones keep their link,
// state and jobs. A site no longer listed is kept too: its jobs may
// still be there.
func (g *Global) SetSites(sites []SiteInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, info := range sites {
		if s := g.sites[info.Name]; s != nil {
			s.info = info
		} else {
			g.sites[info.Name] = &siteRec{info: info}
		}
	}
}

// SetLink connects (or, with nil, disconnects) a site's local manager.
func (g *Global) SetLink(site string, l SiteLink) {
	g.mu.Lock()
	s := g.sites[site]
	if s == nil {
		s = &siteRec{info: SiteInfo{Name: site}}
		g.sites[site] = s
	}
	s.link = l
	s.version, s.epoch = 0, ""
	s.gen++
	s.pulling = false
	s.down, s.downSince = "", time.Time{}
	if l == nil {
		s.state = SiteState{Site: site}
	}
	g.mu.Unlock()
}

// dispatch gives waiting jobs, in queue order, to sites with room for
// them now (Route among those), counting what each takes.
func (g *Global) dispatch() {
	g.mu.Lock()
	if len(g.waiting) == 0 {
		g.mu.Unlock()
		return
	}
	QueueOrder(g.waiting)
	var views, downViews []*SiteView
	for _, v := range g.viewsLocked() {
		switch s := g.sites[v.Name]; {
		case s.link == nil:
		case s.down != "":
			downViews = append(downViews, v)
		default:
			views = append(views, v)
		}
	}
	// What reachable sites could ever run, for the reason a job waits
	// (views' nodes are changed below).
	var upViews []*SiteView
	if len(downViews) > 0 {
		for _, v := range g.viewsLocked() {
			if s := g.sites[v.Name]; s.link != nil && s.down == "" {
				upViews = append(upViews, v)
			}
		}
	}
	// Work on copies of the sites' nodes, with the CPU slots the jobs
	// already queued at each site will take counted as used. Each node
	// may hold a few rounds of work beyond what runs now (backlog), so its
	// next jobs are already at its site when slots free (no wait for the
	// next sync); the rest waits here, where capacity that appears
	// elsewhere (a new pool node) can take it.
	const backlog = 4
	byName := map[string]*SiteView{}
	// The backlog copies are larger than their nodes: a job must also
	// be one the node itself can run.
	orig := map[*Node]*Node{}
	for _, v := range views {
		byName[v.Name] = v
		pending := v.Pending
		for i, n := range v.Nodes {
			c := *n
			orig[&c] = n
			c.CPUs, c.MemoryMiB, c.GPUs = backlog*c.slots(), backlog*c.MemoryMiB, backlog*c.GPUs
			take := min(max(c.FreeSlots(), 0), pending)
			c.UsedCPUs += take
			pending -= take
			v.Nodes[i] = &c
		}
	}
	fits := func(v *SiteView, r Resources) *Node {
		for _, n := range v.Nodes {
			if orig[n].Capable(r) && n.Fits(r) {
				return n
			}
		}
		return nil
	}
	bySite := map[string][]*Job{}
	keep := g.waiting[:0]
	for _, j := range g.waiting {
		if j.State != Queued {
			continue // cancelled while waiting
		}
		var room []*SiteView
		for _, v := range views {
			if fits(v, j.Spec.Resources) != nil {
				room = append(room, v)
			}
		}
		site := Route(j, room)
		if site == "" {
			j.Reason = g.waitReasonLocked(j, upViews, downViews)
			keep = append(keep, j)
			continue
		}
		j.Reason = ""
		fits(byName[site], j.Spec.Resources).take(j.Spec.Resources)
		byName[site].Pending += j.Spec.Resources.CPUSlots()
		j.Site = site
		c := *j
		bySite[site] = append(bySite[site], &c)
	}
	g.waiting = keep
	var routed []*Job
	for _, js := range bySite {
		routed = append(routed, js...)
	}
	if err := g.recordLocked(routed); err != nil {
		// Not recorded at a site: they wait, and go at the next sync.
		for _, c := range routed {
			if j := g.jobs[c.ID]; j != nil {
				j.Site = ""
				g.waiting = append(g.waiting, j)
			}
		}
		g.mu.Unlock()
		return
	}
	links := map[string]SiteLink{}
	for site, js := range bySite {
		links[site] = g.sites[site].link
		g.sites[site].state.Pending += len(js) * js[0].Spec.Resources.CPUSlots()
	}
	g.mu.Unlock()
	// Each site's batch goes on its own: a slow site never holds up
	// another's.
	var wg sync.WaitGroup
	for site, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.Enqueue(bySite[site])
			if err == nil {
				return
			}
			// Not delivered: back to waiting, and no more routing there
			// until the site answers a sync.
			g.mu.Lock()
			if s := g.sites[site]; s != nil && s.link == l {
				g.markDownLocked(s, fmt.Errorf("enqueue: %w", err))
			}
			var back []*Job
			for _, c := range bySite[site] {
				if j := g.jobs[c.ID]; j != nil && j.State == Queued {
					j.Site = ""
					g.waiting = append(g.waiting, j)
					back = append(back, j)
				}
			}
			g.recordLocked(back) // if lost, a seed delivers them again
			g.mu.Unlock()
		}()
	}
	wg.Wait()
}

func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Submit expands a spec into its jobs, routes and delivers them.
func (g *Global) Submit(spec *Spec) ([]*Job, error) {
	jobs, _, err := g.SubmitKey(spec, "")
	return jobs, err
}

// SubmitKey is Submit with an idempotency key: a submit with a key
// seen before (within KeyTTL) returns the jobs the first made, and
// replayed is true. "" is no key.
func (g *Global) SubmitKey(spec *Spec, key string) (jobs []*Job, replayed bool, err error) {
	if err := spec.Check(); err != nil {
		return nil, false, err
	}
	n := spec.Count
	if n < 1 {
		n = 1
	}
	now := g.Clock()
	arrayID := ""
	if n > 1 {
		arrayID = newID()
	}
	g.mu.Lock()
	if prev, err := g.replayLocked(key, spec); prev != nil || err != nil {
		g.mu.Unlock()
		return prev, err == nil, err
	}
	probe := &Job{Spec: *spec}
	if Route(probe, g.viewsLocked()) == "" {
		g.mu.Unlock()
		return nil, false, &SpecError{"resources", fmt.Sprintf("no site can run this job (it needs %d CPUs, %d MiB, %d GPUs, labels %v%s)",
			spec.Resources.CPUSlots(), spec.Resources.MemoryMiB, spec.Resources.GPUs, spec.Resources.Labels, pinned(spec))}
	}
	// Jobs wait here until a site has room for them (dispatch), so work
	// goes where capacity appears, including nodes an elastic pool adds.
	var array *ArraySubmit
	if arrayID != "" {
		array = &ArraySubmit{ArrayID: arrayID, Count: n, Spec: *spec, Submitted: now}
		array.Spec.Count = 0
		jobs = array.Jobs()
	} else {
		j := &Job{ID: newID(), Spec: *spec, State: Queued, Submitted: now}
		j.Spec.Count = 0
		jobs = []*Job{j}
	}
	// Recorded first (with its key, in one entry): a submit the control
	// log did not take is refused, and nothing of it is kept.
	var sub *submission
	if key != "" {
		sub = g.newSubmission(spec, jobs)
	}
	if err := g.recordSubmitLocked(jobs, array, key, sub); err != nil {
		g.mu.Unlock()
		return nil, false, err
	}
	for _, j := range jobs {
		g.jobs[j.ID] = j
		g.order = append(g.order, j.ID)
		g.waiting = append(g.waiting, j)
	}
	g.rememberLocked(key, sub)
	g.mu.Unlock()
	g.dispatch()
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*Job, n)
	for i, j := range jobs {
		c := *j
		out[i] = &c
	}
	return out, false, nil
}

func pinned(s *Spec) string {
	if s.Site != "" {
		return ", pinned to site " + s.Site
	}
	return ""
}

func (g *Global) viewsLocked() []*SiteView {
	names := make([]string, 0, len(g.sites))
	for n := range g.sites {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*SiteView
	for _, n := range names {
		s := g.sites[n]
		v := &SiteView{Name: n, Tier: s.info.Tier, Shapes: s.info.Shapes, Pending: s.state.Pending, Cached: map[string]bool{}}
		for _, ns := range s.state.Nodes {
			if !ns.Lost {
				c := ns.Node
				v.Nodes = append(v.Nodes, &c)
			}
		}
		for _, d := range s.state.Cached {
			v.Cached[d] = true
		}
		out = append(out, v)
	}
	return out
}

// Get returns a job.
func (g *Global) Get(id string) (*Job, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	j, ok := g.jobs[id]
	if !ok {
		return nil, false
	}
	c := *j
	return &c, true
}

// List returns jobs in submission order, optionally only those in state.
func (g *Global) List(state State) []*Job {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*Job
	for _, id := range g.order {
		j := g.jobs[id]
		if state == "" || j.State == state {
			c := *j
			out = append(out, &c)
		}
	}
	return out
}

// Cancel cancels a job wherever it is.
func (g *Global) Cancel(id string) (*Job, error) {
	g.mu.Lock()
	j := g.jobs[id]
	if j == nil {
		g.mu.Unlock()
		return nil, fmt.Errorf("no job %s", id)
	}
	if j.State.Final() {
		c := *j
		g.mu.Unlock()
		return &c, nil
	}
	// Still waiting for a site: cancel here (dispatch skips it).
	if j.Site == "" {
		c := *j
		c.State, c.Ended = Cancelled, g.Clock()
		if err := g.recordLocked([]*Job{&c}); err != nil {
			g.mu.Unlock()
			return nil, err
		}
		*j = c
		g.mu.Unlock()
		return &c, nil
	}
	link := g.sites[j.Site].link
	g.mu.Unlock()
	if link == nil {
		return nil, fmt.Errorf("site %s of job %s is not reachable", j.Site, id)
	}
	if err := link.Cancel(id); err != nil {
		return nil, err
	}
	g.mu.Lock()
	j.State, j.Ended = Cancelled, g.Clock()
	c := *j
	err := g.recordLocked([]*Job{j})
	g.mu.Unlock()
	return &c, err
}

// Output returns a job's captured output from its site.
func (g *Global) Output(id string) ([]byte, error) {
	g.mu.Lock()
	j := g.jobs[id]
	var link SiteLink
	if j != nil {
		if s := g.sites[j.Site]; s != nil {
			link = s.link
		}
	}
	g.mu.Unlock()
	if j == nil {
		return nil, fmt.Errorf("no job %s", id)
	}
	if link == nil {
		return nil, nil
	}
	return link.Output(id)
}

// Signals are the queue-depth signals elasticity decides from.
type Signals struct {
	Time  time.Time     `json:"time"`
	Sites []SiteSignals `json:"sites"`
	// Waiting is the demand not yet given to any site: jobs wait for a
	// site with room. Its groups carry the site a job is pinned to.
	Waiting SiteSignals  `json:"waiting"`
	Cache   CacheSignals `json:"cache"`
}

// CacheSignals sums the sites' cache figures.
type CacheSignals struct {
	FetchesByTier          map[Tier]int64 `json:"fetches_by_tier"`
	BytesMovedBetweenSites int64          `json:"bytes_moved_between_sites"`
}

// SiteSignals is one site's queue and nodes.
type SiteSignals struct {
	Site string `json:"site"`
	// PendingJobs and PendingSlots are the queued demand (including jobs
	// waiting for the site's first node).
	PendingJobs  int `json:"pending_jobs"`
	PendingSlots int `json:"pending_slots"`
	// PendingByPool is demand that only a given pool's shape can run.
	FreeSlots   int         `json:"free_slots"`
	RunningJobs int         `json:"running_jobs"`
	Nodes       []NodeState `json:"nodes"`
	// Unreachable says why the site's local manager cannot be reached
	// ("" = it can): no job is routed there meanwhile.
	Unreachable string `json:"unreachable,omitempty"`
	// Demand groups the queued jobs by what they need.
	Demand []DemandGroup `json:"demand,omitempty"`
}

// DemandGroup is queued jobs that need the same resources.
type DemandGroup struct {
	Count     int       `json:"count"`
	Resources Resources `json:"resources"`
	// Oldest is when the longest-waiting of them was submitted.
	Oldest time.Time `json:"oldest"`
	// Site is the site the jobs are pinned to ("" = any).
	Site string `json:"site,omitempty"`
}

// Signals reports queue depth, free slots, running jobs and each node's
// idle time, per site.
func (g *Global) Signals() Signals {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := Signals{Time: g.Clock()}
	names := make([]string, 0, len(g.sites))
	for n := range g.sites {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := g.sites[n]
		ss := SiteSignals{Site: n, Nodes: s.state.Nodes}
		if s.down != "" {
			ss.Unreachable = g.downReasonLocked(s)
		}
		groups := map[string]*DemandGroup{}
		var keys []string
		for _, j := range g.jobs {
			if j.Site != n {
				continue
			}
			switch j.State {
			case Queued:
				ss.PendingJobs++
				ss.PendingSlots += j.Spec.Resources.CPUSlots()
				r := j.Spec.Resources
				k := fmt.Sprint(r.CPUSlots(), r.MemoryMiB, r.GPUs, r.Labels)
				dg := groups[k]
				if dg == nil {
					dg = &DemandGroup{Resources: r, Oldest: j.Submitted}
					groups[k] = dg
					keys = append(keys, k)
				}
				dg.Count++
				if j.Submitted.Before(dg.Oldest) {
					dg.Oldest = j.Submitted
				}
			case Assigned, Running:
				ss.RunningJobs++
			}
		}
		for _, ns := range s.state.Nodes {
			if !ns.Lost {
				ss.FreeSlots += ns.FreeSlots()
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			ss.Demand = append(ss.Demand, *groups[k])
		}
		out.Sites = append(out.Sites, ss)
	}
	// Jobs not yet given to a site: demand anywhere (or at their pin).
	ws := SiteSignals{Site: ""}
	groups := map[string]*DemandGroup{}
	var keys []string
	for _, j := range g.waiting {
		if j.State != Queued {
			continue
		}
		ws.PendingJobs++
		ws.PendingSlots += j.Spec.Resources.CPUSlots()
		r := j.Spec.Resources
		k := fmt.Sprint(r.CPUSlots(), r.MemoryMiB, r.GPUs, r.Labels, j.Spec.Site)
		dg := groups[k]
		if dg == nil {
			dg = &DemandGroup{Resources: r, Oldest: j.Submitted, Site: j.Spec.Site}
			groups[k] = dg
			keys = append(keys, k)
		}
		dg.Count++
		if j.Submitted.Before(dg.Oldest) {
			dg.Oldest = j.Submitted
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		ws.Demand = append(ws.Demand, *groups[k])
	}
	out.Waiting = ws
	out.Cache.FetchesByTier = map[Tier]int64{}
	for _, s := range g.sites {
		for k, v := range s.state.Fetched {
			out.Cache.FetchesByTier[k] += v
		}
		out.Cache.BytesMovedBetweenSites += s.state.Moved
	}
	return out
}

// CacheStats sums the sites' cache figures.
func (g *Global) CacheStats() (fetched map[Tier]int64, moved int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fetched = map[Tier]int64{}
	for _, s := range g.sites {
		for k, v := range s.state.Fetched {
			fetched[k] += v
		}
		moved += s.state.Moved
	}
	return fetched, moved
}

// jobChanged reports whether a site's copy of a job differs from the
// table's in anything a site changes.
func jobChanged(cur, j *Job) bool {
	if cur.State != j.State || cur.Site != j.Site || cur.Node != j.Node || cur.Attempt != j.Attempt ||
		cur.Retries != j.Retries || cur.Error != j.Error || !cur.Started.Equal(j.Started) || !cur.Ended.Equal(j.Ended) {
		return true
	}
	if (cur.ExitCode == nil) != (j.ExitCode == nil) {
		return true
	}
	return cur.ExitCode != nil && *cur.ExitCode != *j.ExitCode
}
