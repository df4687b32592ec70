package scheduler

import (
	"fmt"
	"time"
)

// Journal makes the global job table durable (and, on a replica set,
// replicated). Record is called, under the table's lock, with every job
// whose state changed, before the change is acted on (a job is recorded
// at its site before it is handed to that site); an error undoes the
// change where it can and is returned to the caller. The manager's raft
// log implements it.
type Journal interface {
	Record(jobs []*Job) error
}

// ArraySubmit is an array job as one record: its jobs are Count
// copies of Spec, made by Jobs alike wherever the record is read, so an
// array of 100,000 is recorded as one spec, not 100,000.
type ArraySubmit struct {
	ArrayID   string    `json:"array_id"`
	Count     int       `json:"count"`
	Spec      Spec      `json:"spec"`
	Submitted time.Time `json:"submitted"`
}

// Jobs are the array's jobs, queued: IDs ArrayID.0 to ArrayID.(Count-1).
func (a *ArraySubmit) Jobs() []*Job {
	jobs := make([]*Job, a.Count)
	for i := range jobs {
		j := &Job{ID: fmt.Sprintf("%s.%d", a.ArrayID, i), ArrayID: a.ArrayID, Index: i, Spec: a.Spec, State: Queued, Submitted: a.Submitted}
		j.Spec.Count = 0
		jobs[i] = j
	}
	return jobs
}

// ArrayJournal is a KeyJournal that records an array submit as one
// ArraySubmit (key nil = no idempotency key).
type ArrayJournal interface {
	KeyJournal
	RecordArray(a *ArraySubmit, key *SubmitKey) error
}

// SiteSeeder is a SiteLink that can give a local manager the jobs the
// global table holds for its site: a local manager that (re)starts, or
// one newly designated, starts from them.
type SiteSeeder interface {
	Seed(jobs []*Job) error
}

// DefaultSeedHold is how long a newly seeded local manager waits before
// it places jobs: long enough for every live node to poll once and say
// what it is running, so that a job still running somewhere is adopted
// instead of started a second time.
const DefaultSeedHold = 5 * time.Second

// recordLocked journals copies of jobs; nil Journal = memory only.
func (g *Global) recordLocked(jobs []*Job) error {
	if g.Journal == nil || len(jobs) == 0 {
		return nil
	}
	cs := make([]*Job, len(jobs))
	for i, j := range jobs {
		c := *j
		cs[i] = &c
	}
	if err := g.Journal.Record(cs); err != nil {
		return fmt.Errorf("record %d jobs in the control log: %w", len(jobs), err)
	}
	return nil
}

// recordSubmitLocked journals a submit's jobs with its key (when the
// journal keeps keys; sub nil = no key); an array (a not nil) as one
// record when the journal can.
func (g *Global) recordSubmitLocked(jobs []*Job, a *ArraySubmit, key string, sub *submission) error {
	if aj, ok := g.Journal.(ArrayJournal); ok && a != nil {
		var k *SubmitKey
		if sub != nil {
			r := sub.record(key)
			k = &r
		}
		c := *a
		if err := aj.RecordArray(&c, k); err != nil {
			return fmt.Errorf("record an array of %d jobs in the control log: %w", a.Count, err)
		}
		return nil
	}
	kj, ok := g.Journal.(KeyJournal)
	if sub == nil || !ok {
		return g.recordLocked(jobs)
	}
	cs := make([]*Job, len(jobs))
	for i, j := range jobs {
		c := *j
		cs[i] = &c
	}
	if err := kj.RecordSubmit(cs, sub.record(key)); err != nil {
		return fmt.Errorf("record %d jobs in the control log: %w", len(jobs), err)
	}
	return nil
}

// Restore replaces the job table with jobs (in submission order), as
// replayed from the journal. Queued jobs not yet at a site wait again;
// links are kept, and every site is seeded again at its next sync.
func (g *Global) Restore(jobs []*Job) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.jobs = make(map[string]*Job, len(jobs))
	g.order = g.order[:0]
	g.waiting = nil
	for _, j := range jobs {
		c := *j
		g.jobs[c.ID] = &c
		g.order = append(g.order, c.ID)
		if c.State == Queued && c.Site == "" {
			g.waiting = append(g.waiting, &c)
		}
	}
	for _, s := range g.sites {
		s.epoch, s.version = "", 0
		s.gen++
		s.pulling = false
	}
}

// siteJobsLocked are the jobs of site that have not ended, in
// submission order: what its local manager is seeded with.
func (g *Global) siteJobsLocked(site string) []*Job {
	var out []*Job
	for _, id := range g.order {
		j := g.jobs[id]
		if j != nil && j.Site == site && !j.State.Final() {
			c := *j
			out = append(out, &c)
		}
	}
	return out
}

