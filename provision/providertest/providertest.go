// Package providertest is the provider contract suite: Run checks that a
// provision.Provider keeps the promises the engine relies on (create is
// idempotent on the client token, even when the first response was lost;
// a gone machine reads as Exists = false; deleting it again is success;
// capacity and throttling errors are typed; limits are sane; a provider
// that can stop machines stops and starts them keeping the machine). Every
// provider's tests run it against their provider (sim, local, aws over
// awsfake, openstack over osfake, static over real sshd).
package providertest

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
)

// Target is one provider under test, with the hooks the suite needs.
// Only Provider and Instance are required; a nil hook skips the checks
// that need it, saying so.
type Target struct {
	Provider provision.Provider
	// Instance returns the create request of a new instance (a fresh
	// address and client token on each call), whatever it depends on
	// (its site network) already made.
	Instance func(t *testing.T, n int) *provision.CreateRequest
	// Machines counts the live machines in the backend (the cloud's
	// servers, the local namespaces, the hosts running an agent), to
	// check that nothing is made twice or left behind.
	Machines func(t *testing.T) int
	// LoseResponse makes the next Create do its work and lose the
	// response, as when hvctl is killed or the network fails after the
	// cloud acted.
	LoseResponse func(t *testing.T)
	// NoCapacity makes later Creates fail for lack of capacity.
	NoCapacity func(t *testing.T)
	// Throttle makes the backend throttle every call until the returned
	// function is called.
	Throttle func(t *testing.T) (restore func())
}

// Factory makes a fresh Target for one subtest, cleaned up by t.
type Factory func(t *testing.T) *Target

var seq atomic.Int64

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// create makes req and waits for it to be ready, as apply does.
func create(t *testing.T, p provision.Provider, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	resp, err := p.Create(ctx(t), req)
	if err != nil {
		return nil, err
	}
	if w, ok := p.(provision.Waiter); ok {
		if _, err := w.WaitReady(ctx(t), &provision.ReadRequest{Address: req.Address, Kind: req.Kind, ID: resp.ID, ClientToken: req.ClientToken, Attrs: req.Attrs}); err != nil {
			return resp, err
		}
	}
	return resp, nil
}

func mustCreate(t *testing.T, p provision.Provider, req *provision.CreateRequest) *provision.CreateResponse {
	t.Helper()
	resp, err := create(t, p, req)
	if err != nil {
		t.Fatalf("create %s: %v", req.Address, err)
	}
	if resp.ID == "" {
		t.Fatalf("create %s: empty ID", req.Address)
	}
	return resp
}

func read(t *testing.T, p provision.Provider, req *provision.CreateRequest, id string) *provision.ReadResponse {
	t.Helper()
	rr, err := p.Read(ctx(t), &provision.ReadRequest{Address: req.Address, Kind: req.Kind, ID: id, ClientToken: req.ClientToken, Attrs: req.Attrs})
	if err != nil {
		t.Fatalf("read %s (id %q): %v", req.Address, id, err)
	}
	return rr
}

func machines(t *testing.T, tg *Target) int {
	if tg.Machines == nil {
		return -1
	}
	return tg.Machines(t)
}

func checkMachines(t *testing.T, tg *Target, want int, when string) {
	t.Helper()
	if want < 0 || tg.Machines == nil {
		return
	}
	if got := tg.Machines(t); got != want {
		t.Errorf("%s: %d machines, want %d", when, got, want)
	}
}

func instance(t *testing.T, tg *Target) *provision.CreateRequest {
	return tg.Instance(t, int(seq.Add(1)))
}

