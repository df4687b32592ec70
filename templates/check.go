package templates

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// check runs the checks that span sites: hubs, network overlaps, address
// space and the global cache location. Each is linear in the number of
// nodes; the overlap check is quadratic only in the number of sites.
func (d *clusterDecoder) check() {
	d.checkHubs()
	d.checkNetworks()
	d.checkCapacity()
	d.checkCacheGlobal()
}

func (d *clusterDecoder) nodePaths() []string {
	out := make([]string, 0, len(d.nodes))
	for _, si := range d.sites {
		for _, n := range si.site.Nodes {
			out = append(out, n.Path())
		}
	}
	return out
}

func (d *clusterDecoder) checkHubs() {
	o := &d.c.Overlay
	if !d.hasOverlay {
		return
	}
	if d.hubsAttr == nil && d.c.Overlay.Hubs == nil {
		// No hubs attribute: every node with the hub role, in order.
		for _, si := range d.sites {
			for _, n := range si.site.Nodes {
				if n.HasRole(RoleHub) {
					o.Hubs = append(o.Hubs, n.Path())
				}
			}
		}
	}
	if d.hubsAttr != nil {
		var elems []hcl.Expression
		if tc, ok := d.hubsAttr.Expr.(*hclsyntax.TupleConsExpr); ok && len(tc.Exprs) == len(o.Hubs) {
			elems = exprList(tc.Exprs)
		}
		seen := map[string]bool{}
		for i, h := range o.Hubs {
			rng := d.hubsAttr.Expr.Range()
			if elems != nil {
				rng = elems[i].Range()
			}
			n := d.nodes[h]
			switch {
			case seen[h]:
				d.diags = append(d.diags, errorf(rng, "Duplicate hub", "%q is listed twice in hubs.", h))
			case n == nil && d.pools[h] != nil:
				d.diags = append(d.diags, errorf(rng, "Invalid hub",
					"%q is a pool; a hub must be a named node block with roles including \"hub\" and public_ip = true.", h))
			case n == nil:
				d.diags = append(d.diags, errorf(rng, "Unknown hub node",
					"There is no node %q.%s Hubs name node blocks as SITE.NODE (nested sites: SITE.SUBSITE.NODE).",
					h, didYouMean(h, d.nodePaths())))
			case !n.HasRole(RoleHub):
				d.diags = append(d.diags, errorf(rng, "Hub node lacks the hub role",
					"The node %q is listed in hubs but its roles are %s. Add \"hub\" to its roles (at %s).", h, roleList(n.Roles), n.DeclRange))
			case i == 0 && o.Topology != Mesh && !n.PublicIP:
				d.diags = append(d.diags, errorf(rng, "Hub is not reachable",
					"The primary hub %q has no public address, so nodes in other sites cannot reach it. Set public_ip = true on the node (at %s), or use topology \"mesh\".", h, n.DeclRange))
			}
			seen[h] = true
		}
	} else if len(o.Hubs) > 0 && o.Topology != Mesh {
		if n := d.nodes[o.Hubs[0]]; n != nil && !n.PublicIP {
			d.diags = append(d.diags, errorf(n.DeclRange, "Hub is not reachable",
				"The node %q has the hub role and is the primary hub, but it has no public address, so nodes in other sites cannot reach it. Set public_ip = true, or use topology \"mesh\".", n.Path()))
		}
	}
	if len(o.Hubs) == 0 && o.Topology != Mesh && (d.hubsAttr != nil || len(d.sites) > 0) {
		rng := d.overlayBlock
		if d.hubsAttr != nil {
			rng = d.hubsAttr.Expr.Range()
		}
		d.diags = append(d.diags, errorf(rng, "No hub",
			"The %s topology routes traffic between sites through a hub, but the overlay has none. Give a node roles = [\"hub\"] and public_ip = true and list it in hubs as \"SITE.NODE\", or use topology \"mesh\".", o.Topology))
	}
}

// isAncestor reports whether a is a proper ancestor of b.
func isAncestor(a, b *Site) bool {
	for p := b.Parent; p != nil; p = p.Parent {
		if p == a {
			return true
		}
	}
	return false
}

