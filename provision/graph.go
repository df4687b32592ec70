package provision

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hvctl/hvctl/provision/addrs"
	"github.com/hvctl/hvctl/templates"
)

// Resource is one desired resource in the graph.
type Resource struct {
	Address  string
	Kind     Kind
	Provider *templates.Provider
	Attrs    Attrs
	Deps     []string
	Site     *templates.Site
	Node     *templates.Node // the named node, or nil
	Pool     *templates.Pool // the pool, or nil
	Index    int             // the pool index
}

// Type is the resource type shown in plans: "<provider type>_<kind>".
func (r *Resource) Type() string { return r.Provider.Type + "_" + string(r.Kind) }

// Graph is the desired resource graph: resources with dependency edges.
type Graph struct {
	Resources []*Resource
	byAddr    map[string]*Resource
}

// Get returns the resource at addr, or nil.
func (g *Graph) Get(addr string) *Resource { return g.byAddr[addr] }

// sitePath is a site's path from the top: ["cloud", "zone-a"].
func sitePath(s *templates.Site) []string {
	if s.Parent != nil {
		return append(sitePath(s.Parent), s.Name)
	}
	return []string{s.Name}
}

// SiteAddress is a site's address: site.NAME, nested site.A.site.B.
func SiteAddress(s *templates.Site) string { return addrs.SiteAddress(sitePath(s)) }

// NetworkAddress is the address of a site's network.
func NetworkAddress(s *templates.Site) string { return addrs.NetworkOf(sitePath(s)).String() }

// NodeAddress is the address of a named node.
func NodeAddress(n *templates.Node) string { return addrs.NodeOf(sitePath(n.Site), n.Name).String() }

// PoolPrefix is the address prefix of a pool's nodes: ...pool.NAME.node[
func PoolPrefix(p *templates.Pool) string { return SiteAddress(p.Site) + ".pool." + p.Name + ".node[" }

// PoolNodeAddress is the address of a pool's i-th node.
func PoolNodeAddress(p *templates.Pool, i int) string {
	return addrs.SlotOf(sitePath(p.Site), p.Name, i).String()
}

// PoolIndex returns the index of a pool node address under prefix.
func PoolIndex(prefix, addr string) (int, bool) {
	if !strings.HasPrefix(addr, prefix) {
		return 0, false
	}
	r, err := addrs.Parse(addr)
	if err != nil || r.Kind != addrs.Slot {
		return 0, false
	}
	return r.Index, true
}

// ClientToken derives the idempotency token for creating addr: stable for
// a lineage, address and generation, so a retry after a crash presents
// the same token and the provider returns the machine it already made.
func ClientToken(lineage, addr string, generation int) string {
	h := sha256.Sum256([]byte(lineage + "\x00" + addr + "\x00" + strconv.Itoa(generation)))
	return "hvctl-" + hex.EncodeToString(h[:16])
}

// BuildGraph builds the desired resources of a cluster. The size of an
// elastic pool is the daemon's business: the graph keeps the pool nodes
// the state already has (within max) and adds nodes only up to min.
func BuildGraph(c *templates.Cluster, st *State) (*Graph, error) {
	g := &Graph{byAddr: map[string]*Resource{}}
	add := func(r *Resource) error {
		if g.byAddr[r.Address] != nil {
			return fmt.Errorf("duplicate resource address %s", r.Address)
		}
		g.byAddr[r.Address] = r
		g.Resources = append(g.Resources, r)
		return nil
	}
	// Pool nodes present in state, by pool prefix.
	existing := map[string][]int{}
	if st != nil {
		for _, r := range st.Resources {
			if i := strings.LastIndex(r.Address, ".node["); i >= 0 {
				p := r.Address[:i+len(".node[")]
				if idx, ok := PoolIndex(p, r.Address); ok {
					existing[p] = append(existing[p], idx)
				}
			}
		}
	}
	var hubAddr string
	if mn := ManagerNode(c); mn != nil {
		hubAddr = NodeAddress(mn)
	}
	for _, s := range c.AllSites() {
		if s.Provider == nil {
			return nil, fmt.Errorf("site %s has no provider", s.Path)
		}
		netAddr := NetworkAddress(s)
		var netDeps []string
		if s.Parent != nil {
			netDeps = []string{NetworkAddress(s.Parent)}
		}
		netAttrs := Attrs{"site": s.Path, "cidr": s.Network.CIDR.String()}
		if s.Network.ExistingID != "" {
			netAttrs["existing_id"] = s.Network.ExistingID
		}
		if err := add(&Resource{Address: netAddr, Kind: KindNetwork, Provider: s.Provider, Site: s, Attrs: netAttrs, Deps: netDeps}); err != nil {
			return nil, err
		}
		instDeps := func(addr string) []string {
			d := []string{netAddr}
			if hubAddr != "" && addr != hubAddr {
				d = append(d, hubAddr)
			}
			return d
		}
		for _, n := range s.Nodes {
			addr := NodeAddress(n)
			a := instanceAttrs(s, n.Name, "", n.Instance, n.PublicIP, n.Roles, nil)
			if n.Host != "" {
				a["host"] = n.Host
			}
			if err := add(&Resource{Address: addr, Kind: KindInstance, Provider: s.Provider, Site: s, Node: n, Attrs: a, Deps: instDeps(addr)}); err != nil {
				return nil, err
			}
		}
		for _, p := range s.Pools {
			prefix := PoolPrefix(p)
			want := map[int]bool{}
			for _, i := range existing[prefix] {
				if i < p.Max {
					want[i] = true
				}
			}
			for i := 0; len(want) < p.Min; i++ {
				want[i] = true
			}
			if !p.Elastic() {
				// A fixed pool is exactly indexes 0..count-1.
				want = map[int]bool{}
				for i := 0; i < p.Max; i++ {
					want[i] = true
				}
			}
			idx := make([]int, 0, len(want))
			for i := range want {
				idx = append(idx, i)
			}
			sort.Ints(idx)
			for _, i := range idx {
				addr := PoolNodeAddress(p, i)
				name := p.Name + "-" + strconv.Itoa(i)
				a := instanceAttrs(s, name, p.Path(), p.Instance, false, []templates.Role{templates.RoleWorker}, p.Labels)
				if i < len(p.Hosts) {
					a["host"] = p.Hosts[i]
				}
				if err := add(&Resource{Address: addr, Kind: KindInstance, Provider: s.Provider, Site: s, Pool: p, Index: i, Attrs: a, Deps: instDeps(addr)}); err != nil {
					return nil, err
				}
			}
		}
	}
	return g, nil
}

