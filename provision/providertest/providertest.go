// Package providertest is the provider contract suite: Run checks that a
// provision.Provider keeps the promises the engine relies on (create is
// idempotent on the client token, even when the first response was lost;
// a gone machine reads as Exists = false; deleting it again is success;
// capacity and throttling errors are typed; limits are sane). Every
// provider's tests run it against their provider (sim, local, aws over
// awsfake, openstack over osfake, static over real sshd).
package providertest

import (
	"context"
	"errors"

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
}
