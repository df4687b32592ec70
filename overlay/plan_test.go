package overlay_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/overlay/overlaytest"
	"github.com/hvctl/hvctl/templates"
)

var topologies = []templates.Topology{templates.Star, templates.Mesh, templates.Hierarchical}

// cases returns the named clusters every topology is checked on.
func cases(topo templates.Topology) map[string]overlaytest.Spec {
	out := map[string]overlaytest.Spec{
		"paper003":   overlaytest.Paper003(topo),
		"three-site": overlaytest.ThreeSites(topo),
		"large-tree": overlaytest.Large(topo, 23, 5),
	}
	if topo == templates.Mesh {
		// Nodes behind NAT reach each other directly only through the
		// endpoints their NATs were seen to use.
		for k, sp := range out {
			sp.Reflexive = true
			out[k] = sp
		}
	}
	for seed := uint64(1); seed <= 40; seed++ {
		out[fmt.Sprintf("random-%d", seed)] = overlaytest.Random(rand.New(rand.NewPCG(seed, 3)), topo)
	}
	return out
}

func plan(t testing.TB, sp overlaytest.Spec) (*overlaytest.Built, *overlay.Topology, map[string]*overlay.PeerSet) {
	t.Helper()
	b, err := overlaytest.Build(sp)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := overlay.Plan(b.Cluster, b.Members, b.Addrs)
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]*overlay.PeerSet{}
	for _, ps := range topo.All() {
		sets[ps.Node] = ps
	}
	return b, topo, sets
}

// TestEveryPairHasAPath forwards a packet between every ordered pair of
// nodes the way the kernel and WireGuard would: route lookup, cryptokey
// routing by longest AllowedIPs match, source check at the receiving peer,
// forwarding only at hubs and gateways, and only over links where at least
// one side knows the other's endpoint. Hosts on routed site networks are
// reached through their gateway and reply through it.
func TestEveryPairHasAPath(t *testing.T) {
	for _, topo := range topologies {
		for name, sp := range cases(topo) {
			t.Run(string(topo)+"/"+name, func(t *testing.T) {
				b, tp, sets := plan(t, sp)
				n := newNet(b, tp, sets)
				for _, src := range b.Members {
					for _, dst := range b.Members {
						if src.ID == dst.ID {
							continue
						}
						da, _ := tp.Address(dst.ID)
						sa, _ := tp.Address(src.ID)
						if err := n.send(src.ID, sa, da); err != nil {
							t.Errorf("%s -> %s (%s): %v", src.ID, dst.ID, da, err)
						}
					}
					// Hosts on routed site networks that are not members
					// (storage, existing machines) are reached through the
					// site's gateway and reply through it.
					for _, h := range n.hosts {
						if n.sameUnderlay(src.ID, h) {
							continue
						}
						host := n.nodes[h]
						if err := n.send(src.ID, n.nodes[src.ID].addr, host.m.SiteAddr); err != nil {
							t.Errorf("%s -> host on %s: %v", src.ID, host.m.Site, err)
						}
						if err := n.sendFromHost(h, n.nodes[src.ID].addr); err != nil {
							t.Errorf("host on %s -> %s: %v", host.m.Site, src.ID, err)
						}
					}
				}
			})
		}
	}
}

func TestNoAllowedIPsOverlap(t *testing.T) {
	for _, topo := range topologies {
		for name, sp := range cases(topo) {
			t.Run(string(topo)+"/"+name, func(t *testing.T) {
				_, _, sets := plan(t, sp)
				for _, ps := range sets {
					checkNoOverlap(t, ps)
					for _, hub := range failoverHubs(ps) {
						moved, err := ps.WithActiveHub(hub)
						if err != nil {
							t.Fatal(err)
						}
						checkNoOverlap(t, moved)
					}
				}
			})
		}
	}
}

func failoverHubs(ps *overlay.PeerSet) []string {
	if ps.Failover == nil {
		return nil
	}
	return ps.Failover.Hubs
}

// checkNoOverlap fails if two peers of ps hold the same prefix, or if a
// peer holds a prefix that strictly contains another peer's prefix without
// that being intended: the only nesting allowed is a host route (a node's
// own address) or a site network inside a wider range.
func checkNoOverlap(t *testing.T, ps *overlay.PeerSet) {
	t.Helper()
	owner := map[netip.Prefix]string{}
	for _, p := range ps.Peers {
		for _, a := range p.AllowedIPs {
			if o, ok := owner[a]; ok {
				t.Errorf("node %s: %s held by both %s and %s", ps.Node, a, o, p.Node)
			}
			owner[a] = p.Node
		}
	}
	// Every address resolves to exactly one peer by longest match; the
	// equal-length case is the duplicate above. Also the node's own
	// address must not be routed to a peer.
	for a, o := range owner {
		if a.Contains(ps.Address.Addr()) && a.Bits() == a.Addr().BitLen() {
			t.Errorf("node %s: its own address is routed to %s", ps.Node, o)
		}
	}
}

