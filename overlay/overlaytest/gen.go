// Package overlaytest builds cluster models and overlay members for tests
// and benchmarks of the overlay planner.
package overlaytest

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/templates"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Site describes a site to build.
type Site struct {
	Name    string
	CIDR    string // "" = no network block
	Gateway string // node name, "" = none
	// Public gives every node of the site (pool members too) a public
	// address; otherwise only nodes marked Public (and hubs) have one.
	Public bool
	Nodes  []Node
	Pools  []Pool
	Sites  []Site
}

// Node is a named node.
type Node struct {
	Name   string
	Roles  []templates.Role
	Public bool
}

// Pool is a pool with Count members "NAME[i]".
type Pool struct {
	Name  string
	Count int
}

// Spec is a whole cluster.
type Spec struct {
	Topology templates.Topology
	CIDR     string
	Hubs     []string
	Sites    []Site
	// Reflexive gives nodes behind NAT an endpoint (their site NAT's
	// public address and a port of their own), as learnt through a hub;
	// without it they have none.
	Reflexive bool
}

// Built is a cluster model and its members with addresses.
type Built struct {
	Cluster *templates.Cluster
	Members []overlay.Member
	Addrs   map[string]netip.Addr
	Keys    map[string]wgtypes.Key // private keys, by member ID
	// NATAddr is the public address of each top-level site's NAT: a
	// site and its nested sites form one private network behind it.
	NATAddr map[string]netip.Addr
}

// Key derives a deterministic private key from id.
func Key(id string) wgtypes.Key {
	sum := sha256.Sum256([]byte("hvctl-test-key:" + id))
	k, _ := wgtypes.NewKey(sum[:])
	// clamp as GeneratePrivateKey does
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

// Build makes the cluster model, members and addresses for s.
func Build(s Spec) (*Built, error) {
	cidr, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		return nil, err
	}
	c := &templates.Cluster{
		Name: "test",
		Overlay: templates.Overlay{
			CIDR:     cidr,
			Topology: s.Topology,
			Hubs:     s.Hubs,
		},
	}
	b := &Built{Cluster: c, Keys: map[string]wgtypes.Key{}, NATAddr: map[string]netip.Addr{}}
	hubs := map[string]bool{}
	for _, h := range s.Hubs {
		hubs[h] = true
	}
	var ids []string
	siteNo := 0
	hosts := map[netip.Prefix]int{}
	var build func(ss []Site, parent *templates.Site) ([]*templates.Site, error)
	build = func(ss []Site, parent *templates.Site) ([]*templates.Site, error) {
		var out []*templates.Site
		for _, sp := range ss {
			siteNo++
			ts := &templates.Site{Name: sp.Name, Path: sp.Name, Parent: parent, Gateway: sp.Gateway}
			if parent != nil {
				ts.Path = parent.Path + "." + sp.Name
			}
			if sp.CIDR != "" {
				p, err := netip.ParsePrefix(sp.CIDR)
				if err != nil {
					return nil, err
				}
				ts.Network.CIDR = p
			}
			top := ts
			for top.Parent != nil {
				top = top.Parent
			}
			nat, ok := b.NATAddr[top.Path]
			if !ok {
				nat = netip.AddrFrom4([4]byte{198, 51, byte(siteNo / 250), byte(siteNo%250 + 1)})
				b.NATAddr[top.Path] = nat
			}
			add := func(id string, roles []templates.Role, public bool) {
				k := Key(id)
				b.Keys[id] = k
				m := overlay.Member{ID: id, Site: ts.Path, Roles: roles, PublicKey: k.PublicKey(), NAT: !public}
				// A nested site without a network block lives in
				// its parent's; a top-level one still has an underlay,
				// made up here outside every site network.
				net := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(siteNo), 0}), 24)
				for p := ts; p != nil; p = p.Parent {
					if p.Network.CIDR.IsValid() {
						net = p.Network.CIDR.Masked()
						break
					}
				}
				hosts[net]++
				a := net.Addr()
				for i := 0; i < 9+hosts[net]; i++ {
					a = a.Next()
				}
				m.SiteAddr = a
				switch {
				case public:
					n := len(ids) + 1
					m.Endpoint = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, byte(113 + n/250), byte(n%250 + 1)}), overlay.DefaultPort)
				case s.Reflexive:
					m.ListenPort = overlay.DefaultPort + 1 + len(ids)
					m.Endpoint = netip.AddrPortFrom(nat, uint16(m.ListenPort))
				}
				b.Members = append(b.Members, m)
				ids = append(ids, id)
			}
			for _, n := range sp.Nodes {
				tn := &templates.Node{Name: n.Name, Site: ts, Roles: n.Roles, PublicIP: n.Public}
				ts.Nodes = append(ts.Nodes, tn)
				add(tn.Path(), n.Roles, n.Public || sp.Public || hubs[tn.Path()])
			}
			for _, p := range sp.Pools {
				tp := &templates.Pool{Name: p.Name, Site: ts, Min: p.Count, Max: p.Count}
				ts.Pools = append(ts.Pools, tp)
				for i := 0; i < p.Count; i++ {
					add(fmt.Sprintf("%s[%d]", tp.Path(), i), nil, sp.Public)
				}
			}
			kids, err := build(sp.Sites, ts)
			if err != nil {
				return nil, err
			}
			ts.Sites = kids
			out = append(out, ts)
		}
		return out, nil
	}
	c.Sites, err = build(s.Sites, nil)
	if err != nil {
		return nil, err
	}
	b.Addrs, err = overlay.Allocate(cidr, nil, ids)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Paper003 is the example cluster of the template spec: an on-prem site
