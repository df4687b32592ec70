package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/provision"
)

// newTemplate copies testdata/sim.hcl into a fresh directory (the
// state and the sim world live beside it) and returns its path.
func newTemplate(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/sim.hcl")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(t.TempDir(), "main.hcl")
	if err := os.WriteFile(tmpl, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func open(t *testing.T, tmpl, operation string) *Cluster {
	t.Helper()
	c, err := Open(context.Background(), Options{Template: tmpl, Operation: operation, Parallelism: provision.DefaultParallelism})
	if err != nil {
		t.Fatalf("open %s: %v", tmpl, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// up applies the template's plan and returns the cluster, still open.
func up(t *testing.T, tmpl string) *Cluster {
	t.Helper()
	c := open(t, tmpl, "apply")
	plan, st, err := c.Plan(context.Background(), provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(context.Background(), plan, st); err != nil {
		t.Fatal(err)
	}
	return c
}

func addresses(st *provision.State) []string {
	var out []string
	for _, r := range st.Resources {
		out = append(out, r.Address)
	}
	provision.SortAddresses(out)
	return out
}

// TestOpenPlanApplyDestroy: a cluster opened in-process plans what the
// template declares, applies it (outputs recorded), plans no changes
// after, reports its nodes, refreshes, and destroys everything.
func TestOpenPlanApplyDestroy(t *testing.T) {
	ctx := context.Background()
	tmpl := newTemplate(t)
	c := open(t, tmpl, "apply")
	plan, st, err := c.Plan(ctx, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	add, change, destroy := plan.Counts()
	if add != 5 || change != 0 || destroy != 0 {
		t.Fatalf("plan: %d to add, %d to change, %d to destroy; want 5, 0, 0", add, change, destroy)
	}
	if plan.Template != c.Template || !filepath.IsAbs(plan.Template) {
		t.Errorf("plan.Template = %q, want the template's absolute path %q", plan.Template, c.Template)
	}
	res, err := c.Apply(ctx, plan, st)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 5 {
		t.Errorf("apply added %d, want 5", res.Added)
	}
	want := []string{"site.cloud.network", "site.onprem.network", "site.onprem.node.frontend",
		"site.onprem.pool.workers.node[0]", "site.onprem.pool.workers.node[1]"}
	if got := addresses(c.State); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("state after apply: %v, want %v", got, want)
	}
	if o, ok := res.Outputs["cluster_name"]; !ok || string(o.Value) != `"clu"` {
		t.Errorf("apply's outputs: %v", res.Outputs)
	}
	c.Close()

	c = open(t, tmpl, "plan")
	if outs, err := c.Outputs(); err != nil || string(outs["cluster_name"].Value) != `"clu"` {
		t.Errorf("stored outputs: %v, %v", outs, err)
	}
	if _, _, err := Secret(c.State.Clone()); err != nil {
		t.Errorf("the applied state has no usable cluster secret: %v", err)
	}
	plan, _, err = c.Plan(ctx, provision.PlanOptions{Refresh: true})
	if err != nil || plan.HasChanges() {
		t.Fatalf("plan after apply: changes %v, err %v", plan != nil && plan.HasChanges(), err)
	}
	status, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status.State.Resources) != 5 || status.Members != nil || status.ManagerErr != nil {
		t.Errorf("status: %d resources, members %v, manager error %v (sim runs no agents: no manager)", len(status.State.Resources), status.Members, status.ManagerErr)
	}
	drift, err := c.Refresh(ctx)
	if err != nil || len(drift) != 0 {
		t.Errorf("refresh: drift %v, err %v", drift, err)
	}
	res, err = c.Destroy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Destroyed != 5 || len(c.State.Resources) != 0 || len(res.Outputs) != 0 {
		t.Errorf("destroy: %d destroyed, %d left, outputs %v", res.Destroyed, len(c.State.Resources), res.Outputs)
	}
	c.Close()
	// What the state says is what the sim world holds.
	c = open(t, tmpl, "plan")
	plan, _, err = c.Plan(ctx, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if add, _, _ := plan.Counts(); add != 5 || len(plan.Drift) != 0 {
		t.Errorf("plan after destroy: %d to add, drift %v", add, plan.Drift)
	}
}

// TestOpenErrors: what Open refuses, and how it says so.
func TestOpenErrors(t *testing.T) {
	tmpl := newTemplate(t)
	holder := open(t, tmpl, "apply")
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	os.WriteFile(bad, []byte("cluster \"x\" {\n  overlay { cidr = \"10.0.0.0/33\" }\n}\n"), 0o644)
	for _, c := range []struct {
		name string
		opts Options
		want string
		as   any
	}{
		{"lock held", Options{Template: tmpl, Operation: "plan"}, "Operation: apply", new(*provision.LockError)},
		{"no template", Options{Template: filepath.Join(t.TempDir(), "none.hcl")}, "No template at", new(*Error)},
		{"bad template", Options{Template: bad}, "Missing site block", new(*DiagnosticsError)},
		{"bad workspace", Options{Template: tmpl, Workspace: "a b"}, `-workspace "a b"`, new(*Error)},
		{"unknown backend setting", Options{Template: tmpl, BackendConfig: []string{"nope=1"}}, "nope is not a setting of the local backend", new(*Error)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Open(context.Background(), c.opts)
			if err == nil {
				got.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.want) || !errors.As(err, c.as) {
				t.Errorf("error %T %q, want %T with %q", err, err, c.as, c.want)
			}
		})
	}
	// The holder's lock names the holder: its operation and PID.
	_, err := Open(context.Background(), Options{Template: tmpl, Operation: "plan"})
	var le *provision.LockError
	if !errors.As(err, &le) || le.Holder == nil || le.Holder.PID != os.Getpid() || le.Holder.Operation != "apply" {
		t.Errorf("lock error %v does not name the holder", err)
	}
	holder.Close()
	// Released: the next open gets the lock, and NoLock needs none.
	open(t, tmpl, "plan")
	if _, err := Open(context.Background(), Options{Template: tmpl, NoLock: true}); err != nil {
		t.Errorf("NoLock while locked: %v", err)
	}
}

// TestLostClusterSecretRefused: a state that holds nodes but lost its
// cluster secret is refused before any change, and is not re-keyed.
func TestLostClusterSecretRefused(t *testing.T) {
	tmpl := newTemplate(t)
	c := up(t, tmpl)
	st := c.State.Clone()
	delete(st.Data, "cluster")
	if err := c.Store.Write(st); err != nil {
		t.Fatal(err)
	}
	c.Close()
	before, _ := os.ReadFile(c.Store.Path)

	c = open(t, tmpl, "apply")
	plan, rst, err := c.Plan(context.Background(), provision.PlanOptions{Refresh: true, Replace: []string{"site.onprem.pool.workers.node[1]"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Apply(context.Background(), plan, rst)
	if err == nil || !strings.Contains(err.Error(), "lost the cluster's secret") || !strings.Contains(err.Error(), "Nothing was changed") {
		t.Fatalf("apply with a lost secret: %v", err)
	}
	if after, _ := os.ReadFile(c.Store.Path); !bytes.Equal(before, after) {
		t.Errorf("the refused apply changed the state")
	}
	// Pool operations are refused the same way.
	if _, err := c.Resume(context.Background(), []Slot{{Pool: c.ElasticPools()["cloud.burst"], Index: 0}}); err == nil || !strings.Contains(err.Error(), "lost the cluster's secret") {
		t.Errorf("resume with a lost secret: %v", err)
	}
}

// TestResumeSuspend: SLURM's power saving through the cluster: resume
// creates the named slots (again, only what is missing), suspend
// destroys them, and a plan after either has no changes.
func TestResumeSuspend(t *testing.T) {
	ctx := context.Background()
	tmpl := newTemplate(t)
	up(t, tmpl).Close()
	c := open(t, tmpl, "slurm resume")
	burst := c.ElasticPools()["cloud.burst"]
	if burst == nil || len(c.ElasticPools()) != 1 {
		t.Fatalf("elastic pools: %v", c.ElasticPools())
	}
	slots := []Slot{{burst, 0}, {burst, 1}}
	for _, step := range []struct {
		op    func(context.Context, []Slot) (int, error)
		slots []Slot
		n     int
		burst int
	}{
		{c.Resume, slots[1:], 1, 1},
		{c.Resume, slots, 1, 2},
		{c.Resume, slots, 0, 2},
		{c.Suspend, slots[:1], 1, 1},
		{c.Suspend, slots, 1, 0},
		{c.Suspend, slots, 0, 0},
	} {
		n, err := step.op(ctx, step.slots)
		if err != nil || n != step.n {
			t.Fatalf("%d changes, %v; want %d", n, err, step.n)
		}
		got := 0
		for _, a := range addresses(c.State) {
			if strings.HasPrefix(a, "site.cloud.pool.burst.") {
				got++
			}
		}
		if got != step.burst {
			t.Fatalf("%d burst nodes in the state, want %d: %v", got, step.burst, addresses(c.State))
		}
		plan, _, err := c.Plan(ctx, provision.PlanOptions{Refresh: true})
		if err != nil || plan.HasChanges() {
			t.Fatalf("plan after a pool operation: %v", err)
		}
	}
}

// TestElasticAdapterOnSim: the daemon's provisioner, without root: a
// create is idempotent on its token (a retried create makes nothing
// more), the pool's max holds, a destroy removes the machine, the
// changes come from the graph (the slot's attributes as a plan has
// them), and a held state lock makes it answer elastic.ErrBusy.
func TestElasticAdapterOnSim(t *testing.T) {
	ctx := context.Background()
	tmpl := newTemplate(t)
	up(t, tmpl).Close()
	// Read only after p.Wait, which orders the batches' writes first.
	var logs bytes.Buffer
	p := &Provisioner{Options: Options{Template: tmpl, Parallelism: 10}, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	machines := func() []elastic.Machine {
		t.Helper()
		p.Wait()
		ms, err := p.Machines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var burst []elastic.Machine
		for _, m := range ms {
			if m.Pool == "cloud.burst" {
				burst = append(burst, m)
			}
		}
		return burst
	}
	for _, tok := range []string{"tok-a", "tok-a", "tok-b", "tok-c"} {
		if err := p.Create(ctx, "cloud.burst", tok); err != nil {
			t.Fatal(err)
		}
		p.Wait()
	}
	ms := machines()
	tokens := map[string]bool{}
	for _, m := range ms {
		tokens[m.Token] = true
		if m.State != elastic.MachineRunning {
			t.Errorf("machine %+v", m)
		}
	}
	// tok-a once (retried), tok-b, and tok-c refused: the pool's max is 2.
	if len(ms) != 2 || !tokens["tok-a"] || !tokens["tok-b"] {
		t.Fatalf("machines = %+v, want tok-a and tok-b", ms)
	}
	if !strings.Contains(logs.String(), "pool cloud.burst is at its max of 2") {
		t.Errorf("the third create was not refused by max:\n%s", logs.String())
	}
	// The slots were made as a plan would make them: no changes now.
	c := open(t, tmpl, "plan")
	if plan, _, err := c.Plan(ctx, provision.PlanOptions{Refresh: true}); err != nil || plan.HasChanges() {
		t.Errorf("plan after the daemon's creates: %v", err)
	}
	// While another process holds the lock, the daemon skips its step:
	// c holds the flock, and its info file is made to name another
	// live process (init).
	b, _ := json.Marshal(provision.LockInfo{Operation: "apply", PID: 1})
	os.WriteFile(c.Store.Path+".lock.info", b, 0o600)
	if _, err := p.Machines(ctx); !errors.Is(err, elastic.ErrBusy) {
		t.Errorf("machines while the lock is held: %v, want elastic.ErrBusy", err)
	}
	c.Close()
	if _, err := p.Machines(ctx); err != nil {
		t.Errorf("machines once the lock is released: %v", err)
	}
	// Stop and start (elastic.PowerSwitch): the machine stays, its state
	// shows it, and a stopped node is no change for plan.
	state := func(name string) elastic.MachineState {
		t.Helper()
		for _, m := range machines() {
			if m.Name == name {
				return m.State
			}
		}
		t.Fatalf("%s is gone", name)
		return ""
	}
	for _, tt := range []struct {
		op   func(context.Context, string) error
		want elastic.MachineState
	}{{p.Stop, elastic.MachineStopped}, {p.Stop, elastic.MachineStopped}, {p.Start, elastic.MachineRunning}, {p.Stop, elastic.MachineStopped}} {
		if err := tt.op(ctx, ms[0].Name); err != nil {
			t.Fatal(err)
		}
		if got := state(ms[0].Name); got != tt.want {
			t.Fatalf("%s: %s, want %s", ms[0].Name, got, tt.want)
		}
	}
	c = open(t, tmpl, "plan")
	if plan, _, err := c.Plan(ctx, provision.PlanOptions{Refresh: true}); err != nil || plan.HasChanges() {
		t.Errorf("plan with a stopped node: %v, %d changes; want none", err, len(plan.Changes))
	}
	var burst elastic.Pool
	for _, pl := range c.PolicyPools() {
		if pl.Name == "cloud.burst" {
			burst = pl
		}
	}
	if burst.StartTime != time.Second || burst.StoppedPrice != 0.001 {
		t.Errorf("policy pool cloud.burst: start %s, stopped price %g; want 1s (10ms, at least 1s) and 0.001", burst.StartTime, burst.StoppedPrice)
	}
	c.Close()
	if err := p.Destroy(ctx, ms[0].Name); err != nil {
		t.Fatal(err)
	}
	if left := machines(); len(left) != 1 || left[0].Name == ms[0].Name {
		t.Errorf("after destroy of stopped %s: %+v", ms[0].Name, left)
	}
}
