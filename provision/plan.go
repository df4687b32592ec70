package provision

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Action is what apply will do to one resource.
type Action string

const (
	ActionNoop    Action = "no-op"
	ActionCreate  Action = "create"
	ActionUpdate  Action = "update"
	ActionReplace Action = "replace" // delete, then create
	ActionDelete  Action = "delete"
	// ActionStop and ActionStart power an instance off and on again
	// (Stopper). Plans never hold them: the elastic daemon does.
	ActionStop  Action = "stop"
	ActionStart Action = "start"
	// ActionRestart is a stop and a start: the machine, its disk and
	// its identity kept, its processes (the agent) begun again.
	ActionRestart Action = "restart"
)

// Change is the planned change of one resource.
type Change struct {
	Address  string `json:"address"`
	Type     string `json:"type"`
	Kind     Kind   `json:"kind"`
	Provider string `json:"provider"`
	Action   Action `json:"action"`
	// Before is the refreshed state's attributes (nil for create).
	Before Attrs `json:"before,omitempty"`
	// After is the desired attributes (nil for delete); attributes in
	// Unknown are known only after apply.
	After   Attrs    `json:"after,omitempty"`
	Unknown []string `json:"after_unknown,omitempty"`
	// ForceNew lists the attributes whose change forces replacement.
	ForceNew []string `json:"force_new,omitempty"`
	// Reason explains a replacement or deletion that is not an attribute
	// change ("tainted", "deleted outside hvctl", ...).
	Reason string   `json:"reason,omitempty"`
	Deps   []string `json:"depends_on,omitempty"`
	// BeforeID is the provider ID being changed or deleted.
	BeforeID string `json:"before_id,omitempty"`
	// AwaitReady is set when the resource exists but was not yet seen
	// ready (hvctl stopped while it booted): apply waits for it.
	AwaitReady bool `json:"await_ready,omitempty"`
}

// Drift is a change found by refresh: something changed outside hvctl.
type Drift struct {
	Address string `json:"address"`
	Detail  string `json:"detail"` // "deleted", "adopted"
}

// Plan is a set of changes computed against a state at a serial.
type Plan struct {
	FormatVersion string `json:"format_version"`
	Lineage       string `json:"lineage"`
	Serial        uint64 `json:"serial"` // serial of the state the plan was made against
	Cluster       string `json:"cluster"`
	Destroy       bool   `json:"destroy,omitempty"`
	// Targets are the -target addresses the plan was limited to;
	// RefreshOnly plans only to record what refresh found.
	Targets     []string  `json:"targets,omitempty"`
	RefreshOnly bool      `json:"refresh_only,omitempty"`
	Changes     []*Change `json:"changes"`
	Drift       []Drift   `json:"drift,omitempty"`
	// Template and Vars let a saved plan be applied later: providers are
	// configured again from the same template and variables.
	Template string    `json:"template,omitempty"`
	Vars     []PlanVar `json:"vars,omitempty"`
}

// PlanVar is a -var or -var-file argument recorded in a saved plan.
type PlanVar struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
	File  string `json:"file,omitempty"`
}

// Counts returns how many resources the plan adds, changes and destroys.
func (p *Plan) Counts() (add, change, destroy int) {
	for _, c := range p.Changes {
		switch c.Action {
		case ActionCreate:
			add++
		case ActionUpdate:
			change++
		case ActionReplace:
			add++
			destroy++
		case ActionDelete:
			destroy++
		}
	}
	return
}

// Awaiting counts the resources apply will wait for without changing.
func (p *Plan) Awaiting() int {
	n := 0
	for _, c := range p.Changes {
		if c.AwaitReady && c.Action == ActionNoop {
			n++
		}
	}
	return n
}

// HasChanges reports whether applying the plan would change anything.
func (p *Plan) HasChanges() bool {
	a, c, d := p.Counts()
	return a+c+d > 0
}

