package overlay_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/overlay/overlaytest"
)

// simNet forwards packets over planned peer sets, on a model of the
// underlay that is independent of the planner:
//
//   - a top-level site and its nested sites are one private network:
//     every node of it reaches every other at its site address (nested
//     site networks are routed inside it, without translation);
//   - nodes with a public address are reached there from anywhere;
//   - a private network reaches the internet through one NAT (the
//     top-level site's), which is endpoint-independent and keeps source
//     ports, drops unsolicited inbound packets and does not hairpin: a
//     node behind NAT is reached at its NAT's address only by a peer it
//     sends to itself (hole punching), and never from inside its own
//     private network.
type simNet struct {
	b     *overlaytest.Built
	nodes map[string]*simNode
	hosts []string // non-member hosts, one per routed site network
}

type simNode struct {
	m    overlay.Member
	ps   *overlay.PeerSet
	lan  netip.Prefix // site network
	addr netip.Addr
	gw   string // for a host: its site's gateway
}

func newNet(b *overlaytest.Built, tp *overlay.Topology, sets map[string]*overlay.PeerSet) *simNet {
	n := &simNet{b: b, nodes: map[string]*simNode{}}
	lans := map[string]netip.Prefix{}
	for _, s := range b.Cluster.AllSites() {
		for p := s; p != nil; p = p.Parent {
			if p.Network.CIDR.IsValid() {
				lans[s.Path] = p.Network.CIDR
				break
			}
		}
	}
	for _, m := range b.Members {
		a, _ := tp.Address(m.ID)
		n.nodes[m.ID] = &simNode{m: m, ps: sets[m.ID], lan: lans[m.Site], addr: a}
	}
	for _, s := range b.Cluster.AllSites() {
		gw := tp.Gateway(s.Path)
		if gw == "" || !s.Network.CIDR.IsValid() {
			continue
		}
		// the last address but one: above every member's
		p := s.Network.CIDR.Masked()
		a := p.Addr().As4()
		v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		v |= 1<<(32-p.Bits()) - 2
		id := "host:" + s.Path
		n.nodes[id] = &simNode{m: overlay.Member{ID: id, Site: s.Path,
			SiteAddr: netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})}, lan: s.Network.CIDR, gw: gw}
		n.hosts = append(n.hosts, id)
	}
	return n
}

// lpm returns the peer whose AllowedIPs hold the longest prefix matching a.
func lpm(ps *overlay.PeerSet, a netip.Addr) *overlay.Peer {
	var best *overlay.Peer
	bits := -1
	for i := range ps.Peers {
		for _, p := range ps.Peers[i].AllowedIPs {
			if p.Contains(a) && p.Bits() > bits {
				best, bits = &ps.Peers[i], p.Bits()
			}
		}
	}
	return best
}

// sendFromHost sends from a non-member host, whose route to the overlay
// is its site's gateway.
func (n *simNet) sendFromHost(host string, dst netip.Addr) error {
	h := n.nodes[host]
	return n.forward(h.gw, h.m.SiteAddr, dst, 1)
}

// send forwards a packet from src to dst starting at node from.
func (n *simNet) send(from string, src, dst netip.Addr) error {
	return n.forward(from, src, dst, 0)
}

