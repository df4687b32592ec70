package sim

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
	"time"

	"golang.org/x/sys/unix"

	"github.com/hvctl/hvctl/provision"
)

// worldVersion is the world.json format version.
const worldVersion = 1

// Resource states.
const (
	StatePending    = "pending"
	StateRunning    = "running"
	StateFailed     = "failed"
	StateTerminated = "terminated"
	StateAvailable  = "available" // networks
	StateDeleted    = "deleted"   // networks
)

// world is the whole simulated cloud, as kept in world.json.
type world struct {
	Version int `json:"version"`
	// Serial counts mutations; it also salts new IDs.
	Serial    int64     `json:"serial"`
	Resources []*record `json:"resources"`
}

// record is one network or machine, live or gone.
type record struct {
	ID          string         `json:"id"`
	Kind        provision.Kind `json:"kind"`
	Address     string         `json:"address"`
	Cluster     string         `json:"cluster"`
	Lineage     string         `json:"lineage,omitempty"`
	ClientToken string         `json:"client_token,omitempty"`
	Site        string         `json:"site,omitempty"`
	// State is the stored state; a "pending" instance is running (or
	// failed) once ReadyAt has passed: see effectiveState.
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	ReadyAt   time.Time `json:"ready_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	GoneAt    time.Time `json:"deleted_at,omitzero"`
	// FailBoot is decided at Create: the machine ends "failed".
	FailBoot bool `json:"fail_boot,omitempty"`
	// External marks a network adopted through existing_id: hvctl did
	// not make it, so Delete leaves it alone.
	External bool `json:"external,omitempty"`

	// Computed attributes.
	NetworkID     string `json:"network_id,omitempty"`
	CIDR          string `json:"cidr,omitempty"`
	PrivateIP     string `json:"private_ip,omitempty"`
	PublicAddress string `json:"public_address,omitempty"`

	// Attrs are the desired attributes given to Create (secrets left out).
	Attrs map[string]any `json:"attrs,omitempty"`

	// raw is the record's JSON as last read or written; nil once changed.
	raw []byte
}

// changed must be called before a record is modified in place.
func (r *record) changed() { r.raw = nil }

// effectiveState is the record's state at now: boots finish lazily.
func (r *record) effectiveState(now time.Time) string {
	if r.State == StatePending && !now.Before(r.ReadyAt) {
		if r.FailBoot {
			return StateFailed
		}
		return StateRunning
	}
	return r.State
}

// live reports whether the record still exists in the cloud.
func (r *record) live() bool { return r.State != StateTerminated && r.State != StateDeleted }

func (w *world) byID(id string) *record {
	for _, r := range w.Resources {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func (w *world) byToken(token string) *record {
	if token == "" {
		return nil
	}
	for _, r := range w.Resources {
		if r.ClientToken == token {
			return r
		}
	}
	return nil
}

// decodeWorld parses and checks world.json; name is the file, for errors.
func decodeWorld(name string, b []byte) (*world, error) {
	var file struct {
		Version   int               `json:"version"`
		Serial    int64             `json:"serial"`
		Resources []json.RawMessage `json:"resources"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("sim world %s is corrupt: %w", name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("sim world %s is corrupt: trailing data after the JSON object", name)
	}
	w := world{Version: file.Version, Serial: file.Serial, Resources: make([]*record, len(file.Resources))}
	for i, raw := range file.Resources {
		if string(raw) == "null" {
			continue // reported below
		}
		r := new(record)
		if err := json.Unmarshal(raw, r); err != nil {
			return nil, fmt.Errorf("sim world %s is corrupt: resource %d: %w", name, i, err)
		}
		r.raw = raw
		w.Resources[i] = r
	}
	if w.Version != worldVersion {
		return nil, fmt.Errorf("sim world %s: unsupported version %d (this hvctl reads version %d)", name, w.Version, worldVersion)
	}
	seen := make(map[string]bool, len(w.Resources))
	tokens := make(map[string]bool, len(w.Resources))
	for i, r := range w.Resources {
		switch {
		case r == nil:
			return nil, fmt.Errorf("sim world %s is corrupt: resource %d is null", name, i)
		case r.ID == "":
			return nil, fmt.Errorf("sim world %s is corrupt: resource %d has no id", name, i)
		case r.Kind != provision.KindInstance && r.Kind != provision.KindNetwork:
			return nil, fmt.Errorf("sim world %s is corrupt: resource %s has unknown kind %q", name, r.ID, r.Kind)
		case seen[r.ID]:
			return nil, fmt.Errorf("sim world %s is corrupt: duplicate resource id %s", name, r.ID)
		case r.ClientToken != "" && tokens[r.ClientToken]:
			return nil, fmt.Errorf("sim world %s is corrupt: two resources with client token %q", name, r.ClientToken)
		}
		if !validState(r.Kind, r.State) {
			return nil, fmt.Errorf("sim world %s is corrupt: resource %s has invalid state %q", name, r.ID, r.State)
		}
		seen[r.ID] = true
		tokens[r.ClientToken] = r.ClientToken != ""
	}
	return &w, nil
}

