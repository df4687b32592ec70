package provision

import (
	"fmt"

	"github.com/hvctl/hvctl/templates"
)

// PoolCreate is the change that creates slot idx of the elastic pool
// pl, for the elastic daemon and SLURM's power saving: the slot's
// attributes and dependencies come from the graph, as a plan's would.
// extra attributes (the daemon's token) are added to the slot's.
func (e *Engine) PoolCreate(st *State, pl *templates.Pool, idx int, extra Attrs) (*Change, error) {
	if idx < 0 || idx >= pl.Max {
		return nil, fmt.Errorf("pool %s has slots 0 to %d, not %d", pl.Path(), pl.Max-1, idx)
	}
	addr := PoolNodeAddress(pl, idx)
	// The graph keeps the elastic slots the state has: show it this one.
	probe := st.Clone()
	probe.put(&ResourceState{Address: addr, Kind: KindInstance, Status: StatusPending})
	g, err := BuildGraph(e.Config.Cluster, probe)
	if err != nil {
		return nil, err
	}
	want := g.Get(addr)
	if want == nil {
		return nil, fmt.Errorf("the configuration has no slot %s", addr)
	}
	after := Attrs{}
	for k, v := range want.Attrs {
		after[k] = v
	}
	for k, v := range extra {
		after[k] = v
	}
	return &Change{Address: addr, Type: want.Type(), Kind: want.Kind, Provider: want.Provider.Ref(),
		Action: ActionCreate, After: after, Deps: want.Deps, Unknown: unknownAttrs(want.Kind, after)}, nil
}

// DeleteChange is the change that deletes r (a pool slot the daemon or
// SLURM gives back).
func DeleteChange(r *ResourceState) *Change { return deleteChange(r, "") }

// PowerChange stops (ActionStop), starts (ActionStart) or restarts
// (ActionRestart) the instance r through its provider's Stopper: the
// elastic daemon's stop instead of a destroy, and its restart of a node
// whose agent is lost.
func PowerChange(r *ResourceState, a Action, reason string) *Change {
	c := deleteChange(r, reason)
	c.Action = a
	return c
}

// PoolPlan wraps changes made outside a plan in one, against st.
func (e *Engine) PoolPlan(st *State, changes []*Change) *Plan {
	p := &Plan{FormatVersion: "1.0", Lineage: st.Lineage, Serial: st.Serial, Changes: changes}
	if e.Config != nil && e.Config.Cluster != nil {
		p.Cluster = e.Config.Cluster.Name
	}
	sortChanges(p.Changes)
	return p
}

// PoolStopCost reports whether the provider of pool pl can stop its
// nodes (Stopper), and what a start takes and a stopped node costs.
func (e *Engine) PoolStopCost(pl *templates.Pool) (StopCost, bool) {
	if pl.Site == nil || pl.Site.Provider == nil {
		return StopCost{}, false
	}
	p, ok := e.Provider(pl.Site.Provider.Ref())
	if !ok {
		return StopCost{}, false
	}
	sp, ok := p.(Stopper)
	if !ok {
		return StopCost{}, false
	}
	return sp.StopCost(PoolNodeAttrs(pl, 0))
}
