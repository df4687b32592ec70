package openstack

import (
	"context"
	"fmt"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/hvctl/hvctl/provision"
)

// DefaultOverlayPort is the WireGuard port when attrs carry no overlay_port.
const DefaultOverlayPort = 51820

// ManagerPort is the manager API's TCP port on the hub.
const ManagerPort = 51821

// createNetwork makes (or finds, by token tag then name) a site's
// network, subnet, security group and, with an external network, router.
// With existing_id it reuses that network and adds only the security
// group.
func (p *Provider) createNetwork(ctx context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	_, nc, _, err := p.clients(ctx)
	if err != nil {
		return nil, err
	}
	o := owner{Token: req.ClientToken, Cluster: req.Cluster, Address: req.Address, Lineage: req.Lineage, ExpiresAt: req.ExpiresAt}
	name := resName(req.Address, req.ClientToken)
	cidr := req.Attrs.Str("cidr")
	var netID, subnetID string
	existing := req.Attrs.Str("existing_id")
	if existing != "" {
		n, err := networks.Get(ctx, nc, existing).Extract()
		if err != nil {
			if err = mapError("get network "+existing, err); isNotFound(err) {
				return nil, fmt.Errorf("openstack: %s: network.existing_id = %q: there is no such network in the project (openstack network list)", req.Address, existing)
			}
			return nil, err
		}
		netID = n.ID
		if len(n.Subnets) > 0 {
			subnetID = n.Subnets[0]
		}
	} else {
		if cidr == "" {
			return nil, fmt.Errorf("openstack: %s: the site network needs a cidr", req.Address)
		}
		n, err := p.ensureNetwork(ctx, nc, name, o)
		if err != nil {
			return nil, err
		}
		netID = n.ID
		sub, err := p.ensureSubnet(ctx, nc, name, netID, cidr, o)
		if err != nil {
			return nil, err
		}
		subnetID = sub.ID
	}
	if _, err := p.ensureSecurityGroup(ctx, nc, name, netID, o, req.Attrs); err != nil {
		return nil, err
	}
	if existing == "" {
		ext, err := p.externalNetwork(ctx, false)
		if err != nil {
			return nil, err
		}
		if ext != nil {
			if err := p.ensureRouter(ctx, nc, name, netID, subnetID, ext.id, o); err != nil {
				return nil, err
			}
		}
	}
	return &provision.CreateResponse{ID: netID, Attrs: provision.Attrs{}}, nil
}

func (p *Provider) ensureNetwork(ctx context.Context, nc *gophercloud.ServiceClient, name string, o owner) (*networks.Network, error) {
	find := func(opts networks.ListOpts) ([]networks.Network, error) {
		pages, err := networks.List(nc, opts).AllPages(ctx)
		if err != nil {
			return nil, mapError("list networks", err)
		}
		return networks.ExtractNetworks(pages)
	}
	list, err := find(networks.ListOpts{Tags: tag(keyToken, o.Token)})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		if list, err = find(networks.ListOpts{Name: name}); err != nil {
			return nil, err
		}
		list = untaggedOrMine(list, func(n networks.Network) []string { return n.Tags }, o.Token)
	}
	var n *networks.Network
	if len(list) > 0 {
		n = &list[0]
	} else {
		up := true
		n, err = networks.Create(ctx, nc, networks.CreateOpts{Name: name, AdminStateUp: &up, Description: "hvctl " + o.Cluster + " " + o.Address}).Extract()
		if err != nil {
			return nil, mapError("create network "+name, err)
		}
	}
	return n, ensureTags(ctx, nc, "networks", n.ID, n.Tags, o.tags())
}

// untaggedOrMine keeps the objects found by name that carry no hvctl
// token (a create whose tagging was interrupted) or carry token.
func untaggedOrMine[T any](list []T, tags func(T) []string, token string) []T {
	var out []T
	for _, x := range list {
		if t := tagValue(tags(x), keyToken); t == "" || t == token {
			out = append(out, x)
		}
	}
	return out
}