func validState(k provision.Kind, s string) bool {
	if k == provision.KindNetwork {
		return s == StateAvailable || s == StateDeleted
	}
	switch s {
	case StatePending, StateRunning, StateFailed, StateTerminated:
		return true
	}
	return false
}

// encodeWorld writes one resource per line: compact, yet diffable.
func encodeWorld(w *world) ([]byte, error) {
	var buf bytes.Buffer
	size := 64
	for _, r := range w.Resources {
		size += len(r.raw) + 2
	}
	buf.Grow(size + 1024)
	fmt.Fprintf(&buf, "{\"version\":%d,\"serial\":%d,\"resources\":[", w.Version, w.Serial)
	for i, r := range w.Resources {
		b := r.raw
		if b == nil {
			var err error
			if b, err = json.Marshal(r); err != nil {
				return nil, fmt.Errorf("encode resource %s: %w", r.ID, err)
			}
			r.raw = b
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

// store is the world file and its lock.
type store struct{ path string }

func newStore(stateDir string) store {
	return store{path: filepath.Join(stateDir, "sim", "world.json")}
}

func (s store) lockPath() string { return s.path + ".lock" }

// load reads the world without locking: writes are atomic renames, so a
// reader always sees a whole file. A missing file is an empty world.
func (s store) load() (*world, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &world{Version: worldVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sim world: %w", err)
	}
	if w := cached(s.path, b); w != nil {
		return w, nil
	}
	w, err := decodeWorld(s.path, b)
	if err != nil {
		return nil, err
	}
	remember(s.path, b, w)
	return w.clone(), nil
}

// The last world each file held, decoded, so that a process that is the
// only writer does not parse the whole file on every call. A hit needs
// the file's bytes to be identical, so it can never be stale.
var (
	cacheMu sync.Mutex
	cache   = map[string]cachedWorld{}
)

type cachedWorld struct {
	b []byte
	w *world // never modified: callers get clones
}

func cached(path string, b []byte) *world {
	cacheMu.Lock()
	c, ok := cache[path]
	cacheMu.Unlock()
	if !ok || !bytes.Equal(c.b, b) {
		return nil
	}
	return c.w.clone()
}

func remember(path string, b []byte, w *world) {
	cacheMu.Lock()
	cache[path] = cachedWorld{b, w}
	cacheMu.Unlock()
}

// clone copies the world and its records; Attrs maps stay shared, so
// whoever changes one replaces it (see Update).
func (w *world) clone() *world {
	c := *w
	c.Resources = make([]*record, len(w.Resources))
	for i, r := range w.Resources {
		cp := *r
		c.Resources[i] = &cp
	}
	return &c
}

// update runs fn on the current world under an exclusive lock and writes
// the result when fn reports a change. fn must not keep w.
func (s store) update(fn func(w *world) (changed bool, err error)) error {
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sim world: %w", err)
	}
	f, err := os.OpenFile(s.lockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock sim world: %w", err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock sim world: %w", err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	s.removeStaleTemps()

	w, err := s.load()
	if err != nil {
		return err
	}
	changed, err := fn(w)
	if err != nil || !changed {
		return err
	}
	w.Serial++
	b, err := encodeWorld(w)
	if err != nil {
		return fmt.Errorf("write sim world: %w", err)
	}
	if err := provision.WriteFileAtomic(s.path, b); err != nil {
		return fmt.Errorf("write sim world: %w", err)
	}
	remember(s.path, b, w.clone())
	return nil
}

// removeStaleTemps removes temp files left by a writer that was killed
// between creating and renaming one. Only the lock holder writes, so
// under the lock every temp file is stale.
func (s store) removeStaleTemps() {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(s.path), "."+filepath.Base(s.path)+".tmp-*"))
	for _, f := range stale {
		os.Remove(f)
	}
}
