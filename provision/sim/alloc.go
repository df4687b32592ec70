package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hvctl/hvctl/provision"
)

// publicRanges are the documentation ranges public addresses come from.
var publicRanges = []netip.Prefix{
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
}

// defaultSiteCIDR is where an instance gets its address when it has no
// network in the world.
var defaultSiteCIDR = netip.MustParsePrefix("172.16.0.0/12")

// chance returns a number in [0, 1) fixed by the seed and parts.
func chance(seed int64, parts ...string) float64 {
	h := sha256.New()
	binary.Write(h, binary.LittleEndian, seed)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	return float64(binary.LittleEndian.Uint64(sum)>>11) / (1 << 53)
}

// newID makes an ID unique in w, derived from the seed, the world's
// serial and the request, so a replayed run makes the same IDs.
func newID(w *world, seed int64, kind provision.Kind, key string) string {
	prefix, n := "sim-i-", 16
	if kind == provision.KindNetwork {
		prefix, n = "sim-net-", 8
	}
	for salt := 0; ; salt++ {
		h := sha256.New()
		fmt.Fprintf(h, "%d\x00%d\x00%s\x00%s\x00%d", seed, w.Serial, kind, key, salt)
		id := prefix + hex.EncodeToString(h.Sum(nil))[:n]
		if byID(w, id) == nil {
			return id
		}
	}
}

// allocAddr returns the lowest address of prefix, from the fifth on (the
// first four are the network, gateway, DNS and a reserve, as in EC2),
// not held by a live instance in used.
func allocAddr(prefix netip.Prefix, first int, used map[netip.Addr]bool) (netip.Addr, bool) {
	prefix = prefix.Masked()
	a := prefix.Addr()
	for range first {
		a = a.Next()
	}
	for ; a.IsValid() && prefix.Contains(a); a = a.Next() {
		next := a.Next()
		if a.Is4() && (!next.IsValid() || !prefix.Contains(next)) {
			break // the broadcast address
		}
		if !used[a] {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// firstHost is the host offset allocation starts at in prefix.
func firstHost(prefix netip.Prefix) int {
	if prefix.Addr().BitLen()-prefix.Bits() >= 4 {
		return 4
	}
	return 1
}

// allocPrivateIP gives an address of the network netKey (cidr prefix).
func allocPrivateIP(w *world, netKey string, prefix netip.Prefix) (string, error) {
	used := map[netip.Addr]bool{}
	for _, r := range w.Records {
		if r.Kind == provision.KindInstance && r.live() && r.NetworkID == netKey {
			if a, err := netip.ParseAddr(r.PrivateIP); err == nil {
				used[a] = true
			}
		}
	}
	a, ok := allocAddr(prefix, firstHost(prefix), used)
	if !ok {
		return "", fmt.Errorf("sim: InsufficientFreeAddressesInSubnet: network %s (%s) has no free address", strings.TrimPrefix(netKey, "default:"), prefix)
	}
	return a.String(), nil
}

// allocPublicIP gives a public address no live instance holds.
func allocPublicIP(w *world) (string, error) {
	used := map[netip.Addr]bool{}
	for _, r := range w.Records {
		if r.Kind == provision.KindInstance && r.live() && r.PublicAddress != "" {
			if a, err := netip.ParseAddr(r.PublicAddress); err == nil {
				used[a] = true
			}
		}
	}
	for _, p := range publicRanges {
		if a, ok := allocAddr(p, 1, used); ok {
			return a.String(), nil
		}
	}
	return "", fmt.Errorf("sim: AddressLimitExceeded: all %d public addresses are in use", 254*len(publicRanges))
}

// defaultNetworkCIDR picks a 10.N.0.0/16 no live network uses, for a
// network created without a cidr.
func defaultNetworkCIDR(w *world) string {
	used := map[string]bool{}
	for _, r := range w.Records {
		if r.Kind == provision.KindNetwork && r.live() {
			used[r.CIDR] = true
		}
	}
	for n := 0; n < 256; n++ {
		c := fmt.Sprintf("10.%d.0.0/16", n)
		if !used[c] {
			return c
		}
	}
	return "10.0.0.0/16"
}
