// Package worldstore keeps a provider's world — a small header and a list
// of records with IDs — on disk as a snapshot file plus a journal, the
// way the state is kept (provision/journal.go): each change is one frame
// appended and fsynced, and the snapshot is rewritten only when the
// journal has grown past twice its size. The sim and local providers
// share it; any number of processes may share one world, each change is
// made under an flock, and reads need no lock.
package worldstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hvctl/hvctl/provision"
)

// World is the world as the store holds it. Records keep their order.
// Between Update calls it must be treated as read-only.
type World[H, R any] struct {
	Serial  int64
	Header  H
	Records []*R

	raw   map[*R][]byte // each record's JSON as last stored
	dirty map[*R]bool   // marked by Changed
	gone  []string      // IDs removed by Remove
	// index maps IDs to positions in Records for the first indexed
	// records; records appended since are indexed on the next lookup,
	// and a removal drops it.
	index   map[string]int
	indexed int
	idOf    func(*R) string
}

// Find returns the record with ID id, or nil, in O(1) (amortised).
func (w *World[H, R]) Find(id string) *R {
	if i := w.pos(id); i >= 0 {
		return w.Records[i]
	}
	return nil
}

// pos returns the position of the record with ID id, or -1.
func (w *World[H, R]) pos(id string) int {
	if w.idOf == nil {
		return -1
	}
	if w.index == nil || w.indexed > len(w.Records) {
		w.index, w.indexed = make(map[string]int, len(w.Records)), 0
	}
	for ; w.indexed < len(w.Records); w.indexed++ {
		w.index[w.idOf(w.Records[w.indexed])] = w.indexed
	}
	i, ok := w.index[id]
	if !ok {
		return -1
	}
	if i < len(w.Records) && w.idOf(w.Records[i]) == id {
		return i
	}
	// Records moved behind the index's back: look, and rebuild the
	// index on the next call.
	w.index = nil
	for i, r := range w.Records {
		if w.idOf(r) == id {
			return i
		}
	}
	return -1
}

// Changed marks r (a record of w) as modified, so the update that
// changed it writes it. Callers that did not set Config.TrackAll must
// call it for every record they modify in place; records appended to
// Records are found without it.
func (w *World[H, R]) Changed(r *R) {
	if w.dirty == nil {
		w.dirty = map[*R]bool{}
	}
	w.dirty[r] = true
}

// Remove drops the record with ID id (found with cfg.ID).
func (w *World[H, R]) remove(id string, idOf func(*R) string) {
	out := w.Records[:0]
	for _, r := range w.Records {
		if idOf(r) != id {
			out = append(out, r)
		} else {
			delete(w.raw, r)
		}
	}
	clear(w.Records[len(out):])
	w.Records = out
	w.gone = append(w.gone, id)
	w.index = nil
}

// Config describes a world file.
type Config[H, R any] struct {
	// Path is the snapshot file; the journal is Path + ".journal", the
	// lock Path + ".lock".
	Path string
	// Name is how errors name the world ("sim world").
	Name string
	// Version is the snapshot's format version.
	Version int
	// ID returns a record's ID, unique in the world.
	ID func(*R) string
	// Check validates a decoded world; it names problems with the file.
	Check func(file string, w *World[H, R]) error
	// TrackAll compares every record (and the header) with its stored
	// JSON after each update instead of relying on Changed: simpler for
	// callers, O(n) per update, for small worlds.
	TrackAll bool
	// RemoveWhenEmpty removes the files (and their directory, when it
	// is left empty) once the world holds nothing: no records and a
	// header that IsEmpty says is empty.
	RemoveWhenEmpty bool
	IsEmpty         func(H) bool
	// CompactBytes is the least journal size that triggers compaction
	// (default 1 MiB); it also waits for twice the snapshot's size.
	CompactBytes int64
}

// Store is a world on disk with a cache of its decoded form.
type Store[H, R any] struct {
	cfg Config[H, R]

	mu    sync.Mutex
	w     *World[H, R] // nil until loaded
	snap  fileID       // the snapshot the cache is built on
	jOff  int64        // bytes of the journal applied to the cache
	sSize int64        // snapshot size
	// Written counts bytes written (snapshots and journal).
	written int64
}

