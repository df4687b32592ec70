package overlay_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/overlay/overlaytest"
	"github.com/hvctl/hvctl/templates"
)

var (
	gwRole  = []templates.Role{templates.RoleGateway}
	hubRole = []templates.Role{templates.RoleHub, templates.RoleManager}
)

// nestedInNAT is the first cluster of issue 13: a public hub in core, a
// NAT'd site edge with gateway gw, and edge.far nested in it with a
// network of its own and gateway gw2.
func nestedInNAT(topo templates.Topology) overlaytest.Spec {
	return overlaytest.Spec{Topology: topo, CIDR: "10.200.0.0/16", Hubs: []string{"core.hub"}, Reflexive: true,
		Sites: []overlaytest.Site{
			{Name: "core", CIDR: "10.1.0.0/24", Gateway: "gw", Nodes: []overlaytest.Node{
				{Name: "hub", Roles: hubRole, Public: true}, {Name: "gw", Roles: gwRole}, {Name: "w"}}},
			{Name: "edge", CIDR: "10.2.0.0/24", Gateway: "gw", Nodes: []overlaytest.Node{{Name: "gw", Roles: gwRole}, {Name: "w"}},
				Sites: []overlaytest.Site{{Name: "far", CIDR: "10.3.0.0/24", Gateway: "gw2",
					Nodes: []overlaytest.Node{{Name: "gw2", Roles: gwRole}, {Name: "w"}}}}},
		}}
}

// campusMesh is the second cluster of issue 13: three levels of nesting
// under campus (public hub), and a NAT'd cloud site.
func campusMesh() overlaytest.Spec {
	return overlaytest.Spec{Topology: templates.Mesh, CIDR: "10.200.0.0/16", Hubs: []string{"campus.hub"}, Reflexive: true,
		Sites: []overlaytest.Site{
			{Name: "campus", CIDR: "172.16.0.0/16", Nodes: []overlaytest.Node{{Name: "hub", Roles: hubRole, Public: true}, {Name: "w"}},
				Sites: []overlaytest.Site{{Name: "lab", CIDR: "10.50.0.0/24", Nodes: []overlaytest.Node{{Name: "w"}},
					Sites: []overlaytest.Site{{Name: "rack", CIDR: "10.51.0.0/24", Nodes: []overlaytest.Node{{Name: "w"}}}}}}},
			{Name: "cloud", CIDR: "172.20.0.0/16", Nodes: []overlaytest.Node{{Name: "w"}}},
		}}
}

