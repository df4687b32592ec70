package overlay

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hvctl/hvctl/templates"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Defaults applied when the overlay block leaves a setting at zero.
const (
	DefaultPort        = 51820
	DefaultKeepalive   = 25 * time.Second
	DefaultUnderlayMTU = 1500
	// MTUOverhead is what WireGuard adds to a packet over IPv6 underlay
	// (40 IPv6 + 8 UDP + 32 WireGuard); MTU "auto" is underlay MTU minus this.
	MTUOverhead = 80
)

// Member is one node of the overlay as the planner sees it. The provider
// and the node agent fill it in; nothing in it is secret.
type Member struct {
	// ID is the node's address in the cluster: "onprem.frontend" for a
	// named node, "cloud.burst[2]" for a pool member. overlay.hubs and
	// site gateways are matched against it.
	ID string
	// Site is the path of the node's site, "cloud.zone-a".
	Site string
	// Roles are the node's template roles. Hubs are normally named by
	// overlay.hubs and gateways by the site's gateway attribute; a role
	// here adds a hub or gateway the template does not name.
	Roles []templates.Role
	// PublicKey is the node's WireGuard public key.
	PublicKey wgtypes.Key
	// Endpoint is the address other sites reach the node's WireGuard port
	// at: its public address, or for a node behind NAT the address and
	// port its NAT was seen to use (zero if unknown).
	Endpoint netip.AddrPort
	// SiteAddr is the node's address on its site network (zero if
	// unknown). Nodes of the same site talk to each other there.
	SiteAddr netip.Addr
	// NAT is true when the node sits behind NAT: it then sends keepalives
	// so that the NAT keeps its mapping open.
	NAT bool
	// ListenPort is the node's WireGuard port; 0 means overlay.port.
	// Nodes behind one NAT that must be reached from other sites (mesh)
	// should use distinct ports so the NAT keeps them.
	ListenPort int
	// UnderlayMTU is the MTU of the node's network; 0 means 1500.
	UnderlayMTU int
}

// PeerRole says why a peer is in a peer set.
type PeerRole string

const (
	PeerHub     PeerRole = "hub"     // a hub (primary or backup)
	PeerGateway PeerRole = "gateway" // a site gateway
	PeerNode    PeerRole = "node"    // any other node
)

// Peer is one [Peer] section of a node's configuration.
type Peer struct {
	Node string
	Role PeerRole
	// Address is the peer's overlay address: health probes go there,
	// through this peer's tunnel.
	Address   netip.Addr
	PublicKey wgtypes.Key
	// Endpoint is where to send to the peer; zero when the peer is behind
	// NAT and is only reached after it has sent first.
	Endpoint netip.AddrPort
	// AllowedIPs are the destinations routed to this peer and the sources
	// accepted from it. No prefix appears at two peers of one set; a
	// prefix may lie inside another peer's (a hub's /32 inside the overlay
	// range held by the primary hub), and WireGuard then picks the longest
	// match, as the kernel routing table does.
	AllowedIPs []netip.Prefix
	// Keepalive is the persistent keepalive, set only when this node is
	// behind NAT and the peer is in another site.
	Keepalive time.Duration
}

// PeerSet is everything one node needs to configure its overlay device.
//
// PeerSets returned by a Topology share the AllowedIPs backing arrays of
// peers with each other: treat them as read-only, or copy before changing.
type PeerSet struct {
	Node string
	// Address is the node's overlay address with the overlay's prefix
	// length, so that the kernel routes the whole overlay to the device.
	Address    netip.Prefix
	ListenPort int
	MTU        int
	// Forward is true when the node routes for others (hubs, gateways):
	// IP forwarding must be on.
	Forward bool
	Peers   []Peer
	// Routes are the destinations outside the overlay prefix (site
	// networks) that must be routed into the overlay device.
	Routes []netip.Prefix
	// Failover is set when the node has backup hubs: Range is carried by
	// the first healthy hub of Hubs (the primary while it works) in
	// addition to that hub's own AllowedIPs.
	Failover *Failover
}

