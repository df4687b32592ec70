package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ApplyResult summarises an apply.
type ApplyResult struct {
	Added, Changed, Destroyed int
	// Errors maps addresses to what went wrong; empty on success.
	Errors map[string]error
}

// Err joins the apply's errors, in address order, or returns nil.
func (r *ApplyResult) Err() error {
	if len(r.Errors) == 0 {
		return nil
	}
	addrs := make([]string, 0, len(r.Errors))
	for a := range r.Errors {
		addrs = append(addrs, a)
	}
	SortAddresses(addrs)
	var errs []error
	for _, a := range addrs {
		if errors.Is(r.Errors[a], errSkipped) {
			continue
		}
		errs = append(errs, r.Errors[a])
	}
	if len(errs) == 0 {
		return fmt.Errorf("apply stopped: %d operations were skipped", len(r.Errors))
	}
	return errors.Join(errs...)
}

// Apply carries out plan against st, which must be the (refreshed) state
// the plan was made from. The state is written after every resource
// change. ctx cancellation stops new operations from starting; running
// ones complete so nothing is left half-made.
func (e *Engine) Apply(ctx context.Context, st *State, plan *Plan) *ApplyResult {
	if plan.Lineage != "" && st.Lineage != plan.Lineage {
		return &ApplyResult{Errors: map[string]error{"": fmt.Errorf("plan was made for lineage %s, state has %s", plan.Lineage, st.Lineage)}}
	}
	if plan.Cluster != "" {
		st.Cluster = plan.Cluster
	}
	res := &ApplyResult{Errors: map[string]error{}}
	e.resetCommits()
	if !e.Store.Exists() || e.refreshChanged(st) {
		// Record what refresh found (resources gone, intents resolved,
		// machines now ready) even when nothing else is to be done.
		if err := e.commit(st, func() {}); err != nil {
			res.Errors[""] = err
			return res
		}
	}
	var tasks []*task
	changes := map[string]*Change{}
	for _, c := range plan.Changes {
		changes[c.Address] = c
	}
	// Dependents in the state, for destroy ordering.
	dependents := map[string][]string{}
	for _, r := range st.Resources {
		for _, d := range r.Deps {
			dependents[d] = append(dependents[d], r.Address)
		}
	}
	deletes := func(c *Change) bool { return c.Action == ActionDelete || c.Action == ActionReplace }
	creates := func(c *Change) bool {
		return c.Action == ActionCreate || c.Action == ActionReplace || c.Action == ActionUpdate
	}
	for _, c := range plan.Changes {
		c := c
		if c.Action == ActionNoop && c.AwaitReady {
			tasks = append(tasks, &task{id: "create:" + c.Address, deps: createDeps(c, changes),
				run: func(ctx context.Context) error { return e.awaitReady(ctx, st, c) }})
			continue
		}
		if c.Action == ActionStop || c.Action == ActionStart || c.Action == ActionRestart {
			tasks = append(tasks, &task{id: "power:" + c.Address,
				run: func(ctx context.Context) error { return e.applyPower(ctx, st, c, res) }})
			continue
		}
		if deletes(c) {
			t := &task{id: "delete:" + c.Address}
			for _, dep := range dependents[c.Address] {
				if dc := changes[dep]; dc != nil && deletes(dc) {
					t.deps = append(t.deps, "delete:"+dep)
				}
			}
			t.run = func(ctx context.Context) error { return e.applyDelete(ctx, st, c, res) }
			tasks = append(tasks, t)
		}
		if creates(c) {
			t := &task{id: "create:" + c.Address}
			if c.Action == ActionReplace {
				t.deps = append(t.deps, "delete:"+c.Address)
			}
			t.deps = append(t.deps, createDeps(c, changes)...)
			t.run = func(ctx context.Context) error {
				if c.Action == ActionUpdate {
					return e.applyUpdate(ctx, st, c, res)
				}
				return e.applyCreate(ctx, st, c, res)
			}
			tasks = append(tasks, t)
		}
	}
	// An operation holds one of the slots while it makes API calls and
	// gives it back to wait for a boot (releaseSlot).
	results := runDAG(ctx, context.WithoutCancel(ctx), tasks, e.slots())
	for id, err := range results {
		if err != nil {
			res.Errors[strings.SplitN(id, ":", 2)[1]] = err
		}
	}
	// Compact the journal into the state file. Not when a record could
	// not be written: the state in memory then holds a change that is not
	// on disk, and the next refresh must find out what is true.
	e.stateMu.Lock()
	if e.commits.queued > 0 && e.commitErr() == nil {
		if err := e.Store.Write(st); err != nil {
			res.Errors[""] = fmt.Errorf("compact state journal: %w", err)
		}
	}
	e.stateMu.Unlock()
	e.Store.Close()
	return res
}