// with the hub, an AWS site with a gateway (vRouter) and a pool, and an
// OpenStack region with a nested zone and no gateway (standalone nodes).
func Paper003(topo templates.Topology) Spec {
	return Spec{
		Topology: topo,
		CIDR:     "10.200.0.0/16",
		Hubs:     []string{"onprem.frontend"},
		Sites: []Site{
			{Name: "onprem", CIDR: "192.168.10.0/24",
				Nodes: []Node{{Name: "frontend", Roles: []templates.Role{templates.RoleHub, templates.RoleManager}, Public: true}},
				Pools: []Pool{{Name: "wn", Count: 2}}},
			{Name: "aws", CIDR: "10.4.2.0/24", Gateway: "router",
				Nodes: []Node{{Name: "router", Roles: []templates.Role{templates.RoleGateway}}},
				Pools: []Pool{{Name: "burst", Count: 2}}},
			{Name: "cloud", CIDR: "10.5.0.0/16",
				Sites: []Site{{Name: "zone-a", CIDR: "10.5.1.0/24", Pools: []Pool{{Name: "gpu", Count: 2}}}}},
		},
	}
}

// ThreeSites is the real-test layout: three sites of two nodes, a primary
// hub in a and a backup hub in b (each its site's gateway), and a gateway
// node in c.
func ThreeSites(topo templates.Topology) Spec {
	hubGW := []templates.Role{templates.RoleHub, templates.RoleGateway}
	return Spec{
		Topology: topo,
		CIDR:     "10.200.0.0/16",
		Hubs:     []string{"a.hub", "b.hub"},
		Sites: []Site{
			{Name: "a", CIDR: "192.168.1.0/24", Gateway: "hub",
				Nodes: []Node{{Name: "hub", Roles: hubGW, Public: true}, {Name: "n1"}}},
			{Name: "b", CIDR: "192.168.2.0/24", Gateway: "hub",
				Nodes: []Node{{Name: "hub", Roles: hubGW, Public: true}, {Name: "n1"}}},
			{Name: "c", CIDR: "192.168.3.0/24", Gateway: "gw",
				Nodes: []Node{{Name: "gw", Roles: []templates.Role{templates.RoleGateway}}, {Name: "n1"}}},
		},
	}
}

