package sim

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
)

var (
	instanceIDRe = regexp.MustCompile(`^sim-i-[0-9a-f]{16}$`)
	networkIDRe  = regexp.MustCompile(`^sim-net-[0-9a-f]{8}$`)
)

func TestCreateReadDelete(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := newSim(t, dir, nil, nil)

	net := mustCreate(t, p, networkReq("east", "10.1.0.0/24"))
	if !networkIDRe.MatchString(net.ID) || net.Attrs["cidr"] != "10.1.0.0/24" {
		t.Fatalf("network = %+v", net)
	}
	deps := map[string]string{"site.east.network": net.ID}
	var ids []string
	tests := []struct {
		addr       string
		public     bool
		wantIP     string
		wantPublic string
	}{
		{"site.east.node.a", false, "10.1.0.4", ""},
		{"site.east.node.hub", true, "10.1.0.5", "198.51.100.1"},
		{"site.east.node.b", false, "10.1.0.6", ""},
	}
	for _, tt := range tests {
		t.Run("create "+tt.addr, func(t *testing.T) {
			req := instanceReq(tt.addr, "east", provision.Attrs{"public_ip": tt.public})
			req.Deps = deps
			resp := mustCreate(t, p, req)
			if !instanceIDRe.MatchString(resp.ID) {
				t.Errorf("ID %q does not look like sim-i-xxxxxxxxxxxxxxxx", resp.ID)
			}
			want := provision.Attrs{"state": "running", "private_ip": tt.wantIP}
			if tt.wantPublic != "" {
				want["public_address"] = tt.wantPublic
			}
			if !sameValue(resp.Attrs, want) {
				t.Errorf("attrs = %v, want %v", resp.Attrs, want)
			}
			ids = append(ids, resp.ID)
		})
	}

	reads := []struct {
		name string
		req  provision.ReadRequest
		want bool
		id   string
	}{
		{"by id", provision.ReadRequest{Kind: provision.KindInstance, ID: ids[0]}, true, ids[0]},
		{"by token", provision.ReadRequest{Kind: provision.KindInstance, ClientToken: "tok-site.east.node.hub"}, true, ids[1]},
		{"network", provision.ReadRequest{Kind: provision.KindNetwork, ID: net.ID}, true, net.ID},
		{"unknown id", provision.ReadRequest{Kind: provision.KindInstance, ID: "sim-i-0000000000000000"}, false, "sim-i-0000000000000000"},
		{"unknown token", provision.ReadRequest{Kind: provision.KindInstance, ClientToken: "nope"}, false, ""},
		{"wrong kind", provision.ReadRequest{Kind: provision.KindNetwork, ID: ids[0]}, false, ids[0]},
	}
	for _, tt := range reads {
		t.Run("read "+tt.name, func(t *testing.T) {
			resp, err := p.Read(ctx, &tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Exists != tt.want || resp.ID != tt.id {
				t.Errorf("got Exists=%v ID=%q, want %v %q", resp.Exists, resp.ID, tt.want, tt.id)
			}
		})
	}

	t.Run("network with live instances is not deleted", func(t *testing.T) {
		err := p.Delete(ctx, &provision.DeleteRequest{Address: "site.east.network", Kind: provision.KindNetwork, ID: net.ID})
		if err == nil || !strings.Contains(err.Error(), "DependencyViolation") {
			t.Fatalf("err = %v, want DependencyViolation", err)
		}
	})

	t.Run("delete is idempotent", func(t *testing.T) {
		for range 2 {
			if err := p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindInstance, ID: ids[0]}); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindInstance, ID: "sim-i-ffffffffffffffff"}); err != nil {
			t.Errorf("deleting an unknown ID: %v", err)
		}
		resp, err := p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: ids[0]})
		if err != nil || resp.Exists {
			t.Errorf("read after delete: %+v, %v; want Exists=false", resp, err)
		}
	})

	t.Run("a freed address is reused, a held one never", func(t *testing.T) {
		req := instanceReq("site.east.node.c", "east", nil)
		req.Deps = deps
		if got := mustCreate(t, p, req).Attrs["private_ip"]; got != "10.1.0.4" {
			t.Errorf("private_ip = %v, want the freed 10.1.0.4", got)
		}
		req = instanceReq("site.east.node.d", "east", nil)
		req.Deps = deps
		if got := mustCreate(t, p, req).Attrs["private_ip"]; got != "10.1.0.7" {
			t.Errorf("private_ip = %v, want 10.1.0.7", got)
		}
	})

	t.Run("list", func(t *testing.T) {
		all := mustItems(t, dir, Filter{})
		if len(all) != 6 {
			t.Fatalf("List has %d items, want 6 (1 network, 5 instances): %+v", len(all), all)
		}
		if all[1].ID != ids[0] || all[1].State != StateTerminated || all[1].DeletedAt.IsZero() {
			t.Errorf("terminated instance listed as %+v", all[1])
		}
		live := mustItems(t, dir, Filter{Live: true, Kind: provision.KindInstance})
		if len(live) != 4 {
			t.Errorf("live instances: %d, want 4", len(live))
		}
		if got := mustItems(t, dir, Filter{Cluster: "other"}); len(got) != 0 {
			t.Errorf("cluster filter: %d items, want 0", len(got))
		}
		b, err := json.Marshal(all)
		if err != nil {
			t.Fatal(err)
		}
		var objs []map[string]any
		json.Unmarshal(b, &objs)
		for _, k := range []string{"id", "kind", "address", "cluster", "state", "site", "client_token", "created_at"} {
			if _, ok := objs[2][k]; !ok {
				t.Errorf("list JSON lacks %q: %s", k, b)
			}
		}
		if objs[2]["public_address"] != "198.51.100.1" || objs[2]["private_ip"] != "10.1.0.5" {
			t.Errorf("hub listed as %v", objs[2])
		}
	})

	t.Run("network deleted once empty", func(t *testing.T) {
		for _, it := range mustItems(t, dir, Filter{Live: true, Kind: provision.KindInstance}) {
			if err := p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindInstance, ID: it.ID}); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Delete(ctx, &provision.DeleteRequest{Address: "site.east.network", Kind: provision.KindNetwork, ID: net.ID}); err != nil {
			t.Fatal(err)
		}
		if live := mustItems(t, dir, Filter{Live: true}); len(live) != 0 {
			t.Errorf("after destroy, live items: %+v", live)
		}
		resp, _ := p.Read(ctx, &provision.ReadRequest{Kind: provision.KindNetwork, ID: net.ID})
		if resp.Exists {
			t.Error("deleted network still exists")
		}
	})
}

