package cluster

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
)

// Plan refreshes the state (unless opts say not to) and diffs it
// against the template: the plan, and the refreshed state Apply takes.
// The plan names the template and variables, so a saved one can be
// applied later.
func (c *Cluster) Plan(ctx context.Context, opts provision.PlanOptions) (*provision.Plan, *provision.State, error) {
	plan, st, err := c.Engine.Plan(ctx, c.State, opts)
	if err != nil {
		return nil, nil, err
	}
	plan.Template = c.Template
	plan.Vars = make([]provision.PlanVar, len(c.opts.Vars))
	for i, v := range c.opts.Vars {
		plan.Vars[i] = provision.PlanVar{Name: v.Name, Value: v.Value, File: v.File}
	}
	return plan, st, nil
}

// Result is what Apply did.
type Result struct {
	*provision.ApplyResult
	// Outputs are the template's outputs as recorded in the state at
	// the end (none after a destroy).
	Outputs map[string]Output
}

// Apply applies plan to st (the state Plan refreshed): nodes it creates
// get their join tokens and the manager node its secret; every change
// is in the state as it happens. Even a plan without changes records
// what refresh learned. When apply fails the result still says, per
// address, what failed (Result.Errors); the error is its summary.
// Before it, the managers are given the template (a failure is a
// warning, through Warn). A
// destroy that leaves nothing also removes the elastic daemon's
// journal; otherwise the outputs are recorded.
func (c *Cluster) Apply(ctx context.Context, plan *provision.Plan, st *provision.State) (*Result, error) {
	if !plan.Destroy {
		if err := c.prepare(st); err != nil {
			return nil, err
		}
		c.tellManagers(ctx, st)
	}
	res := &Result{ApplyResult: c.Engine.Apply(ctx, st, plan)}
	if err := res.Err(); err != nil {
		return res, err
	}
	outs, after, err := c.storeOutputs(plan.Destroy)
	if err != nil {
		return res, err
	}
	c.State = after
	res.Outputs = outs
	if plan.Destroy && len(after.Resources) == 0 {
		c.removeElasticJournal(ctx)
	}
	return res, nil
}

// removeElasticJournal: the cluster is gone, so is its elastic daemon
// (it stops with the hub's agent) and, once it has let go of its lock,
// its journal.
func (c *Cluster) removeElasticJournal(ctx context.Context) {
	el := &provision.Store{Path: filepath.Join(c.Store.Dir(), "elastic")}
	if l, err := el.Lock(ctx, "down", 30*time.Second); err == nil {
		os.Remove(filepath.Join(c.Store.Dir(), "elastic-journal.json"))
		l.Unlock()
		os.Remove(filepath.Join(c.Store.Dir(), "elastic.lock"))
	}
}

// Destroy plans the destruction of everything the state holds and
// applies it.
func (c *Cluster) Destroy(ctx context.Context) (*Result, error) {
	plan, st, err := c.Plan(ctx, provision.PlanOptions{Destroy: true, Refresh: true})
	if err != nil {
		return nil, err
	}
	return c.Apply(ctx, plan, st)
}

// Refresh reads every resource from its provider and records what it
// found (machines gone, now ready) without changing any, as Terraform's
// apply -refresh-only; it returns the drift it recorded.
func (c *Cluster) Refresh(ctx context.Context) ([]provision.Drift, error) {
	plan, st, err := c.Plan(ctx, provision.PlanOptions{Refresh: true, RefreshOnly: true})
	if err != nil {
		return nil, err
	}
	_, err = c.Apply(ctx, plan, st)
	return plan.Drift, err
}

// Status is what the cluster looks like now.
type Status struct {
	// State is the state refreshed from the providers (not recorded).
	State *provision.State
	// Members are what the manager knows of each node (join state,
	// overlay address, peers, paths); nil without a manager.
	Members []manager.Node
	// ManagerErr is why the manager did not answer, if it did not.
	ManagerErr error
}

// NodeState is a node's word in hvctl status (and the Pulumi provider's
// nodes output), from its resource status and provider state: booting,
// idle, stopped, failed or gone.
func NodeState(r *provision.ResourceState) string {
	ps, _ := r.Attrs["state"].(string)
	switch {
	case r.Status == provision.StatusTainted || ps == "failed":
		return "failed"
	case r.Status == provision.StatusPending || ps == "pending":
		return "booting"
	case ps == "terminated":
		return "gone"
	case ps == "stopped":
		return "stopped" // the elastic daemon stopped it idle; it starts again for work
	default:
		return "idle"
	}
}

// Status refreshes the state without recording it and asks the manager
// what it knows of the nodes.
func (c *Cluster) Status(ctx context.Context) (*Status, error) {
	st, _, err := c.Engine.Refresh(ctx, c.State)
	if err != nil {
		return nil, err
	}
	s := &Status{State: st}
	if mc := c.Manager(st); mc != nil {
		s.Members, s.ManagerErr = mc.Nodes(ctx)
	}
	return s, nil
}
