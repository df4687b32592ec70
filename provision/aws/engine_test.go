package aws

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
)

// TestEngineSite applies a template whose site uses provider.aws with
// endpoint = the fake, plans again (nothing to do), and destroys it.
func TestEngineSite(t *testing.T) {
	fake := newFake(t)
	e := newEngine(t, loadSite(t, fake, "ci", 2), t.TempDir())
	p := apply(t, e, false)
	if add, _, _ := p.Counts(); add != 6 { // 2 networks, hub, 2 workers, router
		t.Errorf("plan adds %d, want 6", add)
	}
	want := map[string]int{"vpc": 1, "subnet": 2, "internet-gateway": 1, "route-table": 1, "security-group": 2, "instance": 4, "address": 1}
	for k, v := range want {
		if got := fake.Counts()[k]; got != v {
			t.Errorf("after up: %d %s, want %d", got, k, v)
		}
	}
	st, _ := e.Store.Load()
	for _, r := range st.Resources {
		if r.Status != provision.StatusReady {
			t.Errorf("%s is %s", r.Address, r.Status)
		}
	}
	hub := st.Resource("site.cloud.node.hub")
	if hub == nil || hub.Attrs["public_address"] == nil {
		t.Fatalf("hub state %+v", hub)
	}
	// The zone's subnet is in the region's VPC; the router is its gateway.
	for _, in := range fake.Instances() {
		if in.Tags[TagAddress] == "site.cloud.site.zone-b.node.router" && in.SourceDestCheck {
			t.Error("the zone's gateway has SourceDestCheck on")
		}
		exp, err := time.Parse(time.RFC3339, in.Tags[TagExpiresAt])
		if err != nil || time.Until(exp) < time.Hour || time.Until(exp) > 3*time.Hour {
			t.Errorf("%s: expires-at %q, want about 2h from now", in.ID, in.Tags[TagExpiresAt])
		}
		if in.Tags[TagLineage] != st.Lineage || in.Tags[TagCluster] != "ci" {
			t.Errorf("%s tags %v", in.ID, in.Tags)
		}
		cfg := string(agentConfigOf(t, in.UserData))
		if !strings.Contains(cfg, `"manager_url":"http://`) {
			t.Errorf("%s: agent config has no manager_url: %s", in.ID, cfg)
		}
	}

	again, _ := plan(t, e, false)
	if again.HasChanges() {
		t.Errorf("second plan has changes: %+v", actions(again))
	}

	apply(t, e, true)
	for k, v := range fake.Counts() {
		if v != 0 {
			t.Errorf("after down: %d %s left", v, k)
		}
	}
	st, _ = e.Store.Load()
	if len(st.Resources) != 0 {
		t.Errorf("state after down: %+v", st.Resources)
	}
}

// TestEngineCrashRetry: RunInstances acts but its answers never arrive,
// so apply fails with the intent recorded; the next apply finds the
// instance by its client token instead of launching another.
func TestEngineCrashRetry(t *testing.T) {
	fake := newFake(t)
	dir := t.TempDir()
	e := newEngine(t, loadSite(t, fake, "ci", 1), dir)
	e.MaxRetries = -1 // no engine retries: the create fails
	fake.DropResponses("RunInstances", 1000)
	pl, st := plan(t, e, false)
	res := e.Apply(context.Background(), st, pl)
	if res.Err() == nil {
		t.Fatal("apply with lost RunInstances responses succeeded")
	}
	checkNoSecrets(t, "apply error", res.Err().Error())
	st, _ = e.Store.Load()
	hub := st.Resource("site.cloud.node.hub")
	if hub == nil || hub.Status != provision.StatusPending || hub.ID != "" {
		t.Fatalf("hub after the failed create: %+v, want a pending intent", hub)
	}
	if got := fake.Counts()["instance"]; got != 1 {
		t.Fatalf("%d instances, want the one the lost calls made", got)
	}
	first := fake.Instances()[0].ID

	// "Restart": a new engine over the same state.
	fake.DropResponses("RunInstances", 0)
	e2 := newEngine(t, loadSite(t, fake, "ci", 1), dir)
	p2, _ := plan(t, e2, false)
	var found bool
	for _, d := range p2.Drift {
		if d.Address == "site.cloud.node.hub" && strings.Contains(d.Detail, "client token") {
			found = true
		}
	}
	if !found {
		t.Errorf("drift %+v: want the hub found by its client token", p2.Drift)
	}
	apply(t, e2, false)
	st, _ = e2.Store.Load()
	if hub := st.Resource("site.cloud.node.hub"); hub == nil || hub.ID != first || hub.Status != provision.StatusReady {
		t.Errorf("hub %+v, want %s adopted and ready", hub, first)
	}
	if got := fake.Counts()["instance"]; got != 3 {
		t.Errorf("%d instances, want 3 (hub, worker, router)", got)
	}
	perAddr := map[string]int{}
	for _, in := range fake.Instances() {
		perAddr[in.Tags[TagAddress]]++
	}
	for a, n := range perAddr {
		if n != 1 {
			t.Errorf("%d instances for %s", n, a)
		}
	}
}

