package sim

import (
	"context"

	"github.com/hvctl/hvctl/provision"
)

var _ provision.Collector = (*Provider)(nil)

// Owned lists the live resources of the sim world (provision.Collector).
func (p *Provider) Owned(ctx context.Context) ([]provision.Owned, error) {
	items, err := p.Items(Filter{Live: true})
	if err != nil {
		return nil, err
	}
	out := make([]provision.Owned, 0, len(items))
	for _, it := range items {
		out = append(out, provision.Owned{ID: it.ID, Kind: it.Kind, Address: it.Address, Cluster: it.Cluster, Lineage: it.Lineage, ExpiresAt: it.ExpiresAt})
	}
	return out, nil
}
