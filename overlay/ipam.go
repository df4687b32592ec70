package overlay

import (
	"fmt"
	"net/netip"
)

// Allocate gives every node in nodes an address from cidr.
//
// prev holds the allocations returned by the previous call (the caller
// keeps them in state). A node found in prev keeps its address, so
// addresses are stable across re-plans and across scaling up and down;
// nodes not in prev get the lowest free addresses, in the order of nodes.
// An address is never given to two nodes that exist at the same time; the
// address of a node that has left may be given to a later node. Entries of
// prev for nodes no longer listed are dropped, and entries outside cidr
// (the overlay was renumbered) are allocated afresh.
//
// The network address, and for IPv4 prefixes shorter than /31 the
// broadcast address, are never allocated. The result is deterministic.
func Allocate(cidr netip.Prefix, prev map[string]netip.Addr, nodes []string) (map[string]netip.Addr, error) {
	if !cidr.IsValid() {
		return nil, fmt.Errorf("allocate overlay addresses: invalid overlay cidr")
	}
	cidr = cidr.Masked()
	out := make(map[string]netip.Addr, len(nodes))
	owner := make(map[netip.Addr]string, len(nodes))
	seen := make(map[string]bool, len(nodes))
	for _, id := range nodes {
		if seen[id] {
			return nil, fmt.Errorf("allocate overlay addresses: node %q listed twice", id)
		}
		seen[id] = true
		a, ok := prev[id]
		if !ok || !usable(cidr, a) {
			continue
		}
		if o, dup := owner[a]; dup {
			return nil, fmt.Errorf("allocate overlay addresses: previous allocations give %s to both %q and %q", a, o, id)
		}
		out[id] = a
		owner[a] = id
	}
	next := cidr.Addr()
	for _, id := range nodes {
		if _, ok := out[id]; ok {
			continue
		}
		for {
			next = next.Next()
			if !next.IsValid() || !cidr.Contains(next) {
				return nil, fmt.Errorf("allocate overlay addresses: %s is full (%d nodes)", cidr, len(nodes))
			}
			if _, taken := owner[next]; !taken && usable(cidr, next) {
				break
			}
		}
		out[id] = next
		owner[next] = id
	}
	return out, nil
}

// usable reports whether a may be given to a node.
func usable(cidr netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() || !cidr.Contains(a) || a == cidr.Addr() {
		return false
	}
	if a.Is4() && cidr.Bits() < 31 && a == lastAddr(cidr) {
		return false
	}
	return true
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// hostPrefix is a as a single-address prefix (/32 or /128).
func hostPrefix(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, a.BitLen())
}