type fileID struct {
	dev, ino uint64
	size     int64
	ok       bool
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileID{}, nil
	}
	if err != nil {
		return fileID{}, err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	id := fileID{size: fi.Size(), ok: true}
	if st != nil {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id, nil
}

// Open returns the store of the world at cfg.Path (not read yet).
func Open[H, R any](cfg Config[H, R]) *Store[H, R] {
	if cfg.Name == "" {
		cfg.Name = "world"
	}
	return &Store[H, R]{cfg: cfg}
}

// Path is the snapshot file.
func (s *Store[H, R]) Path() string { return s.cfg.Path }

func (s *Store[H, R]) journalPath() string { return s.cfg.Path + ".journal" }
func (s *Store[H, R]) lockPath() string    { return s.cfg.Path + ".lock" }

// BytesWritten counts the bytes this Store wrote to disk.
func (s *Store[H, R]) BytesWritten() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// View runs fn on the current world, read-only, without the file lock.
func (s *Store[H, R]) View(fn func(w *World[H, R]) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return err
	}
	return fn(s.w)
}

// refresh brings the cache up to date with the files. Called with s.mu
// held for writing. Without the file lock a writer may be appending or
// compacting meanwhile: anything inconsistent falls back to a full
// reload, which reads the journal before the snapshot.
func (s *Store[H, R]) refresh() error {
	for attempt := 0; ; attempt++ {
		err := s.refreshOnce()
		if err == nil || !errors.Is(err, errRace) || attempt >= 5 {
			if errors.Is(err, errRace) {
				return fmt.Errorf("%s %s: %w", s.cfg.Name, s.cfg.Path, err)
			}
			return err
		}
		s.w = nil
	}
}

var errRace = errors.New("the journal does not follow the snapshot (changed while read)")

func (s *Store[H, R]) refreshOnce() error {
	if s.w != nil {
		id, err := statID(s.cfg.Path)
		if err != nil {
			return fmt.Errorf("read %s: %w", s.cfg.Name, err)
		}
		if id == s.snap {
			jid, err := statID(s.journalPath())
			if err != nil {
				return fmt.Errorf("read %s: %w", s.cfg.Name, err)
			}
			switch {
			case jid.size == s.jOff:
				return nil
			case jid.size > s.jOff:
				if err := s.readTail(); err == nil {
					return nil
				}
			}
		}
		s.w = nil
	}
	return s.reload()
}

