package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision/statecrypt"
)

var cheapKDF = statecrypt.Params{Time: 1, MemKiB: 8 << 10, Threads: 1}

// memBackend is a Backend in memory that checks serials as the real
// ones do; noAppend makes it a compact-every-batch backend.
type memBackend struct {
	mu       sync.Mutex
	snap     []byte
	journal  []byte
	head     uint64
	noAppend bool
	writes   int
}

func (m *memBackend) Describe() string { return "memory" }
func (m *memBackend) Load(context.Context) ([]byte, []byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.snap), bytes.Clone(m.journal), m.head, nil
}
func (m *memBackend) WriteSnapshot(_ context.Context, snap []byte, serial, prev uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev != m.head {
		return &StaleError{Where: "memory", Stored: m.head, Have: prev}
	}
	m.snap, m.journal, m.head = bytes.Clone(snap), nil, serial
	m.writes++
	return nil
}
func (m *memBackend) AppendJournal(_ context.Context, b []byte, last, prev uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.noAppend {
		return ErrNoAppend
	}
	if prev != m.head {
		return &StaleError{Where: "memory", Stored: m.head, Have: prev}
	}
	m.journal, m.head = append(m.journal, b...), last
	m.writes++
	return nil
}
func (m *memBackend) Lock(context.Context, LockInfo, time.Duration) (func() error, error) {
	return func() error { return nil }, nil
}
func (m *memBackend) LockHolder(context.Context) (*LockInfo, error) { return nil, nil }
func (m *memBackend) ForceUnlock(context.Context, string) error     { return nil }

// journalInto writes a snapshot and journals n resources into store
// through an engine's group commit.
func journalInto(t *testing.T, store *Store, n int) *State {
	t.Helper()
	s := NewState()
	s.put(&ResourceState{Address: "site.s.network", Status: StatusReady, Kind: KindNetwork, ID: "net-1"})
	if err := store.Write(s); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Store: store}
	e.resetCommits()
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("site.s.pool.p.node[%d]", i)
		if err := e.putResource(s, &ResourceState{Address: addr, Status: StatusReady, Kind: KindInstance, ID: fmt.Sprint("i-", i), Token: "secret-token-" + addr}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.removeResource(s, "site.s.pool.p.node[0]"); err != nil {
		t.Fatal(err)
	}
	return s
}

func sameState(t *testing.T, got, want *State) {
	t.Helper()
	if got.Serial != want.Serial || got.Lineage != want.Lineage || len(got.Resources) != len(want.Resources) {
		t.Fatalf("loaded serial %d lineage %s with %d resources, want serial %d lineage %s with %d", got.Serial, got.Lineage, len(got.Resources), want.Serial, want.Lineage, len(want.Resources))
	}
	if r := got.Resource("site.s.pool.p.node[2]"); r == nil || r.ID != "i-2" {
		t.Errorf("node[2] = %+v", r)
	}
}

// TestBackendStores: the same engine writes through a local store, an
// encrypted local store, and backends with and without a journal; each
// loads back what was written, and encrypted bytes hold no plaintext.
func TestBackendStores(t *testing.T) {
	tests := []struct {
		name    string
		backend *memBackend
		sealed  bool
	}{
		{"local", nil, false},
		{"local encrypted", nil, true},
		{"backend with journal", &memBackend{}, false},
		{"backend encrypted", &memBackend{}, true},
		{"backend without journal", &memBackend{noAppend: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mk := func(pass string) *Store {
				st := &Store{Path: filepath.Join(t.TempDir(), "state.json")}
				if tt.backend != nil {
					st.Backend = tt.backend
				}
				if pass != "" {
					st.Sealer = statecrypt.NewWithParams(pass, cheapKDF)
				}
				return st
			}
			pass := ""
			if tt.sealed {
				pass = "correct horse"
			}
			store := mk(pass)
			want := journalInto(t, store, 4)
			store.Close()
			var stored []byte
			if tt.backend != nil {
				stored = append(bytes.Clone(tt.backend.snap), tt.backend.journal...)
				if tt.backend.noAppend && len(tt.backend.journal) != 0 {
					t.Error("a backend without a journal got journal bytes")
				}
			} else {
				a, _ := os.ReadFile(store.Path)
				b, _ := os.ReadFile(store.journalPath())
				stored = append(a, b...)
			}
			leaks := []string{want.Lineage, "site.s.pool", "secret-token", "net-1"}
			for _, leak := range leaks {
				if bytes.Contains(stored, []byte(leak)) != !tt.sealed {
					t.Errorf("stored bytes contain %q: %v, want %v", leak, !tt.sealed, !tt.sealed)
				}
			}
			reader := store
			if tt.backend == nil {
				reader = &Store{Path: store.Path}
				if tt.sealed {
					reader.Sealer = statecrypt.NewWithParams(pass, cheapKDF)
				}
			} else {
				reader = &Store{Path: store.Path, Backend: tt.backend, Sealer: store.Sealer}
			}
			got, err := reader.Load()
			if err != nil {
				t.Fatal(err)
			}
			sameState(t, got, want)
			if !tt.sealed {
				return
			}
			// A wrong passphrase, or none, is refused with a clear error
			// and changes nothing.
			before := bytes.Clone(stored)
			for _, s := range []*statecrypt.Sealer{statecrypt.NewWithParams("wrong", cheapKDF), nil} {
				r := &Store{Path: store.Path, Backend: reader.Backend, Sealer: s}
				_, err := r.Load()
				wantErr := "passphrase is wrong"
				if s == nil {
					wantErr = "is encrypted, and no passphrase is configured"
				}
				if err == nil || !strings.Contains(err.Error(), wantErr) {
					t.Errorf("load with sealer %v: err = %v, want %q", s != nil, err, wantErr)
				}
			}
			var after []byte
			if tt.backend != nil {
				after = append(bytes.Clone(tt.backend.snap), tt.backend.journal...)
			} else {
				a, _ := os.ReadFile(store.Path)
				b, _ := os.ReadFile(store.journalPath())
				after = append(a, b...)
			}
			if !bytes.Equal(before, after) {
				t.Error("a refused load changed the stored state")
			}
		})
	}
}

// TestBackendStaleSerial: a writer whose copy is older than the stored
// state is refused, and its state keeps its serial.
func TestBackendStaleSerial(t *testing.T) {
	mb := &memBackend{}
	a := &Store{Path: filepath.Join(t.TempDir(), "s.json"), Backend: mb}
	b := &Store{Path: a.Path, Backend: mb}
	sa, err := a.Load()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Write(sa); err != nil {
		t.Fatal(err)
	}
	err = b.Write(sb)
	var se *StaleError
	if !errors.As(err, &se) || !errors.Is(err, ErrStaleSerial) || se.Stored != 1 || se.Have != 0 {
		t.Fatalf("stale write: err = %v", err)
	}
	if sb.Serial != 0 {
		t.Errorf("refused write left serial %d", sb.Serial)
	}
	if err := b.appendJournal(frame(t, put(2, "site.s.node.x", StatusReady)), 2); !errors.Is(err, ErrStaleSerial) {
		t.Errorf("stale journal append: err = %v", err)
	}
	if _, err := b.Load(); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(sb); err != nil {
		t.Errorf("after reloading, write: %v", err)
	}
}