func (n *simNet) forward(from string, src, dst netip.Addr, first int) error {
	cur := from
	path := []string{cur}
	for hop := first; hop < 32; hop++ {
		node := n.nodes[cur]
		if dst == node.addr || dst == node.m.SiteAddr {
			return nil
		}
		if node.ps == nil {
			return fmt.Errorf("host %s got a packet for %s", cur, dst)
		}
		if hop > 0 && !node.ps.Forward {
			return fmt.Errorf("dropped at %s, which does not forward (path %v)", cur, path)
		}
		// Kernel route lookup: the private network (connected or routed
		// by the site routers), the overlay prefix (connected to the
		// device), the planned routes.
		lan, bits := false, -1
		var lanHost string
		for id, o := range n.nodes {
			if o.m.SiteAddr == dst && n.sameUnderlay(cur, id) {
				lan, bits, lanHost = true, o.lan.Bits(), id
			}
		}
		if r, ok := n.deviceRoute(node.ps, dst); ok && r.Bits() > bits {
			lan, bits = false, r.Bits()
		}
		switch {
		case bits < 0:
			return fmt.Errorf("no route at %s (path %v)", cur, path)
		case lan:
			cur = lanHost
			path = append(path, "lan:"+lanHost)
			continue
		}
		p := lpm(node.ps, dst)
		if p == nil {
			return fmt.Errorf("no peer for %s at %s (path %v)", dst, cur, path)
		}
		other := n.nodes[p.Node]
		back := other.ps.Peer(cur)
		if back == nil {
			return fmt.Errorf("%s sends to %s, which has no peer %s (path %v)", cur, p.Node, cur, path)
		}
		if err := n.link(cur, p, p.Node, back); err != nil {
			return fmt.Errorf("%v (path %v)", err, path)
		}
		if got := lpm(other.ps, src); got == nil || got.Node != cur {
			return fmt.Errorf("%s rejects source %s from %s (path %v)", p.Node, src, cur, path)
		}
		cur = p.Node
		path = append(path, cur)
	}
	return fmt.Errorf("loop: %v", path)
}

// deviceRoute is the route into the overlay device that the kernel of
// the node with peer set ps would pick for dst, if any.
func (n *simNet) deviceRoute(ps *overlay.PeerSet, dst netip.Addr) (netip.Prefix, bool) {
	var best netip.Prefix
	ok := false
	for _, r := range append([]netip.Prefix{ps.Address.Masked()}, ps.Routes...) {
		if r.Contains(dst) && (!ok || r.Bits() > best.Bits()) {
			best, ok = r, true
		}
	}
	return best, ok
}

// link checks that WireGuard peers a (whose entry for b is ab) and b
// (whose entry for a is ba) complete a handshake over the underlay.
func (n *simNet) link(a string, ab *overlay.Peer, b string, ba *overlay.Peer) error {
	for _, c := range []struct {
		from string
		e    netip.AddrPort
	}{{a, ab.Endpoint}, {b, ba.Endpoint}} {
		if !c.e.IsValid() {
			continue
		}
		// The tunnel's own packets must not be routed into the tunnel.
		if r, ok := n.deviceRoute(n.nodes[c.from].ps, c.e.Addr()); ok {
			return fmt.Errorf("%s routes the endpoint %s of a peer into its overlay device (%s)", c.from, c.e, r)
		}
	}
	if n.reaches(a, b, ab.Endpoint) || n.reaches(b, a, ba.Endpoint) {
		return nil
	}
	// Hole punching: both behind NAT in different private networks, each
	// sending (with keepalives) to the other's NAT mapping.
	if n.natMapping(b, ab.Endpoint) && n.natMapping(a, ba.Endpoint) && ab.Keepalive > 0 && ba.Keepalive > 0 &&
		n.private(a) != n.private(b) {
		return nil
	}
	return fmt.Errorf("no handshake between %s (sends to %v) and %s (sends to %v)", a, ab.Endpoint, b, ba.Endpoint)
}

// reaches reports whether a packet from node a to e arrives at node b
// unsolicited.
func (n *simNet) reaches(a, b string, e netip.AddrPort) bool {
	if !e.IsValid() {
		return false
	}
	nb := n.nodes[b]
	port := uint16(nb.ps.ListenPort)
	if e.Port() != port {
		return false
	}
	if e.Addr() == nb.m.SiteAddr && n.private(a) == n.private(b) {
		return true
	}
	return !nb.m.NAT && nb.m.Endpoint.IsValid() && e == nb.m.Endpoint
}

// natMapping reports whether e is node b's mapping on its NAT.
func (n *simNet) natMapping(b string, e netip.AddrPort) bool {
	nb := n.nodes[b]
	return nb.m.NAT && e.IsValid() && e.Addr() == n.b.NATAddr[n.private(b)] && e.Port() == uint16(nb.ps.ListenPort)
}

// private is the private network of node id: its top-level site.
func (n *simNet) private(id string) string {
	top, _, _ := strings.Cut(n.nodes[id].m.Site, ".")
	return top
}

// sameUnderlay reports whether nodes a and b reach each other without the
// overlay: they are on one private network.
func (n *simNet) sameUnderlay(a, b string) bool { return n.private(a) == n.private(b) }