func (e *Engine) commitErr() error {
	e.commits.mu.Lock()
	defer e.commits.mu.Unlock()
	return e.commits.err
}

// refreshChanged reports whether st differs from the stored state in
// anything but its serial.
func (e *Engine) refreshChanged(st *State) bool {
	cur, err := e.Store.Load()
	if err != nil {
		return true
	}
	cur.Serial = st.Serial
	a, _ := json.Marshal(cur)
	b, _ := json.Marshal(st)
	return !bytes.Equal(a, b)
}

// createDeps are the create-side tasks c waits for: its dependencies'
// creates, updates and readiness waits.
func createDeps(c *Change, changes map[string]*Change) []string {
	var out []string
	for _, d := range c.Deps {
		dc := changes[d]
		if dc == nil {
			continue
		}
		switch {
		case dc.Action == ActionCreate, dc.Action == ActionReplace, dc.Action == ActionUpdate,
			dc.Action == ActionNoop && dc.AwaitReady:
			out = append(out, "create:"+d)
		}
	}
	return out
}

// awaitReady waits for a resource that exists but was not yet seen ready.
func (e *Engine) awaitReady(ctx context.Context, st *State, c *Change) (err error) {
	p, err := e.provider(c.Provider)
	if err != nil {
		return err
	}
	cur, ok := e.resource(st, c.Address)
	if !ok || cur.Status != StatusCreated {
		return nil
	}
	w, ok := p.(Waiter)
	if !ok {
		cur.Status = StatusReady
		return e.putResource(st, &cur)
	}
	done := e.progress(c.Address, ActionCreate)
	defer func() { done(cur.ID, err) }()
	// hvctl stopped while this resource was being made. Create again with
	// the same token and the full attributes recorded in the state: the
	// provider returns the same resource, and finishes whatever the crash
	// left undone with everything it needs (a node's join token, say).
	e.stateMu.Lock()
	deps := map[string]string{}
	for _, d := range cur.Deps {
		if r := st.Resource(d); r != nil {
			deps[d] = r.ID
		}
	}
	e.stateMu.Unlock()
	err = e.call(ctx, c.Provider, func(ctx context.Context) error {
		resp, err := p.Create(ctx, &CreateRequest{Address: c.Address, Kind: c.Kind, Cluster: st.Cluster, Lineage: st.Lineage,
			ClientToken: cur.Token, Attrs: cur.Attrs, Deps: deps, ExpiresAt: e.expiresAt()})
		if err == nil && resp.ID != cur.ID {
			return fmt.Errorf("provider returned %s for the token of %s", resp.ID, cur.ID)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s: finish after an interruption: %w", c.Address, err)
	}
	releaseSlot(ctx)
	rr, werr := w.WaitReady(ctx, &ReadRequest{Address: c.Address, Kind: c.Kind, ID: cur.ID, ClientToken: cur.Token, Attrs: cur.Attrs})
	if rr != nil {
		cur.Attrs = mergeAttrs(cur.Attrs, rr.Attrs)
	}
	if werr != nil {
		cur.Status = StatusTainted
		if cerr := e.putResource(st, &cur); cerr != nil {
			return cerr
		}
		return fmt.Errorf("create %s: %w", c.Address, werr)
	}
	cur.Status = StatusReady
	return e.putResource(st, &cur)
}

// commit applies f to the state and writes it whole (a snapshot), under
// the state mutex. Resource changes go through the journal instead
// (putResource, removeResource).
func (e *Engine) commit(st *State, f func()) error {
	e.stateMu.Lock()
	defer e.stateMu.Unlock()
	f()
	return e.Store.Write(st)
}

func (e *Engine) progress(addr string, a Action) (stop func(id string, err error)) {
	start := time.Now()
	if e.UI != nil {
		e.UI.Started(addr, a)
	}
	every := e.ProgressInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	quit := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if e.UI != nil {
					e.UI.Progress(addr, a, time.Since(start))
				}
			}
		}
	}()
	return func(id string, err error) {
		close(quit)
		if e.UI != nil {
			e.UI.Finished(addr, a, id, time.Since(start), err)
		}
	}
}

