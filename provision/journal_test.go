package provision

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func frame(t testing.TB, r *Record) []byte {
	t.Helper()
	b, err := appendFrame(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(serial uint64, addr, status string) *Record {
	return &Record{Serial: serial, Lineage: "L", Op: OpPut, Resource: &ResourceState{Address: addr, Status: status, Kind: KindInstance, Attrs: Attrs{"cpus": int64(2)}}}
}

func TestDecodeJournal(t *testing.T) {
	a := frame(t, put(1, "site.s.node.a", StatusPending))
	b := frame(t, &Record{Serial: 2, Lineage: "L", Op: OpRemove, Address: "site.s.node.a", Generation: 1})
	damaged := append([]byte(nil), a...)
	damaged[len(damaged)-2] ^= 0xff
	badPayload := func(p string) []byte { return rawFrame([]byte(p)) }
	tests := []struct {
		name    string
		in      []byte
		recs    int
		valid   int
		wantErr string
	}{
		{"empty", nil, 0, 0, ""},
		{"two records", cat(a, b), 2, len(a) + len(b), ""},
		{"torn header", cat(a, b[:5]), 1, len(a), ""},
		{"torn payload", cat(a, b[:len(b)-1]), 1, len(a), ""},
		{"torn last frame (checksum)", cat(a, damaged), 1, len(a), ""},
		{"zero-filled tail", cat(a, make([]byte, 100)), 1, len(a), ""},
		{"damaged record before others", cat(damaged, b), 0, 0, "record at byte 0 is damaged"},
		{"invalid length", cat(a, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1}), 1, len(a), fmt.Sprintf("record at byte %d has invalid length", len(a))},
		{"not JSON", badPayload("{nope"), 0, 0, "record at byte 0: not a valid record"},
		{"unknown field", badPayload(`{"serial":1,"lineage":"L","op":"put","resource":{"address":"x","status":"ready"},"extra":1}`), 0, 0, "unknown field"},
		{"unknown op", badPayload(`{"serial":1,"lineage":"L","op":"drop"}`), 0, 0, `unknown operation "drop"`},
		{"no lineage", badPayload(`{"serial":1,"op":"remove","address":"x","generation":1}`), 0, 0, "no lineage"},
		{"no serial", badPayload(`{"lineage":"L","op":"remove","address":"x","generation":1}`), 0, 0, "no serial"},
		{"put without resource", badPayload(`{"serial":1,"lineage":"L","op":"put"}`), 0, 0, "no resource address"},
		{"bad status", badPayload(`{"serial":1,"lineage":"L","op":"put","resource":{"address":"x","status":"gone"}}`), 0, 0, `unknown status "gone"`},
		{"remove without generation", badPayload(`{"serial":1,"lineage":"L","op":"remove","address":"x"}`), 0, 0, "generation 0"},
		{"trailing data", badPayload(`{"serial":1,"lineage":"L","op":"remove","address":"x","generation":1} {}`), 0, 0, "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, valid, err := DecodeJournal("/x/state.json.journal", tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "/x/state.json.journal") {
					t.Fatalf("err = %v, want one naming the file and containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tt.recs || valid != tt.valid {
				t.Errorf("got %d records, %d valid bytes; want %d, %d", len(recs), valid, tt.recs, tt.valid)
			}
		})
	}
}

