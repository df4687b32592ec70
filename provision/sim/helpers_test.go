package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

// fakeClock is a manual clock: After fires when Advance passes it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	added   chan struct{} // gets a value each time After is called
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), added: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	}
	select {
	case c.added <- struct{}{}:
	default:
	}
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// simConfig is a provider block with attrs, each on its own line of
// sim.hcl, so tests can check diagnostic subjects.
func simConfig(attrs map[string]cty.Value) *templates.Provider {
	cfg := &templates.Provider{
		Type: "sim", Name: "test",
		Attrs:      attrs,
		AttrRanges: map[string]hcl.Range{},
		DeclRange:  hcl.Range{Filename: "sim.hcl", Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 20}},
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		cfg.AttrRanges[n] = attrRange(i + 2)
	}
	return cfg
}

func attrRange(line int) hcl.Range {
	return hcl.Range{Filename: "sim.hcl", Start: hcl.Pos{Line: line, Column: 3}, End: hcl.Pos{Line: line, Column: 30}}
}

// newSim opens a sim provider over dir through the registered factory
// path (settings from attrs) with clock c (nil = real time).
func newSim(t testing.TB, dir string, attrs map[string]cty.Value, c Clock) *Provider {
	t.Helper()
	env := &provision.Env{StateDir: dir, Cluster: "test"}
	s, diags := ParseSettings(simConfig(attrs), env)
	if diags.HasErrors() {
		t.Fatalf("settings: %v", diags)
	}
	return Open(env, s, c)
}

func instanceReq(addr, site string, extra provision.Attrs) *provision.CreateRequest {
	attrs := provision.Attrs{
		"site": site, "name": addr, "instance_type": "sim.small", "cpus": int64(2),
		"memory": int64(4 << 30), "image": "debian-12", "price": 0.1, "public_ip": false,
		"roles": []string{"worker"}, "labels": map[string]string{"tier": "0"},
	}
	for k, v := range extra {
		attrs[k] = v
	}
	return &provision.CreateRequest{
		Address: addr, Kind: provision.KindInstance, Cluster: "test", Lineage: "lin-1",
		ClientToken: "tok-" + addr, Attrs: attrs,
	}
}

func networkReq(site, cidr string) *provision.CreateRequest {
	addr := "site." + site + ".network"
	return &provision.CreateRequest{
		Address: addr, Kind: provision.KindNetwork, Cluster: "test", Lineage: "lin-1",
		ClientToken: "tok-" + addr, Attrs: provision.Attrs{"site": site, "cidr": cidr},
	}
}

func mustCreate(t testing.TB, p *Provider, req *provision.CreateRequest) *provision.CreateResponse {
	t.Helper()
	resp, err := p.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("create %s: %v", req.Address, err)
	}
	return resp
}

func mustItems(t testing.TB, dir string, f Filter) []Item {
	t.Helper()
	items, err := Query(dir, time.Now(), f)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func worldBytes(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "sim", "world.json"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b
}

func addrs(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s[%d]", prefix, i)
	}
	return out
}

// pacer paces calls as the engine does: a token bucket from Limits().
type pacer struct{ l *rate.Limiter }

func newPacer(r float64, burst int, now time.Time) *pacer {
	return &pacer{rate.NewLimiter(rate.Limit(r), burst)}
}

// next returns how long to wait before the next call made at now.
func (p *pacer) next(now time.Time) time.Duration { return p.l.ReserveN(now, 1).DelayFrom(now) }
