package elastic

import "time"

// History is the per-pool failure record the executor of the actions
// keeps between decisions: the simulator and the daemon both update it
// from what they observe and from the actions they carry out, and copy it
// into each Snapshot's pools. Its zero value is ready to use; it is
// JSON-encodable so the daemon can keep it across restarts.
type History struct {
	Pools map[string]*PoolHistory `json:"pools,omitempty"`
}

// PoolHistory is one pool's record; see the fields of the same names on
// Pool.
type PoolHistory struct {
	ConsecutiveFailures int       `json:"consecutive_failures,omitempty"`
	CapacityErrorAt     time.Time `json:"capacity_error_at,omitzero"`
	HeldUntil           time.Time `json:"held_until,omitzero"`
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

// Fill copies the record into the snapshot's pools.
func (h *History) Fill(pools []Pool) {
	for i := range pools {
		if r := h.Pools[pools[i].Name]; r != nil {
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
