package openstack

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/hvctl/hvctl/provision"
)

// Instance states as hvctl reports them.
const (
	StatePending = "pending" // BUILD
	StateRunning = "running" // ACTIVE
	StateStopped = "stopped" // SHUTOFF (os-stop, or a guest that powered itself off)
	StateFailed  = "failed"  // ERROR
)

// createInstance makes a node: a port on the site network (with the
// site's security group; a gateway's also admits the overlay CIDR as
// source), a floating IP for public_ip, a subnet host route for a
// gateway, then the server on that port with cloud-init user data that
// starts hvctl agent. Each step first looks for what a previous,
// interrupted attempt made with the same client token.
func (p *Provider) createInstance(ctx context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	cc, nc, _, err := p.clients(ctx)
	if err != nil {
		return nil, err
	}
	netID := ""
	for addr, id := range req.Deps {
		if strings.HasSuffix(addr, ".network") {
			netID = id
		}
	}
	if netID == "" {
		return nil, fmt.Errorf("openstack: %s: no site network among its dependencies", req.Address)
	}
	o := owner{Token: req.ClientToken, Cluster: req.Cluster, Address: req.Address, Lineage: req.Lineage, ExpiresAt: req.ExpiresAt}
	name := resName(req.Address, req.ClientToken)
	if srv, err := p.findServer(ctx, cc, name, req.ClientToken); err != nil {
		return nil, err
	} else if srv != nil {
		// Made by an attempt whose answer was lost.
		if err := p.tagServerPorts(ctx, nc, srv, req.ClientToken); err != nil {
			return nil, err
		}
		attrs, err := p.serverAttrs(ctx, nc, srv)
		if err != nil {
			return nil, err
		}
		return &provision.CreateResponse{ID: srv.ID, Attrs: attrs}, nil
	}
	flavorID, err := p.resolveFlavor(ctx, cc, req.Attrs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Address, err)
	}
	imageID, err := p.resolveImage(ctx, req.Attrs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Address, err)
	}
	public := req.Attrs.Bool("public_ip")
	var ext *extNet
	if public {
		if ext, err = p.externalNetwork(ctx, true); err != nil {
			return nil, err
		}
	}
	sgID, err := p.siteSecurityGroup(ctx, nc, netID, req.Attrs)
	if err != nil {
		return nil, err
	}
	gateway := provision.InstanceOf(req.Attrs).HasRole("gateway")
	overlayCIDR := req.Attrs.Str("overlay_cidr")
	port, err := p.ensurePort(ctx, nc, name, netID, sgID, gateway, overlayCIDR, o)
	if err != nil {
		return nil, err
	}
	cleanup := func() { // undo on a failure the engine will not retry
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		p.deletePortAndIPs(cctx, nc, []ports.Port{*port})
	}
	privateIP := ""
	if len(port.FixedIPs) > 0 {
		privateIP = port.FixedIPs[0].IPAddress
	}
	publicIP := ""
	if public {
		fip, err := p.ensureFloatingIP(ctx, nc, ext.id, port.ID, netID, o)
		if err != nil {
			if !provision.IsRetryable(err) {
				cleanup()
			}
			return nil, err
		}
		publicIP = fip.FloatingIP
	}
	if gateway && overlayCIDR != "" && len(port.FixedIPs) > 0 {
		if err := p.editHostRoute(ctx, nc, port.FixedIPs[0].SubnetID, overlayCIDR, privateIP, true); err != nil {
			return nil, err
		}
	}
	ud, err := userData(req, privateIP, publicIP, p.s.AgentURL)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("openstack: %s: %w", req.Address, err)
	}
	var opts servers.CreateOptsBuilder = servers.CreateOpts{
		Name: name, ImageRef: imageID, FlavorRef: flavorID, UserData: ud, Metadata: o.meta(),
		AvailabilityZone: p.s.AvailabilityZone, Networks: []servers.Network{{Port: port.ID}},
		// The cluster tag lets refresh list the cluster (List).
		Tags: []string{tag(keyCluster, o.Cluster)},
	}
	if p.s.KeyName != "" {
		opts = keypairs.CreateOptsExt{CreateOptsBuilder: opts, KeyName: p.s.KeyName}
	}
	srv, err := servers.Create(ctx, withMicroversion(cc, tagsMicroversion), opts, nil).Extract()
	if err != nil {
		err = mapError("create server "+name, err)
		if !provision.IsRetryable(err) {
			cleanup()
		}
		return nil, err
	}
	if err := ensureTags(ctx, nc, "ports", port.ID, port.Tags, []string{tag(keyServer, srv.ID)}); err != nil {
		return nil, err
	}
	attrs := provision.Attrs{"state": StatePending, "private_ip": privateIP}
	if publicIP != "" {
		attrs["public_address"] = publicIP
	}
	return &provision.CreateResponse{ID: srv.ID, Attrs: attrs}, nil
}

