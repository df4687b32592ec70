package provision_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/sim"
)

// waitingProvider is memProvider with a WaitReady that, for workers,
// blocks until every worker waits at once, counting creates and waits in
// flight.
type waitingProvider struct {
	*memProvider
	workers int

	mu                 sync.Mutex
	calls, waits       int
	maxCalls, maxWaits int
	all                chan struct{} // closed when every worker waits
	stuck              bool          // a wait gave up: the rest fail at once
}

func (w *waitingProvider) Create(ctx context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	w.mu.Lock()
	w.calls++
	w.maxCalls = max(w.maxCalls, w.calls)
	w.mu.Unlock()
	time.Sleep(time.Millisecond) // let calls overlap
	defer func() { w.mu.Lock(); w.calls--; w.mu.Unlock() }()
	return w.memProvider.Create(ctx, req)
}

func (w *waitingProvider) WaitReady(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	ok := &provision.ReadResponse{Exists: true, ID: req.ID, Attrs: provision.Attrs{"state": "running"}}
	if !strings.Contains(req.Address, ".pool.") {
		return ok, nil
	}
	w.mu.Lock()
	if w.stuck {
		w.mu.Unlock()
		return nil, fmt.Errorf("stuck")
	}
	w.waits++
	w.maxWaits = max(w.maxWaits, w.waits)
	if w.waits == w.workers {
		close(w.all)
	}
	w.mu.Unlock()
	select {
	case <-w.all:
		return ok, nil
	case <-time.After(10 * time.Second):
		// Not a timing assertion: a slot held while waiting means the
		// workers can never all wait at once.
		w.mu.Lock()
		defer w.mu.Unlock()
		w.stuck = true
		return nil, fmt.Errorf("only %d of %d workers ever waited at once", w.maxWaits, w.workers)
	}
}

// TestWaitingHoldsNoSlot: with -parallelism 3 at most 3 creates are in
// flight, yet all 20 workers wait for their boot at the same time.
func TestWaitingHoldsNoSlot(t *testing.T) {
	const workers = 20
	w := &waitingProvider{memProvider: newMem(), workers: workers, all: make(chan struct{})}
	e := newEngine(t, loadCfg(t, workers, "x86_64", "small"), t.TempDir(), w)
	e.Parallelism = 3
	st, _ := e.Store.Load()
	plan, refreshed, err := e.Plan(context.Background(), st, provision.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.Apply(context.Background(), refreshed, plan); r.Err() != nil {
		t.Error(r.Err())
	}
	if w.maxCalls > 3 {
		t.Errorf("%d creates in flight at once with -parallelism 3", w.maxCalls)
	}
	if w.maxWaits != workers {
		t.Errorf("%d of %d workers waited at once", w.maxWaits, workers)
	}
}

// TestDefaultNeverThrottled: 200 sim nodes at the default parallelism
// against an API rate of 50 calls/s: the sim never refuses a call for
// going over its rate (the engine paces at the declared rate), and every
// node is created.
func TestDefaultNeverThrottled(t *testing.T) {
	nodes := 200
	if testing.Short() {
		nodes = 50
	}
	src := fmt.Sprintf(`
provider "sim" "lab" {
  boot_time = "500ms"
  api_rate  = 50
}
cluster "rate" {
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "mesh"
  }
  site "a" {
    provider = provider.sim.lab
    network { cidr = "10.1.0.0/16" }
    pool "p" {
      count = %d
      instance { cpus = 1 }
    }
  }
}
`, nodes)
	cfg := loadSrc(t, src)
	store := &provision.Store{Path: filepath.Join(t.TempDir(), "state.json")}
	e, d := provision.NewEngine(cfg, store)
	if d.HasErrors() {
		t.Fatal(d)
	}
	if e.Parallelism != provision.DefaultParallelism {
		t.Fatalf("engine parallelism %d, want the default", e.Parallelism)
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
	if n := p.Throttled(); n != 0 {
		t.Errorf("the sim refused %d calls over its api_rate (calls: %v)", n, p.Calls())
	}
	if got := p.Calls()["Create"]; got != nodes+1 {
		t.Errorf("%d Create calls, want %d", got, nodes+1)
	}
	items, err := p.Items(sim.Filter{Live: true, Kind: provision.KindInstance})
	if err != nil || len(items) != nodes {
		t.Errorf("%d live instances (%v), want %d", len(items), err, nodes)
	}
}
