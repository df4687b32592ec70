package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hvctl/hvctl/provision"
)

// worldVersion is the world.json format version.
const worldVersion = 1

// Stored record states. An instance's reported state (pending, running,
// failed) derives from these and from its agent process.
const (
	recCreating = "creating" // intent: names chosen, things may be half made
	recCreated  = "created"  // everything made
	recDeleting = "deleting" // being torn down
)

// Reported instance states.
const (
	StatePending   = "pending"
	StateRunning   = "running"
	StateFailed    = "failed"
	StateAvailable = "available" // networks
)

// world is everything the provider made under one state directory.
type world struct {
	Version   int         `json:"version"`
	Serial    int64       `json:"serial"`
	Internets []*internet `json:"internets,omitempty"`
	Resources []*record   `json:"resources"`
}

// internet is a cluster's shared "internet": a bridge in the root
// namespace holding .1 of a public /24.
type internet struct {
	Cluster string `json:"cluster"`
	Bridge  string `json:"bridge"`
	Prefix  string `json:"prefix"`
	// Table is the root-namespace nft table (family inet) that keeps
	// the internet from being routed out of the machine.
	Table string `json:"table,omitempty"`
	// HostNetns names the network namespace hvctl ran in when it made
	// the internet (/run/netns/NAME): machines run hvctl there
	// (Provider.HostCommand).
	HostNetns string `json:"host_netns,omitempty"`
	// Next is the host offset the next public address allocation tries
	// first (sequential, wrapping, never a live one).
	Next int `json:"next"`
}

// proc identifies a process: the pid and its start time (clock ticks
// after boot, /proc/PID/stat field 22), so a reused pid is not mistaken
// for it.
type proc struct {
	PID       int       `json:"pid"`
	Start     uint64    `json:"start"`
	StartedAt time.Time `json:"started_at"`
}

// record is one network (site) or instance (node).
type record struct {
	ID          string         `json:"id"`
	Kind        provision.Kind `json:"kind"`
	Address     string         `json:"address"`
	Cluster     string         `json:"cluster"`
	Lineage     string         `json:"lineage,omitempty"`
	ClientToken string         `json:"client_token,omitempty"`
	Site        string         `json:"site"`
	Name        string         `json:"name,omitempty"` // node name
	State       string         `json:"state"`
	CreatedAt   time.Time      `json:"created_at"`
	ReadyAt     time.Time      `json:"ready_at,omitzero"`
	ExpiresAt   time.Time      `json:"expires_at,omitzero"`
	// BootFail is drawn at create from boot_fail_rate: the node never
	// boots (its agent is not started).
	BootFail bool `json:"boot_fail,omitempty"`

	// What exists on the machine.
	Netns string   `json:"netns"`
	Links []string `json:"links,omitempty"` // root-namespace links
	// SiteLink is an instance's port on its site bridge, in RouterNetns.
	SiteLink    string   `json:"site_link,omitempty"`
	RouterNetns string   `json:"router_netns,omitempty"`
	NftTables   []string `json:"nft_tables,omitempty"` // "FAMILY NAME" inside Netns
	Proc        *proc    `json:"proc,omitempty"`
	Dir         string   `json:"dir,omitempty"` // files, removed on delete

	// Addresses.
	CIDR          string `json:"cidr,omitempty"`
	Gateway       string `json:"gateway,omitempty"` // network: the router's site address; instance: its default gateway
	NetworkID     string `json:"network_id,omitempty"`
	PrivateIP     string `json:"private_ip,omitempty"`
	PublicAddress string `json:"public_address,omitempty"`
	// Next is a network's next host offset for private addresses.
	Next int `json:"next,omitempty"`

	// Attrs are the desired attributes (secrets left out).
	Attrs map[string]any `json:"attrs,omitempty"`
}

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

func (w *world) internet(cluster string) *internet {
	for _, in := range w.Internets {
		if in.Cluster == cluster {
			return in
		}
	}
	return nil
}

func (w *world) remove(id string) {
	out := w.Resources[:0]
	for _, r := range w.Resources {
		if r.ID != id {
			out = append(out, r)
		}
	}
	w.Resources = out
}

func (w *world) removeInternet(cluster string) {
	out := w.Internets[:0]
	for _, in := range w.Internets {
		if in.Cluster != cluster {
			out = append(out, in)
		}
	}
	w.Internets = out
}

// store is the world file and its lock.
type store struct{ path string }

func newStore(stateDir string) store {
	return store{path: filepath.Join(stateDir, "local", "world.json")}
}

func (s store) lockPath() string { return s.path + ".lock" }

// load reads the world without locking (writes are atomic renames). A
// missing file is an empty world.
func (s store) load() (*world, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &world{Version: worldVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local: read world: %w", err)
	}
	var w world
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("local: world %s is corrupt: %w", s.path, err)
	}
	if w.Version != worldVersion {
		return nil, fmt.Errorf("local: world %s: unsupported version %d (this hvctl reads version %d)", s.path, w.Version, worldVersion)
	}
	for i, r := range w.Resources {
		if r == nil || r.ID == "" {
			return nil, fmt.Errorf("local: world %s is corrupt: resource %d has no id", s.path, i)
		}
	}
	return &w, nil
}

// update runs fn on the current world under an exclusive flock and
// writes the result when fn reports a change. An empty world removes the
// file.
func (s store) update(fn func(w *world) (changed bool, err error)) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("local world: %w", err)
	}
	f, err := os.OpenFile(s.lockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock local world: %w", err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock local world: %w", err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(s.path), "."+filepath.Base(s.path)+".tmp-*"))
	for _, f := range stale {
		os.Remove(f)
	}
	w, err := s.load()
	if err != nil {
		return err
	}
	changed, err := fn(w)
	if !changed {
		return err
	}
	w.Serial++
	var werr error
	if len(w.Resources) == 0 && len(w.Internets) == 0 {
		if e := os.Remove(s.path); e != nil && !errors.Is(e, fs.ErrNotExist) {
			werr = e
		}
		// Nothing is left: leave no file behind either. The lock file
		// goes while held; the engine's state lock already serialises
		// operations on one state directory.
		dir := filepath.Dir(s.path)
		os.Remove(filepath.Join(dir, "nodes"))
		os.Remove(s.lockPath())
		os.Remove(dir)
	} else {
		var b []byte
		if b, werr = json.MarshalIndent(w, "", " "); werr == nil {
			werr = provision.WriteFileAtomic(s.path, append(b, '\n'))
		}
	}
	if werr != nil {
		werr = fmt.Errorf("write local world: %w", werr)
	}
	return errors.Join(err, werr)
}