func (p *Provider) ensureSubnet(ctx context.Context, nc *gophercloud.ServiceClient, name, netID, cidr string, o owner) (*subnets.Subnet, error) {
	find := func(opts subnets.ListOpts) ([]subnets.Subnet, error) {
		pages, err := subnets.List(nc, opts).AllPages(ctx)
		if err != nil {
			return nil, mapError("list subnets", err)
		}
		return subnets.ExtractSubnets(pages)
	}
	list, err := find(subnets.ListOpts{NetworkID: netID, Tags: tag(keyToken, o.Token)})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		if list, err = find(subnets.ListOpts{NetworkID: netID, Name: name}); err != nil {
			return nil, err
		}
		list = untaggedOrMine(list, func(s subnets.Subnet) []string { return s.Tags }, o.Token)
	}
	var s *subnets.Subnet
	if len(list) > 0 {
		s = &list[0]
	} else {
		s, err = subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: netID, CIDR: cidr, Name: name, IPVersion: gophercloud.IPv4}).Extract()
		if err != nil {
			return nil, mapError("create subnet "+cidr, err)
		}
	}
	return s, ensureTags(ctx, nc, "subnets", s.ID, s.Tags, o.tags(tag(keyNetwork, netID)))
}

// ensureSecurityGroup makes the site's security group: the overlay's UDP
// port and the manager API (TCP 51821) from anywhere, everything from
// members of the group (site-local traffic, and packets a gateway routes
// for the overlay), SSH from the hub's overlay address when attrs carry
// hub_overlay_ip.
func (p *Provider) ensureSecurityGroup(ctx context.Context, nc *gophercloud.ServiceClient, name, netID string, o owner, attrs provision.Attrs) (string, error) {
	find := func(opts groups.ListOpts) ([]groups.SecGroup, error) {
		pages, err := groups.List(nc, opts).AllPages(ctx)
		if err != nil {
			return nil, mapError("list security groups", err)
		}
		return groups.ExtractGroups(pages)
	}
	list, err := find(groups.ListOpts{Tags: tag(keyToken, o.Token)})
	if err != nil {
		return "", err
	}
	if len(list) == 0 {
		if list, err = find(groups.ListOpts{Name: name}); err != nil {
			return "", err
		}
		list = untaggedOrMine(list, func(g groups.SecGroup) []string { return g.Tags }, o.Token)
	}
	var g *groups.SecGroup
	if len(list) > 0 {
		g = &list[0]
	} else {
		g, err = groups.Create(ctx, nc, groups.CreateOpts{Name: name,
			Description: "hvctl " + o.Cluster + " " + o.Address + ": WireGuard overlay, manager API"}).Extract()
		if err != nil {
			return "", mapError("create security group "+name, err)
		}
	}
	if err := ensureTags(ctx, nc, "security-groups", g.ID, g.Tags, o.tags(tag(keyNetwork, netID))); err != nil {
		return "", err
	}
	return g.ID, p.ensureRules(ctx, nc, g.ID, overlayPort(attrs), attrs.Str("hub_overlay_ip"))
}

func overlayPort(a provision.Attrs) int {
	if n := a.Int("overlay_port"); n > 0 && n < 65536 {
		return int(n)
	}
	return DefaultOverlayPort
}