// TestEndpointSelection checks where each node sends to a peer: the
// peer's site address on one private network (a site and the sites nested
// in it, whatever their CIDRs), its public or NAT endpoint otherwise, and
// never a learned NAT endpoint in place of a site address.
func TestEndpointSelection(t *testing.T) {
	const (
		site     = "site address"
		endpoint = "endpoint"
		none     = "none"
	)
	type check struct {
		from, to  string
		want      string
		keepalive bool
	}
	tests := []struct {
		name   string
		spec   overlaytest.Spec
		change func(b *overlaytest.Built)
		checks []check
	}{
		{name: "hierarchical, site nested in a NAT'd site", spec: nestedInNAT(templates.Hierarchical), checks: []check{
			{"edge.far.gw2", "edge.gw", site, false},
			{"edge.gw", "edge.far.gw2", site, false},
			{"edge.far.w", "edge.far.gw2", site, false},
			{"edge.gw", "core.hub", endpoint, true},
			{"core.hub", "edge.gw", endpoint, false},
			{"core.gw", "core.hub", site, false},
		}},
		{name: "star, site nested in a NAT'd site", spec: nestedInNAT(templates.Star), checks: []check{
			{"edge.far.w", "core.hub", endpoint, true},
			{"core.hub", "edge.far.w", endpoint, false},
			{"core.w", "core.hub", site, false},
		}},
		{name: "mesh, three levels and a NAT'd cloud", spec: campusMesh(), checks: []check{
			{"campus.lab.rack.w", "campus.w", site, false},
			{"campus.w", "campus.lab.rack.w", site, false},
			{"campus.lab.w", "campus.lab.rack.w", site, false},
			{"campus.lab.rack.w", "campus.hub", site, false},
			{"cloud.w", "campus.lab.rack.w", endpoint, true},
			{"campus.lab.rack.w", "cloud.w", endpoint, true},
			{"cloud.w", "campus.hub", endpoint, true},
		}},
		{name: "mesh, siblings nested in one NAT'd parent", spec: overlaytest.Spec{Topology: templates.Mesh, CIDR: "10.200.0.0/16", Reflexive: true,
			Hubs: []string{"hq.hub"}, Sites: []overlaytest.Site{
				{Name: "hq", CIDR: "192.168.0.0/24", Nodes: []overlaytest.Node{{Name: "hub", Roles: hubRole, Public: true}}},
				{Name: "region", CIDR: "172.30.0.0/16", Nodes: []overlaytest.Node{{Name: "w"}}, Sites: []overlaytest.Site{
					{Name: "a", CIDR: "10.60.0.0/24", Nodes: []overlaytest.Node{{Name: "w"}}},
					{Name: "b", CIDR: "172.30.128.0/19", Nodes: []overlaytest.Node{{Name: "w"}}},
					{Name: "c", Nodes: []overlaytest.Node{{Name: "w"}}},
				}},
			}}, checks: []check{
			{"region.a.w", "region.b.w", site, false},
			{"region.b.w", "region.a.w", site, false},
			{"region.c.w", "region.a.w", site, false},
			{"region.a.w", "hq.hub", endpoint, true},
		}},
		{name: "a learned endpoint does not replace a site address", spec: campusMesh(), change: func(b *overlaytest.Built) {
			// as if a hub elsewhere had learnt campus.w's NAT mapping
			m := memberPtr(b, "campus.w")
			m.Endpoint = netip.AddrPortFrom(b.NATAddr["campus"], 40000)
		}, checks: []check{
			{"campus.lab.rack.w", "campus.w", site, false},
			{"cloud.w", "campus.w", endpoint, true},
		}},
		{name: "a NAT'd peer of the same network without site address gets none", spec: campusMesh(), change: func(b *overlaytest.Built) {
			memberPtr(b, "campus.lab.w").SiteAddr = netip.Addr{}
		}, checks: []check{
			{"campus.w", "campus.lab.w", none, false},
			{"cloud.w", "campus.lab.w", endpoint, true},
		}},
		{name: "a public peer of the same network without site address", spec: campusMesh(), change: func(b *overlaytest.Built) {
			memberPtr(b, "campus.hub").SiteAddr = netip.Addr{}
		}, checks: []check{
			{"campus.lab.rack.w", "campus.hub", endpoint, false},
		}},
		{name: "a nested site on another provider is a network of its own", spec: campusMesh(), change: func(b *overlaytest.Built) {
			local := &templates.Provider{Type: "local"}
			for _, s := range b.Cluster.AllSites() {
				s.Provider = local
				if s.Path == "campus.lab.rack" {
					s.Provider = &templates.Provider{Type: "aws", Name: "ohio"}
				}
			}
		}, checks: []check{
			{"campus.lab.rack.w", "campus.w", endpoint, true},
			{"campus.lab.w", "campus.w", site, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := overlaytest.Build(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if tt.change != nil {
				tt.change(b)
			}
			tp, err := overlay.Plan(b.Cluster, b.Members, b.Addrs)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.checks {
				ps, err := tp.PeersFor(c.from)
				if err != nil {
					t.Fatal(err)
				}
				p := ps.Peer(c.to)
				if p == nil {
					t.Errorf("%s has no peer %s", c.from, c.to)
					continue
				}
				to := member(b, c.to)
				got := none
				switch {
				case !p.Endpoint.IsValid():
				case p.Endpoint.Addr() == to.SiteAddr:
					got = site
				case p.Endpoint == to.Endpoint:
					got = endpoint
				default:
					got = "unexpected " + p.Endpoint.String()
				}
				if got != c.want || (p.Keepalive > 0) != c.keepalive {
					t.Errorf("%s -> %s: %s (%v), keepalive %v; want %s, keepalive set %v", c.from, c.to, got, p.Endpoint, p.Keepalive, c.want, c.keepalive)
				}
			}
		})
	}
}

// TestNoRouteIntoTheOverlayForOwnNetwork checks that a node does not
// route a network of its own private network into the overlay device: its
// peers there are reached at site addresses on the underlay, and a route
// would send the tunnel's own packets into the tunnel.
func TestNoRouteIntoTheOverlayForOwnNetwork(t *testing.T) {
	for _, topo := range topologies {
		t.Run(string(topo), func(t *testing.T) {
			b, tp, sets := plan(t, nestedInNAT(topo))
			edge := netip.MustParsePrefix("10.2.0.0/24")
			far := netip.MustParsePrefix("10.3.0.0/24")
			core := netip.MustParsePrefix("10.1.0.0/24")
			for _, id := range []string{"edge.far.gw2", "edge.far.w", "edge.gw", "edge.w"} {
				rs := sets[id].Routes
				if slices.Contains(rs, edge) || slices.Contains(rs, far) {
					t.Errorf("%s routes its own private network into the overlay: %v", id, rs)
				}
				if !slices.Contains(rs, core) {
					t.Errorf("%s does not route core's network %s: %v", id, core, rs)
				}
			}
			if !tp.SharePrivateNetwork("edge.far.gw2", "edge.gw") || tp.SharePrivateNetwork("edge.gw", "core.gw") {
				t.Errorf("SharePrivateNetwork: edge.far/edge %v, edge/core %v",
					tp.SharePrivateNetwork("edge.far.gw2", "edge.gw"), tp.SharePrivateNetwork("edge.gw", "core.gw"))
			}
			if got := overlay.PrivateNetwork(b.Cluster, "edge.far"); got != "edge" {
				t.Errorf("PrivateNetwork(edge.far) = %q, want edge", got)
			}
		})
	}
}

func memberPtr(b *overlaytest.Built, id string) *overlay.Member {
	for i := range b.Members {
		if b.Members[i].ID == id {
			return &b.Members[i]
		}
	}
	panic("no member " + id)
}

func TestProbeTargets(t *testing.T) {
	tests := []struct {
		name string
		spec overlaytest.Spec
		node string
		want []string
	}{
		{"hierarchical worker: the hub and every gateway", nestedInNAT(templates.Hierarchical), "edge.far.w",
			[]string{"core.hub", "core.gw", "edge.gw", "edge.far.gw2"}},
		{"hierarchical gateway: not itself", nestedInNAT(templates.Hierarchical), "edge.gw",
			[]string{"core.hub", "core.gw", "edge.far.gw2"}},
		{"star hub", nestedInNAT(templates.Star), "core.hub", []string{"core.gw", "edge.gw", "edge.far.gw2"}},
		{"mesh: every other node", campusMesh(), "cloud.w", []string{"campus.hub", "campus.w", "campus.lab.w", "campus.lab.rack.w"}},
		{"not a member", campusMesh(), "mars.w", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, tp, _ := plan(t, tt.spec)
			if got := tp.ProbeTargets(tt.node); !slices.Equal(got, tt.want) {
				t.Errorf("ProbeTargets(%s) = %v, want %v", tt.node, got, tt.want)
			}
		})
	}
}
