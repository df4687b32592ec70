package openstack

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"

	"github.com/hvctl/hvctl/provision"
)

func checkKind(k provision.Kind) error {
	if k != provision.KindInstance && k != provision.KindNetwork {
		return fmt.Errorf("openstack: unsupported resource kind %q", k)
	}
	return nil
}

// Create makes a site network or a node. It is idempotent on
// req.ClientToken: OpenStack has no client tokens, so every object is
// tagged (Neutron) or given metadata (Nova) with the token and named
// after it, and looked up by both before being created.
func (p *Provider) Create(ctx context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	if err := checkKind(req.Kind); err != nil {
		return nil, err
	}
	if req.ClientToken == "" {
		return nil, fmt.Errorf("openstack: %s: a client token is required", req.Address)
	}
	if req.Kind == provision.KindNetwork {
		return p.createNetwork(ctx, req)
	}
	return p.createInstance(ctx, req)
}

// Read returns a resource's state by ID, or by client token when the ID
// is empty. A server deleted outside hvctl reads as Exists = false.
func (p *Provider) Read(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	if err := checkKind(req.Kind); err != nil {
		return nil, err
	}
	if req.Kind == provision.KindNetwork {
		return p.readNetwork(ctx, req)
	}
	rr, _, err := p.readInstance(ctx, req)
	return rr, err
}

// WaitReady waits for a server to be ACTIVE (networks are ready at once).
func (p *Provider) WaitReady(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	if err := checkKind(req.Kind); err != nil {
		return nil, err
	}
	if req.Kind == provision.KindNetwork {
		return p.readNetwork(ctx, req)
	}
	return p.waitInstance(ctx, req)
}

// Delete removes a resource and everything hvctl made with it; what is
// already gone is skipped.
func (p *Provider) Delete(ctx context.Context, req *provision.DeleteRequest) error {
	if err := checkKind(req.Kind); err != nil {
		return err
	}
	if req.ID == "" {
		return nil
	}
	if req.Kind == provision.KindNetwork {
		return p.deleteNetwork(ctx, req.ID, req.Address)
	}
	return p.deleteInstance(ctx, req.ID)
}

// Owned lists the servers and site networks hvctl made in the project,
// by their metadata and tags (provision.Collector, for `hvctl gc`). A
// reused network (existing_id) is listed through its hvctl security
// group; deleting it removes only hvctl's objects.
func (p *Provider) Owned(ctx context.Context) ([]provision.Owned, error) {
	cc, nc, _, err := p.clients(ctx)
	if err != nil {
		return nil, err
	}
	var out []provision.Owned
	pages, err := servers.List(cc, servers.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, mapError("list servers", err)
	}
	srvs, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, mapError("list servers", err)
	}
	for _, s := range srvs {
		if s.Metadata[keyCluster] == "" || s.Status == "DELETED" || s.Status == "SOFT_DELETED" {
			continue
		}
		exp, _ := time.Parse(time.RFC3339, s.Metadata[keyExpires])
		out = append(out, provision.Owned{ID: s.ID, Kind: provision.KindInstance, Address: s.Metadata[keyAddress],
			Cluster: s.Metadata[keyCluster], Lineage: s.Metadata[keyLineage], ExpiresAt: exp})
	}
	npages, err := networks.List(nc, networks.ListOpts{Tags: tagMarker}).AllPages(ctx)
	if err != nil {
		return nil, mapError("list networks", err)
	}
	nets, _ := networks.ExtractNetworks(npages)
	seen := map[string]bool{}
	add := func(id string, tags []string) {
		if id == "" || seen[id] || tagValue(tags, keyCluster) == "" {
			return
		}
		seen[id] = true
		exp, _ := time.Parse(time.RFC3339, tagValue(tags, keyExpires))
		out = append(out, provision.Owned{ID: id, Kind: provision.KindNetwork, Address: tagValue(tags, keyAddress),
			Cluster: tagValue(tags, keyCluster), Lineage: tagValue(tags, keyLineage), ExpiresAt: exp})
	}
	for _, n := range nets {
		add(n.ID, n.Tags)
	}
	gpages, err := groups.List(nc, groups.ListOpts{Tags: tagMarker}).AllPages(ctx)
	if err != nil {
		return nil, mapError("list security groups", err)
	}
	gs, _ := groups.ExtractGroups(gpages)
	for _, g := range gs {
		add(tagValue(g.Tags, keyNetwork), g.Tags)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Cluster != out[j].Cluster {
			return out[i].Cluster < out[j].Cluster
		}
		return out[i].Kind == provision.KindInstance && out[j].Kind != provision.KindInstance // instances before networks
	})
	return out, nil
}
