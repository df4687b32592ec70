package overlay

import (
	"net/netip"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// Endpoint selection.
//
// A site and the sites nested in it, at any depth, form one private
// network: nested sites are subnets routed inside their parent's network
// (subnets of one VPC, zones behind a region's router, the local
// provider's nested routers), and only the outermost site's router
// translates addresses to the internet. Two members of one private network
// reach each other at their site addresses, whatever their site CIDRs;
// members of different private networks reach each other at the endpoint
// the other's NAT was seen to use, or at its public address. A learned NAT
// endpoint never replaces a private address: NATs do not hairpin, so a
// member's own NAT's public address is unreachable from inside.

// PrivateNetwork returns the path of the outermost site whose private
// network site lies in: the top-level ancestor of site, or the nearest
// ancestor below which the provider changes (a nested site with a provider
// of its own is a network of its own). It returns "" when site is not in
// c.
func PrivateNetwork(c *templates.Cluster, site string) string {
	for _, s := range c.AllSites() {
		if s.Path == site {
			return privateRoot(s).Path
		}
	}
	return ""
}

func privateRoot(s *templates.Site) *templates.Site {
	for s.Parent != nil && sameProvider(s.Provider, s.Parent.Provider) {
		s = s.Parent
	}
	return s
}

func sameProvider(a, b *templates.Provider) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a == b || (a.Type == b.Type && a.Name == b.Name)
}

// SharePrivateNetwork reports whether members a and b are on one private
// network, so that each reaches the other at its site address.
func (t *Topology) SharePrivateNetwork(a, b string) bool {
	x, ok1 := t.byID[a]
	y, ok2 := t.byID[b]
	return ok1 && ok2 && samePrivate(x, y)
}

func samePrivate(x, p *member) bool { return x.site.private == p.site.private }

// endpointFor is where x sends to peer p, and the keepalive x sets on it:
//
//   - on one private network, p's site address and port (even when p also
//     has a public or learned endpoint);
//   - otherwise p's Endpoint: its public address, or the address its NAT
//     was seen to use; x keeps its own NAT's mapping open with keepalives
//     when it is behind NAT;
//   - otherwise nothing: x waits for p to send first.
//
// A NAT'd peer of x's own private network that has no site address gets
// no endpoint: its learned endpoint is x's own NAT, which does not hairpin.
func (t *Topology) endpointFor(x, p *member) (netip.AddrPort, time.Duration) {
	if samePrivate(x, p) {
		switch {
		case p.SiteAddr.IsValid():
			return netip.AddrPortFrom(p.SiteAddr, uint16(t.listenPort(p))), 0
		case p.Endpoint.IsValid() && !p.NAT:
			return p.Endpoint, 0
		}
		return netip.AddrPort{}, 0
	}
	if !p.Endpoint.IsValid() {
		return netip.AddrPort{}, 0
	}
	var ka time.Duration
	if x.NAT {
		ka = t.keepalive
	}
	return p.Endpoint, ka
}

// reachable reports whether x can open a tunnel to p on its own: p is on
// x's private network, or has a public address.
func (t *Topology) reachable(x, p *member) bool {
	if samePrivate(x, p) {
		return p.SiteAddr.IsValid() || (p.Endpoint.IsValid() && !p.NAT)
	}
	return p.Endpoint.IsValid() && !p.NAT
}

// canConnect reports whether x and p can hold a tunnel between them: one
// reaches the other unsolicited, or both are behind NAT with known NAT
// endpoints and punch through with keepalives. Sibling gateways that
// cannot reach each other through their upstream instead.
func (t *Topology) canConnect(x, p *member) bool {
	if t.reachable(x, p) || t.reachable(p, x) {
		return true
	}
	return !samePrivate(x, p) && x.Endpoint.IsValid() && p.Endpoint.IsValid()
}

// localNet reports whether prefix q lies on x's private network (overlaps
// a site network of it): x reaches it on the underlay, so it is neither
// routed into the device nor given to a peer.
func (b *builder) localNet(q netip.Prefix) bool {
	if b.t.cidr.Contains(q.Addr()) && q.Bits() >= b.t.cidr.Bits() {
		return false
	}
	for _, n := range b.x.site.private.nets {
		if q.Overlaps(n) {
			return true
		}
	}
	return false
}