func (e *Engine) applyCreate(ctx context.Context, st *State, c *Change, res *ApplyResult) (err error) {
	p, err := e.provider(c.Provider)
	if err != nil {
		return err
	}
	var id string
	done := e.progress(c.Address, ActionCreate)
	defer func() { done(id, err) }()

	// Record the intent first: a crash from here on leaves a pending
	// resource with its token, which the next refresh resolves.
	e.stateMu.Lock()
	gen := st.Generations[c.Address]
	token := ClientToken(st.Lineage, c.Address, gen)
	deps := map[string]string{}
	for _, d := range c.Deps {
		if r := st.Resource(d); r != nil {
			deps[d] = r.ID
		}
	}
	cluster := st.Cluster
	attrs := c.After
	if e.Prepare != nil {
		extra, perr := e.Prepare(st, c, p)
		if perr != nil {
			e.stateMu.Unlock()
			return fmt.Errorf("create %s: %w", c.Address, perr)
		}
		if len(extra) > 0 {
			attrs = mergeAttrs(c.After, extra)
		}
	}
	e.stateMu.Unlock()
	rs := &ResourceState{
		Address: c.Address, Type: c.Type, Kind: c.Kind, Provider: c.Provider,
		Status: StatusPending, Token: token, Attrs: attrs, Deps: c.Deps,
	}
	if err := e.putResource(st, rs); err != nil {
		return err
	}
	req := &CreateRequest{
		Address: c.Address, Kind: c.Kind, Cluster: cluster, Lineage: st.Lineage,
		ClientToken: token, Attrs: attrs, Deps: deps, ExpiresAt: e.expiresAt(),
	}
	var resp *CreateResponse
	err = e.call(ctx, c.Provider, func(ctx context.Context) error {
		var err error
		resp, err = p.Create(ctx, req)
		return err
	})
	if err != nil {
		// The call may have made the resource before failing; find out.
		var rr *ReadResponse
		rerr := e.call(ctx, c.Provider, func(ctx context.Context) error {
			var err error
			rr, err = p.Read(ctx, &ReadRequest{Address: c.Address, Kind: c.Kind, ClientToken: token, Attrs: attrs})
			return err
		})
		if rerr != nil || rr.Exists {
			// Keep the intent: the next refresh resolves it.
			return fmt.Errorf("create %s: %w", c.Address, err)
		}
		if cerr := e.removeResource(st, c.Address); cerr != nil {
			return cerr
		}
		return fmt.Errorf("create %s: %w", c.Address, err)
	}
	id = resp.ID
	created := *rs
	created.ID = resp.ID
	created.Status = StatusCreated
	created.Created = time.Now().UTC()
	created.Attrs = mergeAttrs(attrs, resp.Attrs)
	if err := e.putResource(st, &created); err != nil {
		return err
	}
	if w, ok := p.(Waiter); ok {
		releaseSlot(ctx)
		rr, werr := w.WaitReady(ctx, &ReadRequest{Address: c.Address, Kind: c.Kind, ID: resp.ID, ClientToken: token, Attrs: attrs})
		final := created
		if werr != nil {
			final.Status = StatusTainted
			if rr != nil {
				final.Attrs = mergeAttrs(created.Attrs, rr.Attrs)
			}
			if cerr := e.putResource(st, &final); cerr != nil {
				return cerr
			}
			return fmt.Errorf("create %s: %w", c.Address, werr)
		}
		final.Status = StatusReady
		final.Attrs = mergeAttrs(created.Attrs, rr.Attrs)
		if err := e.putResource(st, &final); err != nil {
			return err
		}
	} else {
		created.Status = StatusReady
		if err := e.putResource(st, &created); err != nil {
			return err
		}
	}
	e.stateMu.Lock()
	res.Added++
	e.stateMu.Unlock()
	return nil
}

func (e *Engine) applyUpdate(ctx context.Context, st *State, c *Change, res *ApplyResult) (err error) {
	p, err := e.provider(c.Provider)
	if err != nil {
		return err
	}
	done := e.progress(c.Address, ActionUpdate)
	defer func() { done(c.BeforeID, err) }()
	up, ok := p.(Updater)
	if !ok {
		return fmt.Errorf("update %s: provider %s cannot update in place", c.Address, c.Provider)
	}
	var resp *UpdateResponse
	err = e.call(ctx, c.Provider, func(ctx context.Context) error {
		var err error
		resp, err = up.Update(ctx, &UpdateRequest{Address: c.Address, Kind: c.Kind, ID: c.BeforeID, Before: c.Before, After: c.After})
		return err
	})
	if err != nil {
		return fmt.Errorf("update %s: %w", c.Address, err)
	}
	if err := e.mergeAttrs(st, c.Address, c.After, resp.Attrs); err != nil {
		return err
	}
	e.stateMu.Lock()
	res.Changed++
	e.stateMu.Unlock()
	return nil
}

