package pgstate_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/pgstate"
	"github.com/hvctl/hvctl/provision/pgstate/pgtest"
	"github.com/hvctl/hvctl/provision/statecrypt"
)

func backend(t *testing.T, srv *pgtest.Server, cluster, ws string) *pgstate.Backend {
	t.Helper()
	b, err := pgstate.New(map[string]string{"conn_str": srv.ConnStr, "schema": "hv_test"}, cluster, ws)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestPG runs the backend against a real PostgreSQL: round trip of
// snapshot and journal, workspaces apart, stale writers refused, the
// advisory lock with holder info, released when the holder's session
// ends, and encrypted rows without plaintext.
func TestPG(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()

	t.Run("round trip and stale serial", func(t *testing.T) {
		b := backend(t, srv, "c1", "default")
		if snap, _, _, err := b.Load(ctx); err != nil || snap != nil {
			t.Fatalf("empty load: %q %v", snap, err)
		}
		if err := b.WriteSnapshot(ctx, []byte("s1"), 1, 0); err != nil {
			t.Fatal(err)
		}
		if err := b.AppendJournal(ctx, []byte("j2"), 2, 1); err != nil {
			t.Fatal(err)
		}
		if err := b.AppendJournal(ctx, []byte("j3"), 3, 2); err != nil {
			t.Fatal(err)
		}
		snap, j, head, err := b.Load(ctx)
		if err != nil || string(snap) != "s1" || string(j) != "j2j3" || head != 3 {
			t.Fatalf("load = %q %q %d %v", snap, j, head, err)
		}
		stale := []struct {
			name string
			f    func() error
		}{
			{"snapshot from serial 1", func() error { return b.WriteSnapshot(ctx, []byte("old"), 2, 1) }},
			{"append from serial 2", func() error { return b.AppendJournal(ctx, []byte("old"), 3, 2) }},
			{"snapshot as new", func() error { return b.WriteSnapshot(ctx, []byte("old"), 1, 0) }},
		}
		for _, s := range stale {
			var se *provision.StaleError
			if err := s.f(); !errors.As(err, &se) || se.Stored != 3 {
				t.Errorf("%s: err = %v, want a stale serial error at 3", s.name, err)
			}
		}
		if err := b.WriteSnapshot(ctx, []byte("s4"), 4, 3); err != nil {
			t.Fatal(err)
		}
		if snap, j, head, _ := b.Load(ctx); string(snap) != "s4" || j != nil || head != 4 {
			t.Errorf("after compaction: %q %q %d", snap, j, head)
		}
		other := backend(t, srv, "c1", "staging")
		if snap, _, _, _ := other.Load(ctx); snap != nil {
			t.Errorf("workspace staging sees %q", snap)
		}
	})

	t.Run("lock", func(t *testing.T) {
		a, b := backend(t, srv, "c2", "default"), backend(t, srv, "c2", "default")
		info := provision.LockInfo{ID: "lock-a", Operation: "apply", Who: "alice@ci", PID: 4242, Path: a.Describe()}
		unlock, err := a.Lock(ctx, info, 0)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = b.Lock(ctx, provision.LockInfo{ID: "lock-b"}, 300*time.Millisecond)
		var le *provision.LockError
		if !errors.As(err, &le) || !errors.Is(err, provision.ErrLocked) || le.Holder == nil || le.Holder.Who != "alice@ci" || le.Holder.ID != "lock-a" {
			t.Fatalf("second lock: %v", err)
		}
		if waited := time.Since(start); waited < 300*time.Millisecond {
			t.Errorf("gave up after %v, before -lock-timeout", waited)
		}
		if h, err := b.LockHolder(ctx); err != nil || h == nil || h.PID != 4242 {
			t.Errorf("holder = %+v %v", h, err)
		}
		if err := b.ForceUnlock(ctx, "lock-a"); err == nil || !strings.Contains(err.Error(), "held by a live session") {
			t.Errorf("force-unlock of a live lock: %v", err)
		}
		if err := unlock(); err != nil {
			t.Fatal(err)
		}
		if h, _ := b.LockHolder(ctx); h != nil {
			t.Errorf("after unlock, holder %+v", h)
		}
		// The holder dies: its session ends, the server drops the lock,
		// and the info row it left is removed by force-unlock.
		if _, err := a.Lock(ctx, provision.LockInfo{ID: "lock-a2", Who: "alice@ci"}, 0); err != nil {
			t.Fatal(err)
		}
		a.Close()
		// The server ends the session when it sees the socket close,
		// a moment after Close returns.
		var h *provision.LockInfo
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if h, _ = b.LockHolder(ctx); h == nil || time.Now().After(deadline) {
				break
			}
		}
		if h != nil {
			t.Errorf("after the holder's session ended, holder %+v", h)
		}
		if err := b.ForceUnlock(ctx, "lock-a2"); err != nil {
			t.Errorf("force-unlock of a dead holder's info: %v", err)
		}
		unlock, err = b.Lock(ctx, provision.LockInfo{ID: "lock-b"}, 0)
		if err != nil {
			t.Fatalf("lock after the holder died: %v", err)
		}
		unlock()
	})

	t.Run("encrypted store", func(t *testing.T) {
		b := backend(t, srv, "c3", "default")
		pass := statecrypt.NewWithParams("pw", statecrypt.Params{Time: 1, MemKiB: 8 << 10, Threads: 1})
		st := &provision.Store{Path: t.TempDir() + "/state.json", Backend: b, Sealer: pass}
		s := provision.NewState()
		s.Cluster = "c3-secret-cluster"
		if err := st.Write(s); err != nil {
			t.Fatal(err)
		}
		c, err := pgx.Connect(ctx, srv.ConnStr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var row []byte
		if err := c.QueryRow(ctx, `SELECT data FROM hv_test.states WHERE cluster='c3'`).Scan(&row); err != nil {
			t.Fatal(err)
		}
		if !statecrypt.IsSealed(row) || bytes.Contains(row, []byte(s.Lineage)) || bytes.Contains(row, []byte("c3-secret-cluster")) {
			t.Errorf("stored row is not ciphertext: %.60q", row)
		}
		got, err := (&provision.Store{Path: st.Path, Backend: b, Sealer: pass}).Load()
		if err != nil || got.Lineage != s.Lineage {
			t.Fatalf("load: %v", err)
		}
		wrong := statecrypt.NewWithParams("pw2", statecrypt.Params{Time: 1, MemKiB: 8 << 10, Threads: 1})
		if _, err := (&provision.Store{Path: st.Path, Backend: b, Sealer: wrong}).Load(); err == nil || !strings.Contains(err.Error(), "passphrase is wrong") {
			t.Errorf("wrong passphrase: %v", err)
		}
	})
}
