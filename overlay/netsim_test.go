package overlay_test

import (
	"fmt"
	"net/netip"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/overlay/overlaytest"
)

// simNet forwards packets over planned peer sets.
type simNet struct {
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
	n := &simNet{nodes: map[string]*simNode{}}
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
		a := s.Network.CIDR.Masked().Addr()
		for i := 0; i < 250; i++ {
			a = a.Next()
		}
		id := "host:" + s.Path
		n.nodes[id] = &simNode{m: overlay.Member{ID: id, Site: s.Path, SiteAddr: a}, lan: s.Network.CIDR, gw: gw}
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
		// Kernel route lookup: the site network (connected), the overlay
		// prefix (connected to the device), the planned routes.
		lan, bits := false, -1
		for _, o := range n.nodes {
			if o.m.SiteAddr == dst && n.sameUnderlay(cur, o.m.ID) {
				lan, bits = true, o.lan.Bits()
			}
		}
		for _, r := range append([]netip.Prefix{node.ps.Address.Masked()}, node.ps.Routes...) {
			if r.Contains(dst) && r.Bits() > bits {
				lan, bits = false, r.Bits()
			}
		}
		switch {
		case bits < 0:
			return fmt.Errorf("no route at %s (path %v)", cur, path)
		case lan:
			for id, o := range n.nodes {
				if o.m.SiteAddr == dst && n.sameUnderlay(cur, id) {
					cur = id
					path = append(path, "lan:"+id)
					goto next
				}
			}
			return fmt.Errorf("no host %s on the site network of %s", dst, cur)
		}
		{
			p := lpm(node.ps, dst)
			if p == nil {
				return fmt.Errorf("no peer for %s at %s (path %v)", dst, cur, path)
			}
			other := n.nodes[p.Node]
			back := other.ps.Peer(cur)
			if back == nil {
				return fmt.Errorf("%s sends to %s, which has no peer %s (path %v)", cur, p.Node, cur, path)
			}
			if !p.Endpoint.IsValid() && !back.Endpoint.IsValid() {
				return fmt.Errorf("neither %s nor %s knows the other's endpoint (path %v)", cur, p.Node, path)
			}
			if got := lpm(other.ps, src); got == nil || got.Node != cur {
				return fmt.Errorf("%s rejects source %s from %s (path %v)", p.Node, src, cur, path)
			}
			cur = p.Node
			path = append(path, cur)
		}
	next:
	}
	return fmt.Errorf("loop: %v", path)
}

// sameUnderlay reports whether nodes a and b reach each other without the
// overlay: their site networks overlap (a site and its nested sites).
func (n *simNet) sameUnderlay(a, b string) bool {
	x, y := n.nodes[a], n.nodes[b]
	if x.m.Site == y.m.Site {
		return true
	}
	return x.lan.IsValid() && y.lan.IsValid() && x.lan.Overlaps(y.lan)
}