func (e *Engine) applyDelete(ctx context.Context, st *State, c *Change, res *ApplyResult) (err error) {
	p, err := e.provider(c.Provider)
	if err != nil {
		return err
	}
	cur, ok := e.resource(st, c.Address)
	if !ok {
		return nil // already gone from the state
	}
	id := cur.ID
	done := e.progress(c.Address, ActionDelete)
	defer func() { done(id, err) }()
	if id == "" {
		// A pending intent: find what its token made, if anything.
		var rr *ReadResponse
		if err := e.call(ctx, c.Provider, func(ctx context.Context) error {
			var err error
			rr, err = p.Read(ctx, &ReadRequest{Address: c.Address, Kind: c.Kind, ClientToken: cur.Token, Attrs: cur.Attrs})
			return err
		}); err != nil {
			return fmt.Errorf("delete %s: %w", c.Address, err)
		}
		if rr.Exists {
			id = rr.ID
		}
	}
	if id != "" {
		err = e.call(ctx, c.Provider, func(ctx context.Context) error {
			return p.Delete(ctx, &DeleteRequest{Address: c.Address, Kind: c.Kind, ID: id})
		})
		if err != nil {
			return fmt.Errorf("delete %s: %w", c.Address, err)
		}
	}
	if err := e.removeResource(st, c.Address); err != nil {
		return err
	}
	e.stateMu.Lock()
	res.Destroyed++
	e.stateMu.Unlock()
	return nil
}

// applyPower stops, starts or restarts (stops, then starts) an instance
// through its provider's Stopper and records the state it reads back
// with ("stopped", "running"). Both are idempotent, so a crash before the record is made
// is mended by the next refresh, which reads the state the machine is in.
func (e *Engine) applyPower(ctx context.Context, st *State, c *Change, res *ApplyResult) (err error) {
	p, err := e.provider(c.Provider)
	if err != nil {
		return err
	}
	sp, ok := p.(Stopper)
	if !ok {
		return fmt.Errorf("%s %s: provider %s cannot stop and start machines", c.Action, c.Address, c.Provider)
	}
	cur, ok := e.resource(st, c.Address)
	if !ok || cur.ID == "" {
		return fmt.Errorf("%s %s: not in the state", c.Action, c.Address)
	}
	done := e.progress(c.Address, c.Action)
	defer func() { done(cur.ID, err) }()
	req := &PowerRequest{Address: c.Address, ID: cur.ID, Attrs: cur.Attrs}
	attrs := Attrs{"state": "stopped"}
	err = e.call(ctx, c.Provider, func(ctx context.Context) error {
		if c.Action != ActionStart {
			if err := sp.Stop(ctx, req); err != nil || c.Action == ActionStop {
				return err
			}
		}
		rr, err := sp.Start(ctx, req)
		if err == nil && rr != nil {
			attrs = rr.Attrs
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.Action, c.Address, err)
	}
	if c.Action != ActionStop && attrs["state"] == nil {
		attrs = Attrs{"state": "running"}
	}
	if err := e.mergeAttrs(st, c.Address, attrs); err != nil {
		return err
	}
	e.stateMu.Lock()
	res.Changed++
	e.stateMu.Unlock()
	return nil
}

func (e *Engine) expiresAt() time.Time {
	if !e.ExpiresAt.IsZero() {
		return e.ExpiresAt
	}
	if e.Config == nil || e.Config.Cluster == nil || e.Config.Cluster.TTL <= 0 {
		return time.Time{}
	}
	return time.Now().Add(e.Config.Cluster.TTL).UTC()
}

// resource is a copy of the state's resource at addr, read under the
// state's lock.
func (e *Engine) resource(st *State, addr string) (ResourceState, bool) {
	e.stateMu.Lock()
	defer e.stateMu.Unlock()
	r := st.Resource(addr)
	if r == nil {
		return ResourceState{}, false
	}
	return *r, true
}

// mergeAttrs records, through the journal, the resource at addr with
// attrs merged over its attributes, in order; one gone from the state
// meanwhile is left gone.
func (e *Engine) mergeAttrs(st *State, addr string, attrs ...Attrs) error {
	return e.journal(st, func() *Record {
		r := st.Resource(addr)
		if r == nil {
			return nil
		}
		n := *r
		for _, a := range attrs {
			n.Attrs = mergeAttrs(n.Attrs, a)
		}
		st.put(&n)
		return &Record{Op: OpPut, Resource: &n}
	})
}

func mergeAttrs(a, b Attrs) Attrs {
	out := make(Attrs, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
