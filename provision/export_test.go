package provision

import "sort"

// FakeStateForBench returns a state holding every resource of g as
// ready, for benchmarks of the no-change plan.
func FakeStateForBench(g *Graph) *State {
	st := NewState()
	st.Serial = 1
	for _, r := range g.Resources {
		st.Resources = append(st.Resources, &ResourceState{
			Address: r.Address, Type: r.Type(), Kind: r.Kind, Provider: r.Provider.Ref(),
			ID: "id-" + r.Address, Status: StatusReady, Attrs: r.Attrs, Deps: r.Deps,
		})
	}
	sort.Slice(st.Resources, func(i, j int) bool { return lessAddr(st.Resources[i].Address, st.Resources[j].Address) })
	return st
}