// Failover describes the part of a peer set that moves between hubs.
type Failover struct {
	Hubs  []string       // peer node IDs, primary first
	Range []netip.Prefix // held by the active hub; at plan time the primary
}

// Peer returns the peer for node id, or nil.
func (ps *PeerSet) Peer(id string) *Peer {
	for i := range ps.Peers {
		if ps.Peers[i].Node == id {
			return &ps.Peers[i]
		}
	}
	return nil
}

// WithActiveHub returns a copy of ps in which the failover range is held by
// hub instead of the primary. It returns ps itself when ps has no failover
// range, or when hub is already the primary.
func (ps *PeerSet) WithActiveHub(hub string) (*PeerSet, error) {
	if ps.Failover == nil || len(ps.Failover.Hubs) == 0 || ps.Failover.Hubs[0] == hub {
		return ps, nil
	}
	if !slices.Contains(ps.Failover.Hubs, hub) {
		return nil, fmt.Errorf("node %s: %s is not one of its hubs", ps.Node, hub)
	}
	out := *ps
	out.Peers = slices.Clone(ps.Peers)
	inRange := make(map[netip.Prefix]bool, len(ps.Failover.Range))
	for _, p := range ps.Failover.Range {
		inRange[p] = true
	}
	for i := range out.Peers {
		p := &out.Peers[i]
		switch p.Node {
		case ps.Failover.Hubs[0]:
			p.AllowedIPs = slices.DeleteFunc(slices.Clone(p.AllowedIPs), func(x netip.Prefix) bool { return inRange[x] })
		case hub:
			p.AllowedIPs = append(slices.Clone(p.AllowedIPs), ps.Failover.Range...)
		}
	}
	return &out, nil
}

// Topology is a planned overlay: the cluster's members with their
// addresses, hubs, gateways and the topology's routing. It is immutable;
// PeersFor computes one node's peer set from it on demand, so that a node
// agent (or a 10,000-node mesh) never holds every peer set at once.
type Topology struct {
	kind      templates.Topology
	cidr      netip.Prefix
	port      int
	mtu       int // 0 = auto
	keepalive time.Duration

	members []*member // in input order
	byID    map[string]*member
	hubs    []*member // preference order
	sites   map[string]*siteInfo

	// all is the overlay prefix followed by every routed site network.
	all    []netip.Prefix
	allSet map[netip.Prefix]bool
	cache  sync.Map // cacheKey -> []netip.Prefix

	// hierarchical
	rootGateways []*member // gateways whose upstream is the root (hubs)
	rootLeaves   []*member // non-gateway nodes attached to the root
}

type siteInfo struct {
	site   *templates.Site
	parent *siteInfo
	gw     *member // nil when the site has no gateway
	// private is the private network the site lies in, shared with its
	// ancestors and descendants on the same provider (see endpoints.go).
	private *privateNet
}

// privateNet is one private network: a top-level site and its nested
// sites.
type privateNet struct {
	root *siteInfo
	nets []netip.Prefix // the site networks in it, masked
}

// routed reports whether the site's network is routed over the overlay.
func (s *siteInfo) routed() bool { return s.gw != nil && s.site.Network.CIDR.IsValid() }

type member struct {
	Member
	addr    netip.Addr
	site    *siteInfo
	hubRank int // -1 if not a hub
	gwOf    []*siteInfo
	own     []netip.Prefix // what peers route to this node itself

	// hierarchical
	up         *member   // upstream router; nil = the root (hubs)
	downLeaves []*member // nodes attached to this gateway
	downGWs    []*member // gateways whose upstream this is
	subtree    []netip.Prefix
}

func (m *member) isHub() bool     { return m.hubRank >= 0 }
func (m *member) isGateway() bool { return len(m.gwOf) > 0 }