// ensureRules adds the rules the site needs that the group lacks.
func (p *Provider) ensureRules(ctx context.Context, nc *gophercloud.ServiceClient, sgID string, udpPort int, hubIP string) error {
	want := []rules.CreateOpts{
		{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: sgID, Protocol: rules.ProtocolUDP,
			PortRangeMin: udpPort, PortRangeMax: udpPort, RemoteIPPrefix: "0.0.0.0/0", Description: "hvctl: WireGuard overlay"},
		{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: sgID, Protocol: rules.ProtocolTCP,
			PortRangeMin: ManagerPort, PortRangeMax: ManagerPort, RemoteIPPrefix: "0.0.0.0/0", Description: "hvctl: manager API"},
		{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: sgID, RemoteGroupID: sgID, Description: "hvctl: site-local traffic"},
	}
	if hubIP != "" {
		pfx := hubIP
		if !strings.Contains(pfx, "/") {
			pfx += "/32"
		}
		want = append(want, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: sgID, Protocol: rules.ProtocolTCP,
			PortRangeMin: 22, PortRangeMax: 22, RemoteIPPrefix: pfx, Description: "hvctl: SSH from the hub"})
	}
	pages, err := rules.List(nc, rules.ListOpts{SecGroupID: sgID}).AllPages(ctx)
	if err != nil {
		return mapError("list security group rules", err)
	}
	have, err := rules.ExtractRules(pages)
	if err != nil {
		return mapError("list security group rules", err)
	}
	for _, w := range want {
		found := false
		for _, h := range have {
			if h.Direction == string(w.Direction) && h.EtherType == string(w.EtherType) && h.Protocol == string(w.Protocol) &&
				h.PortRangeMin == w.PortRangeMin && h.PortRangeMax == w.PortRangeMax &&
				h.RemoteIPPrefix == w.RemoteIPPrefix && h.RemoteGroupID == w.RemoteGroupID {
				found = true
			}
		}
		if found {
			continue
		}
		if _, err := rules.Create(ctx, nc, w).Extract(); err != nil {
			if err = mapError("create security group rule", err); !isConflict(err, 409) {
				return err
			}
		}
	}
	return nil
}

func (p *Provider) ensureRouter(ctx context.Context, nc *gophercloud.ServiceClient, name, netID, subnetID, extID string, o owner) error {
	find := func(opts routers.ListOpts) ([]routers.Router, error) {
		pages, err := routers.List(nc, opts).AllPages(ctx)
		if err != nil {
			return nil, mapError("list routers", err)
		}
		return routers.ExtractRouters(pages)
	}
	list, err := find(routers.ListOpts{Tags: tag(keyToken, o.Token)})
	if err != nil {
		return err
	}
	if len(list) == 0 {
		if list, err = find(routers.ListOpts{Name: name}); err != nil {
			return err
		}
		list = untaggedOrMine(list, func(r routers.Router) []string { return r.Tags }, o.Token)
	}
	var r *routers.Router
	if len(list) > 0 {
		r = &list[0]
	} else {
		r, err = routers.Create(ctx, nc, routers.CreateOpts{Name: name, Description: "hvctl " + o.Cluster + " " + o.Address,
			GatewayInfo: &routers.GatewayInfo{NetworkID: extID}}).Extract()
		if err != nil {
			return mapError("create router "+name, err)
		}
	}
	if err := ensureTags(ctx, nc, "routers", r.ID, r.Tags, o.tags(tag(keyNetwork, netID))); err != nil {
		return err
	}
	if subnetID == "" {
		return nil
	}
	pages, err := ports.List(nc, ports.ListOpts{DeviceID: r.ID, NetworkID: netID}).AllPages(ctx)
	if err != nil {
		return mapError("list router ports", err)
	}
	if ps, _ := ports.ExtractPorts(pages); len(ps) > 0 {
		return nil
	}
	if _, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: subnetID}).Extract(); err != nil {
		if err = mapError("attach subnet to router "+name, err); !strings.Contains(err.Error(), "already has a port") {
			return err
		}
	}
	return nil
}

