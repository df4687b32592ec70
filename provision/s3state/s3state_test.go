package s3state_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/aws/awsfake"
	"github.com/hvctl/hvctl/provision/s3state"
	"github.com/hvctl/hvctl/provision/statecrypt"
)

func open(t *testing.T, srv *awsfake.Server, cluster string) *s3state.Backend {
	t.Helper()
	b, err := s3state.New(context.Background(), map[string]string{"bucket": "state", "endpoint": srv.URL, "use_path_style": "true", "region": "us-east-1"}, cluster, "default")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestS3 runs the backend against the AWS fake's S3: an encrypted state
// round trip with no plaintext in the object, a lost race refused with
// 412, the lock object with holder info, and force-unlock of a lock left
// by a dead holder.
func TestS3(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	srv := awsfake.New()
	srv.Credentials = map[string]string{"AKIDTEST": "secret"}
	defer srv.Close()
	srv.CreateBucket("state")
	ctx := context.Background()
	sealer := statecrypt.NewWithParams("pw", statecrypt.Params{Time: 1, MemKiB: 8 << 10, Threads: 1})
	dir := t.TempDir()

	a := &provision.Store{Path: filepath.Join(dir, "a.json"), Backend: open(t, srv, "c1"), Sealer: sealer}
	s, err := a.Load()
	if err != nil {
		t.Fatal(err)
	}
	s.Cluster = "c1-plain-name"
	if err := a.Write(s); err != nil {
		t.Fatal(err)
	}
	obj := srv.Object("state", "hvctl/c1/default.state")
	if !statecrypt.IsSealed(obj) || bytes.Contains(obj, []byte(s.Lineage)) || bytes.Contains(obj, []byte("c1-plain-name")) {
		t.Fatalf("stored object is not ciphertext: %.60q", obj)
	}
	// A wrong secret key fails as on AWS (the fake checks signatures).
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	if _, err := (&provision.Store{Path: filepath.Join(dir, "w.json"), Backend: open(t, srv, "c1"), Sealer: sealer}).Load(); err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Errorf("load with a wrong secret key: %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")

	// Two writers read the same object; the second write loses.
	b := &provision.Store{Path: filepath.Join(dir, "b.json"), Backend: open(t, srv, "c1"), Sealer: sealer}
	sb, err := b.Load()
	if err != nil || sb.Lineage != s.Lineage {
		t.Fatalf("load from b: %v", err)
	}
	sa, _ := a.Load()
	if err := a.Write(sa); err != nil {
		t.Fatal(err)
	}
	err = b.Write(sb)
	if !errors.Is(err, provision.ErrStaleSerial) || !strings.Contains(err.Error(), "412") {
		t.Fatalf("lost race: err = %v", err)
	}
	if got, _ := (&provision.Store{Path: a.Path, Backend: open(t, srv, "c1"), Sealer: sealer}).Load(); got.Serial != sa.Serial {
		t.Errorf("after the lost race the stored serial is %d, want the winner's %d", got.Serial, sa.Serial)
	}
	// A first write when the object appeared meanwhile also loses.
	c := &provision.Store{Path: filepath.Join(dir, "c.json"), Backend: open(t, srv, "c1")}
	if err := c.Write(provision.NewState()); !errors.Is(err, provision.ErrStaleSerial) {
		t.Errorf("blind first write: %v", err)
	}

	// Locks.
	la, lb := open(t, srv, "c2"), open(t, srv, "c2")
	unlock, err := la.Lock(ctx, provision.LockInfo{ID: "L1", Who: "ci@runner", PID: 77, Operation: "apply"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = lb.Lock(ctx, provision.LockInfo{ID: "L2"}, 250*time.Millisecond)
	var le *provision.LockError
	if !errors.As(err, &le) || le.Holder == nil || le.Holder.ID != "L1" || le.Holder.Who != "ci@runner" {
		t.Fatalf("second lock: %v", err)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Error("gave up before the lock timeout")
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if h, _ := lb.LockHolder(ctx); h != nil {
		t.Errorf("after unlock: holder %+v", h)
	}
	// A holder that died leaves its lock object: force-unlock with its ID.
	if _, err := la.Lock(ctx, provision.LockInfo{ID: "L3"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := lb.ForceUnlock(ctx, "L9"); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("force-unlock with a wrong ID: %v", err)
	}
	if err := lb.ForceUnlock(ctx, "L3"); err != nil {
		t.Fatal(err)
	}
	u, err := lb.Lock(ctx, provision.LockInfo{ID: "L4"}, 0)
	if err != nil {
		t.Fatalf("lock after force-unlock: %v", err)
	}
	u()
}

// TestS3LockLease: a lock carries a lease its holder renews; a lock
// whose lease ran out (its holder died) is replaced at once, one
// without a lease never; a holder whose lock was replaced (thought
// dead) leaves the new holder's lock alone on unlock.
func TestS3LockLease(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	srv := awsfake.New()
	srv.Credentials = map[string]string{"AKIDTEST": "secret"}
	defer srv.Close()
	srv.CreateBucket("state")
	ctx := context.Background()
	openLease := func(cluster string) *s3state.Backend {
		b, err := s3state.New(ctx, map[string]string{"bucket": "state", "endpoint": srv.URL, "use_path_style": "true", "lock_lease": "1s"}, cluster, "default")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	lockKey := "hvctl/lease/default.state.lock"
	expires := func() time.Time {
		var body struct{ Expires time.Time }
		if err := json.Unmarshal(srv.Object("state", lockKey), &body); err != nil {
			t.Fatalf("lock object: %v", err)
		}
		return body.Expires
	}

	srv.PutObject("state", lockKey, []byte(`{"id":"dead","who":"ci@gone","pid":1,"operation":"apply","expires":"2020-01-01T00:00:00Z"}`))
	a := openLease("lease")
	unlockA, err := a.Lock(ctx, provision.LockInfo{ID: "A", Who: "a@host"}, 0)
	if err != nil {
		t.Fatalf("lock over a dead holder's expired lease: %v", err)
	}
	if h, _ := a.LockHolder(ctx); h == nil || h.ID != "A" {
		t.Fatalf("holder after replacing the dead one: %+v", h)
	}

	// The live holder renews its lease (polled until it does; the bound
	// only keeps a broken renewal from hanging the test).
	first := expires()
	for i := 0; !expires().After(first); i++ {
		if i == 3000 {
			t.Fatal("the holder never renewed its lease")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A lock without a lease is never taken over.
	srv.PutObject("state", "hvctl/nolease/default.state.lock", []byte(`{"id":"old","who":"before@leases"}`))
	_, err = openLease("nolease").Lock(ctx, provision.LockInfo{ID: "C"}, 300*time.Millisecond)
	var le *provision.LockError
	if !errors.As(err, &le) || le.Holder == nil || le.Holder.ID != "old" {
		t.Errorf("lock over a lease-less lock: %v, want a lock error naming old", err)
	}

	// A is thought dead and replaced: its unlock fails and leaves B's.
	srv.PutObject("state", lockKey, []byte(`{"id":"B","who":"b@host","expires":"2999-01-01T00:00:00Z"}`))
	if err := unlockA(); err == nil {
		t.Error("unlock of a replaced lock succeeded")
	}
	if h, _ := a.LockHolder(ctx); h == nil || h.ID != "B" {
		t.Errorf("after the replaced holder's unlock: holder %+v, want B", h)
	}
}
