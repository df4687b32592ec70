package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/worldstore"
)

// worldVersion is the world.json format version.
const worldVersion = 1

// Resource states.
const (
	StatePending    = "pending"
	StateRunning    = "running"
	StateFailed     = "failed"
	StateStopped    = "stopped"
	StateTerminated = "terminated"
	StateAvailable  = "available" // networks
	StateDeleted    = "deleted"   // networks
)

// header is what world.json holds besides its records: nothing yet.
type header struct{}

// world is the whole simulated cloud, as kept in world.json (a snapshot)
// and world.json.journal (the changes since), by provision/worldstore.
// Its Serial counts mutations; it also salts new IDs.
type world = worldstore.World[header, record]

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
}

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

func byID(w *world, id string) *record { return w.Find(id) }

func byToken(w *world, token string) *record {
	if token == "" {
		return nil
	}
	for _, r := range w.Records {
		if r.ClientToken == token {
			return r
		}
	}
	return nil
}

// decodeWorld parses and checks world.json; name is the file, for errors.
func decodeWorld(name string, b []byte) (*world, error) {
	w, err := openStore(name).Decode(b)
	if err != nil {
		return nil, err
	}
	if err := validateWorld(name, w); err != nil {
		return nil, err
	}
	return w, nil
}

// validateWorld checks a decoded world; name is the file, for errors.
func validateWorld(name string, w *world) error {
	seen := make(map[string]bool, len(w.Records))
	tokens := make(map[string]bool, len(w.Records))
	for i, r := range w.Records {
		switch {
		case r.ID == "":
			return fmt.Errorf("sim world %s is corrupt: resource %d has no id", name, i)
		case r.Kind != provision.KindInstance && r.Kind != provision.KindNetwork:
			return fmt.Errorf("sim world %s is corrupt: resource %s has unknown kind %q", name, r.ID, r.Kind)
		case seen[r.ID]:
			return fmt.Errorf("sim world %s is corrupt: duplicate resource id %s", name, r.ID)
		case r.ClientToken != "" && tokens[r.ClientToken]:
			return fmt.Errorf("sim world %s is corrupt: two resources with client token %q", name, r.ClientToken)
		}
		if !validState(r.Kind, r.State) {
			return fmt.Errorf("sim world %s is corrupt: resource %s has invalid state %q", name, r.ID, r.State)
		}
		seen[r.ID] = true
		tokens[r.ClientToken] = r.ClientToken != ""
	}
	return nil
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

// encodeWorld writes a snapshot of w, one resource per line.
func encodeWorld(w *world) ([]byte, error) { return openStore("").Encode(w) }

// store is the world of one state directory.
type store struct {
	path string
	ws   *worldstore.Store[header, record]
}

// One worldstore.Store per world file in a process, so that every
// Provider over it shares one decoded cache.
var (
	storesMu sync.Mutex
	stores   = map[string]*worldstore.Store[header, record]{}
)

func openStore(path string) *worldstore.Store[header, record] {
	return worldstore.Open(worldstore.Config[header, record]{
		Path: path, Name: "sim world", Version: worldVersion,
		ID:    func(r *record) string { return r.ID },
		Check: validateWorld,
	})
}

// WorldEnv names the environment variable that puts the sim world in a
// directory of its own (DIR/world.json) instead of the state directory,
// so working directories with a shared state share one fake cloud. A
// provider's world setting wins over it.
const WorldEnv = "HVCTL_SIM_WORLD"

// WorldFile is the world file of a provider with the world setting
// world ("" for none) whose state directory is stateDir.
func WorldFile(stateDir, world string) string {
	switch {
	case world != "":
		return filepath.Join(world, "world.json")
	case os.Getenv(WorldEnv) != "":
		return filepath.Join(os.Getenv(WorldEnv), "world.json")
	}
	return filepath.Join(stateDir, "sim", "world.json")
}

func newStore(stateDir, world string) store {
	path := WorldFile(stateDir, world)
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	storesMu.Lock()
	defer storesMu.Unlock()
	ws := stores[path]
	if ws == nil {
		ws = openStore(path)
		stores[path] = ws
	}
	return store{path: path, ws: ws}
}

// view runs fn on the current world, read-only; fn must not keep w.
func (s store) view(fn func(w *world) error) error { return s.ws.View(fn) }

// update runs fn on the current world under an exclusive lock and
// records what it changed when fn reports a change. fn must call
// w.Changed for each record it modifies in place, and must not keep w.
func (s store) update(fn func(w *world) (changed bool, err error)) error {
	return s.ws.Update(fn)
}