func TestInstanceNetwork(t *testing.T) {
	dir := t.TempDir()
	p := newSim(t, dir, nil, nil)
	west := mustCreate(t, p, networkReq("west", "10.2.0.0/16"))
	tests := []struct {
		name    string
		site    string
		deps    map[string]string
		wantIP  string
		wantErr string
	}{
		{"from deps", "west", map[string]string{"site.west.network": west.ID}, "10.2.0.4", ""},
		{"same site without deps", "west", nil, "10.2.0.5", ""},
		{"no network at all", "nowhere", nil, "172.16.0.4", ""},
		{"unknown dep network", "west", map[string]string{"site.west.network": "sim-net-deadbeef"}, "", "InvalidNetworkID.NotFound"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := instanceReq(addrs(len(tests), "node")[i], tt.site, nil)
			req.Deps = tt.deps
			resp, err := p.Create(context.Background(), req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Attrs["private_ip"] != tt.wantIP {
				t.Errorf("private_ip = %v, want %s", resp.Attrs["private_ip"], tt.wantIP)
			}
		})
	}
	t.Run("tiny network fills up", func(t *testing.T) {
		tiny := mustCreate(t, p, networkReq("tiny", "10.3.0.0/30")) // hosts .1 .2
		var err error
		var ips []any
		for i := range 3 {
			req := instanceReq(addrs(3, "tiny")[i], "tiny", nil)
			req.Deps = map[string]string{"n": tiny.ID}
			var resp *provision.CreateResponse
			resp, err = p.Create(context.Background(), req)
			if i < 2 {
				if err != nil {
					t.Fatal(err)
				}
				ips = append(ips, resp.Attrs["private_ip"])
			}
		}
		if err == nil || !strings.Contains(err.Error(), "no free address") {
			t.Errorf("3rd create in a /30: err = %v, want no free address", err)
		}
		if !sameValue(ips, []string{"10.3.0.1", "10.3.0.2"}) {
			t.Errorf("addresses in a /30: %v", ips)
		}
	})
}

