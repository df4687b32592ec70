// Package addrs names hvctl's resources as values: a site's network, a
// named node and a pool slot, with the address the state and plans use
// (site.cloud.site.zone-a.pool.gpu.node[0]) and the member ID the
// overlay, the manager and the CLI print (cloud.zone-a.gpu[0]). Every
// place that builds or reads an address goes through Parse and String,
// never through string surgery of its own.
package addrs

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is what an address names.
type Kind int

const (
	Network Kind = iota + 1 // site.S.network
	Node                    // site.S.node.N
	Slot                    // site.S.pool.P.node[I]
)

func (k Kind) String() string {
	switch k {
	case Network:
		return "network"
	case Node:
		return "node"
	case Slot:
		return "pool slot"
	}
	return "unknown"
}

// Resource is one resource's address.
type Resource struct {
	// Site is the site path from the top: ["cloud", "zone-a"].
	Site []string
	Kind Kind
	// Name is the node's or the pool's name (empty for a network).
	Name string
	// Index is a pool slot's index.
	Index int
}

// NetworkOf, NodeOf and SlotOf make addresses.
func NetworkOf(site []string) Resource { return Resource{Site: site, Kind: Network} }
func NodeOf(site []string, name string) Resource {
	return Resource{Site: site, Kind: Node, Name: name}
}
func SlotOf(site []string, pool string, i int) Resource {
	return Resource{Site: site, Kind: Slot, Name: pool, Index: i}
}

// SiteAddress is a site's address prefix: site.A, or site.A.site.B.
func SiteAddress(site []string) string {
	var b strings.Builder
	for i, s := range site {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString("site.")
		b.WriteString(s)
	}
	return b.String()
}

// String is the address.
func (r Resource) String() string {
	switch r.Kind {
	case Network:
		return SiteAddress(r.Site) + ".network"
	case Node:
		return SiteAddress(r.Site) + ".node." + r.Name
	case Slot:
		return SiteAddress(r.Site) + ".pool." + r.Name + ".node[" + strconv.Itoa(r.Index) + "]"
	}
	return ""
}

// SitePath is the site's dotted path: cloud.zone-a.
func (r Resource) SitePath() string { return strings.Join(r.Site, ".") }

// PoolPath is a slot's pool path: cloud.zone-a.gpu.
func (r Resource) PoolPath() string { return r.SitePath() + "." + r.Name }

// MemberID is the node's name in the overlay and the manager:
// onprem.frontend, cloud.burst[2]; a network's is its site path.
func (r Resource) MemberID() string {
	switch r.Kind {
	case Node:
		return r.SitePath() + "." + r.Name
	case Slot:
		return r.PoolPath() + "[" + strconv.Itoa(r.Index) + "]"
	}
	return r.SitePath()
}

// Parse reads an address; the error names what is wrong with it.
func Parse(addr string) (Resource, error) {
	parts := strings.Split(addr, ".")
	var r Resource
	i := 0
	for i+1 < len(parts) && parts[i] == "site" {
		if !validName(parts[i+1]) {
			return r, fmt.Errorf("address %q: %q is not a site name", addr, parts[i+1])
		}
		r.Site = append(r.Site, parts[i+1])
		i += 2
	}
	if len(r.Site) == 0 {
		return r, fmt.Errorf("address %q does not start with site.NAME", addr)
	}
	rest := parts[i:]
	switch {
	case len(rest) == 1 && rest[0] == "network":
		r.Kind = Network
	case len(rest) == 2 && rest[0] == "node" && validName(rest[1]):
		r.Kind, r.Name = Node, rest[1]
	case len(rest) == 3 && rest[0] == "pool" && validName(rest[1]):
		idx, ok := slotIndex(rest[2], "node")
		if !ok {
			return r, fmt.Errorf("address %q: %q is not a pool slot (node[N])", addr, rest[2])
		}
		r.Kind, r.Name, r.Index = Slot, rest[1], idx
	default:
		return r, fmt.Errorf("address %q: after the site comes network, node.NAME or pool.NAME.node[N]", addr)
	}
	return r, nil
}

// ParseMember reads a member ID (onprem.frontend, cloud.zone-a.gpu[0])
// into the node's or slot's address.
func ParseMember(id string) (Resource, error) {
	parts := strings.Split(id, ".")
	if len(parts) < 2 {
		return Resource{}, fmt.Errorf("member %q: a member is SITE.NODE or SITE.POOL[N]", id)
	}
	site, last := parts[:len(parts)-1], parts[len(parts)-1]
	for _, s := range site {
		if !validName(s) {
			return Resource{}, fmt.Errorf("member %q: %q is not a site name", id, s)
		}
	}
	if open := strings.IndexByte(last, '['); open >= 0 {
		idx, ok := slotIndex(last[open:], "")
		if !ok || !validName(last[:open]) {
			return Resource{}, fmt.Errorf("member %q: %q is not POOL[N]", id, last)
		}
		return SlotOf(site, last[:open], idx), nil
	}
	if !validName(last) {
		return Resource{}, fmt.Errorf("member %q: %q is not a node name", id, last)
	}
	return NodeOf(site, last), nil
}

// slotIndex reads PREFIX[N] with N a canonical non-negative integer.
func slotIndex(s, prefix string) (int, bool) {
	s, ok := strings.CutPrefix(s, prefix+"[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	n := s[:len(s)-1]
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || strconv.Itoa(i) != n {
		return 0, false
	}
	return i, true
}

// validName is a template name: letters, digits, '-' and '_', not empty.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