// rawFrame frames any payload with a correct length and checksum.
func rawFrame(p []byte) []byte {
	out := make([]byte, 8, 8+len(p))
	putFrameHeader(out, p)
	return append(out, p...)
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// newJournaled writes a snapshot with one network, then journals n
// resources through an engine's group commit, and returns the store.
func newJournaled(t *testing.T, n int) (*Store, *State) {
	t.Helper()
	store := &Store{Path: filepath.Join(t.TempDir(), "state.json")}
	s := NewState()
	s.put(&ResourceState{Address: "site.s.network", Status: StatusReady, Kind: KindNetwork, ID: "net-1"})
	if err := store.Write(s); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Store: store}
	e.resetCommits()
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("site.s.pool.p.node[%d]", i)
		if err := e.putResource(s, &ResourceState{Address: addr, Status: StatusPending, Kind: KindInstance, Token: "t" + addr}); err != nil {
			t.Fatal(err)
		}
		if err := e.putResource(s, &ResourceState{Address: addr, Status: StatusReady, Kind: KindInstance, ID: fmt.Sprint("i-", i), Token: "t" + addr}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.removeResource(s, "site.s.pool.p.node[0]"); err != nil {
		t.Fatal(err)
	}
	return store, s
}

// TestJournalRecovery: snapshot + journal gives the state as it was in
// memory; a journal left behind by a crash after a snapshot is skipped.
func TestJournalRecovery(t *testing.T) {
	store, s := newJournaled(t, 5)
	store.Close()
	got, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.Serial != s.Serial || len(got.Resources) != len(s.Resources) || got.Generations["site.s.pool.p.node[0]"] != 1 {
		t.Fatalf("recovered serial %d, %d resources, generations %v; want serial %d, %d resources", got.Serial, len(got.Resources), got.Generations, s.Serial, len(s.Resources))
	}
	if r := got.Resource("site.s.pool.p.node[3]"); r == nil || r.ID != "i-3" || r.Status != StatusReady {
		t.Errorf("node[3] = %+v", r)
	}
	// A crash between the snapshot's rename and emptying the journal:
	// the old journal's records are all at or below the new serial.
	old, _ := os.ReadFile(store.journalPath())
	if err := store.Write(got); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(store.journalPath(), old, 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := (&Store{Path: store.Path}).Load()
	if err != nil {
		t.Fatal(err)
	}
	if again.Serial != got.Serial || len(again.Resources) != len(got.Resources) {
		t.Errorf("stale journal replayed: serial %d, %d resources", again.Serial, len(again.Resources))
	}
	// A journal with a record missing in the middle is refused.
	recs, _, _ := DecodeJournal("j", old)
	var gap []byte
	for i, r := range recs {
		if i != 2 {
			gap = append(gap, frame(t, r)...)
		}
	}
	if err := (&Store{Path: store.Path}).Write(NewState()); err != nil {
		t.Fatal(err)
	}
	snap := NewState()
	snap.Lineage = recs[0].Lineage
	snap.Serial = recs[0].Serial - 2 // Write bumps it to recs[0].Serial-1
	st2 := &Store{Path: store.Path}
	if err := st2.Write(snap); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(store.journalPath(), gap, 0o600)
	if _, err := st2.Load(); err == nil || !strings.Contains(err.Error(), "records are missing") {
		t.Errorf("journal with a gap: err = %v", err)
	}
}

// TestJournalEveryCut cuts the journal at every byte, as a kill during a
// write would, and checks that the state parses and holds exactly the
// records that were whole, and that the next writer goes on after them.
func TestJournalEveryCut(t *testing.T) {
	store, _ := newJournaled(t, 3)
	store.Close()
	full, err := os.ReadFile(store.journalPath())
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := DecodeJournal("j", full)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int]int{} // byte length -> records whole
	off := 0
	for i, r := range recs {
		off += len(frame(t, r))
		ends[off] = i + 1
	}
	snap, _ := (&Store{Path: store.Path}).Load()
	base := snap.Serial - uint64(len(recs))
	whole := 0
	for cut := 0; cut <= len(full); cut++ {
		if n, ok := ends[cut]; ok {
			whole = n
		}
		if err := os.WriteFile(store.journalPath(), full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		st := &Store{Path: store.Path}
		got, err := st.Load()
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if got.Serial != base+uint64(whole) {
			t.Fatalf("cut at %d: serial %d, want %d", cut, got.Serial, base+uint64(whole))
		}
		if cut%7 != 0 {
			continue
		}
		// The next writer truncates the torn tail and appends after it.
		e := &Engine{Store: st}
		e.resetCommits()
		if err := e.putResource(got, &ResourceState{Address: "site.s.node.late", Status: StatusReady, Kind: KindInstance}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		after, err := (&Store{Path: store.Path}).Load()
		if err != nil {
			t.Fatalf("cut at %d, then append: %v", cut, err)
		}
		if after.Resource("site.s.node.late") == nil || after.Serial != got.Serial {
			t.Fatalf("cut at %d: the appended record was lost (serial %d, want %d)", cut, after.Serial, got.Serial)
		}
	}
}

// TestGroupCommit: changes made concurrently share fsyncs, and the
// journal holds every one of them in the order they were made.
func TestGroupCommit(t *testing.T) {
	store := &Store{Path: filepath.Join(t.TempDir(), "state.json")}
	s := NewState()
	if err := store.Write(s); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Store: store}
	e.resetCommits()
	const n = 400
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			errs <- e.putResource(s, &ResourceState{Address: fmt.Sprintf("site.s.pool.p.node[%d]", i), Status: StatusReady, Kind: KindInstance})
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if b := e.CommitBatches(); b >= n {
		t.Errorf("%d changes took %d fsyncs: no group commit", n, b)
	} else {
		t.Logf("%d changes in %d journal writes", n, b)
	}
	store.Close()
	got, err := (&Store{Path: store.Path}).Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Resources) != n || got.Serial != s.Serial {
		t.Errorf("recovered %d resources at serial %d, want %d at %d", len(got.Resources), got.Serial, n, s.Serial)
	}
}

// TestJournalCompaction: past CompactBytes (and twice the snapshot) the
// journal is folded into a new snapshot mid-operation, and the total
// bytes written stay proportional to the changes.
func TestJournalCompaction(t *testing.T) {
	store := &Store{Path: filepath.Join(t.TempDir(), "state.json"), CompactBytes: 64 << 10}
	s := NewState()
	if err := store.Write(s); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Store: store}
	e.resetCommits()
	var journaled int64
	for i := 0; i < 3000; i++ {
		r := &ResourceState{Address: fmt.Sprintf("site.s.pool.p.node[%d]", i), Status: StatusReady, Kind: KindInstance, Attrs: Attrs{"cpus": int64(2), "image": "debian-12"}}
		b, _ := appendFrame(nil, &Record{Serial: 1, Lineage: s.Lineage, Op: OpPut, Resource: r})
		journaled += int64(len(b))
		if err := e.putResource(s, r); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := os.Stat(store.Path)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Size() < 64<<10 {
		t.Errorf("no compaction: snapshot is %d bytes", snap.Size())
	}
	if js := store.JournalSize(); js >= store.compactAt() {
		t.Errorf("journal %d bytes, past the compaction size %d", js, store.compactAt())
	}
	// Snapshots grow with the state; each is written when the journal
	// reaches twice the last one, so their sum is bounded by the journal's.
	if w := store.BytesWritten(); w > 6*journaled {
		t.Errorf("wrote %d bytes for %d bytes of records: not O(n)", w, journaled)
	} else {
		t.Logf("wrote %d bytes for %d bytes of records", w, journaled)
	}
	store.Close()
	got, err := (&Store{Path: store.Path}).Load()
	if err != nil || len(got.Resources) != 3000 {
		t.Fatalf("after compaction: %v, %d resources", err, len(got.Resources))
	}
}