// seedIfNew gives a site's local manager the site's jobs when it is one
// the table has not seen (its epoch changed: restarted, or another node
// now runs it). It returns an error when st must not be applied: the
// seed did not go through (tried again at the next sync), or st was
// read from a version of the old instance (the next sync reads the new
// one whole). Seeded jobs show in the site's next state.
func (g *Global) seedIfNew(site string, gen uint64, link SiteLink, since uint64, st SiteState) error {
	if st.Epoch == "" {
		return nil // a link that does not say
	}
	g.mu.Lock()
	s := g.sites[site]
	if s == nil || s.gen != gen || s.epoch == st.Epoch {
		g.mu.Unlock()
		return nil
	}
	jobs := g.siteJobsLocked(site)
	g.mu.Unlock()
	if sd, ok := link.(SiteSeeder); ok && len(jobs) > 0 {
		if err := sd.Seed(jobs); err != nil {
			return fmt.Errorf("site %s: seed its new local manager with %d jobs: %w", site, len(jobs), err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.gen != gen {
		return fmt.Errorf("site %s: its link changed while it was seeded", site)
	}
	s.epoch = st.Epoch
	if since != 0 {
		s.version = 0
		return fmt.Errorf("site %s: a new local manager (epoch %s); reading its whole state next", site, st.Epoch)
	}
	return nil
}

// Seed gives a newly started local manager the jobs the global table
// holds for its site. Jobs it already has are left alone. A running job
// stays running on its node with its attempt, so that node's report is
// accepted; if the node does not show up within LossAfter, Sweep queues
// the job again with a new attempt. Queued jobs are queued. Placement
// waits SeedHold, so live nodes can first say what they run (Adopt).
func (l *Local) Seed(jobs []*Job) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Clock()
	for _, j := range jobs {
		if _, ok := l.jobs[j.ID]; ok || j.State.Final() {
			continue
		}
		c := *j
		c.Site = l.Site
		switch {
		case (c.State == Assigned || c.State == Running) && c.Node != "":
			c.State = Running
			if l.unconfirmed == nil {
				l.unconfirmed = map[string]bool{}
			}
			l.unconfirmed[c.ID] = true
			n := l.nodes[c.Node]
			if n == nil {
				n = &nodeEntry{Node: Node{ID: c.Node, Site: l.Site}, wake: make(chan struct{}, 1), cache: NewLRU(l.NodeCache), lastSeen: now}
				l.nodes[c.Node] = n
			}
			n.take(c.Spec.Resources)
		default:
			c.State, c.Node = Queued, ""
		}
		l.jobs[c.ID] = &c
		l.touch(&c)
	}
	hold := l.SeedHold
	if hold == 0 {
		hold = DefaultSeedHold
	}
	l.holdUntil = now.Add(hold)
}

// RunningJob is a job a node says it is running, with its attempt.
type RunningJob struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
}

// Adopt takes what node says it is running (at every poll): a job this
// manager has queued (it was seeded from a global table that had not
// yet heard of the start) becomes running there with the node's
// attempt, so it is not started a second time; a job seeded as running
// there that the node does not run (it stopped it while it had no local
// manager) is queued again, as a new attempt. Jobs running elsewhere or
// ended are left alone: the node's report of them will be refused.
func (l *Local) Adopt(node string, running []RunningJob) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.unconfirmed) > 0 {
		runs := map[string]int{}
		for _, r := range running {
			runs[r.ID] = r.Attempt
		}
		for id := range l.unconfirmed {
			j := l.jobs[id]
			if j == nil || j.Node != node {
				continue
			}
			delete(l.unconfirmed, id)
			if at, ok := runs[id]; ok && at == j.Attempt || j.State != Running {
				continue
			}
			if n := l.nodes[node]; n != nil {
				n.Release(j.Spec.Resources)
			}
			j.State, j.Node = Queued, ""
			j.Error = "node " + node + " no longer ran it when the local manager started; running again"
			l.touch(j)
		}
	}
	for _, r := range running {
		j := l.jobs[r.ID]
		if j == nil || j.State != Queued || r.Attempt < j.Attempt {
			continue
		}
		j.State, j.Node, j.Attempt = Running, node, r.Attempt
		if j.Started.IsZero() {
			j.Started = l.Clock()
		}
		n := l.nodes[node]
		if n == nil {
			n = &nodeEntry{Node: Node{ID: node, Site: l.Site}, wake: make(chan struct{}, 1), cache: NewLRU(l.NodeCache)}
			l.nodes[node] = n
		}
		n.take(j.Spec.Resources)
		l.touch(j)
	}
}