func (d *clusterDecoder) checkNetworks() {
	for j, sj := range d.sites {
		if !sj.hasNetwork {
			continue
		}
		b := sj.site.Network.CIDR
		if d.overlayOK && b.Overlaps(d.c.Overlay.CIDR) {
			d.diags = append(d.diags, errorf(sj.cidrRange, "Site network overlaps the overlay",
				"The network %s of site %q overlaps the overlay %s (at %s). The overlay's addresses must be distinct from every site network.",
				b, sj.site.Path, d.c.Overlay.CIDR, d.overlayCIDR))
		}
		for _, si := range d.sites[:j] {
			if !si.hasNetwork {
				continue
			}
			a := si.site.Network.CIDR
			if !a.Overlaps(b) {
				continue
			}
			if isAncestor(si.site, sj.site) && a.Bits() <= b.Bits() || isAncestor(sj.site, si.site) && b.Bits() <= a.Bits() {
				continue // a nested site inside its parent's network
			}
			detail := "Site networks must not overlap, except that a nested site's network may lie inside its parent's."
			if isAncestor(si.site, sj.site) {
				detail = "A nested site's network must lie inside its parent's, not contain or straddle it."
			}
			d.diags = append(d.diags, errorf(sj.cidrRange, "Overlapping site networks",
				"The network %s of site %q overlaps the network %s of site %q (at %s). %s",
				b, sj.site.Path, a, si.site.Path, si.cidrRange, detail))
		}
	}
}

// hostCount is the number of usable host addresses in p, saturating at a
// large value for wide IPv6 prefixes.
func hostCount(p netip.Prefix) uint64 {
	bits := p.Addr().BitLen() - p.Bits()
	switch {
	case bits >= 62:
		return 1 << 62
	case p.Addr().Is4() && bits <= 1:
		return 1 << bits // /31 and /32 have no network or broadcast address
	case p.Addr().Is4():
		return 1<<bits - 2
	}
	return 1<<bits - 1 // IPv6: the subnet-router anycast address
}

func (d *clusterDecoder) checkCapacity() {
	var total, named, pooled uint64
	for _, si := range d.sites {
		s := si.site
		var n uint64 = uint64(len(s.Nodes))
		for _, p := range s.Pools {
			n += uint64(p.Max)
		}
		named += uint64(len(s.Nodes))
		pooled += n - uint64(len(s.Nodes))
		total += n
		// One address of the site network goes to its router or bridge.
		if si.hasNetwork && n > 0 && hostCount(s.Network.CIDR) < n+1 {
			d.diags = append(d.diags, errorf(si.cidrRange, "Site network too small",
				"The network %s of site %q has %d host addresses, but the site has up to %s and one address goes to the site's router. Use a shorter prefix, such as /%d.",
				s.Network.CIDR, s.Path, hostCount(s.Network.CIDR), plural(n, "node"), prefixFor(s.Network.CIDR, n+1)))
		}
	}
	if d.overlayOK && hostCount(d.c.Overlay.CIDR) < total {
		d.diags = append(d.diags, errorf(d.overlayCIDR, "Overlay too small",
			"The overlay %s has %d host addresses, but the cluster has up to %s (%s and %s at max). Use a shorter prefix, such as /%d.",
			d.c.Overlay.CIDR, hostCount(d.c.Overlay.CIDR), plural(total, "node"), plural(named, "named node"), plural(pooled, "pool node"), prefixFor(d.c.Overlay.CIDR, total)))
	}
}

// prefixFor is the longest prefix length whose network holds n hosts.
func prefixFor(p netip.Prefix, n uint64) int {
	for bits := p.Bits(); bits > 0; bits-- {
		if hostCount(netip.PrefixFrom(p.Addr(), bits)) >= n {
			return bits
		}
	}
	return 0
}

func (d *clusterDecoder) checkCacheGlobal() {
	a := d.cacheGlobal
	if a == nil {
		return
	}
	g := d.c.Cache.Global
	node, dir, ok := strings.Cut(g, ":")
	switch {
	case !ok || dir == "" || !strings.HasPrefix(dir, "/"):
		d.diags = append(d.diags, errorf(a.Expr.Range(), "Invalid global cache location",
			"%q is not of the form \"SITE.NODE:/path\", a node and an absolute directory on it, like \"onprem.frontend:/srv/hvctl/data\".", g))
	case d.nodes[node] == nil:
		d.diags = append(d.diags, errorf(a.Expr.Range(), "Unknown global cache node",
			"There is no node %q.%s The global cache names a node block as SITE.NODE followed by \":/path\".", node, didYouMean(node, d.nodePaths())))
	}
}

func exprList(in []hclsyntax.Expression) []hcl.Expression {
	out := make([]hcl.Expression, len(in))
	for i, e := range in {
		out[i] = e
	}
	return out
}

func plural(n uint64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