// Run runs the contract suite, one fresh Target per subtest.
func Run(t *testing.T, f Factory) {
	t.Run("Limits", func(t *testing.T) {
		l := f(t).Provider.Limits()
		if l.APIRate < 0 || (l.APIRate > 0 && l.Burst < 1) {
			t.Errorf("Limits() = %+v: a rate needs a burst of at least 1, and no rate is negative", l)
		}
	})

	t.Run("CreateIsIdempotentOnTheClientToken", func(t *testing.T) {
		tg := f(t)
		req := instance(t, tg)
		before := machines(t, tg)
		first := mustCreate(t, tg.Provider, req)
		second := mustCreate(t, tg.Provider, req)
		if first.ID != second.ID {
			t.Errorf("a second Create with the same token made %s; the first made %s", second.ID, first.ID)
		}
		checkMachines(t, tg, before+1, "after two creates with one token")
		if rr := read(t, tg.Provider, req, ""); !rr.Exists || rr.ID != first.ID {
			t.Errorf("Read by client token = %+v, want %s", rr, first.ID)
		}
		if rr := read(t, tg.Provider, req, first.ID); !rr.Exists || rr.ID != first.ID {
			t.Errorf("Read by ID = %+v, want %s", rr, first.ID)
		}
		other := instance(t, tg)
		if o := mustCreate(t, tg.Provider, other); o.ID == first.ID {
			t.Errorf("another token got the same machine %s", o.ID)
		}
		checkMachines(t, tg, before+2, "after a create with another token")
	})

	t.Run("ReadOfAnUnknownTokenIsNotFound", func(t *testing.T) {
		tg := f(t)
		req := instance(t, tg)
		if rr := read(t, tg.Provider, req, ""); rr.Exists {
			t.Errorf("Read of a token never used = %+v, want Exists = false", rr)
		}
	})

	t.Run("DeleteThenReadAndDeleteAgain", func(t *testing.T) {
		tg := f(t)
		req := instance(t, tg)
		before := machines(t, tg)
		resp := mustCreate(t, tg.Provider, req)
		del := &provision.DeleteRequest{Address: req.Address, Kind: req.Kind, ID: resp.ID}
		if err := tg.Provider.Delete(ctx(t), del); err != nil {
			t.Fatalf("delete %s: %v", resp.ID, err)
		}
		checkMachines(t, tg, before, "after delete")
		if rr := read(t, tg.Provider, req, resp.ID); rr.Exists {
			t.Errorf("Read by ID of a deleted machine = %+v, want Exists = false", rr)
		}
		if rr := read(t, tg.Provider, req, ""); rr.Exists {
			t.Errorf("Read by token of a deleted machine = %+v, want Exists = false", rr)
		}
		if err := tg.Provider.Delete(ctx(t), del); err != nil {
			t.Errorf("deleting a machine that is gone: %v, want success", err)
		}
	})

	t.Run("LostCreateResponse", func(t *testing.T) {
		tg := f(t)
		if tg.LoseResponse == nil {
			t.Skip("the target cannot lose a response")
		}
		req := instance(t, tg)
		before := machines(t, tg)
		tg.LoseResponse(t)
		if _, err := tg.Provider.Create(ctx(t), req); err == nil {
			t.Log("the lost response was retried inside the provider")
		}
		resp := mustCreate(t, tg.Provider, req)
		checkMachines(t, tg, before+1, "after a lost response and a retry")
		if rr := read(t, tg.Provider, req, ""); !rr.Exists || rr.ID != resp.ID {
			t.Errorf("Read by token after the retry = %+v, want %s", rr, resp.ID)
		}
	})

	t.Run("CapacityErrorIsTyped", func(t *testing.T) {
		tg := f(t)
		if tg.NoCapacity == nil {
			t.Skip("the target has no capacity limit")
		}
		tg.NoCapacity(t)
		req := instance(t, tg)
		_, err := create(t, tg.Provider, req)
		var ce *provision.CapacityError
		if !errors.As(err, &ce) {
			t.Fatalf("create without capacity: %v (%T), want a *provision.CapacityError", err, err)
		}
	})

	t.Run("ThrottlingIsRetryable", func(t *testing.T) {
		tg := f(t)
		if tg.Throttle == nil {
			t.Skip("the target cannot throttle")
		}
		req := instance(t, tg)
		before := machines(t, tg)
		restore := tg.Throttle(t)
		_, err := tg.Provider.Create(ctx(t), req)
		restore()
		if !provision.IsRetryable(err) {
			t.Fatalf("create while throttled: %v, want a retryable error", err)
		}
		mustCreate(t, tg.Provider, req)
		checkMachines(t, tg, before+1, "after a throttled create and a retry")
	})

	t.Run("StopAndStart", func(t *testing.T) { stopAndStart(t, f(t)) })

	t.Run("StopOfADeletedMachineFails", func(t *testing.T) { stopDeleted(t, f(t)) })
}