// Plan plans the overlay of cluster c for members, whose overlay addresses
// are addrs (from Allocate). It checks the input and precomputes what
// PeersFor needs; it does not compute every peer set.
func Plan(c *templates.Cluster, members []Member, addrs map[string]netip.Addr) (*Topology, error) {
	ov := c.Overlay
	if !ov.CIDR.IsValid() {
		return nil, fmt.Errorf("plan overlay: overlay cidr is not set")
	}
	t := &Topology{
		kind:      ov.Topology,
		cidr:      ov.CIDR.Masked(),
		port:      ov.Port,
		mtu:       ov.MTU,
		keepalive: ov.Keepalive,
		byID:      make(map[string]*member, len(members)),
		sites:     make(map[string]*siteInfo),
	}
	if t.kind == "" {
		t.kind = templates.Star
	}
	switch t.kind {
	case templates.Star, templates.Mesh, templates.Hierarchical:
	default:
		return nil, fmt.Errorf("plan overlay: unknown topology %q (want star, mesh or hierarchical)", t.kind)
	}
	if t.port == 0 {
		t.port = DefaultPort
	}
	if t.keepalive == 0 {
		t.keepalive = DefaultKeepalive
	}
	for _, s := range c.AllSites() {
		t.sites[s.Path] = &siteInfo{site: s}
	}
	for _, si := range t.sites {
		if si.site.Parent != nil {
			si.parent = t.sites[si.site.Parent.Path]
		}
	}
	privs := map[*templates.Site]*privateNet{}
	for _, s := range c.AllSites() {
		si := t.sites[s.Path]
		root := privateRoot(s)
		pn := privs[root]
		if pn == nil {
			pn = &privateNet{root: t.sites[root.Path]}
			privs[root] = pn
		}
		si.private = pn
		if s.Network.CIDR.IsValid() {
			pn.nets = append(pn.nets, s.Network.CIDR.Masked())
		}
	}

	// Members, addresses.
	t.members = make([]*member, 0, len(members))
	byAddr := make(map[netip.Addr]string, len(members))
	for _, in := range members {
		if in.ID == "" {
			return nil, fmt.Errorf("plan overlay: a member has no id")
		}
		if _, dup := t.byID[in.ID]; dup {
			return nil, fmt.Errorf("plan overlay: member %s listed twice", in.ID)
		}
		si, ok := t.sites[in.Site]
		if !ok {
			return nil, fmt.Errorf("plan overlay: member %s: site %q is not in cluster %s", in.ID, in.Site, c.Name)
		}
		a, ok := addrs[in.ID]
		if !ok {
			return nil, fmt.Errorf("plan overlay: member %s has no overlay address", in.ID)
		}
		if !t.cidr.Contains(a) {
			return nil, fmt.Errorf("plan overlay: member %s: address %s is outside the overlay %s", in.ID, a, t.cidr)
		}
		if o, dup := byAddr[a]; dup {
			return nil, fmt.Errorf("plan overlay: members %s and %s share address %s", o, in.ID, a)
		}
		byAddr[a] = in.ID
		m := &member{Member: in, addr: a, site: si, hubRank: -1}
		t.members = append(t.members, m)
		t.byID[in.ID] = m
	}

	// Hubs: overlay.hubs in order, then members with the hub role.
	for _, id := range ov.Hubs {
		if m, ok := t.byID[id]; ok && !m.isHub() {
			m.hubRank = len(t.hubs)
			t.hubs = append(t.hubs, m)
		}
	}
	var extra []*member
	for _, m := range t.members {
		if !m.isHub() && slices.Contains(m.Roles, templates.RoleHub) {
			extra = append(extra, m)
		}
	}
	slices.SortFunc(extra, func(a, b *member) int { return strings.Compare(a.ID, b.ID) })
	for _, m := range extra {
		m.hubRank = len(t.hubs)
		t.hubs = append(t.hubs, m)
	}
	if len(t.hubs) == 0 && t.kind != templates.Mesh && len(t.members) > 0 {
		return nil, fmt.Errorf("plan overlay: %s topology needs a hub, and none of overlay.hubs %q is a member", t.kind, ov.Hubs)
	}

	// Gateways: the site's gateway attribute, else a member of the site
	// with the gateway role, else (hierarchical) a hub of the site.
	for _, si := range t.sites {
		if si.site.Gateway != "" {
			si.gw = t.byID[si.site.Path+"."+si.site.Gateway]
		}
	}
	for _, m := range t.members {
		if m.site.gw == nil && slices.Contains(m.Roles, templates.RoleGateway) {
			m.site.gw = m
		}
	}
	if t.kind == templates.Hierarchical {
		for _, h := range t.hubs {
			if h.site.gw == nil {
				h.site.gw = h
			}
		}
	}
	for _, s := range c.AllSites() {
		si := t.sites[s.Path]
		if si.gw != nil {
			si.gw.gwOf = append(si.gw.gwOf, si)
		}
	}

	// Own prefixes of each member, and the routed site networks.
	t.all = []netip.Prefix{t.cidr}
	for _, s := range c.AllSites() {
		if si := t.sites[s.Path]; si.routed() {
			t.all = append(t.all, s.Network.CIDR.Masked())
		}
	}
	t.allSet = make(map[netip.Prefix]bool, len(t.all))
	for _, p := range t.all {
		t.allSet[p] = true
	}
	for _, m := range t.members {
		m.own = []netip.Prefix{hostPrefix(m.addr)}
		for _, si := range m.gwOf {
			if si.routed() {
				m.own = append(m.own, si.site.Network.CIDR.Masked())
			}
		}
		m.own = slices.Clip(m.own)
	}

	if t.kind == templates.Hierarchical {
		t.planTree()
	}
	return t, nil
}

