package provision

import (
	"context"
	"fmt"
	"time"
)

// ImportError is an import that cannot adopt the machine.
type ImportError struct{ Address, Detail string }

func (e *ImportError) Error() string { return fmt.Sprintf("cannot import %s: %s", e.Address, e.Detail) }

// Import adopts an existing resource by its provider ID at addr, which
// the configuration must declare (an elastic pool slot within max
// counts) and the state must not hold: the provider's Read checks it
// exists, and the resource is recorded ready with the configuration's
// attributes overlaid by what the provider reports, so the next plan
// shows the differences, if any. Nothing is created or changed at the
// provider. The caller writes the state.
func (e *Engine) Import(ctx context.Context, st *State, addr, id string) (*ResourceState, error) {
	if st.Resource(addr) != nil {
		return nil, &ImportError{addr, "the state already has a resource at this address; to adopt another machine there, run hvctl state rm " + addr + " first"}
	}
	if e.Config == nil || e.Config.Cluster == nil {
		return nil, &ImportError{addr, "the template declares no cluster"}
	}
	// The graph keeps elastic pool slots the state has: show it one.
	probe := st.Clone()
	probe.put(&ResourceState{Address: addr, Kind: KindOf(addr), Status: StatusReady})
	g, err := BuildGraph(e.Config.Cluster, probe)
	if err != nil {
		return nil, err
	}
	want := g.Get(addr)
	if want == nil {
		var known []string
		for _, r := range g.Resources {
			if st.Resource(r.Address) == nil {
				known = append(known, r.Address)
			}
		}
		return nil, &ImportError{addr, "the configuration declares no resource at this address." + nearestHint(addr, known)}
	}
	for _, d := range want.Deps {
		if st.Resource(d) == nil {
			return nil, &ImportError{addr, fmt.Sprintf("it depends on %s, which is not in the state; import or apply that first", d)}
		}
	}
	ref := want.Provider.Ref()
	p, ok := e.providers[ref]
	if !ok {
		return nil, &ImportError{addr, "its provider " + ref + " is not configured"}
	}
	resp, err := p.Read(ctx, &ReadRequest{Address: addr, Kind: want.Kind, ID: id})
	if err != nil {
		return nil, fmt.Errorf("import %s: read %s from %s: %w", addr, id, ref, err)
	}
	if !resp.Exists {
		return nil, &ImportError{addr, fmt.Sprintf("%s has no %s with ID %q; nothing was imported", ref, want.Kind, id)}
	}
	attrs := Attrs{}
	for k, v := range want.Attrs {
		attrs[k] = v
	}
	for k, v := range resp.Attrs {
		attrs[k] = v
	}
	if resp.ID != "" {
		id = resp.ID
	}
	r := &ResourceState{
		Address: addr, Type: want.Type(), Kind: want.Kind, Provider: ref, ID: id,
		Status: StatusReady, Token: ClientToken(st.Lineage, addr, st.Generations[addr]),
		Attrs: normalizeAttrs(attrs), Deps: want.Deps, Created: time.Now().UTC(),
	}
	st.put(r)
	return r, nil
}
