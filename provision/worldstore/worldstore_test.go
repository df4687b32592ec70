package worldstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type hdr struct {
	Next int `json:"next,omitempty"`
}

type rec struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

func open(path string, trackAll bool) *Store[hdr, rec] {
	return Open(Config[hdr, rec]{
		Path: path, Name: "test world", Version: 1, TrackAll: trackAll,
		ID:              func(r *rec) string { return r.ID },
		RemoveWhenEmpty: true, IsEmpty: func(h hdr) bool { return h.Next == 0 },
		CompactBytes: 4 << 10,
	})
}

func snapshot(t *testing.T, s *Store[hdr, rec]) (serial int64, h hdr, recs []rec) {
	t.Helper()
	if err := s.View(func(w *World[hdr, rec]) error {
		serial, h = w.Serial, w.Header
		for _, r := range w.Records {
			recs = append(recs, *r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return
}

func add(s *Store[hdr, rec], id string) error {
	return s.Update(func(w *World[hdr, rec]) (bool, error) {
		w.Records = append(w.Records, &rec{ID: id, State: "pending"})
		w.Header.Next++
		return true, nil
	})
}

func setState(s *Store[hdr, rec], id, state string, track bool) error {
	return s.Update(func(w *World[hdr, rec]) (bool, error) {
		for _, r := range w.Records {
			if r.ID == id {
				r.State = state
				if !track {
					w.Changed(r)
				}
				return true, nil
			}
		}
		return false, errors.New("no " + id)
	})
}

// TestStoreModes: with explicit Changed marks and with TrackAll, another
// process (a second Store on the same file) sees every change, through
// the journal and through compactions.
func TestStoreModes(t *testing.T) {
	for _, track := range []bool{false, true} {
		t.Run(fmt.Sprintf("trackAll=%v", track), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w", "world.json")
			a, b := open(path, track), open(path, track)
			for i := 0; i < 200; i++ {
				writer := a
				if i%3 == 0 {
					writer = b // both "processes" write
				}
				id := fmt.Sprintf("r%03d", i)
				if err := add(writer, id); err != nil {
					t.Fatal(err)
				}
				if err := setState(writer, id, "running", track); err != nil {
					t.Fatal(err)
				}
				if i%10 == 0 {
					if err := writer.Update(func(w *World[hdr, rec]) (bool, error) {
						writer.Remove(w, fmt.Sprintf("r%03d", i/2))
						return true, nil
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
			fresh := open(path, track)
			for _, s := range []*Store[hdr, rec]{a, b, fresh} {
				serial, h, recs := snapshot(t, s)
				if h.Next != 200 || len(recs) != 180 {
					t.Fatalf("serial %d: header %+v, %d records; want next 200, 180 records", serial, h, len(recs))
				}
				for _, r := range recs {
					if r.State != "running" {
						t.Fatalf("%s is %s", r.ID, r.State)
					}
				}
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("snapshot: %v %v", fi, err)
			}
		})
	}
}

// TestTornJournal: a frame cut anywhere is ignored by readers and cut
// off by the next writer.
func TestTornJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "world.json")
	s := open(path, false)
	for i := 0; i < 3; i++ {
		if err := add(s, fmt.Sprint("r", i)); err != nil {
			t.Fatal(err)
		}
	}
	full, err := os.ReadFile(path + ".journal")
	if err != nil || len(full) == 0 {
		t.Fatalf("journal: %v, %d bytes", err, len(full))
	}
	for cut := 0; cut <= len(full); cut += 3 {
		os.WriteFile(path+".journal", full[:cut], 0o600)
		r := open(path, false)
		_, _, recs := snapshot(t, r)
		if len(recs) < 1 || len(recs) > 3 {
			t.Fatalf("cut %d: %d records", cut, len(recs))
		}
		if err := add(r, "late"); err != nil {
			t.Fatal(err)
		}
		_, _, again := snapshot(t, open(path, false))
		if len(again) != len(recs)+1 || again[len(again)-1].ID != "late" {
			t.Fatalf("cut %d: after an append: %v (before %v)", cut, again, recs)
		}
		os.WriteFile(path+".journal", full, 0o600)
	}
}

// TestChangedWithError: an update that reports a change and an error
// records the change (a half-made machine) and returns the error; one
// that reports no change leaves nothing behind, even what fn touched.
func TestChangedWithError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "world.json")
	s := open(path, false)
	add(s, "keep")
	boom := errors.New("boom")
	if err := s.Update(func(w *World[hdr, rec]) (bool, error) {
		w.Records = append(w.Records, &rec{ID: "half", State: "creating"})
		return true, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if err := s.Update(func(w *World[hdr, rec]) (bool, error) {
		w.Records[0].State = "scribbled"
		return false, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	for _, st := range []*Store[hdr, rec]{s, open(path, false)} {
		_, _, recs := snapshot(t, st)
		if len(recs) != 2 || recs[1].ID != "half" || recs[0].State != "pending" {
			t.Errorf("records = %v", recs)
		}
	}
}

// TestRemoveWhenEmpty: an empty world leaves no files.
func TestRemoveWhenEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	path := filepath.Join(dir, "world.json")
	s := open(path, true)
	add(s, "a")
	if err := s.Update(func(w *World[hdr, rec]) (bool, error) {
		s.Remove(w, "a")
		w.Header.Next = 0
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("world directory left behind: %v", err)
	}
	if _, _, recs := snapshot(t, open(path, true)); len(recs) != 0 {
		t.Errorf("records = %v", recs)
	}
}

// TestBytesWritten: n updates write O(n) bytes, not O(n²).
func TestBytesWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "world.json")
	var per [2]float64
	for k, n := range []int{500, 2000} {
		s := open(path+fmt.Sprint(n), false)
		for i := 0; i < n; i++ {
			if err := add(s, fmt.Sprintf("r%05d", i)); err != nil {
				t.Fatal(err)
			}
		}
		per[k] = float64(s.BytesWritten()) / float64(n)
	}
	t.Logf("bytes per update: %.0f at 500, %.0f at 2000", per[0], per[1])
	if per[1] > 2*per[0] {
		t.Errorf("bytes per update grow with the world: %.0f at 500, %.0f at 2000", per[0], per[1])
	}
}

func TestCorruptJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "world.json")
	s := open(path, false)
	add(s, "a")
	add(s, "b")
	add(s, "c")
	b, _ := os.ReadFile(path + ".journal")
	b[10] ^= 0xff // inside the first frame, with frames after it
	os.WriteFile(path+".journal", b, 0o600)
	err := open(path, false).View(func(*World[hdr, rec]) error { return nil })
	if err == nil || !strings.Contains(err.Error(), path+".journal") || !strings.Contains(err.Error(), "byte 0") {
		t.Errorf("err = %v, want one naming the journal and the offset", err)
	}
}

func FuzzJournal(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.json")
	s := open(path, false)
	add(s, "a")
	setState(s, "a", "running", false)
	s.Update(func(w *World[hdr, rec]) (bool, error) { s.Remove(w, "a"); w.Header.Next = 9; return true, nil })
	seed, _ := os.ReadFile(path + ".journal")
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Add([]byte(`{"serial":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "world.json")
		if err := os.WriteFile(p+".journal", b, 0o600); err != nil {
			t.Fatal(err)
		}
		st := open(p, false)
		err := st.View(func(w *World[hdr, rec]) error { return nil })
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		// Whatever loads can be written on and loaded again.
		if err := add(st, "z"); err != nil {
			t.Fatalf("append after load: %v", err)
		}
		_, _, recs := snapshot(t, open(p, false))
		if len(recs) == 0 || recs[len(recs)-1].ID != "z" {
			t.Fatalf("after append: %v", recs)
		}
	})
}