// findServer finds the live server named name whose metadata carries
// token (Nova's name filter is a regular expression).
func (p *Provider) findServer(ctx context.Context, cc *gophercloud.ServiceClient, name, token string) (*servers.Server, error) {
	pages, err := servers.List(cc, servers.ListOpts{Name: "^" + regexp.QuoteMeta(name) + "$"}).AllPages(ctx)
	if err != nil {
		return nil, mapError("list servers", err)
	}
	list, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, mapError("list servers", err)
	}
	for i := range list {
		s := &list[i]
		if s.Name == name && s.Metadata[keyToken] == token && s.Status != "DELETED" && s.Status != "SOFT_DELETED" {
			return s, nil
		}
	}
	return nil, nil
}

// tagServerPorts tags the ports made for a server with its ID (done
// after the server exists; repeated when a retry adopts it).
func (p *Provider) tagServerPorts(ctx context.Context, nc *gophercloud.ServiceClient, srv *servers.Server, token string) error {
	ps, err := listPorts(ctx, nc, ports.ListOpts{Tags: tag(keyToken, token)})
	if err != nil {
		return err
	}
	for _, pt := range ps {
		if err := ensureTags(ctx, nc, "ports", pt.ID, pt.Tags, []string{tag(keyServer, srv.ID)}); err != nil {
			return err
		}
	}
	return nil
}

func listPorts(ctx context.Context, nc *gophercloud.ServiceClient, opts ports.ListOpts) ([]ports.Port, error) {
	pages, err := ports.List(nc, opts).AllPages(ctx)
	if err != nil {
		return nil, mapError("list ports", err)
	}
	ps, err := ports.ExtractPorts(pages)
	return ps, mapError("list ports", err)
}

func listFloatingIPs(ctx context.Context, nc *gophercloud.ServiceClient, opts floatingips.ListOpts) ([]floatingips.FloatingIP, error) {
	pages, err := floatingips.List(nc, opts).AllPages(ctx)
	if err != nil {
		return nil, mapError("list floating IPs", err)
	}
	fs, err := floatingips.ExtractFloatingIPs(pages)
	return fs, mapError("list floating IPs", err)
}

// siteSecurityGroup returns the site network's security group, adding
// the rule for this node's overlay port when it is not the default.
func (p *Provider) siteSecurityGroup(ctx context.Context, nc *gophercloud.ServiceClient, netID string, a provision.Attrs) (string, error) {
	pages, err := groups.List(nc, groups.ListOpts{Tags: tag(keyNetwork, netID)}).AllPages(ctx)
	if err != nil {
		return "", mapError("list security groups", err)
	}
	gs, _ := groups.ExtractGroups(pages)
	if len(gs) == 0 {
		return "", fmt.Errorf("openstack: the site network %s has no hvctl security group (was it deleted outside hvctl? `hvctl apply` recreates the network)", netID)
	}
	if port := overlayPort(a); port != DefaultOverlayPort {
		if err := p.ensureRules(ctx, nc, gs[0].ID, port, ""); err != nil {
			return "", err
		}
	}
	return gs[0].ID, nil
}