// readTail applies the journal's bytes after jOff.
func (s *Store[H, R]) readTail() error {
	f, err := os.Open(s.journalPath())
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(s.jOff, io.SeekStart); err != nil {
		return err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	payloads, _, valid, err := provision.SplitFrames(s.journalPath(), b)
	if err != nil {
		return err
	}
	for _, p := range payloads {
		e, err := decodeEntry(p)
		if err != nil || e.Serial != s.w.Serial+1 {
			return errRace
		}
		if err := s.apply(s.w, e); err != nil {
			return err
		}
	}
	s.jOff += int64(valid)
	return nil
}

// entry is one journal frame: the whole of one update.
type entry struct {
	Serial int64             `json:"serial"`
	Header json.RawMessage   `json:"header,omitempty"`
	Puts   []json.RawMessage `json:"puts,omitempty"`
	Dels   []string          `json:"dels,omitempty"`
}

func decodeEntry(p []byte) (*entry, error) {
	var e entry
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	if e.Serial <= 0 {
		return nil, fmt.Errorf("serial %d", e.Serial)
	}
	return &e, nil
}

func (s *Store[H, R]) apply(w *World[H, R], e *entry) error {
	if len(e.Header) > 0 {
		var h H
		if err := unmarshal(e.Header, &h); err != nil {
			return fmt.Errorf("header: %w", err)
		}
		w.Header = h
	}
	if len(e.Dels) > 0 {
		gone := map[string]bool{}
		for _, id := range e.Dels {
			gone[id] = true
		}
		out := w.Records[:0]
		for _, r := range w.Records {
			if !gone[s.cfg.ID(r)] {
				out = append(out, r)
			} else {
				delete(w.raw, r)
			}
		}
		clear(w.Records[len(out):])
		w.Records = out
		w.index = nil
	}
	if len(e.Puts) > 0 {
		for _, raw := range e.Puts {
			r := new(R)
			if err := unmarshal(raw, r); err != nil {
				return fmt.Errorf("record: %w", err)
			}
			id := s.cfg.ID(r)
			if id == "" {
				return errors.New("record without an id")
			}
			if i := w.pos(id); i >= 0 {
				delete(w.raw, w.Records[i])
				w.Records[i] = r
			} else {
				w.Records = append(w.Records, r)
			}
			w.raw[r] = raw
		}
	}
	w.Serial = e.Serial
	return nil
}

func unmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// reload reads the journal, then the snapshot, and replays.
func (s *Store[H, R]) reload() error {
	jb, err := os.ReadFile(s.journalPath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s journal: %w", s.cfg.Name, err)
	}
	id, err := statID(s.cfg.Path)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.cfg.Name, err)
	}
	b, err := os.ReadFile(s.cfg.Path)
	var w *World[H, R]
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w = &World[H, R]{raw: map[*R][]byte{}, idOf: s.cfg.ID}
		id = fileID{}
	case err != nil:
		return fmt.Errorf("read %s: %w", s.cfg.Name, err)
	default:
		if w, err = s.Decode(b); err != nil {
			return err
		}
		if id.size != int64(len(b)) {
			return errRace
		}
	}
	payloads, offsets, valid, err := provision.SplitFrames(s.journalPath(), jb)
	if err != nil {
		return fmt.Errorf("%s is corrupt: %w", s.cfg.Name, err)
	}
	for i, p := range payloads {
		e, err := decodeEntry(p)
		if err != nil {
			return fmt.Errorf("%s journal %s is corrupt: record at byte %d: %v", s.cfg.Name, s.journalPath(), offsets[i], err)
		}
		if e.Serial <= w.Serial {
			continue
		}
		if e.Serial != w.Serial+1 {
			return errRace
		}
		if err := s.apply(w, e); err != nil {
			return fmt.Errorf("%s journal %s is corrupt: record at byte %d: %v", s.cfg.Name, s.journalPath(), offsets[i], err)
		}
	}
	if s.cfg.Check != nil {
		if err := s.cfg.Check(s.cfg.Path, w); err != nil {
			return err
		}
	}
	s.w, s.snap, s.jOff, s.sSize = w, id, int64(valid), id.size
	return nil
}

