package provision

import (
	"crypto/rand"

	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hvctl/hvctl/provision/statecrypt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// StateVersion is the state file format version.
const StateVersion = 1

// Resource statuses.
const (
	// StatusPending records an intent: Create was (or is about to be)
	// called with the resource's token but its result was not recorded.
	// The next refresh resolves it by token, so a crash at any moment
	// neither loses nor duplicates the machine.
	StatusPending = "pending"
	// StatusCreated: Create returned; the resource may still be booting.
	StatusCreated = "created"
	// StatusReady: the resource is usable.
	StatusReady = "ready"
	// StatusTainted: the resource exists but failed (boot failure); the
	// next plan replaces it.
	StatusTainted = "tainted"
)

// State is what hvctl knows about the infrastructure it made.
type State struct {
	Version   int              `json:"version"`
	Serial    uint64           `json:"serial"`
	Lineage   string           `json:"lineage"`
	Cluster   string           `json:"cluster,omitempty"`
	Resources []*ResourceState `json:"resources"`
	// Generations counts, per address, how many times a resource at that
	// address was destroyed; it goes into the client token so a new
	// resource at an old address never matches the old one's token.
	Generations map[string]int `json:"generations,omitempty"`
	// Data holds other subsystems' records (overlay addresses, cluster
	// tokens), keyed by subsystem.
	Data map[string]json.RawMessage `json:"data,omitempty"`
}

// ResourceState is one resource in the state.
type ResourceState struct {
	Address  string    `json:"address"`
	Type     string    `json:"type"`
	Kind     Kind      `json:"kind"`
	Provider string    `json:"provider"` // provider.TYPE.NAME
	ID       string    `json:"id,omitempty"`
	Status   string    `json:"status"`
	Token    string    `json:"client_token"`
	Attrs    Attrs     `json:"attrs,omitempty"`
	Deps     []string  `json:"depends_on,omitempty"`
	Created  time.Time `json:"created_at,omitzero"`
}

// NewState returns an empty state with a fresh lineage.
func NewState() *State {
	return &State{Version: StateVersion, Lineage: newLineage()}
}

func newLineage() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Resources are kept sorted by address (natural order), so lookups are
// binary searches.

// search returns the index where addr is or would be.
func (s *State) search(addr string) int {
	return sort.Search(len(s.Resources), func(i int) bool { return !lessAddr(s.Resources[i].Address, addr) })
}

// Resource returns the resource at addr, or nil.
func (s *State) Resource(addr string) *ResourceState {
	if i := s.search(addr); i < len(s.Resources) && s.Resources[i].Address == addr {
		return s.Resources[i]
	}
	return nil
}

// put inserts or replaces a resource, keeping resources sorted.
func (s *State) put(r *ResourceState) {
	i := s.search(r.Address)
	if i < len(s.Resources) && s.Resources[i].Address == r.Address {
		s.Resources[i] = r
		return
	}
	s.Resources = append(s.Resources, nil)
	copy(s.Resources[i+1:], s.Resources[i:])
	s.Resources[i] = r
}

// remove drops a resource and bumps its address's generation.
func (s *State) remove(addr string) {
	if i := s.search(addr); i < len(s.Resources) && s.Resources[i].Address == addr {
		s.Resources = append(s.Resources[:i], s.Resources[i+1:]...)
	}
	if s.Generations == nil {
		s.Generations = map[string]int{}
	}
	s.Generations[addr]++
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	var c State
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

// DecodeState parses a state file's bytes; name is used in errors.
func DecodeState(name string, b []byte) (*State, error) {
	var s State
	dec := json.NewDecoder(bytesReader(b))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("state file %s is not valid JSON: %w; restore it from %s.backup or fix it by hand", name, err, name)
	}
	if s.Version != StateVersion {
		return nil, fmt.Errorf("state file %s has format version %d; this hvctl reads version %d", name, s.Version, StateVersion)
	}
	if s.Lineage == "" {
		return nil, fmt.Errorf("state file %s has no lineage", name)
	}
	seen := map[string]bool{}
	for i, r := range s.Resources {
		if r == nil || r.Address == "" {
			return nil, fmt.Errorf("state file %s: resources[%d] has no address", name, i)
		}
		if seen[r.Address] {
			return nil, fmt.Errorf("state file %s: resource %s appears twice", name, r.Address)
		}
		seen[r.Address] = true
		switch r.Status {
		case StatusPending, StatusCreated, StatusReady, StatusTainted:
		default:
			return nil, fmt.Errorf("state file %s: resource %s has unknown status %q", name, r.Address, r.Status)
		}
		r.Attrs = normalizeAttrs(r.Attrs)
	}
	sort.SliceStable(s.Resources, func(i, j int) bool { return lessAddr(s.Resources[i].Address, s.Resources[j].Address) })
	return &s, nil
}

// Store reads and writes one state: the state file (a snapshot) and its
// journal (PATH.journal), the resource changes made since the snapshot
// (see journal.go). Load returns snapshot + journal; Write writes a new
// snapshot and empties the journal.
type Store struct {
	// Path is the local state file; with a Backend it only places the
	// state directory (agent logs, provider worlds) beside the template.
	Path string
	// Backend, when set, holds the snapshot, journal and lock instead
	// of the files at Path.
	Backend Backend
	// Sealer, when set, encrypts everything the Store writes; reading
	// plaintext state still works (it is encrypted at the next write).
	Sealer *statecrypt.Sealer
	// CompactBytes is the journal size at which the engine compacts the
	// journal into a new snapshot during an operation; 0 means 16 MiB.
	// Compaction also waits for the journal to reach twice the last
	// snapshot's size, so that bytes written stay O(changes).
	CompactBytes int64

	mu       sync.Mutex
	jf       *os.File // journal open for appends, or nil
	jsize    int64    // its valid length
	snapSize int64    // size of the last snapshot written
	written  atomic.Int64
	head     uint64 // with a Backend: the stored head serial last seen
	exists   bool   // with a Backend: a snapshot is stored
}

// Dir is the directory of the state file.
func (st *Store) Dir() string { return filepath.Dir(st.Path) }

// Load reads the state: the snapshot, then the journal's records after
// it. A missing file gives a fresh empty state. The journal is read
// first: a writer compacting meanwhile only makes the snapshot newer,
// and a snapshot always holds every record journaled before it.
func (st *Store) Load() (*State, error) {
	if st.Backend != nil {
		return st.loadBackend()
	}
	recs, err := st.readJournal()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(st.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return NewState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	s, err := st.decodeSnapshot(st.Path, b)
	if err != nil {
		return nil, err
	}
	if err := replay(st.journalPath(), s, recs); err != nil {
		return nil, err
	}
	return s, nil
}

// loadBackend is Load from st.Backend.
func (st *Store) loadBackend() (*State, error) {
	snap, jb, head, err := st.Backend.Load(st.ctx())
	if err != nil {
		return nil, fmt.Errorf("read state from %s: %w", st.Backend.Describe(), err)
	}
	st.mu.Lock()
	st.head, st.exists, st.jsize, st.snapSize = head, snap != nil, int64(len(jb)), int64(len(snap))
	st.mu.Unlock()
	if snap == nil {
		return NewState(), nil
	}
	name := st.Backend.Describe()
	s, err := st.decodeSnapshot(name, snap)
	if err != nil {
		return nil, err
	}
	recs, _, err := st.decodeJournal(name+" journal", jb)
	if err != nil {
		return nil, err
	}
	if err := replay(name+" journal", s, recs); err != nil {
		return nil, err
	}
	return s, nil
}

// decodeSnapshot opens (when sealed) and decodes a snapshot.
func (st *Store) decodeSnapshot(name string, b []byte) (*State, error) {
	b, err := st.open(name, b)
	if err != nil {
		return nil, err
	}
	return DecodeState(name, b)
}

// open returns the plaintext of b: b itself when it is not sealed.
func (st *Store) open(name string, b []byte) ([]byte, error) {
	if !statecrypt.IsSealed(b) {
		return b, nil
	}
	if st.Sealer == nil {
		return nil, fmt.Errorf("the state in %s is encrypted, and no passphrase is configured: add encryption { passphrase = ... } or { key_env = \"VAR\" } to the state block", name)
	}
	p, err := st.Sealer.Open(b)
	if errors.Is(err, statecrypt.ErrWrongPassphrase) {
		return nil, fmt.Errorf("cannot decrypt the state in %s: %w. Nothing was changed; check the passphrase", name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt the state in %s: %w", name, err)
	}
	return p, nil
}

// seal encrypts b when the Store has a Sealer.
func (st *Store) seal(b []byte) ([]byte, error) {
	if st.Sealer == nil {
		return b, nil
	}
	return st.Sealer.Seal(b)
}

// Exists reports whether the state file exists.
func (st *Store) Exists() bool {
	if st.Backend != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.exists
	}
	_, err := os.Stat(st.Path)
	return err == nil
}

// Write bumps the serial and writes the state atomically as a new
// snapshot: the previous file is kept as PATH.backup, the new one goes
// to a temp file that is fsynced and renamed over PATH, the directory is
// fsynced, and then the journal is emptied. Mode 0600.
func (st *Store) Write(s *State) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	s.Serial++
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	b = append(b, '\n')
	if b, err = st.seal(b); err != nil {
		return fmt.Errorf("encrypt state: %w", err)
	}
	if st.Backend != nil {
		if err := st.Backend.WriteSnapshot(st.ctx(), b, s.Serial, st.head); err != nil {
			s.Serial--
			return fmt.Errorf("write state to %s: %w", st.Backend.Describe(), err)
		}
		st.head, st.exists, st.jsize, st.snapSize = s.Serial, true, 0, int64(len(b))
		st.written.Add(int64(len(b)))
		return nil
	}
	if err := st.writeSnapshot(b); err != nil {
		return err
	}
	if err := st.resetJournal(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// writeSnapshot writes the state file's bytes; called with st.mu held.
func (st *Store) writeSnapshot(b []byte) error {
	if err := os.MkdirAll(st.Dir(), 0o700); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if old, err := os.ReadFile(st.Path); err == nil {
		if err := writeFileAtomic(st.Path+".backup", old); err != nil {
			return fmt.Errorf("write state backup: %w", err)
		}
		st.written.Add(int64(len(old)))
	}
	if err := writeFileAtomic(st.Path, b); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	st.written.Add(int64(len(b)))
	st.snapSize = int64(len(b))
	return nil
}

// writeFileAtomic writes data to path via a synced temp file and rename.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteFileAtomic is writeFileAtomic for other packages (plan files,
// subsystem records): temp file, fsync, rename, mode 0600.
func WriteFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

// ForgetResource removes addr from st without destroying it (state rm).
func ForgetResource(st *State, addr string) { st.remove(addr) }

// MoveResource gives the resource at from the address to, and points
// the dependencies of other resources at it. The caller checks that to
// is free.
func MoveResource(st *State, from, to string) {
	r := st.Resource(from)
	if r == nil {
		return
	}
	if i := st.search(from); i < len(st.Resources) && st.Resources[i].Address == from {
		st.Resources = append(st.Resources[:i], st.Resources[i+1:]...)
	}
	r.Address = to
	st.put(r)
	for _, o := range st.Resources {
		for i, d := range o.Deps {
			if d == from {
				o.Deps[i] = to
			}
		}
	}
	if g := st.Generations[from]; g > 0 {
		if st.Generations == nil {
			st.Generations = map[string]int{}
		}
		st.Generations[to] = max(st.Generations[to], g)
	}
}