// externalNetwork returns the network floating IPs and router gateways
// use: external_network, else the project's only external network. nil
// when there is none (need = false) or an error (need = true).
func (p *Provider) externalNetwork(ctx context.Context, need bool) (*extNet, error) {
	p.mu.Lock()
	cached := p.ext
	p.mu.Unlock()
	if cached != nil {
		if cached.id == "" && need {
			return nil, fmt.Errorf("openstack: public_ip needs an external network for floating IPs, and the cloud has none visible to the project (openstack network list --external); set external_network")
		}
		if cached.id == "" {
			return nil, nil
		}
		return cached, nil
	}
	_, nc, _, err := p.clients(ctx)
	if err != nil {
		return nil, err
	}
	yes := true
	pages, err := networks.List(nc, external.ListOptsExt{ListOptsBuilder: networks.ListOpts{}, External: &yes}).AllPages(ctx)
	if err != nil {
		return nil, mapError("list external networks", err)
	}
	list, err := networks.ExtractNetworks(pages)
	if err != nil {
		return nil, mapError("list external networks", err)
	}
	var found *extNet
	var names []string
	for _, n := range list {
		names = append(names, n.Name)
		if want := p.s.ExternalNetwork; want != "" && (n.ID == want || n.Name == want) {
			found = &extNet{n.ID, n.Name}
		}
	}
	switch {
	case p.s.ExternalNetwork != "" && found == nil:
		return nil, fmt.Errorf("openstack: external_network = %q: no external network has that name or ID (external networks: %s)", p.s.ExternalNetwork, strings.Join(names, ", "))
	case found == nil && len(list) == 1:
		found = &extNet{list[0].ID, list[0].Name}
	case found == nil && len(list) > 1:
		return nil, fmt.Errorf("openstack: the cloud has %d external networks (%s): set external_network to the one for floating IPs and router gateways", len(list), strings.Join(names, ", "))
	case found == nil:
		found = &extNet{}
	}
	p.mu.Lock()
	p.ext = found
	p.mu.Unlock()
	return p.externalNetwork(ctx, need)
}

// readNetwork reads a site network by ID, or by token: the network
// tagged with it, or the network its security group is tagged with (an
// existing_id network).
func (p *Provider) readNetwork(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	_, nc, _, err := p.clients(ctx)
	if err != nil {
		return nil, err
	}
	id := req.ID
	if id == "" {
		if req.ClientToken == "" {
			return &provision.ReadResponse{}, nil
		}
		pages, err := networks.List(nc, networks.ListOpts{Tags: tag(keyToken, req.ClientToken)}).AllPages(ctx)
		if err != nil {
			return nil, mapError("list networks", err)
		}
		list, _ := networks.ExtractNetworks(pages)
		if len(list) > 0 {
			id = list[0].ID
		} else {
			pages, err := groups.List(nc, groups.ListOpts{Tags: tag(keyToken, req.ClientToken)}).AllPages(ctx)
			if err != nil {
				return nil, mapError("list security groups", err)
			}
			gs, _ := groups.ExtractGroups(pages)
			if len(gs) == 0 {
				return &provision.ReadResponse{}, nil
			}
			id = tagValue(gs[0].Tags, keyNetwork)
		}
	}
	n, err := networks.Get(ctx, nc, id).Extract()
	if err != nil {
		if err = mapError("get network "+id, err); isNotFound(err) {
			return &provision.ReadResponse{}, nil
		}
		return nil, err
	}
	return &provision.ReadResponse{Exists: true, ID: n.ID, Attrs: provision.Attrs{}}, nil
}

