package provision_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

var update = flag.Bool("update", false, "rewrite golden files")

// memProvider is a deterministic in-memory provider for engine tests:
// IDs and addresses count up, so plan output is stable.
type memProvider struct {
	mu       sync.Mutex
	next     int
	byID     map[string]provision.Attrs
	byToken  map[string]string
	creates  int
	failAddr map[string]error // Create fails for these addresses
	order    []string         // operations, in order
}

func newMem() *memProvider {
	return &memProvider{byID: map[string]provision.Attrs{}, byToken: map[string]string{}, failAddr: map[string]error{}}
}

func (m *memProvider) Limits() provision.Limits { return provision.Limits{} }

func (m *memProvider) Create(_ context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failAddr[req.Address]; err != nil {
		return nil, err
	}
	if id, ok := m.byToken[req.ClientToken]; ok {
		return &provision.CreateResponse{ID: id, Attrs: m.byID[id]}, nil
	}
	m.next++
	m.creates++
	id := fmt.Sprintf("i-%04d", m.next)
	a := provision.Attrs{}
	if req.Kind == provision.KindInstance {
		a["private_ip"] = fmt.Sprintf("10.0.0.%d", m.next)
		a["state"] = "running"
	}
	m.byID[id] = a
	m.byToken[req.ClientToken] = id
	m.order = append(m.order, "create "+req.Address)
	return &provision.CreateResponse{ID: id, Attrs: a}, nil
}

func (m *memProvider) Read(_ context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := req.ID
	if id == "" {
		id = m.byToken[req.ClientToken]
	}
	a, ok := m.byID[id]
	if !ok {
		return &provision.ReadResponse{}, nil
	}
	return &provision.ReadResponse{Exists: true, ID: id, Attrs: a}, nil
}

func (m *memProvider) Delete(_ context.Context, req *provision.DeleteRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byID, req.ID)
	m.order = append(m.order, "delete "+req.Address)
	return nil
}

func (m *memProvider) Updatable(k provision.Kind, attr string) bool { return attr == "labels" }

func (m *memProvider) Update(_ context.Context, req *provision.UpdateRequest) (*provision.UpdateResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.order = append(m.order, "update "+req.Address)
	return &provision.UpdateResponse{}, nil
}

const baseTemplate = `
provider "sim" "lab" {}

cluster "t" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.sim.lab
    network { cidr = "192.168.10.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance {
        cpus   = 2
        memory = "4GiB"
      }
    }
    pool "wn" {
      count = %d
      labels = { arch = "%s" }
      instance {
        type   = "%s"
        cpus   = 2
        memory = "4GiB"
      }
    }
  }
}
`

