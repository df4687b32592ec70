package local

import (
	"context"
	"fmt"

	"github.com/hvctl/hvctl/provision"
)

// Routes inside one private network (a top-level site and the sites
// nested in it). A nested site's router sits on its parent's site
// network, and its parent's router routes the nested network to it. Two
// more kinds of routes make every site address of the private network
// reachable from every node of it, as a VPC's router does:
//
//   - every router further up (the grandparent's and above) routes the
//     nested network to the router of its child on the way down;
//   - a public node, whose default route is the internet, routes every
//     other network of its private network (the sites nested below its
//     site, its ancestors' and their other nested sites) to its site
//     router; otherwise its packets to them, and its replies, would leave
//     through the internet. (A public node of a nested site once had no
//     route to its parent's network: found by TestGeneratedClusters.)

// ancestors lists the network records above network n, nearest first.
func ancestors(w *world, n *record) []*record {
	var out []*record
	for cur := n; cur != nil && cur.NetworkID != ""; {
		up := byID(w, cur.NetworkID)
		if up == nil || up.Kind != provision.KindNetwork {
			break
		}
		out = append(out, up)
		cur = up
	}
	return out
}

// treeRoot is the top-level network of network n's private network.
func treeRoot(w *world, n *record) *record {
	if up := ancestors(w, n); len(up) > 0 {
		return up[len(up)-1]
	}
	return n
}

// nestedRoutes adds, for the nested network r (whose router exists), the
// routes in the routers above its parent and in the public nodes of the
// other sites of its private network.
func nestedRoutes(ctx context.Context, w *world, r *record) error {
	up := ancestors(w, r)
	// up[0] is the parent, which already routes r; up[i] (i ≥ 1) reaches
	// r through the router of up[i-1], at that router's PrivateIP.
	for i := 1; i < len(up); i++ {
		if err := ip(ctx, up[i].Netns, "route", "replace", r.CIDR, "via", up[i-1].PrivateIP, "dev", siteBridge); err != nil {
			return fmt.Errorf("local: route nested site %s in %s: %w", r.Site, up[i].Netns, err)
		}
	}
	root := treeRoot(w, r)
	for _, o := range w.Records {
		if o.Kind != provision.KindInstance || o.PublicAddress == "" || o.NetworkID == r.ID || !netnsExists(o.Netns) {
			continue
		}
		if on := byID(w, o.NetworkID); on == nil || on.Kind != provision.KindNetwork || treeRoot(w, on) != root {
			continue
		}
		if err := ip(ctx, o.Netns, "route", "replace", r.CIDR, "via", o.Gateway, "dev", nodeSite); err != nil {
			return fmt.Errorf("local: route nested site %s on node %s: %w", r.Site, o.Address, err)
		}
	}
	return nil
}

// publicNodeRoutes routes, on public node n, every other network of its
// private network to its site router.
func publicNodeRoutes(ctx context.Context, w *world, n *record) error {
	if n.PublicAddress == "" {
		return nil
	}
	own := byID(w, n.NetworkID)
	if own == nil || own.Kind != provision.KindNetwork {
		return nil
	}
	root := treeRoot(w, own)
	for _, o := range w.Records {
		if o.Kind != provision.KindNetwork || o.ID == own.ID || o.CIDR == "" || treeRoot(w, o) != root {
			continue
		}
		if err := ip(ctx, n.Netns, "route", "replace", o.CIDR, "via", n.Gateway, "dev", nodeSite); err != nil {
			return fmt.Errorf("local: route site %s on node %s: %w", o.Site, n.Address, err)
		}
	}
	return nil
}
