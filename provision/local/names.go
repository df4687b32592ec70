package local

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hvctl/hvctl/provision"
)

// Names inside the namespaces the provider makes.
const (
	siteBridge = "br0"  // a router's bridge for its site network
	routerWAN  = "wan0" // a router's link to the internet bridge
	nodeSite   = "eth0" // a node's link to its site bridge
	nodePublic = "pub0" // a public node's link to the internet bridge
	nftTable   = "hvctl"
)

// Suffixes of the root-namespace (and router-namespace) links.
const (
	sufBridge = "b" // the cluster's internet bridge
	sufRouter = "r" // a router's uplink, root side
	sufPublic = "p" // a public node's veth, root side
	sufSite   = "e" // a node's port on its site bridge (router namespace)
)

// publicSpace is where each cluster's public /24 comes from (RFC 2544
// benchmarking space: never routed on the internet).
var publicSpace = netip.MustParsePrefix("198.18.0.0/15")

// maxNetnsName bounds namespace names (a file name under /run/netns).
const maxNetnsName = 200

// sanitize keeps the characters iproute2 and file names accept.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if strings.Trim(out, ".") == "" {
		out = "_" + out
	}
	return out
}

// netnsName is hv-CLUSTER-PARTS..., sanitized and bounded.
func netnsName(cluster string, parts ...string) string {
	n := "hv-" + sanitize(cluster)
	for _, p := range parts {
		n += "-" + sanitize(p)
	}
	if len(n) > maxNetnsName {
		h := sha256.Sum256([]byte(n))
		n = n[:maxNetnsName-9] + "-" + hex.EncodeToString(h[:4])
	}
	return n
}

// uniqueNetns returns base, or base-2, base-3, ... when base is taken by
// another record or exists on the machine.
func uniqueNetns(w *world, base string) string {
	used := map[string]bool{}
	for _, r := range w.Records {
		used[r.Netns] = true
	}
	n := base
	for i := 2; used[n] || netnsExists(n); i++ {
		n = fmt.Sprintf("%s-%d", base, i)
	}
	return n
}

// newHex returns 8 random hex digits no record and no root-namespace
// link uses yet: the short hash root-namespace link names derive from.
func newHex(w *world) string {
	for {
		var b [4]byte
		rand.Read(b[:])
		h := hex.EncodeToString(b[:])
		taken := false
		for _, r := range w.Records {
			taken = taken || strings.Contains(r.ID, h)
		}
		for _, in := range w.Header.Internets {
			taken = taken || strings.Contains(in.Bridge, h)
		}
		for _, suf := range []string{sufBridge, sufRouter, sufPublic} {
			taken = taken || linkExists("", linkName(h, suf))
		}
		if !taken {
			return h
		}
	}
}

// linkName is hv + 8 hex + suffix: at most 15 characters (IFNAMSIZ-1).
func linkName(hex8, suffix string) string { return "hv" + hex8 + suffix }

// idHex is the short hash in an ID made by newID.
func idHex(id string) string { return id[strings.LastIndexByte(id, '-')+1:] }

// newID makes a resource ID: local-net-HEX or local-i-HEX.
func newID(w *world, kind provision.Kind) string {
	if kind == provision.KindNetwork {
		return "local-net-" + newHex(w)
	}
	return "local-i-" + newHex(w)
}

// hostAt returns the address at offset i of prefix.
func hostAt(p netip.Prefix, i int) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) + uint32(i)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// hostCount is the number of host offsets of an IPv4 prefix (excluding
// the network and broadcast addresses): offsets 1..hostCount.
func hostCount(p netip.Prefix) int {
	bits := 32 - p.Bits()
	if bits < 2 {
		return 0
	}
	if bits > 24 {
		bits = 24 // plenty
	}
	return 1<<bits - 2
}

// allocHost takes the first offset from *next on (wrapping, from first)
// whose address is not in used, and advances *next past it.
func allocHost(p netip.Prefix, first int, next *int, used map[netip.Addr]bool) (netip.Addr, bool) {
	n := hostCount(p)
	if n < first {
		return netip.Addr{}, false
	}
	start := *next
	if start < first || start > n {
		start = first
	}
	span := n - first + 1
	for k := 0; k < span; k++ {
		off := first + (start-first+k)%span
		a := hostAt(p, off)
		if !used[a] {
			*next = off + 1
			return a, true
		}
	}
	return netip.Addr{}, false
}

// usedPublic are the public addresses in use in cluster's internet.
func usedPublic(w *world, cluster string) map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	for _, r := range w.Records {
		if r.Cluster != cluster || r.PublicAddress == "" {
			continue
		}
		if a, err := netip.ParseAddr(r.PublicAddress); err == nil {
			used[a] = true
		}
	}
	return used
}

// pickPublicPrefix chooses a /24 of publicSpace for cluster: by a hash of
// its name, skipping /24s already on a link of this machine or in w.
func pickPublicPrefix(ctx context.Context, w *world, cluster string) (netip.Prefix, error) {
	taken := map[netip.Prefix]bool{}
	for _, in := range w.Header.Internets {
		if p, err := netip.ParsePrefix(in.Prefix); err == nil {
			taken[p.Masked()] = true
		}
	}
	out, err := run(ctx, nil, "ip", "-o", "-4", "addr", "show")
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" {
				continue
			}
			if p, err := netip.ParsePrefix(f[i+1]); err == nil && publicSpace.Contains(p.Addr()) {
				taken[netip.PrefixFrom(p.Addr(), 24).Masked()] = true
			}
		}
	}
	h := sha256.Sum256([]byte(cluster))
	n := 1 << (24 - publicSpace.Bits()) // /24s in the space
	first := int(binary.BigEndian.Uint32(h[:4]) % uint32(n))
	for k := 0; k < n; k++ {
		p := netip.PrefixFrom(hostAt(publicSpace, ((first+k)%n)*256), 24)
		if !taken[p] {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("local: every /24 of %s is in use on this machine", publicSpace)
}

// defaultCIDR picks a 10.N.0.0/16 that no network of cluster uses, for a
// network created without a cidr.
func defaultCIDR(w *world, cluster string) string {
	used := map[string]bool{}
	for _, r := range w.Records {
		if r.Kind == provision.KindNetwork && r.Cluster == cluster {
			used[r.CIDR] = true
		}
	}
	for n := 0; n < 256; n++ {
		if c := fmt.Sprintf("10.%d.0.0/16", n); !used[c] {
			return c
		}
	}
	return "10.255.0.0/16"
}