func TestPeerCounts(t *testing.T) {
	for _, topo := range topologies {
		for name, sp := range cases(topo) {
			t.Run(string(topo)+"/"+name, func(t *testing.T) {
				b, tp, sets := plan(t, sp)
				n := len(b.Members)
				hubs := tp.Hubs()
				for _, m := range b.Members {
					ps := sets[m.ID]
					isHub := slices.Contains(hubs, m.ID)
					switch topo {
					case templates.Mesh:
						if len(ps.Peers) != n-1 {
							t.Errorf("%s: %d peers, want n-1 = %d", m.ID, len(ps.Peers), n-1)
						}
					case templates.Star:
						if isHub {
							if len(ps.Peers) != n-1 {
								t.Errorf("hub %s: %d peers, want %d", m.ID, len(ps.Peers), n-1)
							}
							continue
						}
						var got []string
						for _, p := range ps.Peers {
							got = append(got, p.Node)
						}
						if !slices.Equal(got, hubs) {
							t.Errorf("%s: peers %v, want the hubs %v", m.ID, got, hubs)
						}
					case templates.Hierarchical:
						if isHub {
							continue // the root level
						}
						if bound := hierBound(b, tp, m); len(ps.Peers) > bound {
							t.Errorf("%s: %d peers, more than its site members and neighbouring gateways (%d)", m.ID, len(ps.Peers), bound)
						}
					}
				}
			})
		}
	}
}

// hierBound is what a non-hub may peer with in the hierarchical topology:
// the members of its site (nested sites included), the gateways of its own,
// parent, sibling and child sites, and the hubs.
func hierBound(b *overlaytest.Built, tp *overlay.Topology, m overlay.Member) int {
	var site *templates.Site
	for _, s := range b.Cluster.AllSites() {
		if s.Path == m.Site {
			site = s
		}
	}
	count := len(tp.Hubs())
	if tp.Gateway(m.Site) != m.ID {
		return max(1, count)
	}
	for _, o := range b.Members {
		if o.Site == m.Site || strings.HasPrefix(o.Site, m.Site+".") {
			count++
		}
	}
	var siblings []*templates.Site
	if site.Parent != nil {
		siblings = site.Parent.Sites
		count++ // the parent's gateway
	} else {
		siblings = b.Cluster.Sites
	}
	count += len(siblings)
	return count
}

// TestHierarchicalScales checks that a node's peer set stays small in the
// hierarchical topology however large the cluster.
func TestHierarchicalScales(t *testing.T) {
	_, _, sets := plan(t, overlaytest.Large(templates.Hierarchical, 100, 30))
	most := 0
	for _, ps := range sets {
		if len(ps.Peers) > 2 && !strings.Contains(ps.Node, "hub") {
			most = max(most, len(ps.Peers))
		}
	}
	// a region gateway: 29 members + 9 zone gateways + 9 sibling regions + 2 hubs
	if most > 29+9+9+2 {
		t.Errorf("largest gateway peer set %d in a 3000-node cluster", most)
	}
}

func TestPlanSettings(t *testing.T) {
	b, err := overlaytest.Build(overlaytest.Paper003(templates.Star))
	if err != nil {
		t.Fatal(err)
	}
	b.Members[3].UnderlayMTU = 9001 // aws.router
	tp, err := overlay.Plan(b.Cluster, b.Members, b.Addrs)
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := tp.PeersFor("aws.router")
	if ps.MTU != 9001-80 {
		t.Errorf("MTU auto on 9001 underlay = %d, want 8921", ps.MTU)
	}
	hub, _ := tp.PeersFor("onprem.frontend")
	if hub.MTU != 1420 || hub.ListenPort != 51820 || !hub.Forward {
		t.Errorf("hub: MTU %d port %d forward %v", hub.MTU, hub.ListenPort, hub.Forward)
	}
	// Keepalive only towards other sites from nodes behind NAT.
	for _, ps := range tp.All() {
		for _, p := range ps.Peers {
			m := member(b, ps.Node)
			other := member(b, p.Node)
			want := m.NAT && m.Site != other.Site && p.Endpoint.IsValid()
			if (p.Keepalive > 0) != want {
				t.Errorf("%s -> %s: keepalive %v, want set=%v", ps.Node, p.Node, p.Keepalive, want)
			}
		}
	}
	// The gateway's site network is routed at the hub, through the gateway.
	if p := hub.Peer("aws.router"); p == nil || !slices.Contains(p.AllowedIPs, netip.MustParsePrefix("10.4.2.0/24")) {
		t.Errorf("hub's peer aws.router = %+v, want it to carry 10.4.2.0/24", p)
	}
	if !slices.Contains(hub.Routes, netip.MustParsePrefix("10.4.2.0/24")) {
		t.Errorf("hub routes %v lack the aws site network", hub.Routes)
	}
	b.Cluster.Overlay.MTU = 1300
	tp, _ = overlay.Plan(b.Cluster, b.Members, b.Addrs)
	if ps, _ := tp.PeersFor("aws.router"); ps.MTU != 1300 {
		t.Errorf("fixed MTU 1300 gave %d", ps.MTU)
	}
}