// TestEngineTerminatedOutside: an instance terminated in the console is
// "deleted outside hvctl" at the next plan, which creates it again.
func TestEngineTerminatedOutside(t *testing.T) {
	fake := newFake(t)
	e := newEngine(t, loadSite(t, fake, "ci", 2), t.TempDir())
	apply(t, e, false)
	st, _ := e.Store.Load()
	victim := st.Resource("site.cloud.pool.wn.node[1]")
	if err := fake.TerminateOutside(victim.ID); err != nil {
		t.Fatal(err)
	}
	p, _ := plan(t, e, false)
	if a := actions(p)[victim.Address]; a != provision.ActionCreate {
		t.Errorf("plan for the terminated node: %s, want create (plan %+v)", a, actions(p))
	}
	if add, change, destroy := p.Counts(); add != 1 || change != 0 || destroy != 0 {
		t.Errorf("plan counts %d/%d/%d, want 1/0/0", add, change, destroy)
	}
	if len(p.Drift) != 1 || !strings.Contains(p.Drift[0].Detail, "deleted outside hvctl") {
		t.Errorf("drift %+v", p.Drift)
	}
	apply(t, e, false)
	st, _ = e.Store.Load()
	now := st.Resource(victim.Address)
	if now == nil || now.ID == victim.ID || now.Status != provision.StatusReady {
		t.Errorf("after apply: %+v, want a new ready instance", now)
	}
	if got := fake.Counts()["instance"]; got != 4 {
		t.Errorf("%d live instances, want 4", got)
	}
}

// TestEngineCapacity: a capacity error reaches the engine's caller typed.
func TestEngineCapacity(t *testing.T) {
	fake := newFake(t)
	e := newEngine(t, loadSite(t, fake, "ci", 1), t.TempDir())
	fake.Capacity("t3.medium", true) // the workers' type (2 CPUs, 4 GiB)
	pl, st := plan(t, e, false)
	res := e.Apply(context.Background(), st, pl)
	err := res.Errors["site.cloud.pool.wn.node[0]"]
	var ce *provision.CapacityError
	if err == nil || !asCapacity(err, &ce) {
		t.Fatalf("worker error %v, want a *provision.CapacityError", err)
	}
	st, _ = e.Store.Load()
	if r := st.Resource("site.cloud.pool.wn.node[0]"); r != nil {
		t.Errorf("the failed worker is in the state: %+v", r)
	}
}

func asCapacity(err error, target **provision.CapacityError) bool { return errors.As(err, target) }

// TestRefreshByListing: the refresh of a 1,000-node cluster on the fake
// lists its instances (DescribeInstances by the cluster tag, pages of
// 1,000) and reads only its networks on their own: at most 20 API calls.
// An instance terminated outside hvctl is missing from the listing and
// confirmed gone by one more DescribeInstances.
func TestRefreshByListing(t *testing.T) {
	workers := 1000
	if testing.Short() {
		workers = 100
	}
	fake := newFake(t)
	e := newEngine(t, loadSite(t, fake, "big", workers), t.TempDir())
	apply(t, e, false)

	before := fake.TotalCalls()
	listsBefore := fake.Calls("DescribeInstances")
	p, st := plan(t, e, false)
	calls := fake.TotalCalls() - before
	t.Logf("refresh of %d resources: %d API calls (%d DescribeInstances)", len(st.Resources), calls, fake.Calls("DescribeInstances")-listsBefore)
	if p.HasChanges() {
		t.Errorf("no-op plan has changes: %v", actions(p))
	}
	if calls > 20 {
		t.Errorf("refresh of %d resources made %d API calls, want at most 20", len(st.Resources), calls)
	}

	victim := st.Resource("site.cloud.pool.wn.node[17]")
	if err := fake.TerminateOutside(victim.ID); err != nil {
		t.Fatal(err)
	}
	p, _ = plan(t, e, false)
	if a := actions(p); a[victim.Address] != provision.ActionCreate || len(p.Drift) != 1 {
		t.Errorf("after a terminate outside hvctl: %s is %s, drift %+v", victim.Address, a[victim.Address], p.Drift)
	}
}

// TestEngineStoppedNode: a stopped pool node is still part of the
// cluster: a refresh (the listing) records it with state "stopped", not
// gone nor failed, and plans nothing; started again it refreshes as
// "running"; a destroy with a node stopped removes everything.
func TestEngineStoppedNode(t *testing.T) {
	fake := newFake(t)
	e := newEngine(t, loadSite(t, fake, "ci", 2), t.TempDir())
	apply(t, e, false)
	p := newProvider(t, fake, map[string]cty.Value{"stop_idle": cty.True})
	st, _ := e.Store.Load()
	node := st.Resource("site.cloud.pool.wn.node[1]")
	pr := &provision.PowerRequest{Address: node.Address, ID: node.ID, Attrs: node.Attrs}
	if _, ok := p.StopCost(node.Attrs); !ok {
		t.Fatalf("StopCost(%v) says a pool node cannot stop", node.Attrs)
	}
	steps := []struct {
		op    func() error
		state string
	}{
		{func() error { return p.Stop(context.Background(), pr) }, "stopped"},
		{func() error { _, err := p.Start(context.Background(), pr); return err }, "running"},
		{func() error { return p.Stop(context.Background(), pr) }, "stopped"},
	}
	for i, s := range steps {
		if err := s.op(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		pl, refreshed := plan(t, e, false)
		if pl.HasChanges() || len(pl.Drift) != 0 {
			t.Errorf("step %d: plan with a %s node: changes %v, drift %+v; want none", i, s.state, actions(pl), pl.Drift)
		}
		r := refreshed.Resource(node.Address)
		if r == nil || r.ID != node.ID || r.Status != provision.StatusReady || r.Attrs["state"] != s.state {
			t.Errorf("step %d: refreshed %+v, want %s ready with state %s", i, r, node.ID, s.state)
		}
	}
	apply(t, e, true)
	for k, v := range fake.Counts() {
		if v != 0 {
			t.Errorf("after down with a stopped node: %d %s left", v, k)
		}
	}
}