// Refresh reads every resource of st from its provider and returns the
// refreshed state (a copy) and what changed outside hvctl: resources that
// no longer exist are dropped (and show up in the next plan as creates),
// pending intents are resolved by client token.
func (e *Engine) Refresh(ctx context.Context, st *State) (*State, []Drift, error) {
	out := st.Clone()
	type result struct {
		r    *ResourceState
		resp *ReadResponse
		err  error
	}
	res := make([]result, len(out.Resources))
	listed, err := e.listAll(ctx, out)
	if err != nil {
		return nil, nil, err
	}
	err = e.forEach(ctx, len(out.Resources), func(ctx context.Context, i int) error {
		r := out.Resources[i]
		p, err := e.provider(r.Provider)
		if err != nil {
			return err
		}
		req := &ReadRequest{Address: r.Address, Kind: r.Kind, ID: r.ID, ClientToken: r.Token, Attrs: r.Attrs}
		if r.Status == StatusPending {
			req.ID = ""
		}
		if resp := listed[r.Provider].find(r.Kind, req); resp != nil {
			res[i] = result{r: r, resp: resp}
			return nil
		}
		var resp *ReadResponse
		err = e.call(ctx, r.Provider, func(ctx context.Context) error {
			var err error
			resp, err = p.Read(ctx, req)
			return err
		})
		res[i] = result{r: r, resp: resp, err: err}
		if err != nil {
			return fmt.Errorf("refresh %s: %w", r.Address, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var drift []Drift
	for _, x := range res {
		switch {
		case !x.resp.Exists:
			if x.r.Status == StatusPending {
				drift = append(drift, Drift{Address: x.r.Address, Detail: "was never created"})
			} else {
				drift = append(drift, Drift{Address: x.r.Address, Detail: "has been deleted outside hvctl"})
			}
			out.remove(x.r.Address)
		default:
			if x.r.Status == StatusPending {
				drift = append(drift, Drift{Address: x.r.Address, Detail: "was found by its client token (" + x.resp.ID + ")"})
				x.r.Status = StatusCreated
			}
			x.r.ID = x.resp.ID
			merged := Attrs{}
			for k, v := range x.r.Attrs {
				merged[k] = v
			}
			for k, v := range x.resp.Attrs {
				merged[k] = v
			}
			x.r.Attrs = merged
			switch s, _ := merged["state"].(string); {
			case s == "failed":
				x.r.Status = StatusTainted
			case s == "running" && x.r.Status == StatusCreated:
				x.r.Status = StatusReady
			}
		}
	}
	return out, drift, nil
}

// listing is what one provider's Lister returned for a cluster.
type listing struct {
	kinds   map[Kind]bool
	byID    map[string]*Listed
	byToken map[string]*Listed
}

// find returns the listed resource req names as a ReadResponse, or nil
// when the listing does not cover req's kind or does not show it (the
// caller then reads it on its own).
func (l *listing) find(k Kind, req *ReadRequest) *ReadResponse {
	if l == nil || !l.kinds[k] {
		return nil
	}
	var it *Listed
	if req.ID != "" {
		it = l.byID[req.ID]
	} else if req.ClientToken != "" {
		it = l.byToken[req.ClientToken]
	}
	if it == nil || it.Kind != k {
		return nil
	}
	return &ReadResponse{Exists: true, ID: it.ID, Attrs: it.Attrs}
}

// listAll lists the cluster through every provider of st's resources
// that is a Lister, page by page (each page one rate-limited call).
func (e *Engine) listAll(ctx context.Context, st *State) (map[string]*listing, error) {
	refs := map[string]bool{}
	for _, r := range st.Resources {
		refs[r.Provider] = true
	}
	cluster := st.Cluster
	if cluster == "" && e.Config != nil && e.Config.Cluster != nil {
		cluster = e.Config.Cluster.Name
	}
	out := map[string]*listing{}
	for ref := range refs {
		p, ok := e.providers[ref]
		if !ok {
			continue
		}
		lp, ok := p.(Lister)
		if !ok {
			continue
		}
		l := &listing{kinds: map[Kind]bool{}, byID: map[string]*Listed{}, byToken: map[string]*Listed{}}
		token := ""
		for {
			var page *ListPage
			err := e.call(ctx, ref, func(ctx context.Context) error {
				var err error
				page, err = lp.List(ctx, &ListRequest{Cluster: cluster, PageToken: token})
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("refresh: list the resources of %s: %w", ref, err)
			}
			for _, k := range page.Kinds {
				l.kinds[k] = true
			}
			for i := range page.Items {
				it := &page.Items[i]
				l.byID[it.ID] = it
				if it.ClientToken != "" {
					l.byToken[it.ClientToken] = it
				}
			}
			if page.NextPageToken == "" || page.NextPageToken == token {
				break
			}
			token = page.NextPageToken
		}
		out[ref] = l
	}
	return out, nil
}

// PlanOptions tune Plan.
type PlanOptions struct {
	Destroy bool
	Refresh bool
	// Replace are addresses to replace although nothing changed
	// (-replace); Target limits the plan to these addresses and what
	// they depend on (their dependents, when destroying); RefreshOnly
	// changes nothing but the state's record of what exists.
	Replace     []string
	Target      []string
	RefreshOnly bool
}

// TargetError is a -replace or -target address the plan does not know.
type TargetError struct {
	Flag, Address string
	Known         []string
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("%s=%s: no resource has this address in the configuration or the state.%s Run hvctl state list for the addresses.",
		e.Flag, e.Address, nearestHint(e.Address, e.Known))
}

// Plan computes the changes that bring st to the configuration. With
// Refresh, st is first refreshed from the providers (not persisted).
func (e *Engine) Plan(ctx context.Context, st *State, opts PlanOptions) (*Plan, *State, error) {
	var drift []Drift
	if opts.Refresh {
		var err error
		st, drift, err = e.Refresh(ctx, st)
		if err != nil {
			return nil, nil, err
		}
	}
	p := &Plan{FormatVersion: "1.0", Lineage: st.Lineage, Serial: st.Serial, Destroy: opts.Destroy, Drift: drift,
		Targets: opts.Target, RefreshOnly: opts.RefreshOnly}
	if st.Serial == 0 {
		// No state yet: its lineage is made when it is first written.
		p.Lineage = ""
	}
	if e.Config != nil && e.Config.Cluster != nil {
		p.Cluster = e.Config.Cluster.Name
	}
	if opts.RefreshOnly {
		return p, st, nil
	}
	var g *Graph
	if !opts.Destroy {
		var err error
		if g, err = BuildGraph(e.Config.Cluster, st); err != nil {
			return nil, nil, err
		}
	}
	known := map[string]bool{}
	for _, r := range st.Resources {
		known[r.Address] = true
	}
	if g != nil {
		for _, r := range g.Resources {
			known[r.Address] = true
		}
	}
	for _, l := range []struct {
		flag  string
		addrs []string
	}{{"-replace", opts.Replace}, {"-target", opts.Target}} {
		for _, a := range l.addrs {
			if !known[a] {
				return nil, nil, &TargetError{Flag: l.flag, Address: a, Known: sortedKeys(known)}
			}
		}
	}
	if opts.Destroy {
		for _, r := range st.Resources {
			p.Changes = append(p.Changes, deleteChange(r, ""))
		}
		p.Changes = targetChanges(p.Changes, opts.Target, true)
		sortChanges(p.Changes)
		return p, st, nil
	}
	replace := map[string]bool{}
	for _, a := range opts.Replace {
		replace[a] = true
	}
	replaced := map[string]bool{}
	for _, want := range g.Resources {
		have := st.Resource(want.Address)
		c := &Change{
			Address: want.Address, Type: want.Type(), Kind: want.Kind,
			Provider: want.Provider.Ref(), After: want.Attrs, Deps: want.Deps,
		}
		if have == nil {
			c.Action = ActionCreate
			c.Unknown = unknownAttrs(want.Kind, want.Attrs)
			p.Changes = append(p.Changes, c)
			continue
		}
		c.Before = have.Attrs
		c.BeforeID = have.ID
		if have.Provider != c.Provider {
			c.Action = ActionReplace
			c.Reason = fmt.Sprintf("its provider changed from %s to %s", have.Provider, c.Provider)
		} else if replace[want.Address] {
			c.Action = ActionReplace
			c.Reason = "replacement was asked for with -replace"
		} else if have.Status == StatusTainted {
			c.Action = ActionReplace
			c.Reason = "it is tainted (it failed to become ready, or hvctl taint marked it)"
		} else {
			var changed []string
			for _, k := range sortedKeys(want.Attrs) {
				if !valueEqual(want.Attrs[k], have.Attrs[k]) {
					changed = append(changed, k)
				}
			}
			for _, k := range sortedKeys(have.Attrs) {
				if _, ok := want.Attrs[k]; !ok && !isComputed(want.Kind, k) {
					changed = append(changed, k)
				}
			}
			if len(changed) == 0 {
				c.Action = ActionNoop
			} else {
				c.Action = ActionUpdate
				up, _ := e.providers[c.Provider].(Updater)
				for _, k := range changed {
					if up == nil || !up.Updatable(want.Kind, k) {
						c.ForceNew = append(c.ForceNew, k)
					}
				}
				if len(c.ForceNew) > 0 {
					c.Action = ActionReplace
				}
			}
		}
		if have.Status == StatusCreated && c.Action != ActionReplace {
			c.AwaitReady = true
		}
		if c.Action == ActionReplace {
			replaced[c.Address] = true
			c.Unknown = unknownAttrs(want.Kind, want.Attrs)
		}
		p.Changes = append(p.Changes, c)
	}
	// A replaced resource replaces its dependents that live on it (an
	// instance on a replaced network).
	for _, c := range p.Changes {
		if c.Action != ActionNoop && c.Action != ActionUpdate {
			continue
		}
		for _, d := range c.Deps {
			if replaced[d] && strings.HasSuffix(d, ".network") {
				c.Action = ActionReplace
				c.Reason = "its network " + d + " is replaced"
				c.Unknown = unknownAttrs(c.Kind, c.After)
			}
		}
	}
	for _, r := range st.Resources {
		if g.Get(r.Address) == nil {
			p.Changes = append(p.Changes, deleteChange(r, "it is not in the configuration"))
		}
	}
	p.Changes = targetChanges(p.Changes, opts.Target, false)
	sortChanges(p.Changes)
	return p, st, nil
}

// targetChanges keeps the changes of the targets and of what they need:
// their dependencies, or when destroying, their dependents (which
// cannot outlive them). No targets keeps every change.
func targetChanges(cs []*Change, targets []string, destroy bool) []*Change {
	if len(targets) == 0 {
		return cs
	}
	byAddr := map[string]*Change{}
	dependents := map[string][]string{}
	for _, c := range cs {
		byAddr[c.Address] = c
		for _, d := range c.Deps {
			dependents[d] = append(dependents[d], c.Address)
		}
	}
	keep := map[string]bool{}
	var visit func(string)
	visit = func(a string) {
		if keep[a] {
			return
		}
		keep[a] = true
		next := dependents[a]
		if !destroy {
			if c := byAddr[a]; c != nil {
				next = c.Deps
			} else {
				next = nil
			}
		}
		for _, n := range next {
			visit(n)
		}
	}
	for _, t := range targets {
		visit(t)
	}
	var out []*Change
	for _, c := range cs {
		if keep[c.Address] {
			out = append(out, c)
		}
	}
	return out
}

func deleteChange(r *ResourceState, reason string) *Change {
	return &Change{
		Address: r.Address, Type: r.Type, Kind: r.Kind, Provider: r.Provider,
		Action: ActionDelete, Before: r.Attrs, BeforeID: r.ID, Reason: reason, Deps: r.Deps,
	}
}

func isComputed(k Kind, attr string) bool {
	if internalAttrs[attr] {
		return true
	}
	for _, a := range computedAttrs[k] {
		if a == attr {
			return true
		}
	}
	return false
}

func sortChanges(cs []*Change) {
	sort.SliceStable(cs, func(i, j int) bool { return lessAddr(cs[i].Address, cs[j].Address) })
}

// unknownAttrs lists the attributes only known after creating a resource
// of kind with attributes a.
func unknownAttrs(k Kind, a Attrs) []string {
	var out []string
	for _, x := range computedAttrs[k] {
		if x == "public_address" && a["public_ip"] != true {
			continue
		}
		out = append(out, x)
	}
	return out
}

func nearestHint(name string, known []string) string {
	if n := Nearest(name, known); n != "" {
		return fmt.Sprintf(" Did you mean %q?", n)
	}
	return ""
}