// Decode parses a snapshot: {"version":V,"serial":N, header fields...,
// "resources":[records]}.
func (s *Store[H, R]) Decode(b []byte) (*World[H, R], error) {
	name := s.cfg.Path
	var file struct {
		Version   int               `json:"version"`
		Serial    int64             `json:"serial"`
		Resources []json.RawMessage `json:"resources"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("%s %s is corrupt: %w", s.cfg.Name, name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s %s is corrupt: trailing data after the JSON object", s.cfg.Name, name)
	}
	if file.Version != s.cfg.Version {
		return nil, fmt.Errorf("%s %s: unsupported version %d (this hvctl reads version %d)", s.cfg.Name, name, file.Version, s.cfg.Version)
	}
	w := &World[H, R]{Serial: file.Serial, Records: make([]*R, 0, len(file.Resources)), raw: make(map[*R][]byte, len(file.Resources)), idOf: s.cfg.ID}
	if err := unmarshal(b, &w.Header); err != nil {
		return nil, fmt.Errorf("%s %s is corrupt: %w", s.cfg.Name, name, err)
	}
	for i, raw := range file.Resources {
		if string(raw) == "null" {
			return nil, fmt.Errorf("%s %s is corrupt: resource %d is null", s.cfg.Name, name, i)
		}
		r := new(R)
		if err := unmarshal(raw, r); err != nil {
			return nil, fmt.Errorf("%s %s is corrupt: resource %d: %w", s.cfg.Name, name, i, err)
		}
		if s.cfg.ID(r) == "" {
			return nil, fmt.Errorf("%s %s is corrupt: resource %d has no id", s.cfg.Name, name, i)
		}
		w.Records = append(w.Records, r)
		w.raw[r] = raw
	}
	return w, nil
}

// Encode writes a snapshot, one record per line: compact, yet diffable.
func (s *Store[H, R]) Encode(w *World[H, R]) ([]byte, error) {
	hb, err := json.Marshal(w.Header)
	if err != nil {
		return nil, fmt.Errorf("encode %s header: %w", s.cfg.Name, err)
	}
	var buf bytes.Buffer
	size := 64 + len(hb)
	for _, r := range w.Records {
		size += len(w.raw[r]) + 2
	}
	buf.Grow(size + 1024)
	fmt.Fprintf(&buf, "{\"version\":%d,\"serial\":%d,", s.cfg.Version, w.Serial)
	if hb = bytes.TrimSpace(hb); len(hb) > 2 && hb[0] == '{' {
		buf.Write(hb[1 : len(hb)-1])
		buf.WriteByte(',')
	}
	buf.WriteString("\"resources\":[")
	for i, r := range w.Records {
		b := w.raw[r]
		if b == nil {
			if b, err = json.Marshal(r); err != nil {
				return nil, fmt.Errorf("encode %s record %s: %w", s.cfg.Name, s.cfg.ID(r), err)
			}
			if w.raw == nil {
				w.raw = map[*R][]byte{}
			}
			w.raw[r] = b
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n")
		buf.Write(b)
	}
	buf.WriteString("\n]}\n")
	return buf.Bytes(), nil
}

// Update runs fn on the current world under the world's exclusive flock
// and, when fn reports a change, writes what changed as one journal
// frame (fsynced) — also when fn returns an error with it: a change fn
// made before failing (a half-made machine) must be recorded. fn may
// modify w: records in place (then call w.Changed, unless TrackAll),
// append to w.Records, remove with s.Remove. fn must not keep w.
func (s *Store[H, R]) Update(fn func(w *World[H, R]) (changed bool, err error)) error {
	dir := filepath.Dir(s.cfg.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", s.cfg.Name, err)
	}
	f, err := os.OpenFile(s.lockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", s.cfg.Name, err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", s.cfg.Name, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeStaleTemps()
	if err := s.refresh(); err != nil {
		return err
	}
	w := s.w
	n0 := len(w.Records)
	var before map[string][]byte
	var hb0 []byte
	if s.cfg.TrackAll {
		before = make(map[string][]byte, len(w.Records))
		for _, r := range w.Records {
			before[s.cfg.ID(r)] = w.raw[r]
		}
	}
	hb0, _ = json.Marshal(w.Header)
	w.dirty, w.gone = nil, nil
	changed, ferr := fn(w)
	if s.cfg.TrackAll {
		w.index = nil // fn may have moved records around
	}
	if !changed {
		if ferr != nil {
			s.w = nil // fn may have left changes behind: read again next time
		}
		return ferr
	}
	e, err := s.diff(w, n0, before, hb0)
	if err == nil {
		err = s.write(w, e)
	}
	if err != nil {
		s.w = nil
		return errors.Join(ferr, fmt.Errorf("write %s: %w", s.cfg.Name, err))
	}
	return ferr
}

// Remove drops the record with ID id from w (within Update).
func (s *Store[H, R]) Remove(w *World[H, R], id string) { w.remove(id, s.cfg.ID) }

// diff builds the journal entry of one update.
func (s *Store[H, R]) diff(w *World[H, R], n0 int, before map[string][]byte, hb0 []byte) (*entry, error) {
	e := &entry{Serial: w.Serial + 1}
	hb, err := json.Marshal(w.Header)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(hb, hb0) {
		e.Header = hb
	}
	put := func(r *R) error {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode record %s: %w", s.cfg.ID(r), err)
		}
		w.raw[r] = b
		e.Puts = append(e.Puts, b)
		return nil
	}
	if s.cfg.TrackAll {
		now := make(map[string]bool, len(w.Records))
		for _, r := range w.Records {
			id := s.cfg.ID(r)
			now[id] = true
			b, err := json.Marshal(r)
			if err != nil {
				return nil, fmt.Errorf("encode record %s: %w", id, err)
			}
			if old, ok := before[id]; !ok || !bytes.Equal(old, b) {
				e.Puts = append(e.Puts, b)
			}
			w.raw[r] = b
		}
		for id := range before {
			if !now[id] {
				e.Dels = append(e.Dels, id)
			}
		}
		return e, nil
	}
	e.Dels = w.gone
	if len(w.gone) > 0 {
		// Positions moved: look for changed records everywhere.
		for _, r := range w.Records {
			if w.dirty[r] || w.raw[r] == nil {
				if err := put(r); err != nil {
					return nil, err
				}
			}
		}
		return e, nil
	}
	added := w.Records[min(n0, len(w.Records)):]
	seen := make(map[*R]bool, len(added))
	for _, r := range added {
		seen[r] = true
		if err := put(r); err != nil {
			return nil, err
		}
	}
	for r := range w.dirty {
		if !seen[r] {
			if err := put(r); err != nil {
				return nil, err
			}
		}
	}
	return e, nil
}

// write appends e (or compacts) and advances the cache to it.
func (s *Store[H, R]) write(w *World[H, R], e *entry) error {
	w.Serial = e.Serial
	w.dirty, w.gone = nil, nil
	if s.cfg.RemoveWhenEmpty && len(w.Records) == 0 && (s.cfg.IsEmpty == nil || s.cfg.IsEmpty(w.Header)) {
		for _, p := range []string{s.cfg.Path, s.journalPath()} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		// Nothing is left: leave no file behind either. The lock file
		// goes while held; callers serialise operations on one world
		// some other way (the engine's state lock).
		os.Remove(s.lockPath())
		os.Remove(filepath.Dir(s.cfg.Path))
		s.w, s.snap, s.jOff, s.sSize = w, fileID{}, 0, 0
		return nil
	}
	p, err := json.Marshal(e)
	if err != nil {
		return err
	}
	limit := s.cfg.CompactBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	if !s.snap.ok || s.jOff+int64(len(p)) > max(limit, 2*s.sSize) {
		return s.compact(w)
	}
	jf, err := os.OpenFile(s.journalPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer jf.Close()
	frame := provision.AppendFrame(nil, p)
	// Cut off a torn tail a killed writer left, then append.
	if err := jf.Truncate(s.jOff); err != nil {
		return err
	}
	if _, err := jf.WriteAt(frame, s.jOff); err != nil {
		return err
	}
	if err := jf.Sync(); err != nil {
		return err
	}
	s.jOff += int64(len(frame))
	s.written += int64(len(frame))
	return nil
}

// compact writes w as the snapshot and empties the journal.
func (s *Store[H, R]) compact(w *World[H, R]) error {
	b, err := s.Encode(w)
	if err != nil {
		return err
	}
	if err := provision.WriteFileAtomic(s.cfg.Path, b); err != nil {
		return err
	}
	s.written += int64(len(b))
	if err := os.Truncate(s.journalPath(), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	id, err := statID(s.cfg.Path)
	if err != nil {
		return err
	}
	s.w, s.snap, s.jOff, s.sSize = w, id, 0, int64(len(b))
	return nil
}

// removeStaleTemps removes temp files left by a writer killed between
// creating and renaming one. Only the lock holder writes, so under the
// lock every temp file is stale.
func (s *Store[H, R]) removeStaleTemps() {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(s.cfg.Path), "."+filepath.Base(s.cfg.Path)+".tmp-*"))
	for _, f := range stale {
		os.Remove(f)
	}
}