// ManagerNode is the node that runs the cluster manager (the join
// service every other node joins through): the primary hub; without hubs
// (mesh), the first node with the manager role, else the first public
// node. nil when there is none.
func ManagerNode(c *templates.Cluster) *templates.Node {
	var manager, public *templates.Node
	for _, s := range c.AllSites() {
		for _, n := range s.Nodes {
			if len(c.Overlay.Hubs) > 0 && n.Path() == c.Overlay.Hubs[0] {
				return n
			}
			if manager == nil && n.HasRole(templates.RoleManager) {
				manager = n
			}
			if public == nil && n.PublicIP {
				public = n
			}
		}
	}
	if len(c.Overlay.Hubs) > 0 {
		return nil
	}
	if manager != nil {
		return manager
	}
	return public
}

// PoolNodeAttrs returns the desired attributes of a pool's i-th node, for
// the elastic daemon adding nodes beyond what plan keeps.
func PoolNodeAttrs(p *templates.Pool, i int) Attrs {
	return instanceAttrs(p.Site, p.Name+"-"+strconv.Itoa(i), p.Path(), p.Instance, false, []templates.Role{templates.RoleWorker}, p.Labels)
}

func instanceAttrs(s *templates.Site, name, pool string, in templates.Instance, public bool, roles []templates.Role, labels map[string]string) Attrs {
	a := Attrs{
		"site":       s.Path,
		"name":       name,
		"public_ip":  public,
		"cpus":       int64(in.CPUs),
		"memory_mib": in.Memory >> 20,
	}
	rs := make([]string, len(roles))
	for i, r := range roles {
		rs[i] = string(r)
	}
	a["roles"] = rs
	if pool != "" {
		a["pool"] = pool
	}
	if in.Type != "" {
		a["instance_type"] = in.Type
	}
	if in.GPUs > 0 {
		a["gpus"] = int64(in.GPUs)
	}
	if in.GPUType != "" {
		a["gpu_type"] = in.GPUType
	}
	if in.Disk > 0 {
		a["disk_gib"] = in.Disk >> 30
	}
	if in.Image != "" {
		a["image"] = in.Image
	}
	if in.Price > 0 {
		a["price"] = in.Price
	}
	if in.Spot {
		a["spot"] = true
	}
	if in.UserData != "" {
		a["user_data"] = in.UserData
	}
	if len(labels) > 0 {
		m := make(map[string]string, len(labels))
		for k, v := range labels {
			m[k] = v
		}
		a["labels"] = m
	}
	return a
}

// KindOf is the kind of resource an address names: site.S.network is a
// network, site.S.node.N and site.S.pool.P.node[i] are instances; ""
// for anything else.
func KindOf(addr string) Kind {
	r, err := addrs.Parse(addr)
	switch {
	case err != nil:
		return ""
	case r.Kind == addrs.Network:
		return KindNetwork
	}
	return KindInstance
}