func (p *Provider) ensurePort(ctx context.Context, nc *gophercloud.ServiceClient, name, netID, sgID string, gateway bool, overlayCIDR string, o owner) (*ports.Port, error) {
	list, err := listPorts(ctx, nc, ports.ListOpts{NetworkID: netID, Tags: tag(keyToken, o.Token)})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		if list, err = listPorts(ctx, nc, ports.ListOpts{NetworkID: netID, Name: name}); err != nil {
			return nil, err
		}
		list = untaggedOrMine(list, func(p ports.Port) []string { return p.Tags }, o.Token)
	}
	extra := []string{tag(keyNetwork, netID)}
	if gateway {
		extra = append(extra, tagGateway)
	}
	var pt *ports.Port
	if len(list) > 0 {
		pt = &list[0]
	} else {
		opts := ports.CreateOpts{NetworkID: netID, Name: name, Description: "hvctl " + o.Cluster + " " + o.Address, SecurityGroups: &[]string{sgID}}
		if gateway {
			// A gateway forwards packets to and from overlay addresses:
			// port security must let them through.
			pair := overlayCIDR
			if pair == "" {
				pair = "0.0.0.0/0"
			}
			opts.AllowedAddressPairs = []ports.AddressPair{{IPAddress: pair}}
		}
		if pt, err = ports.Create(ctx, nc, opts).Extract(); err != nil {
			return nil, mapError("create port "+name, err)
		}
	}
	if err := ensureTags(ctx, nc, "ports", pt.ID, pt.Tags, o.tags(extra...)); err != nil {
		return nil, err
	}
	pt.Tags = o.tags(extra...)
	return pt, nil
}

func (p *Provider) ensureFloatingIP(ctx context.Context, nc *gophercloud.ServiceClient, extID, portID, netID string, o owner) (*floatingips.FloatingIP, error) {
	list, err := listFloatingIPs(ctx, nc, floatingips.ListOpts{Tags: tag(keyToken, o.Token)})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		if list, err = listFloatingIPs(ctx, nc, floatingips.ListOpts{PortID: portID}); err != nil {
			return nil, err
		}
	}
	var f *floatingips.FloatingIP
	if len(list) > 0 {
		f = &list[0]
		if f.PortID != portID {
			if f, err = floatingips.Update(ctx, nc, f.ID, floatingips.UpdateOpts{PortID: &portID}).Extract(); err != nil {
				return nil, mapError("associate floating IP", err)
			}
		}
	} else {
		f, err = floatingips.Create(ctx, nc, floatingips.CreateOpts{FloatingNetworkID: extID, PortID: portID,
			Description: "hvctl " + o.Cluster + " " + o.Address}).Extract()
		if err != nil {
			return nil, mapError("allocate floating IP", err)
		}
	}
	return f, ensureTags(ctx, nc, "floatingips", f.ID, f.Tags, o.tags(tag(keyNetwork, netID)))
}

// editHostRoute adds (or removes) the subnet host route "overlay CIDR via
// the gateway": DHCP hands it to the site's machines, so traffic to
// overlay addresses goes through the gateway.
func (p *Provider) editHostRoute(ctx context.Context, nc *gophercloud.ServiceClient, subnetID, dest, nexthop string, add bool) error {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	s, err := subnets.Get(ctx, nc, subnetID).Extract()
	if err != nil {
		return ignoreNotFound(mapError("get subnet "+subnetID, err))
	}
	var routes []subnets.HostRoute
	found := false
	for _, r := range s.HostRoutes {
		match := r.NextHop == nexthop && (dest == "" || r.DestinationCIDR == dest)
		if match {
			found = true
			if !add {
				continue
			}
		}
		routes = append(routes, r)
	}
	if add == found {
		return nil
	}
	if add {
		routes = append(routes, subnets.HostRoute{DestinationCIDR: dest, NextHop: nexthop})
	}
	if routes == nil {
		routes = []subnets.HostRoute{}
	}
	_, err = subnets.Update(ctx, nc, subnetID, subnets.UpdateOpts{HostRoutes: &routes}).Extract()
	return ignoreNotFound(mapError("update host routes of subnet "+subnetID, err))
}

type flavor struct {
	id, name   string
	vcpus, ram int
}

