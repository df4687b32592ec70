package elastic

import (
	"slices"
	"time"
)

// History is the per-pool failure record the executor of the actions
// keeps between decisions: the simulator and the daemon both update it
// from what they observe and from the actions they carry out, and copy it
// into each Snapshot's pools. Its zero value is ready to use; it is
// JSON-encodable so the daemon can keep it across restarts.
type History struct {
	Pools map[string]*PoolHistory `json:"pools,omitempty"`
	// Queue is what the automatic policy learns from the queue: the gaps
	// between bursts and how long jobs run.
	Queue QueueHistory `json:"queue,omitzero"`
}

// QueueHistory is what the queue taught the executor so far.
type QueueHistory struct {
	// Gaps are the last maxGaps quiet periods (nothing queued), oldest
	// first.
	Gaps []time.Duration `json:"gaps,omitempty"`
	// QuietSince is when the queue last became empty; zero while work is
	// queued or before the first work.
	QuietSince time.Time `json:"quiet_since,omitzero"`
	// Seen reports whether any work was queued yet (the quiet before the
	// first burst is not a gap).
	Seen bool `json:"seen,omitempty"`
	// JobTime is the mean observed run time of a job, over Jobs jobs.
	JobTime time.Duration `json:"job_time,omitempty"`
	Jobs    int           `json:"jobs,omitempty"`
}

// maxGaps is how many gaps the history keeps.
const maxGaps = 32

// meanWindow caps the count of the running mean so that it keeps
// following a workload that changes.
const meanWindow = 1000

// PoolHistory is one pool's record; see the fields of the same names on
// Pool.
type PoolHistory struct {
	// Ready is the mean observed time from a node's create request until
	// it could run work at full speed (boot, join and the workload's
	// one-time setup), over Readies nodes.
	Ready   time.Duration `json:"ready,omitempty"`
	Readies int           `json:"readies,omitempty"`
	// Start is the mean observed time from a stopped node's start
	// request until it ran work again, over Starts starts.
	Start               time.Duration `json:"start,omitempty"`
	Starts              int           `json:"starts,omitempty"`
	ConsecutiveFailures int           `json:"consecutive_failures,omitempty"`
	CapacityErrorAt     time.Time     `json:"capacity_error_at,omitzero"`
	HeldUntil           time.Time     `json:"held_until,omitzero"`
}

func (h *History) pool(name string) *PoolHistory {
	if h.Pools == nil {
		h.Pools = map[string]*PoolHistory{}
	}
	p := h.Pools[name]
	if p == nil {
		p = &PoolHistory{}
		h.Pools[name] = p
	}
	return p
}

// Failed records a failure of pool: a node that failed to boot or join
// (Replace, ScaleDown with Failed), or a create that failed for a reason
// other than capacity.
func (h *History) Failed(pool string) { h.pool(pool).ConsecutiveFailures++ }

// Joined records that a node of pool joined: its failures stop being
// consecutive.
func (h *History) Joined(pool string) { h.pool(pool).ConsecutiveFailures = 0 }

// CapacityError records that the provider refused a create in pool for
// lack of capacity (provision.CapacityError).
func (h *History) CapacityError(pool string, at time.Time) { h.pool(pool).CapacityErrorAt = at }

// Hold records a Hold action: the pool is held until until, and its
// failure record starts again.
func (h *History) Hold(pool string, until time.Time) {
	*h.pool(pool) = PoolHistory{HeldUntil: until}
}

// Ready records that a node of pool took d from its create request
// until it ran work at full speed.
func (h *History) Ready(pool string, d time.Duration) {
	p := h.pool(pool)
	p.Readies++
	p.Ready += (d - p.Ready) / time.Duration(min(p.Readies, meanWindow))
}

// Started records that a stopped node of pool ran work again d after
// its start was asked for.
func (h *History) Started(pool string, d time.Duration) {
	p := h.pool(pool)
	p.Starts++
	p.Start += (d - p.Start) / time.Duration(min(p.Starts, meanWindow))
}

// JobDone records one job's run time.
func (h *History) JobDone(d time.Duration) {
	q := &h.Queue
	q.Jobs = min(q.Jobs+1, meanWindow)
	q.JobTime += (d - q.JobTime) / time.Duration(q.Jobs)
}

// ObserveQueue records how many jobs are queued at now: a quiet period
// (nothing queued) that ends is a gap between bursts.
func (h *History) ObserveQueue(now time.Time, queued int) {
	q := &h.Queue
	switch {
	case queued > 0 && !q.QuietSince.IsZero():
		q.Gaps = append(q.Gaps, now.Sub(q.QuietSince))
		if len(q.Gaps) > maxGaps {
			q.Gaps = slices.Delete(q.Gaps, 0, len(q.Gaps)-maxGaps)
		}
		q.QuietSince = time.Time{}
	case queued > 0:
		q.Seen = true
	case q.Seen && q.QuietSince.IsZero():
		q.QuietSince = now
	}
}

// FillSnapshot copies the record into the snapshot: the pools' failure
// record and ready times, and the queue's gaps and job time.
func (h *History) FillSnapshot(s *Snapshot) {
	h.Fill(s.Pools)
	s.Gaps = h.Queue.Gaps
	s.JobTime = h.Queue.JobTime
	if !h.Queue.QuietSince.IsZero() {
		s.QuietFor = s.Now.Sub(h.Queue.QuietSince)
	}
}

// Fill copies the failure record and the observed ready times into the
// snapshot's pools.
func (h *History) Fill(pools []Pool) {
	for i := range pools {
		if r := h.Pools[pools[i].Name]; r != nil {
			if r.Readies > 0 {
				pools[i].Ready, pools[i].ReadyObserved = r.Ready, r.Readies
			}
			if r.Starts > 0 && pools[i].StartTime > 0 {
				pools[i].StartTime = r.Start // observed, not the provider's estimate
			}
			pools[i].ConsecutiveFailures = r.ConsecutiveFailures
			pools[i].CapacityErrorAt = r.CapacityErrorAt
			pools[i].HeldUntil = r.HeldUntil
		}
	}
}

// Record applies the bookkeeping part of an action: failures counted by
// Replace and failed ScaleDown, and holds.
func (h *History) Record(a Action) {
	switch a := a.(type) {
	case Replace:
		h.Failed(a.Pool)
	case ScaleDown:
		if a.Failed {
			h.Failed(a.Pool)
		}
	case Hold:
		h.Hold(a.Pool, a.Until)
	}
}