// planTree links every member to its upstream router for the hierarchical
// topology and computes each gateway's subtree.
func (t *Topology) planTree() {
	// nearestGW is the gateway of s or of its nearest ancestor with one.
	nearestGW := func(s *siteInfo) *member {
		for ; s != nil; s = s.parent {
			if s.gw != nil {
				return s.gw
			}
		}
		return nil
	}
	for _, m := range t.members {
		switch {
		case m.isHub():
			m.up = nil
		case m.isGateway():
			// upstream: the gateway of the nearest ancestor of the
			// outermost site m is gateway of.
			s := m.gwOf[0]
			for _, si := range m.gwOf {
				if len(si.site.Path) < len(s.site.Path) {
					s = si
				}
			}
			m.up = nearestGW(s.parent)
			if m.up == nil {
				t.rootGateways = append(t.rootGateways, m)
			}
		default:
			m.up = nearestGW(m.site)
			if m.up == nil {
				t.rootLeaves = append(t.rootLeaves, m)
			}
		}
		if m.up != nil {
			if m.isGateway() {
				m.up.downGWs = append(m.up.downGWs, m)
			} else {
				m.up.downLeaves = append(m.up.downLeaves, m)
			}
		}
	}
	var sub func(m *member) []netip.Prefix
	sub = func(m *member) []netip.Prefix {
		if m.subtree != nil {
			return m.subtree
		}
		s := slices.Clone(m.own)
		for _, l := range m.downLeaves {
			s = append(s, l.own...)
		}
		for _, g := range m.downGWs {
			s = append(s, sub(g)...)
		}
		m.subtree = slices.Clip(s)
		return m.subtree
	}
	for _, m := range t.members {
		sub(m)
	}
}

// Kind is the topology's shape.
func (t *Topology) Kind() templates.Topology { return t.kind }

// CIDR is the overlay prefix.
func (t *Topology) CIDR() netip.Prefix { return t.cidr }

// Nodes lists the member IDs in input order.
func (t *Topology) Nodes() []string {
	out := make([]string, len(t.members))
	for i, m := range t.members {
		out[i] = m.ID
	}
	return out
}

// Hubs lists the hub IDs, primary first.
func (t *Topology) Hubs() []string {
	out := make([]string, len(t.hubs))
	for i, m := range t.hubs {
		out[i] = m.ID
	}
	return out
}

// Gateway returns the ID of the member that routes site's network, or "".
func (t *Topology) Gateway(site string) string {
	if si, ok := t.sites[site]; ok && si.gw != nil {
		return si.gw.ID
	}
	return ""
}

