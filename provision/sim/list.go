package sim

import (
	"time"

	"github.com/hvctl/hvctl/provision"
)

// Item is one resource of the sim cloud as `hvctl sim list -json` shows
// it. State is the state at the time of listing. Attrs leave out anything
// that looks secret (user_data, *token*, *key*, *secret*, *password*).
type Item struct {
	ID            string         `json:"id"`
	Kind          provision.Kind `json:"kind"`
	Address       string         `json:"address"`
	Cluster       string         `json:"cluster"`
	State         string         `json:"state"`
	Site          string         `json:"site"`
	ClientToken   string         `json:"client_token"`
	Lineage       string         `json:"lineage,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	ReadyAt       time.Time      `json:"ready_at,omitzero"`
	ExpiresAt     time.Time      `json:"expires_at,omitzero"`
	DeletedAt     time.Time      `json:"deleted_at,omitzero"`
	NetworkID     string         `json:"network_id,omitempty"`
	CIDR          string         `json:"cidr,omitempty"`
	PrivateIP     string         `json:"private_ip,omitempty"`
	PublicAddress string         `json:"public_address,omitempty"`
	External      bool           `json:"external,omitempty"`
	Attrs         map[string]any `json:"attrs,omitempty"`
}

// Live reports whether the resource still exists (is not terminated or
// deleted).
func (it Item) Live() bool { return it.State != StateTerminated && it.State != StateDeleted }

// Filter selects items; its zero value selects everything.
type Filter struct {
	Cluster string         // only this cluster; "" = any
	Kind    provision.Kind // only this kind; "" = any
	Live    bool           // hide terminated instances and deleted networks
	// ExpiredBy, when set, keeps only resources whose expires_at is at
	// or before it.
	ExpiredBy time.Time
}

func (f Filter) match(it Item) bool {
	switch {
	case f.Cluster != "" && it.Cluster != f.Cluster:
		return false
	case f.Kind != "" && it.Kind != f.Kind:
		return false
	case f.Live && !it.Live():
		return false
	case !f.ExpiredBy.IsZero() && (it.ExpiresAt.IsZero() || it.ExpiresAt.After(f.ExpiredBy)):
		return false
	}
	return true
}

// List returns everything the sim world under stateDir has ever held,
// in creation order, with states as of now. A state directory without a
// world gives an empty, non-nil list.
func List(stateDir string) ([]Item, error) {
	return Query(stateDir, time.Now(), Filter{})
}

// ListWorld is List of the world a provider with the world setting
// world uses ("" as List).
func ListWorld(stateDir, world string) ([]Item, error) {
	return query(newStore(stateDir, world), time.Now(), Filter{})
}

// Expired returns the live resources whose expiry (the cluster ttl) is
// at or before now: what `hvctl gc` should delete.
func Expired(stateDir string, now time.Time) ([]Item, error) {
	return Query(stateDir, now, Filter{Live: true, ExpiredBy: now})
}

// Query returns the items f selects, with states as of now.
func Query(stateDir string, now time.Time, f Filter) ([]Item, error) {
	return query(newStore(stateDir, ""), now, f)
}

func query(s store, now time.Time, f Filter) ([]Item, error) {
	var items []Item
	err := s.view(func(w *world) error {
		items = make([]Item, 0, len(w.Records))
		for _, r := range w.Records {
			if it := item(r, now); f.match(it) {
				items = append(items, it)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// Items is Query over this provider's world, on its clock.
func (p *Provider) Items(f Filter) ([]Item, error) {
	return Query(p.env.StateDir, p.clock.Now(), f)
}

func item(r *record, now time.Time) Item {
	return Item{
		ID:            r.ID,
		Kind:          r.Kind,
		Address:       r.Address,
		Cluster:       r.Cluster,
		State:         r.effectiveState(now),
		Site:          r.Site,
		ClientToken:   r.ClientToken,
		Lineage:       r.Lineage,
		CreatedAt:     r.CreatedAt,
		ReadyAt:       r.ReadyAt,
		ExpiresAt:     r.ExpiresAt,
		DeletedAt:     r.GoneAt,
		NetworkID:     r.NetworkID,
		CIDR:          r.CIDR,
		PrivateIP:     r.PrivateIP,
		PublicAddress: r.PublicAddress,
		External:      r.External,
		Attrs:         provision.PublicAttrs(r.Attrs),
	}
}
