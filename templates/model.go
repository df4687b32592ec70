package templates

import (
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Config is a whole evaluated template: what Load returns when the
// template has no errors. Every value is already evaluated (variables,
// locals and functions applied) and checked.
type Config struct {
	// Dir is the directory the template was read from; file() and
	// relative paths resolve against it.
	Dir string
	// Files are the parsed source files, keyed by filename, so
	// diagnostics can be printed with snippets.
	Files map[string]*hcl.File
	// Sources are the names of the template's own files (the keys of
	// Files that are not variable files), in the order they were read.
	Sources []string

	Variables []*Variable
	// Locals are the evaluated local values, by name.
	Locals map[string]cty.Value
	// Providers are the explicit provider blocks plus an implicit default
	// configuration for every provider type a site names by string.
	Providers []*Provider
	Cluster   *Cluster
	Outputs   []*Output
	// State is the state block, or nil (local state beside the template).
	State *StateConfig
}

// Variable is a declared input variable with its resolved value.
type Variable struct {
	Name        string
	Description string
	Sensitive   bool
	// Type is the declared type constraint (cty.DynamicPseudoType when
	// the variable has no type).
	Type      cty.Type
	Value     cty.Value
	DeclRange hcl.Range
}

// Output is a template output. Its expression may refer to
// cluster.NAME.* values that are only known after apply, so it is kept
// unevaluated; EvalOutput evaluates it against known values.
type Output struct {
	Name        string
	Description string
	Sensitive   bool
	Expr        hcl.Expression
	DeclRange   hcl.Range
}

// Provider is one provider configuration: provider "TYPE" "NAME" { ... },
// or an implicit default ("local", "sim") named "default".
type Provider struct {
	Type string // local | sim | aws | openstack | static
	Name string
	// Implicit is true for a default configuration created because a
	// site names the provider type by string.
	Implicit bool
	// Attrs holds the evaluated provider settings. The provider itself
	// checks their meaning at plan time; AttrRanges lets it point at the
	// source when it rejects one.
	Attrs      map[string]cty.Value
	AttrRanges map[string]hcl.Range
	DeclRange  hcl.Range
}

// Ref is the reference form used in templates: "provider.TYPE.NAME".
func (p *Provider) Ref() string { return "provider." + p.Type + "." + p.Name }

// Cluster is the single cluster block.
type Cluster struct {
	Name      string
	TTL       time.Duration // 0 = no expiry
	Tags      map[string]string
	Overlay   Overlay
	Sites     []*Site // top-level sites, in source order
	Elastic   Elastic
	Scheduler Scheduler
	Cache     ClusterCache
	DeclRange hcl.Range
}

// Topology names the overlay shape.
type Topology string

const (
	Star         Topology = "star"
	Mesh         Topology = "mesh"
	Hierarchical Topology = "hierarchical"
)

// Overlay is the WireGuard overlay configuration.
type Overlay struct {
	CIDR      netip.Prefix
	Topology  Topology
	Hubs      []string // node paths, "SITE.NODE" or "SITE.SUB.NODE"; first is primary
	Port      int      // default 51820
	MTU       int      // 0 means auto (underlay MTU - 80)
	Keepalive time.Duration
	DeclRange hcl.Range
}

// Site is a site block; sites nest.
type Site struct {
	Name string
	// Path is the dotted path from the top-level site: "cloud.zone-a".
	Path      string
	Parent    *Site // nil for a top-level site
	Provider  *Provider
	Tier      int
	Gateway   string // name of a node of this site, or ""
	Network   Network
	Nodes     []*Node
	Pools     []*Pool
	Cache     *SiteCache // nil when the site has no cache block
	Sites     []*Site    // nested sites
	DeclRange hcl.Range
}

// Network is a site's private network.
type Network struct {
	CIDR       netip.Prefix
	ExistingID string
}

// Role is a node role.
type Role string

const (
	RoleHub     Role = "hub"
	RoleManager Role = "manager"
	RoleGateway Role = "gateway"
	RoleWorker  Role = "worker"
)

// Node is a single named node.
type Node struct {
	Name     string
	Site     *Site
	Roles    []Role // default [worker]
	PublicIP bool
	Instance Instance
	// Host is the existing machine (address or name) of a node on a
	// static site, reached over SSH.
	Host      string
	DeclRange hcl.Range
}

// Path is "SITE.NODE" (nested: "SITE.SUB.NODE"), the form overlay.hubs uses.
func (n *Node) Path() string { return n.Site.Path + "." + n.Name }

// HasRole reports whether the node has role r.
func (n *Node) HasRole(r Role) bool {
	for _, x := range n.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// Pool is a group of identical worker nodes.
type Pool struct {
	Name     string
	Site     *Site
	Min, Max int // count = n gives Min = Max = n
	Instance Instance
	Labels   map[string]string
	// Hosts are the existing machines of a pool on a static site, one
	// per member: such a pool is fixed, Min = Max = len(Hosts).
	Hosts     []string
	DeclRange hcl.Range
}

// Elastic reports whether the pool's size is left to the elastic daemon.
func (p *Pool) Elastic() bool { return p.Min < p.Max }

// Path is "SITE.POOL".
func (p *Pool) Path() string { return p.Site.Path + "." + p.Name }

// Instance describes a machine's size and image.
type Instance struct {
	Type     string
	CPUs     int
	Memory   int64 // bytes
	GPUs     int
	GPUType  string
	Disk     int64 // bytes
	Image    string
	Price    float64 // per hour
	Spot     bool
	UserData string
}

// Elastic holds the elasticity settings, defaults filled in.
type Elastic struct {
	Interval time.Duration // 5s
	// IdleTime is how long an idle node is kept before it is powered
	// off, when IdleAuto is false. With IdleAuto (idle_time = "auto",
	// the default) the policy chooses per pool from the observed boot and
	// setup times and the gaps between bursts; IdleTime is then only the
	// fallback for schedulers that need one number (SLURM's SuspendTime).
	IdleTime      time.Duration // 5m
	IdleAuto      bool          // true
	ScaleUpWindow time.Duration // 1s
	MaxBooting    int           // 10; 0 = no limit
	BootTimeout   time.Duration // 20m
	MaxFailures   int           // 3
	HoldTime      time.Duration // 10m
	KeepIdle      int           // 0
}

// Scheduler selects the runtime scheduler.
type Scheduler struct {
	Type string // builtin | slurm
	// ElasticMode is who sizes elastic pools: "hvctl" (hvctl's elastic
	// daemon, the default) or "power_save" (SLURM's power saving calls
	// hvctl to resume and suspend nodes; slurm only).
	ElasticMode string
	// Accounting runs slurmdbd and a MariaDB server on the hub, so that
	// sacct (and hvctl jobs) see every job (slurm only).
	Accounting bool
}

// ClusterCache is the cluster-level cache block.
type ClusterCache struct {
	Node   int64  // per-node cache size in bytes; 0 = none
	Global string // "SITE.NODE:/path" where datasets live; "" = none
}

// SiteCache is a site-level cache block.
type SiteCache struct {
	Size int64 // bytes
}

// AllSites returns every site, depth first in source order.
func (c *Cluster) AllSites() []*Site {
	var out []*Site
	var walk func([]*Site)
	walk = func(ss []*Site) {
		for _, s := range ss {
			out = append(out, s)
			walk(s.Sites)
		}
	}
	walk(c.Sites)
	return out
}