func loadCfg(t *testing.T, count int, arch, typ string) *templates.Config {
	t.Helper()
	src := fmt.Sprintf(baseTemplate, count, arch, typ)
	cfg, d := templates.LoadSource(map[string][]byte{"main.hcl": []byte(src)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatalf("load: %v", d)
	}
	return cfg
}

func newEngine(t *testing.T, cfg *templates.Config, dir string, p provision.Provider) *provision.Engine {
	t.Helper()
	e, d := provision.NewEngine(nil, &provision.Store{Path: filepath.Join(dir, "state.json")})
	if d.HasErrors() {
		t.Fatal(d)
	}
	e.Config = cfg
	e.AddProvider("provider.sim.lab", p)
	e.Parallelism = 1 // deterministic IDs for golden files
	return e
}

// run plans and applies cfg, returning the plan.
func run(t *testing.T, e *provision.Engine, destroy bool) *provision.Plan {
	t.Helper()
	st, err := e.Store.Load()
	if err != nil {
		t.Fatal(err)
	}
	plan, refreshed, err := e.Plan(context.Background(), st, provision.PlanOptions{Refresh: true, Destroy: destroy})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.Apply(context.Background(), refreshed, plan); res.Err() != nil {
		t.Fatal(res.Err())
	}
	return plan
}

func planOnly(t *testing.T, e *provision.Engine, destroy bool) *provision.Plan {
	t.Helper()
	st, err := e.Store.Load()
	if err != nil {
		t.Fatal(err)
	}
	plan, _, err := e.Plan(context.Background(), st, provision.PlanOptions{Refresh: true, Destroy: destroy})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "plan", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestPlanGolden walks one cluster through create, no change, update,
// replace and destroy, comparing the rendered and JSON plans with golden
// files.
func TestPlanGolden(t *testing.T) {
	dir := t.TempDir()
	mem := newMem()
	steps := []struct {
		name    string
		count   int
		arch    string
		typ     string
		destroy bool
		adds    [3]int
	}{
		{"create", 2, "x86_64", "small", false, [3]int{4, 0, 0}},
		{"nochange", 2, "x86_64", "small", false, [3]int{0, 0, 0}},
		{"update", 2, "arm64", "small", false, [3]int{0, 2, 0}},
		{"replace", 1, "arm64", "large", false, [3]int{1, 0, 2}},
		{"destroy", 1, "arm64", "large", true, [3]int{0, 0, 3}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e := newEngine(t, loadCfg(t, s.count, s.arch, s.typ), dir, mem)
			plan := planOnly(t, e, s.destroy)
			var human, js bytes.Buffer
			(&provision.Renderer{W: &human}).RenderPlan(plan)
			// The lineage is random: mask it in the JSON golden.
			plan.Lineage = "LINEAGE"
			if err := provision.WritePlanJSON(&js, plan); err != nil {
				t.Fatal(err)
			}
			golden(t, s.name+".txt", human.Bytes())
			golden(t, s.name+".json", js.Bytes())
			a, c, d := plan.Counts()
			if [3]int{a, c, d} != s.adds {
				t.Errorf("counts = %v, want %v", [3]int{a, c, d}, s.adds)
			}
			run(t, e, s.destroy)
			if p := planOnly(t, e, s.destroy); p.HasChanges() {
				var b bytes.Buffer
				(&provision.Renderer{W: &b}).RenderPlan(p)
				t.Errorf("second plan after apply still has changes:\n%s", b.String())
			}
		})
	}
	if len(mem.byID) != 0 {
		t.Errorf("resources left after destroy: %v", mem.byID)
	}
}

// TestDestroyOrder checks that destroy removes dependents first: workers
// before the hub, every instance before its network.
func TestDestroyOrder(t *testing.T) {
	dir := t.TempDir()
	mem := newMem()
	e := newEngine(t, loadCfg(t, 3, "x", "small"), dir, mem)
	run(t, e, false)
	mem.order = nil
	run(t, e, true)
	pos := map[string]int{}
	for i, op := range mem.order {
		pos[op] = i
	}
	for _, w := range []string{"site.onprem.pool.wn.node[0]", "site.onprem.pool.wn.node[1]", "site.onprem.pool.wn.node[2]"} {
		if pos["delete "+w] > pos["delete site.onprem.node.frontend"] {
			t.Errorf("%s destroyed after the hub: %v", w, mem.order)
		}
	}
	if pos["delete site.onprem.node.frontend"] > pos["delete site.onprem.network"] {
		t.Errorf("hub destroyed after its network: %v", mem.order)
	}
	// And creation went the other way.
	mem.order = nil
	run(t, e, false)
	if !strings.HasPrefix(mem.order[0], "create site.onprem.network") {
		t.Errorf("first create = %s, want the network", mem.order[0])
	}
}

// TestPartialFailure: one node fails to create; the others are in the
// state, the failed one is not, and the next apply converges.
func TestPartialFailure(t *testing.T) {
	dir := t.TempDir()
	mem := newMem()
	mem.failAddr["site.onprem.pool.wn.node[1]"] = errors.New("boom")
	e := newEngine(t, loadCfg(t, 3, "x", "small"), dir, mem)
	st, _ := e.Store.Load()
	plan, refreshed, err := e.Plan(context.Background(), st, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Apply(context.Background(), refreshed, plan)
	if res.Err() == nil || !strings.Contains(res.Err().Error(), "boom") {
		t.Fatalf("apply error = %v, want boom", res.Err())
	}
	st, err = e.Store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if st.Resource("site.onprem.pool.wn.node[1]") != nil {
		t.Errorf("failed resource is in the state")
	}
	for _, a := range []string{"site.onprem.pool.wn.node[0]", "site.onprem.pool.wn.node[2]", "site.onprem.node.frontend"} {
		if r := st.Resource(a); r == nil || r.Status != provision.StatusReady {
			t.Errorf("%s not ready in state: %+v", a, r)
		}
	}
	delete(mem.failAddr, "site.onprem.pool.wn.node[1]")
	p := run(t, e, false)
	if a, c, d := p.Counts(); a != 1 || c != 0 || d != 0 {
		t.Errorf("retry plan = %d/%d/%d, want 1/0/0", a, c, d)
	}
	if mem.creates != 5 {
		t.Errorf("provider creates = %d, want 5", mem.creates)
	}
}

// TestRefreshDeletedOutside: a machine deleted outside hvctl is created
// again by the next plan, with a new client token.
func TestRefreshDeletedOutside(t *testing.T) {
	dir := t.TempDir()
	mem := newMem()
	e := newEngine(t, loadCfg(t, 1, "x", "small"), dir, mem)
	run(t, e, false)
	st, _ := e.Store.Load()
	r := st.Resource("site.onprem.pool.wn.node[0]")
	mem.mu.Lock()
	delete(mem.byID, r.ID)
	mem.mu.Unlock()
	p := planOnly(t, e, false)
	if len(p.Drift) != 1 || p.Drift[0].Address != r.Address {
		t.Fatalf("drift = %+v", p.Drift)
	}
	if a, _, _ := p.Counts(); a != 1 {
		t.Fatalf("plan adds %d, want 1", a)
	}
	run(t, e, false)
	st, _ = e.Store.Load()
	if n := st.Resource(r.Address); n == nil || n.ID == r.ID || n.Token == r.Token {
		t.Errorf("recreated resource = %+v, want a new ID and token", n)
	}
}

// TestPendingIntentResolved: a crash between recording the intent and
// recording Create's result leaves a pending resource; the next run finds
// the machine by its token instead of creating another.
func TestPendingIntentResolved(t *testing.T) {
	dir := t.TempDir()
	mem := newMem()
	cfg := loadCfg(t, 1, "x", "small")
	e := newEngine(t, cfg, dir, mem)
	run(t, e, false)
	st, _ := e.Store.Load()
	r := st.Resource("site.onprem.pool.wn.node[0]")
	// Simulate the crash: state says pending, no ID; the provider has it.
	r.Status, r.ID = provision.StatusPending, ""
	if err := e.Store.Write(st); err != nil {
		t.Fatal(err)
	}
	before := mem.creates
	p := planOnly(t, e, false)
	if p.HasChanges() {
		t.Errorf("plan after resolving the intent has changes")
	}
	run(t, e, false)
	if mem.creates != before {
		t.Errorf("creates went from %d to %d: a duplicate was made", before, mem.creates)
	}
}