func TestExistingNetwork(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := newSim(t, dir, nil, nil)
	req := networkReq("lab", "192.168.7.0/24")
	req.Attrs["existing_id"] = "vpc-lab"
	resp := mustCreate(t, p, req)
	if resp.ID != "vpc-lab" || resp.Attrs["cidr"] != "192.168.7.0/24" {
		t.Fatalf("adopted network = %+v", resp)
	}
	inst := instanceReq("site.lab.node.x", "lab", nil)
	inst.Deps = map[string]string{"site.lab.network": "vpc-lab"}
	ir := mustCreate(t, p, inst)
	if ir.Attrs["private_ip"] != "192.168.7.4" {
		t.Errorf("private_ip = %v", ir.Attrs["private_ip"])
	}
	p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindInstance, ID: ir.ID})
	if err := p.Delete(ctx, &provision.DeleteRequest{Address: req.Address, Kind: provision.KindNetwork, ID: "vpc-lab"}); err != nil {
		t.Fatal(err)
	}
	if r, _ := p.Read(ctx, &provision.ReadRequest{Kind: provision.KindNetwork, ID: "vpc-lab"}); !r.Exists {
		t.Error("Delete removed a network hvctl did not make")
	}
}

func TestIdempotentCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p1 := newSim(t, dir, nil, nil)
	p2 := newSim(t, dir, nil, nil) // another process's provider
	req := instanceReq("site.a.node.x", "a", nil)
	first := mustCreate(t, p1, req)

	tests := []struct {
		name string
		p    *Provider
	}{
		{"same provider", p1},
		{"second provider on the same state dir", p2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			again := mustCreate(t, tt.p, req)
			if again.ID != first.ID || again.Attrs["private_ip"] != first.Attrs["private_ip"] {
				t.Errorf("second create = %+v, want %+v", again, first)
			}
			if n := len(mustItems(t, dir, Filter{})); n != 1 {
				t.Errorf("world holds %d resources, want 1", n)
			}
			byToken, err := tt.p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ClientToken: req.ClientToken})
			if err != nil || !byToken.Exists || byToken.ID != first.ID {
				t.Errorf("read by token = %+v, %v", byToken, err)
			}
		})
	}
	t.Run("token reused for another address", func(t *testing.T) {
		other := instanceReq("site.a.node.y", "a", nil)
		other.ClientToken = req.ClientToken
		_, err := p1.Create(ctx, other)
		if err == nil || !strings.Contains(err.Error(), "IdempotentParameterMismatch") {
			t.Errorf("err = %v, want IdempotentParameterMismatch", err)
		}
	})
	t.Run("token of a terminated instance returns it", func(t *testing.T) {
		if err := p1.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindInstance, ID: first.ID}); err != nil {
			t.Fatal(err)
		}
		again := mustCreate(t, p2, req)
		if again.ID != first.ID || again.Attrs["state"] != StateTerminated {
			t.Errorf("create after terminate = %+v, want the terminated %s", again, first.ID)
		}
		r, _ := p2.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ClientToken: req.ClientToken})
		if r.Exists || r.ID != first.ID {
			t.Errorf("read by token after terminate = %+v, want Exists=false ID=%s", r, first.ID)
		}
	})
}