// stopper returns the target's Stopper and a new running instance it can
// stop, with the attributes a state would record for it (the request's,
// then what Create computed); it skips when the provider cannot stop, or
// StopCost says this instance cannot (a setting off, a spot instance).
func stopper(t *testing.T, tg *Target) (provision.Stopper, *provision.CreateRequest, *provision.PowerRequest) {
	t.Helper()
	s, ok := tg.Provider.(provision.Stopper)
	if !ok {
		t.Skipf("%T does not implement provision.Stopper", tg.Provider)
	}
	req := instance(t, tg)
	resp := mustCreate(t, tg.Provider, req)
	attrs := provision.Attrs{}
	maps.Copy(attrs, req.Attrs)
	maps.Copy(attrs, resp.Attrs)
	cost, ok := s.StopCost(attrs)
	if !ok {
		t.Skipf("StopCost says %s cannot stop (is the provider's setting for stopping on in the target?)", req.Address)
	}
	if cost.StartTime <= 0 || cost.StoppedPrice < 0 {
		t.Errorf("StopCost = %+v: a start takes some time, and a stopped machine's price is not negative", cost)
	}
	return s, req, &provision.PowerRequest{Address: req.Address, ID: resp.ID, Attrs: attrs}
}

// readState reads the instance and checks it exists with state want.
func readState(t *testing.T, p provision.Provider, req *provision.CreateRequest, id, want, when string) {
	t.Helper()
	rr := read(t, p, req, id)
	if !rr.Exists || rr.ID != id {
		t.Fatalf("%s: Read = exists %v, ID %q; want the machine %s", when, rr.Exists, rr.ID, id)
	}
	if got := rr.Attrs["state"]; got != want {
		t.Errorf("%s: Read attrs state = %v, want %q", when, got, want)
	}
}

// stopAndStart checks Stop and Start: a stopped machine reads back as
// "stopped" and is still a machine; a started one reads back "running"
// with the same ID; stopping or starting twice is not an error; a
// stopped machine can be deleted.
func stopAndStart(t *testing.T, tg *Target) {
	before := machines(t, tg)
	s, req, pr := stopper(t, tg)
	id := pr.ID
	for i := range 2 {
		if err := s.Stop(ctx(t), pr); err != nil {
			t.Fatalf("stop %s (call %d): %v", req.Address, i+1, err)
		}
		readState(t, tg.Provider, req, id, "stopped", "after stop")
	}
	checkMachines(t, tg, before+1, "after stop (a stopped machine is kept)")
	for i := range 2 {
		rr, err := s.Start(ctx(t), pr)
		if err != nil {
			t.Fatalf("start %s (call %d): %v", req.Address, i+1, err)
		}
		if rr == nil || !rr.Exists || rr.ID != id || rr.Attrs["state"] != "running" {
			t.Errorf("start %s (call %d) = %+v, want machine %s with state running", req.Address, i+1, rr, id)
		}
		readState(t, tg.Provider, req, id, "running", "after start")
	}
	checkMachines(t, tg, before+1, "after start")
	if err := s.Stop(ctx(t), pr); err != nil {
		t.Fatalf("stop %s again: %v", req.Address, err)
	}
	del := &provision.DeleteRequest{Address: req.Address, Kind: req.Kind, ID: id}
	if err := tg.Provider.Delete(ctx(t), del); err != nil {
		t.Fatalf("delete of stopped %s: %v", req.Address, err)
	}
	if rr := read(t, tg.Provider, req, id); rr.Exists {
		t.Errorf("Read of a stopped machine deleted = %+v, want Exists = false", rr)
	}
	checkMachines(t, tg, before, "after deleting the stopped machine")
}

// stopDeleted checks that stopping or starting a machine that is gone
// fails with an error naming its address.
func stopDeleted(t *testing.T, tg *Target) {
	s, req, pr := stopper(t, tg)
	if err := tg.Provider.Delete(ctx(t), &provision.DeleteRequest{Address: req.Address, Kind: req.Kind, ID: pr.ID}); err != nil {
		t.Fatalf("delete %s: %v", req.Address, err)
	}
	err := s.Stop(ctx(t), pr)
	if err == nil || !strings.Contains(err.Error(), req.Address) {
		t.Errorf("stop of deleted %s: %v, want an error naming it", req.Address, err)
	}
	_, err = s.Start(ctx(t), pr)
	if err == nil || !strings.Contains(err.Error(), req.Address) {
		t.Errorf("start of deleted %s: %v, want an error naming it", req.Address, err)
	}
}
