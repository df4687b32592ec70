package local

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/worldstore"
)

// worldVersion is the world.json format version.
const worldVersion = 1

// Stored record states. An instance's reported state (pending, running,
// failed, stopped) derives from these, its power mark and its agent
// process.
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
	StateStopped   = "stopped"   // Stop ended its processes; Start runs the agent again
	StateAvailable = "available" // networks
)

// header is what world.json holds besides its records.
type header struct {
	Internets []*internet `json:"internets,omitempty"`
}

// world is everything the provider made under one state directory, kept
// in world.json (a snapshot) and world.json.journal (the changes since)
// by provision/worldstore.
type world = worldstore.World[header, record]

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
	// Outside are the machine's interfaces the internet is routed to
	// and from (the outside_interfaces setting).
	Outside []*outside `json:"outside,omitempty"`
}

// outside is an interface of the machine routed to a cluster's internet.
type outside struct {
	Name string `json:"name"`
	// Forwarding is the interface's IPv4 forwarding before hvctl set it
	// ("0" or "1"), restored when the internet goes; "1" means hvctl
	// left its routing alone.
	Forwarding string `json:"forwarding"`
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
	// Power is a node's stop or start (power.go): "" on, "stopping",
	// "stopped", "starting".
	Power string `json:"power,omitempty"`
	Dir   string `json:"dir,omitempty"` // files, removed on delete

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

func byID(w *world, id string) *record {
	for _, r := range w.Records {
		if r.ID == id {
			return r
		}
	}
	return nil
}

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

func internetOf(w *world, cluster string) *internet {
	for _, in := range w.Header.Internets {
		if in.Cluster == cluster {
			return in
		}
	}
	return nil
}

func removeRecord(w *world, id string) {
	out := w.Records[:0]
	for _, r := range w.Records {
		if r.ID != id {
			out = append(out, r)
		}
	}
	clear(w.Records[len(out):])
	w.Records = out
}

func removeInternet(w *world, cluster string) {
	out := w.Header.Internets[:0]
	for _, in := range w.Header.Internets {
		if in.Cluster != cluster {
			out = append(out, in)
		}
	}
	w.Header.Internets = out
}

// store is the world of one state directory. Every change is made under
// its flock; the local world is small (namespaces on one host), so each
// update compares every record with its stored form (TrackAll).
type store struct {
	path string
	ws   *worldstore.Store[header, record]
}

func openStore(path string) *worldstore.Store[header, record] {
	return worldstore.Open(worldstore.Config[header, record]{
		Path: path, Name: "local: world", Version: worldVersion, TrackAll: true,
		ID: func(r *record) string { return r.ID },
		Check: func(name string, w *world) error {
			for i, r := range w.Records {
				if r.ID == "" {
					return fmt.Errorf("local: world %s is corrupt: resource %d has no id", name, i)
				}
			}
			return nil
		},
		RemoveWhenEmpty: true,
		IsEmpty:         func(h header) bool { return len(h.Internets) == 0 },
	})
}

func newStore(stateDir string) store {
	path := filepath.Join(stateDir, "local", "world.json")
	return store{path: path, ws: openStore(path)}
}

// load reads the world without locking: a private copy, decoded afresh.
// A missing file is an empty world.
func (s store) load() (*world, error) {
	var out *world
	err := openStore(s.path).View(func(w *world) error { out = w; return nil })
	return out, err
}

// update runs fn on the current world under an exclusive flock and
// records what changed when fn reports a change — also when fn fails
// after making something half (its error is returned). An empty world
// removes the files.
func (s store) update(fn func(w *world) (changed bool, err error)) error {
	return s.ws.Update(fn)
}
