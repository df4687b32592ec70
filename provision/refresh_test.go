package provision_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/sim"
	"github.com/hvctl/hvctl/templates"
)

func loadSrc(t testing.TB, src string) *templates.Config {
	t.Helper()
	cfg, d := templates.LoadSource(map[string][]byte{"main.hcl": []byte(src)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	return cfg
}

// TestRefreshByListing: refresh of a sim cluster reads the world once
// (one List call, no Read); a machine deleted outside hvctl is missing
// from the listing and confirmed gone by one Read of its own.
func TestRefreshByListing(t *testing.T) {
	dir := t.TempDir()
	cfg := loadSrc(t, bigTemplate(3, 100, "provider \"sim\" \"lab\" {}\n"))
	store := &provision.Store{Path: filepath.Join(dir, "state.json")}
	e, d := provision.NewEngine(cfg, store)
	if d.HasErrors() {
		t.Fatal(d)
	}
	ctx := context.Background()
	st, _ := store.Load()
	plan, refreshed, err := e.Plan(ctx, st, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.Apply(ctx, refreshed, plan); r.Err() != nil {
		t.Fatal(r.Err())
	}
	pv, _ := e.Provider("provider.sim.lab")
	p := pv.(*sim.Provider)
	before := p.Calls()
	st, _ = store.Load()
	plan, _, err = e.Plan(ctx, st, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if plan.HasChanges() {
		a, c, d := plan.Counts()
		t.Fatalf("no-op plan has changes: %d to add, %d to change, %d to destroy", a, c, d)
	}
	after := p.Calls()
	if n := after["List"] - before["List"]; n != 1 {
		t.Errorf("refresh of %d resources made %d List calls, want 1", len(st.Resources), n)
	}
	if n := after["Read"] - before["Read"]; n != 0 {
		t.Errorf("refresh made %d Read calls, want 0", n)
	}

	gone := st.Resource("site.s1.pool.p.node[7]")
	if err := p.Delete(ctx, &provision.DeleteRequest{Address: gone.Address, Kind: gone.Kind, ID: gone.ID}); err != nil {
		t.Fatal(err)
	}
	before = p.Calls()
	plan, _, err = e.Plan(ctx, st, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	after = p.Calls()
	if add, _, _ := plan.Counts(); add != 1 || len(plan.Drift) != 1 || plan.Drift[0].Address != gone.Address {
		t.Errorf("after a delete outside hvctl: %d creates, drift %+v", add, plan.Drift)
	}
	if n := after["Read"] - before["Read"]; n != 1 {
		t.Errorf("refresh made %d Read calls for one missing machine, want 1", n)
	}
}