// Address returns node id's overlay address.
func (t *Topology) Address(id string) (netip.Addr, bool) {
	m, ok := t.byID[id]
	if !ok {
		return netip.Addr{}, false
	}
	return m.addr, true
}

// All computes every node's peer set, in input order. For large meshes
// prefer PeersFor, one node at a time.
func (t *Topology) All() []*PeerSet {
	out := make([]*PeerSet, len(t.members))
	for i, m := range t.members {
		out[i] = t.peersFor(m)
	}
	return out
}

// PeersFor computes the peer set of node id.
func (t *Topology) PeersFor(id string) (*PeerSet, error) {
	m, ok := t.byID[id]
	if !ok {
		return nil, fmt.Errorf("overlay peers: %s is not a member", id)
	}
	return t.peersFor(m), nil
}

func (t *Topology) peersFor(x *member) *PeerSet {
	ps := &PeerSet{
		Node:       x.ID,
		Address:    netip.PrefixFrom(x.addr, t.cidr.Bits()),
		ListenPort: t.listenPort(x),
		MTU:        t.mtuFor(x),
	}
	b := builder{t: t, x: x, ps: ps}
	switch t.kind {
	case templates.Mesh:
		ps.Peers = make([]Peer, 0, len(t.members)-1)
		for _, p := range t.members {
			if p != x {
				b.add(p, p.own)
			}
		}
		ps.Forward = x.isGateway()
	case templates.Star:
		if x.isHub() {
			ps.Peers = make([]Peer, 0, len(t.members)-1)
			for _, h := range t.hubs {
				if h != x {
					b.add(h, h.own)
				}
			}
			for _, p := range t.members {
				if p != x && !p.isHub() {
					b.add(p, p.own)
				}
			}
			ps.Forward = true
		} else {
			own := func(h *member) []netip.Prefix { return h.own }
			b.toHubs(own)
			ps.Forward = x.isGateway()
		}
	case templates.Hierarchical:
		t.hierarchical(&b)
	}
	ps.Routes = b.cached("routes", b.routes)
	return ps
}

// hierarchical fills in x's peers for the hierarchical topology.
func (t *Topology) hierarchical(b *builder) {
	x := b.x
	// Downstream: nodes attached to x and gateways below it.
	for _, l := range x.downLeaves {
		b.add(l, l.own)
	}
	for _, g := range x.downGWs {
		b.add(g, g.subtree)
	}
	switch {
	case x.isHub():
		for _, h := range t.hubs {
			if h != x {
				b.add(h, h.subtree)
			}
		}
		for _, g := range t.rootGateways {
			b.add(g, g.subtree)
		}
		for _, l := range t.rootLeaves {
			b.add(l, l.own)
		}
	case x.up != nil:
		// Siblings: gateways with the same upstream; then the upstream
		// carries everything else.
		if x.isGateway() {
			for _, g := range x.up.downGWs {
				if g != x && b.canConnect(g) {
					b.add(g, g.subtree)
				}
			}
		}
		b.add(x.up, b.cached("up", func() []netip.Prefix { return b.rest(nil) }))
	default:
		if x.isGateway() {
			for _, g := range t.rootGateways {
				if g != x && b.canConnect(g) {
					b.add(g, g.subtree)
				}
			}
		}
		b.toHubs(func(h *member) []netip.Prefix { return h.subtree })
	}
	b.ps.Forward = x.isHub() || x.isGateway()
}

func (t *Topology) listenPort(m *member) int {
	if m.ListenPort != 0 {
		return m.ListenPort
	}
	return t.port
}

func (t *Topology) mtuFor(m *member) int {
	if t.mtu > 0 {
		return t.mtu
	}
	u := m.UnderlayMTU
	if u == 0 {
		u = DefaultUnderlayMTU
	}
	return u - MTUOverhead
}

// builder accumulates one node's peer set.
type builder struct {
	t  *Topology
	x  *member
	ps *PeerSet
}