func TestBoot(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	p := newSim(t, t.TempDir(), map[string]cty.Value{"boot_time": cty.StringVal("10s")}, clock)
	resp := mustCreate(t, p, instanceReq("n", "s", nil))
	if resp.Attrs["state"] != StatePending {
		t.Fatalf("state after create = %v, want pending", resp.Attrs["state"])
	}
	read := &provision.ReadRequest{Kind: provision.KindInstance, ID: resp.ID}

	done := make(chan *provision.ReadResponse, 1)
	go func() {
		r, err := p.WaitReady(ctx, read)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	<-clock.added
	clock.Advance(9 * time.Second)
	select {
	case <-done:
		t.Fatal("WaitReady returned before boot_time")
	case <-time.After(20 * time.Millisecond):
	}
	if r, _ := p.Read(ctx, read); r.Attrs["state"] != StatePending {
		t.Errorf("state at 9s = %v, want pending", r.Attrs["state"])
	}
	clock.Advance(time.Second)
	select {
	case r := <-done:
		if r == nil || r.Attrs["state"] != StateRunning {
			t.Errorf("WaitReady = %+v, want running", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitReady did not return at boot_time")
	}

	t.Run("cancel", func(t *testing.T) {
		resp := mustCreate(t, p, instanceReq("m", "s", nil))
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := p.WaitReady(cctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: resp.ID})
			errc <- err
		}()
		<-clock.added
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("deleted while waiting", func(t *testing.T) {
		resp := mustCreate(t, p, instanceReq("d", "s", nil))
		errc := make(chan error, 1)
		go func() {
			_, err := p.WaitReady(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: resp.ID})
			errc <- err
		}()
		<-clock.added
		p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindInstance, ID: resp.ID})
		clock.Advance(10 * time.Second)
		if err := <-errc; err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("err = %v, want does not exist", err)
		}
	})
}

func TestBootFailure(t *testing.T) {
	ctx := context.Background()
	t.Run("always", func(t *testing.T) {
		clock := newFakeClock()
		p := newSim(t, t.TempDir(), map[string]cty.Value{"boot_time": cty.StringVal("1s"), "boot_fail_rate": cty.NumberIntVal(1)}, clock)
		resp := mustCreate(t, p, instanceReq("n", "s", nil))
		clock.Advance(time.Second)
		_, err := p.WaitReady(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: resp.ID})
		if err == nil || err.Error() != "instance "+resp.ID+" failed to boot" {
			t.Errorf("err = %v, want instance %s failed to boot", err, resp.ID)
		}
		r, _ := p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: resp.ID})
		if !r.Exists || r.Attrs["state"] != StateFailed {
			t.Errorf("read = %+v, want an existing failed instance", r)
		}
	})
	t.Run("reproducible by seed", func(t *testing.T) {
		failed := func(seed int64) string {
			clock := newFakeClock()
			p := newSim(t, t.TempDir(), map[string]cty.Value{"boot_fail_rate": cty.NumberFloatVal(0.5), "seed": cty.NumberIntVal(seed)}, clock)
			var s strings.Builder
			for _, a := range addrs(40, "n") {
				if mustCreate(t, p, instanceReq(a, "s", nil)).Attrs["state"] == StateFailed {
					s.WriteString("F")
				} else {
					s.WriteString(".")
				}
			}
			return s.String()
		}
		a, b, c := failed(1), failed(1), failed(2)
		if a != b || a == c || !strings.Contains(a, "F") || !strings.Contains(a, ".") {
			t.Errorf("seed 1: %s, again %s, seed 2: %s; want equal, different, mixed", a, b, c)
		}
	})
}

