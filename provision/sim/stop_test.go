package sim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
)

func TestStopCost(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		inst  provision.Attrs
		want  provision.StopCost
		ok    bool
	}{
		{"no start_time: cannot stop", nil, nil, provision.StopCost{}, false},
		{"start_time", map[string]cty.Value{"start_time": cty.StringVal("1m"), "stopped_price": cty.NumberFloatVal(0.001)}, nil,
			provision.StopCost{StartTime: time.Minute, StoppedPrice: 0.001}, true},
		{"spot cannot stop", map[string]cty.Value{"start_time": cty.StringVal("1m")}, provision.Attrs{"spot": true}, provision.StopCost{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newSim(t, t.TempDir(), tt.attrs, nil)
			got, ok := p.StopCost(tt.inst)
			if got != tt.want || ok != tt.ok {
				t.Errorf("StopCost = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestStopStart: a running instance stops, reads back stopped, starts
// again start_time later keeping its address; both are idempotent; a
// stopped instance can be deleted; a stop before the boot ends or of a
// gone instance fails and names it.
func TestStopStart(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	p := newSim(t, t.TempDir(), map[string]cty.Value{"boot_time": cty.StringVal("10s"), "start_time": cty.StringVal("1m")}, clock)
	resp := mustCreate(t, p, instanceReq("site.s.node.n", "s", nil))
	req := &provision.PowerRequest{Address: "site.s.node.n", ID: resp.ID}
	read := &provision.ReadRequest{Kind: provision.KindInstance, ID: resp.ID}
	state := func() any {
		t.Helper()
		r, err := p.Read(ctx, read)
		if err != nil || !r.Exists {
			t.Fatalf("read: %+v, %v", r, err)
		}
		return r.Attrs["state"]
	}
	if err := p.Stop(ctx, req); err == nil || !strings.Contains(err.Error(), "site.s.node.n") || !strings.Contains(err.Error(), "pending") {
		t.Errorf("stop while booting: %v, want IncorrectInstanceState naming the node", err)
	}
	clock.Advance(10 * time.Second)
	for i := range 2 {
		if err := p.Stop(ctx, req); err != nil {
			t.Fatalf("stop #%d: %v", i+1, err)
		}
		if s := state(); s != StateStopped {
			t.Fatalf("state after stop #%d = %v, want stopped", i+1, s)
		}
	}
	done := make(chan *provision.ReadResponse, 1)
	go func() {
		r, err := p.Start(ctx, req)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	<-clock.added
	if s := state(); s != StatePending {
		t.Errorf("state while starting = %v, want pending", s)
	}
	clock.Advance(time.Minute)
	r := <-done
	if r == nil || r.Attrs["state"] != StateRunning || r.Attrs["private_ip"] != resp.Attrs["private_ip"] {
		t.Fatalf("start = %+v, want running at %v", r, resp.Attrs["private_ip"])
	}
	if r, err := p.Start(ctx, req); err != nil || r.Attrs["state"] != StateRunning {
		t.Errorf("start of a running instance = %+v, %v; want running, no error", r, err)
	}
	if err := p.Stop(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindInstance, ID: resp.ID}); err != nil {
		t.Fatalf("delete a stopped instance: %v", err)
	}
	if r, _ := p.Read(ctx, read); r.Exists {
		t.Errorf("stopped instance still exists after delete")
	}
	if err := p.Stop(ctx, req); !errors.Is(err, provision.ErrNotFound) || !strings.Contains(err.Error(), "site.s.node.n") {
		t.Errorf("stop of a deleted instance: %v, want not found naming it", err)
	}
	if _, err := p.Start(ctx, req); !errors.Is(err, provision.ErrNotFound) {
		t.Errorf("start of a deleted instance: %v, want not found", err)
	}

	cannot := newSim(t, t.TempDir(), nil, nil)
	if err := cannot.Stop(ctx, req); err == nil || !strings.Contains(err.Error(), "start_time") {
		t.Errorf("stop without start_time: %v, want an error naming start_time", err)
	}
}