// filter drops the prefixes x must not route into the overlay: anything
// on x's own private network (a site and its nested sites share their
// underlay). It returns in itself when nothing is dropped.
func (b *builder) filter(in []netip.Prefix) []netip.Prefix {
	if len(b.x.site.private.nets) == 0 {
		return in
	}
	keep := func(p netip.Prefix) bool { return !b.localNet(p) }
	for i, p := range in {
		if !keep(p) {
			out := slices.Clone(in[:i])
			for _, q := range in[i+1:] {
				if keep(q) {
					out = append(out, q)
				}
			}
			return out
		}
	}
	return in
}

// rest is the overlay and every routed site network that is not given to
// a peer so far, nor in pending, nor x's own, filtered for x; extra is
// prepended.
func (b *builder) rest(extra []netip.Prefix, pending ...[]netip.Prefix) []netip.Prefix {
	taken := map[netip.Prefix]bool{}
	note := func(ps []netip.Prefix) {
		for _, p := range ps {
			if b.t.allSet[p] {
				taken[p] = true
			}
		}
	}
	for _, p := range b.ps.Peers {
		note(p.AllowedIPs)
	}
	for _, ps := range pending {
		note(ps)
	}
	note(extra)
	note(b.x.own)
	out := slices.Clone(extra)
	for _, p := range b.filter(b.t.all) {
		if !taken[p] {
			out = append(out, p)
		}
	}
	return slices.Clip(out)
}

// cached returns compute() for a plain node (neither hub nor gateway),
// whose result depends only on its site, computing it once per site.
func (b *builder) cached(key string, compute func() []netip.Prefix) []netip.Prefix {
	if b.x.isHub() || b.x.isGateway() {
		return compute()
	}
	k := cacheKey{b.x.site, key}
	if v, ok := b.t.cache.Load(k); ok {
		return v.([]netip.Prefix)
	}
	v := compute()
	b.t.cache.Store(k, v)
	return v
}

type cacheKey struct {
	site *siteInfo
	what string
}

// toHubs adds the hubs as peers: each with own(h), the primary with the
// rest as well, and records the failover range when there are backups.
func (b *builder) toHubs(own func(h *member) []netip.Prefix) {
	hubs := b.t.hubs
	if len(hubs) == 0 {
		return
	}
	primaryOwn := own(hubs[0])
	all := b.cached("hubs", func() []netip.Prefix {
		var backups [][]netip.Prefix
		for _, h := range hubs[1:] {
			backups = append(backups, own(h))
		}
		return b.rest(primaryOwn, backups...)
	})
	b.add(hubs[0], all)
	for _, h := range hubs[1:] {
		b.add(h, own(h))
	}
	if len(hubs) > 1 {
		f := &Failover{Range: all[len(primaryOwn):]}
		for _, h := range hubs {
			f.Hubs = append(f.Hubs, h.ID)
		}
		b.ps.Failover = f
	}
}

func (b *builder) canConnect(p *member) bool { return b.t.canConnect(b.x, p) }

// add appends peer p with allowed IPs ips.
func (b *builder) add(p *member, ips []netip.Prefix) {
	role := PeerNode
	switch {
	case p.isHub():
		role = PeerHub
	case p.isGateway():
		role = PeerGateway
	}
	peer := Peer{Node: p.ID, Role: role, Address: p.addr, PublicKey: p.PublicKey, AllowedIPs: ips}
	peer.Endpoint, peer.Keepalive = b.t.endpointFor(b.x, p)
	b.ps.Peers = append(b.ps.Peers, peer)
}

// routes lists the AllowedIPs outside the overlay prefix that need a route
// into the device, without duplicates, in order of first appearance.
func (b *builder) routes() []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, p := range b.ps.Peers {
		for _, q := range p.AllowedIPs {
			if b.t.cidr.Contains(q.Addr()) && q.Bits() >= b.t.cidr.Bits() {
				continue
			}
			if seen[q] {
				continue
			}
			if b.localNet(q) {
				continue // reached on the private network itself
			}
			seen[q] = true
			out = append(out, q)
		}
	}
	return out
}
