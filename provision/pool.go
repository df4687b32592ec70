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

// PoolPlan wraps changes made outside a plan in one, against st.
func (e *Engine) PoolPlan(st *State, changes []*Change) *Plan {
	p := &Plan{FormatVersion: "1.0", Lineage: st.Lineage, Serial: st.Serial, Changes: changes}
	if e.Config != nil && e.Config.Cluster != nil {
		p.Cluster = e.Config.Cluster.Name
	}
	sortChanges(p.Changes)
	return p
}