// resolveFlavor picks the node's flavor: instance type (name or ID),
// else the provider's flavor, else the smallest with enough vCPUs and RAM.
func (p *Provider) resolveFlavor(ctx context.Context, cc *gophercloud.ServiceClient, a provision.Attrs) (string, error) {
	p.mu.Lock()
	fl := p.flavors
	p.mu.Unlock()
	if fl == nil {
		pages, err := flavors.ListDetail(cc, nil).AllPages(ctx)
		if err != nil {
			return "", mapError("list flavors", err)
		}
		list, err := flavors.ExtractFlavors(pages)
		if err != nil {
			return "", mapError("list flavors", err)
		}
		for _, f := range list {
			fl = append(fl, flavor{f.ID, f.Name, f.VCPUs, f.RAM})
		}
		sort.Slice(fl, func(i, j int) bool {
			if fl[i].vcpus != fl[j].vcpus {
				return fl[i].vcpus < fl[j].vcpus
			}
			return fl[i].ram < fl[j].ram
		})
		p.mu.Lock()
		p.flavors = fl
		p.mu.Unlock()
	}
	var names []string
	for _, f := range fl {
		names = append(names, f.name)
	}
	want := a.Str("instance_type")
	if want == "" {
		want = p.s.Flavor
	}
	if want != "" {
		for _, f := range fl {
			if f.name == want || f.id == want {
				return f.id, nil
			}
		}
		return "", fmt.Errorf("openstack: no flavor %q (flavors: %s)", want, strings.Join(names, ", "))
	}
	cpus, mem := int(a.Int("cpus")), int(a.Int("memory_mib"))
	for _, f := range fl {
		if f.vcpus >= cpus && f.ram >= mem {
			return f.id, nil
		}
	}
	return "", fmt.Errorf("openstack: no flavor has %d vCPUs and %d MiB of RAM (flavors: %s); set instance { type = \"...\" }", cpus, mem, strings.Join(names, ", "))
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// resolveImage returns the node's image ID: instance image, else the
// provider's image; a name is looked up in Glance.
func (p *Provider) resolveImage(ctx context.Context, a provision.Attrs) (string, error) {
	want := a.Str("image")
	if want == "" {
		want = p.s.Image
	}
	if want == "" {
		return "", fmt.Errorf("openstack: no image: set image = \"...\" in the provider block or instance { image = \"...\" } (an image with cloud-init, and hvctl in /usr/local/bin unless the provider sets agent_url)")
	}
	if uuidRE.MatchString(want) {
		return want, nil
	}
	p.mu.Lock()
	id, ok := p.images[want]
	ic := p.image
	p.mu.Unlock()
	if ok {
		return id, nil
	}
	if ic == nil {
		return "", fmt.Errorf("openstack: image %q: the catalog has no image service to look the name up; give the image's ID", want)
	}
	pages, err := images.List(ic, images.ListOpts{Name: want}).AllPages(ctx)
	if err != nil {
		return "", mapError("list images", err)
	}
	list, err := images.ExtractImages(pages)
	if err != nil {
		return "", mapError("list images", err)
	}
	switch len(list) {
	case 0:
		return "", fmt.Errorf("openstack: no image named %q (openstack image list)", want)
	case 1:
	default:
		return "", fmt.Errorf("openstack: %d images are named %q: give the image's ID", len(list), want)
	}
	p.mu.Lock()
	p.images[want] = list[0].ID
	p.mu.Unlock()
	return list[0].ID, nil
}

// readInstance reads a server by ID, or by client token (name and
// metadata) when the ID is empty.
func (p *Provider) readInstance(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, *servers.Server, error) {
	cc, nc, _, err := p.clients(ctx)
	if err != nil {
		return nil, nil, err
	}
	var srv *servers.Server
	if req.ID == "" {
		if req.ClientToken == "" {
			return &provision.ReadResponse{}, nil, nil
		}
		if srv, err = p.findServer(ctx, cc, resName(req.Address, req.ClientToken), req.ClientToken); err != nil || srv == nil {
			return &provision.ReadResponse{}, nil, err
		}
	} else {
		srv, err = servers.Get(ctx, cc, req.ID).Extract()
		if err != nil {
			if err = mapError("get server "+req.ID, err); isNotFound(err) {
				return &provision.ReadResponse{}, nil, nil
			}
			return nil, nil, err
		}
		if srv.Status == "DELETED" || srv.Status == "SOFT_DELETED" {
			return &provision.ReadResponse{}, nil, nil
		}
	}
	attrs, err := p.serverAttrs(ctx, nc, srv)
	if err != nil {
		return nil, nil, err
	}
	return &provision.ReadResponse{Exists: true, ID: srv.ID, Attrs: attrs}, srv, nil
}

// tagsMicroversion is the compute microversion that takes tags at
// create (2.52) and filters lists by them (2.26).
const tagsMicroversion = "2.52"

// listPageSize is a listing's page: Nova's default max_limit.
const listPageSize = 1000

func withMicroversion(cc *gophercloud.ServiceClient, v string) *gophercloud.ServiceClient {
	c := *cc
	c.Microversion = v
	return &c
}

// List is one page of the cluster's servers: Nova's list filtered by the
// cluster tag, limit 1,000, the last server's ID as the marker of the
// next when Nova links the page to a next one (Nova caps a page at its
// max_limit, which an operator may set below 1,000, so a short page can
// still have a next). Attributes come from Nova's addresses; a server
// whose address Nova does not show yet is left out, for Read to ask
// Neutron. Networks are read one by one.
func (p *Provider) List(ctx context.Context, req *provision.ListRequest) (*provision.ListPage, error) {
	cc, _, _, err := p.clients(ctx)
	if err != nil {
		return nil, err
	}
	page := &provision.ListPage{Kinds: []provision.Kind{provision.KindInstance}}
	opts := servers.ListOpts{Tags: tag(keyCluster, req.Cluster), Limit: listPageSize, Marker: req.PageToken}
	var list []servers.Server
	next := ""
	err = servers.List(withMicroversion(cc, tagsMicroversion), opts).EachPage(ctx, func(_ context.Context, pg pagination.Page) (bool, error) {
		var err error
		if list, err = servers.ExtractServers(pg); err != nil {
			return false, err
		}
		if sp, ok := pg.(servers.ServerPage); ok {
			next, err = sp.NextPageURL()
		}
		return false, err // one page per call
	})
	if err != nil {
		return nil, mapError("list servers", err)
	}
	for _, srv := range list {
		if srv.Status == "DELETED" || srv.Status == "SOFT_DELETED" || srv.Metadata[keyCluster] != req.Cluster {
			continue
		}
		a := provision.Attrs{"state": serverState(srv.Status)}
		fixed, floating := novaAddresses(&srv)
		if fixed == "" {
			continue
		}
		a["private_ip"] = fixed
		if floating != "" {
			a["public_address"] = floating
		}
		page.Items = append(page.Items, provision.Listed{Kind: provision.KindInstance, ID: srv.ID, ClientToken: srv.Metadata[keyToken], Attrs: a})
	}
	if next != "" && len(list) > 0 {
		page.NextPageToken = list[len(list)-1].ID
	}
	return page, nil
}

func serverState(status string) string {
	switch status {
	case "BUILD", "REBUILD":
		return StatePending
	case "ACTIVE":
		return StateRunning
	case "SHUTOFF":
		return StateStopped
	case "ERROR":
		return StateFailed
	}
	return strings.ToLower(status)
}

// novaAddresses returns a server's first fixed IPv4 and first floating
// address as Nova's address cache shows them.
func novaAddresses(srv *servers.Server) (fixed, floating string) {
	nets := make([]string, 0, len(srv.Addresses))
	for n := range srv.Addresses {
		nets = append(nets, n)
	}
	sort.Strings(nets)
	for _, n := range nets {
		list, _ := srv.Addresses[n].([]any)
		for _, x := range list {
			m, _ := x.(map[string]any)
			addr, _ := m["addr"].(string)
			switch m["OS-EXT-IPS:type"] {
			case "floating":
				if floating == "" {
					floating = addr
				}
			default:
				if fixed == "" && !strings.Contains(addr, ":") {
					fixed = addr
				}
			}
		}
	}
	return fixed, floating
}

// serverAttrs are a server's computed attributes: state, private_ip and
// public_address (from Nova's addresses, else from its Neutron port).
func (p *Provider) serverAttrs(ctx context.Context, nc *gophercloud.ServiceClient, srv *servers.Server) (provision.Attrs, error) {
	a := provision.Attrs{"state": serverState(srv.Status)}
	fixed, floating := novaAddresses(srv)
	if fixed == "" || floating == "" {
		// Nova's address cache lags behind Neutron: ask Neutron.
		ps, err := listPorts(ctx, nc, ports.ListOpts{Tags: tag(keyServer, srv.ID)})
		if err != nil {
			return nil, err
		}
		for _, pt := range ps {
			if fixed == "" && len(pt.FixedIPs) > 0 {
				fixed = pt.FixedIPs[0].IPAddress
			}
			if floating == "" {
				fs, err := listFloatingIPs(ctx, nc, floatingips.ListOpts{PortID: pt.ID})
				if err != nil {
					return nil, err
				}
				if len(fs) > 0 {
					floating = fs[0].FloatingIP
				}
			}
		}
	}
	if fixed != "" {
		a["private_ip"] = fixed
	}
	if floating != "" {
		a["public_address"] = floating
	}
	return a, nil
}

// waitInstance polls a server until ACTIVE; ERROR is a failure, a
// *provision.CapacityError when Nova's scheduler found no host, and so
// is SHUTOFF: a new server that powers off before it ever ran has failed
// to boot (a stopped server is only one that hvctl stopped).
func (p *Provider) waitInstance(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	return p.pollInstance(ctx, req, func(rr *provision.ReadResponse, srv *servers.Server) (bool, error) {
		if !rr.Exists {
			return true, fmt.Errorf("openstack: %s: server %s disappeared while booting", req.Address, req.ID)
		}
		switch rr.Attrs["state"] {
		case StateRunning:
			return true, nil
		case StateStopped:
			return true, fmt.Errorf("openstack: %s: server %s failed to boot: it went SHUTOFF before it ran (the guest powered itself off; see `openstack console log show %s`)",
				req.Address, srv.ID, srv.ID)
		case StateFailed:
			msg := srv.Fault.Message
			if msg == "" {
				msg = "the server went to ERROR without a fault message"
			}
			if strings.Contains(msg, "No valid host") || strings.Contains(msg, "Insufficient compute resources") {
				return true, &provision.CapacityError{Provider: "openstack", Detail: fmt.Sprintf("%s (server %s, %s): %s", req.Address, srv.ID, srv.Name, msg)}
			}
			return true, fmt.Errorf("openstack: %s: server %s failed to boot: %s", req.Address, srv.ID, msg)
		}
		return false, nil
	})
}

// pollInstance reads a server every Timing.Poll until done reports it
// done or fails; transient read errors are read again. ctx bounds the
// wait. It returns the last read.
func (p *Provider) pollInstance(ctx context.Context, req *provision.ReadRequest, done func(*provision.ReadResponse, *servers.Server) (bool, error)) (*provision.ReadResponse, error) {
	for {
		rr, srv, err := p.readInstance(ctx, req)
		if err != nil && !provision.IsRetryable(err) {
			return rr, err
		}
		if err == nil {
			if ok, err := done(rr, srv); ok {
				return rr, err
			}
		}
		select {
		case <-ctx.Done():
			return rr, ctx.Err()
		case <-time.After(p.Timing.Poll):
		}
	}
}

// deleteInstance removes a server with its floating IP, port and (for
// a gateway) subnet host route. Each is found by the server's ID or its
// client token, so a half-made node is removed too.
func (p *Provider) deleteInstance(ctx context.Context, id string) error {
	cc, nc, _, err := p.clients(ctx)
	if err != nil {
		return err
	}
	srv, err := servers.Get(ctx, cc, id).Extract()
	if err != nil {
		if err = mapError("get server "+id, err); !isNotFound(err) {
			return err
		}
		srv = nil
	}
	ps, err := listPorts(ctx, nc, ports.ListOpts{Tags: tag(keyServer, id)})
	if err != nil {
		return err
	}
	if srv != nil && srv.Metadata[keyToken] != "" {
		more, err := listPorts(ctx, nc, ports.ListOpts{Tags: tag(keyToken, srv.Metadata[keyToken])})
		if err != nil {
			return err
		}
		for _, m := range more {
			dup := false
			for _, x := range ps {
				dup = dup || x.ID == m.ID
			}
			if !dup {
				ps = append(ps, m)
			}
		}
	}
	// Floating IPs first: they cost money whether attached or not.
	if err := p.deleteFloatingIPs(ctx, nc, ps); err != nil {
		return err
	}
	if srv != nil {
		if err := ignoreNotFound(mapError("delete server "+srv.Name, servers.Delete(ctx, cc, id).ExtractErr())); err != nil {
			return err
		}
		if err := p.waitGone(ctx, cc, id); err != nil {
			return err
		}
	}
	return p.deletePortAndIPs(ctx, nc, ps)
}

func (p *Provider) deleteFloatingIPs(ctx context.Context, nc *gophercloud.ServiceClient, ps []ports.Port) error {
	for _, pt := range ps {
		fs, err := listFloatingIPs(ctx, nc, floatingips.ListOpts{PortID: pt.ID})
		if err != nil {
			return err
		}
		if tok := tagValue(pt.Tags, keyToken); tok != "" {
			more, err := listFloatingIPs(ctx, nc, floatingips.ListOpts{Tags: tag(keyToken, tok)})
			if err != nil {
				return err
			}
			fs = append(fs, more...)
		}
		for _, f := range fs {
			if !hasTag(f.Tags, tagMarker) && f.PortID != pt.ID {
				continue
			}
			if err := ignoreNotFound(mapError("delete floating IP "+f.FloatingIP, floatingips.Delete(ctx, nc, f.ID).ExtractErr())); err != nil {
				return err
			}
		}
	}
	return nil
}

// deletePortAndIPs removes ports with their floating IPs and host routes.
func (p *Provider) deletePortAndIPs(ctx context.Context, nc *gophercloud.ServiceClient, ps []ports.Port) error {
	if err := p.deleteFloatingIPs(ctx, nc, ps); err != nil {
		return err
	}
	for _, pt := range ps {
		if hasTag(pt.Tags, tagGateway) {
			for _, ip := range pt.FixedIPs {
				if err := p.editHostRoute(ctx, nc, ip.SubnetID, "", ip.IPAddress, false); err != nil {
					return err
				}
			}
		}
		if err := ignoreNotFound(mapError("delete port "+pt.Name, ports.Delete(ctx, nc, pt.ID).ExtractErr())); err != nil {
			return err
		}
	}
	return nil
}

// waitGone waits until Nova no longer has the server (its port can
// then be deleted without racing Nova's own cleanup).
func (p *Provider) waitGone(ctx context.Context, cc *gophercloud.ServiceClient, id string) error {
	deadline := time.Now().Add(p.Timing.DeleteWait)
	for {
		srv, err := servers.Get(ctx, cc, id).Extract()
		if err != nil {
			if err = mapError("get server "+id, err); isNotFound(err) {
				return nil
			}
			if !provision.IsRetryable(err) {
				return err
			}
		} else if srv.Status == "DELETED" || srv.Status == "SOFT_DELETED" {
			return nil
		} else if srv.Status == "ERROR" && srv.TaskState != "deleting" && time.Now().After(deadline) {
			return fmt.Errorf("openstack: server %s is in ERROR and will not delete: %s", id, srv.Fault.Message)
		}
		if time.Now().After(deadline) {
			return &provision.RetryableError{Err: fmt.Errorf("openstack: server %s is still being deleted after %s", id, p.Timing.DeleteWait)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.Timing.Poll):
		}
	}
}
