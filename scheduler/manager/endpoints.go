package manager

import (
	"net/netip"

	"github.com/hvctl/hvctl/overlay"
)

// samePrivateNetwork reports whether sites a and b lie in one private
// network (a site and the sites nested in it): their nodes reach each
// other at site addresses and share one NAT (overlay.PrivateNetwork).
func (m *Manager) samePrivateNetwork(a, b string) bool {
	c := m.cfg.Cluster
	return overlay.PrivateNetwork(c, a) == overlay.PrivateNetwork(c, b)
}

// learnsEndpoint reports whether seen, the endpoint reporter's device
// holds for peer p, is p's NAT mapping, worth publishing to p's peers in
// other private networks. Only a public reporter outside p's private
// network sees the mapping: one inside sees p's site address, or a
// routed address that is no use outside. The planner never uses the
// learnt endpoint in place of a site address.
func (m *Manager) learnsEndpoint(reporter, p *Node, seen netip.AddrPort) bool {
	return !reporter.NAT && p.NAT && seen.IsValid() && seen.Addr() != p.SiteAddr && p.Endpoint != seen &&
		!m.samePrivateNetwork(reporter.Site, p.Site)
}