// Large is nSites sites in a two-level tree (regions of ten zones), each
// with a gateway and perSite nodes in all, and two hubs in the first site.
func Large(topo templates.Topology, nSites, perSite int) Spec {
	s := Spec{Topology: topo, CIDR: "10.0.0.0/8", Reflexive: true}
	regions := (nSites + 9) / 10
	n := 0
	for r := 0; r < regions && n < nSites; r++ {
		region := Site{Name: fmt.Sprintf("r%d", r), CIDR: fmt.Sprintf("172.%d.0.0/16", 16+r%16), Gateway: "gw"}
		if r >= 16 {
			region.CIDR = ""
		}
		addSite := func(st *Site, hubs bool) {
			st.Nodes = append(st.Nodes, Node{Name: "gw", Roles: []templates.Role{templates.RoleGateway}})
			rest := perSite - 1
			if hubs {
				for _, h := range []string{"hub1", "hub2"} {
					st.Nodes = append(st.Nodes, Node{Name: h, Roles: []templates.Role{templates.RoleHub}, Public: true})
				}
				rest -= 2
			}
			st.Pools = append(st.Pools, Pool{Name: "wn", Count: rest})
		}
		addSite(&region, r == 0)
		if r == 0 {
			s.Hubs = []string{"r0.hub1", "r0.hub2"}
		}
		n++
		for z := 0; z < 9 && n < nSites; z++ {
			zone := Site{Name: fmt.Sprintf("z%d", z), Gateway: "gw"}
			if region.CIDR != "" {
				zone.CIDR = fmt.Sprintf("172.%d.%d.0/24", 16+r%16, z+1)
			}
			addSite(&zone, false)
			region.Sites = append(region.Sites, zone)
			n++
		}
		s.Sites = append(s.Sites, region)
	}
	return s
}

// Random is a random cluster drawn from rng: one to three top-level
// sites, nested up to three levels deep; sites whose nodes are all public
// mixed with sites behind NAT; nested sites whose network lies inside
// their parent's, nested sites with a network of their own routed inside
// the parent's (as the local provider makes them), and nested sites with
// none; gateways in about two sites of three; one to three nodes per site;
// one to three public hubs. NAT'd nodes have the endpoints their NATs use
// (as the manager predicts and learns them) always in a mesh and in half
// of the other draws.
func Random(rng *rand.Rand, topo templates.Topology) Spec {
	s := Spec{Topology: topo, CIDR: "10.200.0.0/16", Reflexive: topo == templates.Mesh || rng.IntN(2) == 0}
	next := 0
	var hubCandidates []string
	var gen func(depth int, prefix string, parent netip.Prefix) []Site
	gen = func(depth int, prefix string, parent netip.Prefix) []Site {
		var out []Site
		n := 1 + rng.IntN(3)
		if depth > 1 {
			n = rng.IntN(3)
		}
		for i := 0; i < n; i++ {
			next++
			st := Site{Name: fmt.Sprintf("s%d", next), Public: rng.IntN(4) == 0}
			path := st.Name
			if prefix != "" {
				path = prefix + "." + st.Name
			}
			var cidr netip.Prefix
			switch {
			case depth == 1:
				if rng.IntN(5) > 0 {
					cidr = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(16 + next), 0, 0}), 16)
				}
			default:
				switch k := rng.IntN(3); {
				case k == 0 && parent.IsValid() && parent.Bits() <= 24:
					// inside the parent's network: subnets 4 to 6 of eight, above the parent's own hosts
					bits := parent.Bits() + 3
					a := parent.Addr().As4()
					v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
					v |= uint32(i+4) << (32 - bits)
					cidr = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits)
				case k <= 1:
					// a network of its own, routed inside the parent's
					cidr = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + next), 0, 0}), 24)
				}
			}
			if cidr.IsValid() {
				st.CIDR = cidr.String()
			}
			st.Nodes = []Node{{Name: "n0"}}
			if rng.IntN(3) > 0 {
				st.Nodes[0].Roles = []templates.Role{templates.RoleGateway}
				st.Gateway = "n0"
			}
			if rng.IntN(4) == 0 {
				st.Nodes = append(st.Nodes, Node{Name: "h", Roles: []templates.Role{templates.RoleHub}, Public: true})
				hubCandidates = append(hubCandidates, path+".h")
			}
			if k := rng.IntN(3); k > 0 {
				st.Pools = []Pool{{Name: "p", Count: k}}
			}
			if depth < 3 && rng.IntN(2) == 0 {
				sub := cidr
				if !sub.IsValid() {
					sub = parent
				}
				st.Sites = gen(depth+1, path, sub)
			}
			out = append(out, st)
		}
		return out
	}
	s.Sites = gen(1, "", netip.Prefix{})
	if len(hubCandidates) == 0 {
		s.Sites[0].Nodes = append(s.Sites[0].Nodes, Node{Name: "h", Roles: []templates.Role{templates.RoleHub}, Public: true})
		hubCandidates = append(hubCandidates, s.Sites[0].Name+".h")
	}
	if len(hubCandidates) > 3 {
		hubCandidates = hubCandidates[:3]
	}
	s.Hubs = hubCandidates
	return s
}