// deleteNetwork removes what hvctl made for a site network: floating IPs
// and ports left by servers deleted outside hvctl, the security group,
// the router (interface first), the subnet and the network. A network
// hvctl did not make (existing_id) is left, minus hvctl's objects.
func (p *Provider) deleteNetwork(ctx context.Context, id, address string) error {
	_, nc, _, err := p.clients(ctx)
	if err != nil {
		return err
	}
	owned := true
	var subnetIDs []string
	n, err := networks.Get(ctx, nc, id).Extract()
	if err != nil {
		if err = mapError("get network "+id, err); !isNotFound(err) {
			return err
		}
	} else {
		owned = hasTag(n.Tags, tagMarker) && (address == "" || tagValue(n.Tags, keyAddress) == address)
		subnetIDs = n.Subnets
	}
	netTag := tag(keyNetwork, id)
	// Only this site's objects: a network reused by another site (its
	// existing_id) carries that site's objects too.
	site := strings.TrimSuffix(address, "network")
	mine := func(tags []string) bool { return address == "" || strings.HasPrefix(tagValue(tags, keyAddress), site) }
	// Floating IPs and ports of servers deleted outside hvctl.
	fpages, err := floatingips.List(nc, floatingips.ListOpts{Tags: netTag}).AllPages(ctx)
	if err != nil {
		return mapError("list floating IPs", err)
	}
	fips, _ := floatingips.ExtractFloatingIPs(fpages)
	for _, f := range fips {
		if !mine(f.Tags) {
			continue
		}
		if err := ignoreNotFound(mapError("delete floating IP "+f.FloatingIP, floatingips.Delete(ctx, nc, f.ID).ExtractErr())); err != nil {
			return err
		}
	}
	ppages, err := ports.List(nc, ports.ListOpts{NetworkID: id, Tags: tagMarker}).AllPages(ctx)
	if err != nil {
		return mapError("list ports", err)
	}
	ps, _ := ports.ExtractPorts(ppages)
	for _, pt := range ps {
		if pt.DeviceOwner == "network:router_interface" || pt.DeviceID != "" || !mine(pt.Tags) {
			continue // router ports go with the router; bound ports are live servers'
		}
		if err := ignoreNotFound(mapError("delete port "+pt.ID, ports.Delete(ctx, nc, pt.ID).ExtractErr())); err != nil {
			return err
		}
	}
	gpages, err := groups.List(nc, groups.ListOpts{Tags: netTag}).AllPages(ctx)
	if err != nil {
		return mapError("list security groups", err)
	}
	gs, _ := groups.ExtractGroups(gpages)
	for _, g := range gs {
		if !mine(g.Tags) {
			continue
		}
		if err := ignoreNotFound(mapError("delete security group "+g.Name, groups.Delete(ctx, nc, g.ID).ExtractErr())); err != nil {
			return err
		}
	}
	rpages, err := routers.List(nc, routers.ListOpts{Tags: netTag}).AllPages(ctx)
	if err != nil {
		return mapError("list routers", err)
	}
	rs, _ := routers.ExtractRouters(rpages)
	for _, r := range rs {
		if !mine(r.Tags) {
			continue
		}
		ipages, err := ports.List(nc, ports.ListOpts{DeviceID: r.ID, DeviceOwner: "network:router_interface"}).AllPages(ctx)
		if err != nil {
			return mapError("list router interfaces", err)
		}
		ifs, _ := ports.ExtractPorts(ipages)
		for _, itf := range ifs {
			for _, ip := range itf.FixedIPs {
				_, err := routers.RemoveInterface(ctx, nc, r.ID, routers.RemoveInterfaceOpts{SubnetID: ip.SubnetID}).Extract()
				if err := ignoreNotFound(mapError("detach subnet "+ip.SubnetID+" from router "+r.Name, err)); err != nil {
					return err
				}
			}
		}
		if err := ignoreNotFound(mapError("delete router "+r.Name, routers.Delete(ctx, nc, r.ID).ExtractErr())); err != nil {
			return err
		}
	}
	if !owned || n == nil {
		return nil
	}
	for _, sid := range subnetIDs {
		if err := ignoreNotFound(mapError("delete subnet "+sid, subnets.Delete(ctx, nc, sid).ExtractErr())); err != nil {
			return err
		}
	}
	return ignoreNotFound(mapError("delete network "+n.Name, networks.Delete(ctx, nc, id).ExtractErr()))
}

func ignoreNotFound(err error) error {
	if isNotFound(err) {
		return nil
	}
	return err
}
