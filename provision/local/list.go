package local

import (
	"context"
	"errors"
	"time"

	"github.com/hvctl/hvctl/provision"
)

// KindInternet is the Kind of a cluster's internet bridge in List.
const KindInternet provision.Kind = "internet"

// Item is one thing the local provider made, as recorded, with what of it
// exists on the machine now.
type Item struct {
	Cluster string         `json:"cluster"`
	Kind    provision.Kind `json:"kind"` // network, instance, internet
	ID      string         `json:"id,omitempty"`
	Address string         `json:"address,omitempty"`
	Site    string         `json:"site,omitempty"`
	Name    string         `json:"name,omitempty"`
	// State: an instance's pending, running, failed or stopped; a
	// network's available; "creating" or "deleting" for one a crash left
	// half made or half deleted, "stopping" or "starting" for a node
	// whose stop or start it left half done.
	State string `json:"state"`
	// Netns is the namespace (a node's, or a site's router) and
	// NetnsExists whether it is there.
	Netns       string `json:"netns,omitempty"`
	NetnsExists bool   `json:"netns_exists,omitempty"`
	// Links are the root-namespace links (bridge, veth ends).
	Links []string `json:"links,omitempty"`
	// NftTables are nft tables inside Netns ("ip hvctl"), or, for an
	// internet, in the root namespace.
	NftTables []string `json:"nft_tables,omitempty"`
	// PID is the agent's process, 0 when none runs.
	PID           int       `json:"pid,omitempty"`
	Dir           string    `json:"dir,omitempty"`
	CIDR          string    `json:"cidr,omitempty"`
	PrivateIP     string    `json:"private_ip,omitempty"`
	PublicAddress string    `json:"public_address,omitempty"`
	CreatedAt     time.Time `json:"created_at,omitzero"`
}

// List returns what the local provider recorded under stateDir: each
// cluster's internet, then networks and instances in creation order. A
// state directory without a world gives an empty, non-nil list.
func List(stateDir string) ([]Item, error) {
	w, err := newStore(stateDir).load()
	if err != nil {
		return nil, err
	}
	items := make([]Item, 0, len(w.Header.Internets)+len(w.Records))
	for _, in := range w.Header.Internets {
		items = append(items, Item{Cluster: in.Cluster, Kind: KindInternet, State: StateAvailable,
			Links: []string{in.Bridge}, NftTables: tablesOf(in), CIDR: in.Prefix})
	}
	for _, r := range w.Records {
		it := Item{
			Cluster: r.Cluster, Kind: r.Kind, ID: r.ID, Address: r.Address, Site: r.Site, Name: r.Name,
			Netns: r.Netns, NetnsExists: netnsExists(r.Netns),
			Links: append([]string(nil), r.Links...), NftTables: append([]string(nil), r.NftTables...),
			Dir: r.Dir, CIDR: r.CIDR, PrivateIP: r.PrivateIP, PublicAddress: r.PublicAddress, CreatedAt: r.CreatedAt,
		}
		switch {
		case r.State != recCreated:
			it.State = r.State
		case r.Kind == provision.KindNetwork:
			it.State = StateAvailable
		case r.Power == powerStopping || r.Power == powerStarting:
			it.State = r.Power // a stop or start a crash left half done
		default:
			if it.State = nodeState(r); it.State == StateRunning {
				it.PID = r.Proc.PID
			}
		}
		items = append(items, it)
	}
	return items, nil
}

// Cleanup removes everything recorded under stateDir for cluster (every
// cluster when cluster is ""): agents, namespaces, links, nft tables,
// files, and the records. For `hvctl down` after a lost state, and for
// tests. It goes on past errors and returns them all.
func Cleanup(stateDir, cluster string) error {
	ctx := context.Background()
	p := Open(&provision.Env{StateDir: stateDir}, Settings{})
	w, err := p.store.load()
	if err != nil {
		return err
	}
	var errs []error
	// Nodes before networks (a router's bridge holds their ports).
	for _, kind := range []provision.Kind{provision.KindInstance, provision.KindNetwork} {
		for _, r := range w.Records {
			if r.Kind == kind && (cluster == "" || r.Cluster == cluster) {
				errs = append(errs, p.destroy(ctx, r.ID, false))
			}
		}
	}
	errs = append(errs, p.store.update(func(w *world) (bool, error) {
		n := len(w.Header.Internets)
		err := dropIdleInternets(ctx, w)
		return len(w.Header.Internets) != n, err
	}))
	return errors.Join(errs...)
}

func tablesOf(in *internet) []string {
	if in.Table == "" {
		return nil
	}
	return []string{"inet " + in.Table}
}