func TestPlanErrors(t *testing.T) {
	b, err := overlaytest.Build(overlaytest.Paper003(templates.Star))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(c *templates.Cluster, ms []overlay.Member, addrs map[string]netip.Addr) ([]overlay.Member, map[string]netip.Addr)
		want   string
	}{
		{"no hub", func(c *templates.Cluster, ms []overlay.Member, a map[string]netip.Addr) ([]overlay.Member, map[string]netip.Addr) {
			c.Overlay.Hubs = nil
			ms[0].Roles = nil
			return ms, a
		}, "needs a hub"},
		{"unknown site", func(c *templates.Cluster, ms []overlay.Member, a map[string]netip.Addr) ([]overlay.Member, map[string]netip.Addr) {
			ms[1].Site = "mars"
			return ms, a
		}, `site "mars"`},
		{"no address", func(c *templates.Cluster, ms []overlay.Member, a map[string]netip.Addr) ([]overlay.Member, map[string]netip.Addr) {
			delete(a, ms[2].ID)
			return ms, a
		}, "no overlay address"},
		{"shared address", func(c *templates.Cluster, ms []overlay.Member, a map[string]netip.Addr) ([]overlay.Member, map[string]netip.Addr) {
			a[ms[2].ID] = a[ms[1].ID]
			return ms, a
		}, "share address"},
		{"bad topology", func(c *templates.Cluster, ms []overlay.Member, a map[string]netip.Addr) ([]overlay.Member, map[string]netip.Addr) {
			c.Overlay.Topology = "ring"
			return ms, a
		}, "unknown topology"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *b.Cluster
			ms := slices.Clone(b.Members)
			addrs := map[string]netip.Addr{}
			for k, v := range b.Addrs {
				addrs[k] = v
			}
			ms, addrs = tt.change(&c, ms, addrs)
			_, err := overlay.Plan(&c, ms, addrs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Plan error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFailoverRange(t *testing.T) {
	_, _, sets := plan(t, overlaytest.ThreeSites(templates.Star))
	ps := sets["c.n1"]
	if ps.Failover == nil || !slices.Equal(ps.Failover.Hubs, []string{"a.hub", "b.hub"}) {
		t.Fatalf("c.n1 failover = %+v", ps.Failover)
	}
	moved, err := ps.WithActiveHub("b.hub")
	if err != nil {
		t.Fatal(err)
	}
	overlayRange := netip.MustParsePrefix("10.200.0.0/16")
	if !slices.Contains(moved.Peer("b.hub").AllowedIPs, overlayRange) || slices.Contains(moved.Peer("a.hub").AllowedIPs, overlayRange) {
		t.Errorf("after failover: a.hub %v, b.hub %v", moved.Peer("a.hub").AllowedIPs, moved.Peer("b.hub").AllowedIPs)
	}
	// The primary keeps its own address so that probes still reach it.
	a, _ := netip.ParsePrefix("10.200.0.1/32")
	if !slices.Contains(moved.Peer("a.hub").AllowedIPs, a) {
		t.Errorf("primary lost its own address: %v", moved.Peer("a.hub").AllowedIPs)
	}
	// The plan itself is untouched.
	if !slices.Contains(ps.Peer("a.hub").AllowedIPs, overlayRange) {
		t.Errorf("WithActiveHub changed its receiver")
	}
	if _, err := ps.WithActiveHub("c.gw"); err == nil {
		t.Errorf("WithActiveHub accepted a non-hub")
	}
}

func member(b *overlaytest.Built, id string) overlay.Member {
	for _, m := range b.Members {
		if m.ID == id {
			return m
		}
	}
	panic("no member " + id)
}