func TestCapacity(t *testing.T) {
	ctx := context.Background()
	p := newSim(t, t.TempDir(), map[string]cty.Value{"capacity": cty.NumberIntVal(2)}, nil)
	a0 := mustCreate(t, p, instanceReq("a0", "a", nil))
	mustCreate(t, p, instanceReq("a1", "a", nil))
	steps := []struct {
		name    string
		do      func() error
		wantCap bool
	}{
		{"third machine in a full site", func() error { _, err := p.Create(ctx, instanceReq("a2", "a", nil)); return err }, true},
		{"another site has room", func() error { _, err := p.Create(ctx, instanceReq("b0", "b", nil)); return err }, false},
		{"retried create of an existing machine", func() error { _, err := p.Create(ctx, instanceReq("a1", "a", nil)); return err }, false},
		{"free a slot", func() error {
			return p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindInstance, ID: a0.ID})
		}, false},
		{"room again", func() error { _, err := p.Create(ctx, instanceReq("a2", "a", nil)); return err }, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.do()
			var ce *provision.CapacityError
			if got := errors.As(err, &ce); got != st.wantCap {
				t.Fatalf("err = %v; capacity error %v, want %v", err, got, st.wantCap)
			}
			if st.wantCap && (provision.IsRetryable(err) || !strings.Contains(err.Error(), `site "a"`)) {
				t.Errorf("capacity error %q: want non-retryable, naming the site", err)
			}
			if !st.wantCap && err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFailRate(t *testing.T) {
	ctx := context.Background()
	t.Run("always fails and changes nothing", func(t *testing.T) {
		dir := t.TempDir()
		good := newSim(t, dir, nil, nil)
		id := mustCreate(t, good, instanceReq("keep", "s", nil)).ID
		before := worldBytes(t, dir)
		p := newSim(t, dir, map[string]cty.Value{"fail_rate": cty.NumberIntVal(1)}, nil)
		calls := []struct {
			name string
			do   func() error
		}{
			{"create", func() error { _, err := p.Create(ctx, instanceReq("new", "s", nil)); return err }},
			{"read", func() error { _, err := p.Read(ctx, &provision.ReadRequest{ID: id}); return err }},
			{"delete", func() error { return p.Delete(ctx, &provision.DeleteRequest{ID: id}) }},
			{"update", func() error {
				_, err := p.Update(ctx, &provision.UpdateRequest{Kind: provision.KindInstance, ID: id,
					Before: provision.Attrs{"price": 0.1}, After: provision.Attrs{"price": 0.2}})
				return err
			}},
		}
		for _, c := range calls {
			t.Run(c.name, func(t *testing.T) {
				err := c.do()
				if !provision.IsRetryable(err) || !strings.Contains(err.Error(), "fail_rate") {
					t.Errorf("err = %v, want a retryable injected fault", err)
				}
			})
		}
		if after := worldBytes(t, dir); string(after) != string(before) {
			t.Errorf("failed calls changed the world:\n%s\n---\n%s", before, after)
		}
	})
	t.Run("retries converge without duplicates", func(t *testing.T) {
		dir := t.TempDir()
		p := newSim(t, dir, map[string]cty.Value{"fail_rate": cty.NumberFloatVal(0.5), "seed": cty.NumberIntVal(3)}, nil)
		failures := 0
		for _, a := range addrs(20, "n") {
			for {
				_, err := p.Create(ctx, instanceReq(a, "s", nil))
				if err == nil {
					break
				}
				if !provision.IsRetryable(err) {
					t.Fatal(err)
				}
				failures++
			}
		}
		if failures == 0 {
			t.Error("fail_rate = 0.5 never failed in 20 creates")
		}
		if n := len(mustItems(t, dir, Filter{})); n != 20 {
			t.Errorf("world holds %d instances, want 20", n)
		}
	})
}

func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	p := newSim(t, t.TempDir(), map[string]cty.Value{"api_rate": cty.NumberIntVal(5)}, clock)
	if got := p.Limits(); got != (provision.Limits{APIRate: 5, Burst: 5}) {
		t.Fatalf("Limits() = %+v", got)
	}
	read := func() error {
		_, err := p.Read(ctx, &provision.ReadRequest{ClientToken: "x"})
		return err
	}
	t.Run("a burst beyond the limit is throttled", func(t *testing.T) {
		throttled := 0
		for range 20 {
			if err := read(); err != nil {
				if !provision.IsRetryable(err) || !strings.Contains(err.Error(), "RequestLimitExceeded") {
					t.Fatalf("err = %v, want retryable RequestLimitExceeded", err)
				}
				throttled++
			}
		}
		if throttled != 14 { // burst 5, plus one call of slack
			t.Errorf("%d of 20 instant calls throttled, want 14", throttled)
		}
	})
	t.Run("refills at api_rate", func(t *testing.T) {
		clock.Advance(time.Second)
		ok := 0
		for range 10 {
			if read() == nil {
				ok++
			}
		}
		if ok != 5 {
			t.Errorf("%d calls passed after 1s, want 5", ok)
		}
	})
	t.Run("unlimited without api_rate", func(t *testing.T) {
		q := newSim(t, t.TempDir(), nil, clock)
		if q.Limits() != (provision.Limits{}) {
			t.Errorf("Limits() = %+v, want zero", q.Limits())
		}
		for range 200 {
			if _, err := q.Read(ctx, &provision.ReadRequest{ClientToken: "x"}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestPacedCallerIsNeverThrottled paces calls with a limiter built from
// Limits(), as the engine does, on virtual time.
func TestPacedCallerIsNeverThrottled(t *testing.T) {
	clock := newFakeClock()
	p := newSim(t, t.TempDir(), map[string]cty.Value{"api_rate": cty.NumberFloatVal(3.5)}, clock)
	lim := p.Limits()
	pacer := newPacer(lim.APIRate, lim.Burst, clock.Now())
	for i := range 100 {
		clock.Advance(pacer.next(clock.Now()))
		if _, err := p.Read(context.Background(), &provision.ReadRequest{ClientToken: "x"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := newSim(t, dir, nil, nil)
	id := mustCreate(t, p, instanceReq("n", "s", nil)).ID
	for _, tt := range []struct {
		kind provision.Kind
		attr string
		want bool
	}{
		{provision.KindInstance, "labels", true},
		{provision.KindInstance, "price", true},
		{provision.KindInstance, "roles", true},
		{provision.KindInstance, "image", false},
		{provision.KindInstance, "instance_type", false},
		{provision.KindNetwork, "cidr", false},
		{provision.KindNetwork, "labels", false},
	} {
		if got := p.Updatable(tt.kind, tt.attr); got != tt.want {
			t.Errorf("Updatable(%s, %s) = %v, want %v", tt.kind, tt.attr, got, tt.want)
		}
	}
	tests := []struct {
		name          string
		id            string
		before, after provision.Attrs
		wantErr       string
	}{
		{"labels and roles", id,
			provision.Attrs{"labels": map[string]string{"tier": "0"}, "roles": []string{"worker"}, "image": "debian-12"},
			provision.Attrs{"labels": map[string]string{"tier": "1"}, "roles": []string{"worker", "gateway"}, "image": "debian-12"}, ""},
		{"image forces replacement", id, provision.Attrs{"image": "a"}, provision.Attrs{"image": "b"}, `"image" cannot change in place`},
		{"gone", "sim-i-0000000000000000", provision.Attrs{"price": 0.1}, provision.Attrs{"price": 0.2}, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := p.Update(ctx, &provision.UpdateRequest{Kind: provision.KindInstance, ID: tt.id, Before: tt.before, After: tt.after})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if tt.wantErr == "not found" && !errors.Is(err, provision.ErrNotFound) {
					t.Errorf("err = %v, want provision.ErrNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Attrs["state"] != StateRunning {
				t.Errorf("attrs = %v", resp.Attrs)
			}
			it := mustItems(t, dir, Filter{})[0]
			if !sameValue(it.Attrs["labels"], map[string]string{"tier": "1"}) || !sameValue(it.Attrs["roles"], []string{"worker", "gateway"}) {
				t.Errorf("stored attrs after update: %v", it.Attrs)
			}
		})
	}
}

func TestExpiredAndSecrets(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	p := newSim(t, dir, nil, clock)
	old := instanceReq("old", "s", provision.Attrs{"user_data": "#!/bin/sh\necho hunter2", "join_token": "hunter2", "ssh_key": "hunter2"})
	old.ExpiresAt = clock.Now().Add(time.Hour)
	mustCreate(t, p, old)
	mustCreate(t, p, instanceReq("forever", "s", nil))

	tests := []struct {
		at   time.Duration
		want int
	}{{0, 0}, {time.Hour, 1}, {2 * time.Hour, 1}}
	for _, tt := range tests {
		got, err := Expired(dir, clock.Now().Add(tt.at))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want || (tt.want == 1 && got[0].Address != "old") {
			t.Errorf("Expired(+%v) = %+v, want %d", tt.at, got, tt.want)
		}
	}
	list, _ := List(dir)
	b, _ := json.Marshal(list)
	for _, leak := range []string{"hunter2", "user_data", "join_token", "ssh_key"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("list JSON shows %q: %s", leak, b)
		}
		if strings.Contains(string(worldBytes(t, dir)), leak) {
			t.Errorf("world.json holds %q", leak)
		}
	}
	if !strings.Contains(string(b), `"expires_at":"`+old.ExpiresAt.Format(time.RFC3339)) {
		t.Errorf("list JSON lacks expires_at: %s", b)
	}
}

func TestListEmpty(t *testing.T) {
	items, err := List(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(items); string(b) != "[]" {
		t.Errorf("empty list JSON = %s, want []", b)
	}
}
