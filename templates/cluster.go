package templates

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

func attrSchema(names ...string) []hcl.AttributeSchema {
	out := make([]hcl.AttributeSchema, len(names))
	for i, n := range names {
		out[i] = hcl.AttributeSchema{Name: n}
	}
	return out
}

var (
	clusterSchema = &hcl.BodySchema{
		Attributes: attrSchema("ttl", "tags"),
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "overlay"}, {Type: "site", LabelNames: []string{"name"}},
			{Type: "elastic"}, {Type: "scheduler"}, {Type: "cache"},
		},
	}
	overlaySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "cidr", Required: true}, {Name: "topology"}, {Name: "hubs"},
		{Name: "port"}, {Name: "mtu"}, {Name: "keepalive"},
	}}
	siteSchema = &hcl.BodySchema{
		Attributes: attrSchema("provider", "tier", "gateway"),
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "network"}, {Type: "node", LabelNames: []string{"name"}},
			{Type: "pool", LabelNames: []string{"name"}}, {Type: "cache"},
			{Type: "site", LabelNames: []string{"name"}},
		},
	}
	networkSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "cidr", Required: true}, {Name: "existing_id"},
	}}
	nodeSchema = &hcl.BodySchema{
		Attributes: attrSchema("roles", "public_ip", "host"),
		Blocks:     []hcl.BlockHeaderSchema{{Type: "instance"}},
	}
	poolSchema = &hcl.BodySchema{
		Attributes: attrSchema("count", "min", "max", "labels", "hosts"),
		Blocks:     []hcl.BlockHeaderSchema{{Type: "instance"}},
	}
	instanceSchema = &hcl.BodySchema{Attributes: attrSchema(
		"type", "cpus", "memory", "gpus", "gpu_type", "disk", "image", "price", "spot", "user_data")}
	siteCacheSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "size", Required: true}}}
	elasticSchema   = &hcl.BodySchema{Attributes: attrSchema(
		"interval", "idle_time", "scale_up_window", "max_booting", "boot_timeout",
		"max_failures", "hold_time", "keep_idle")}
	schedulerSchema    = &hcl.BodySchema{Attributes: attrSchema("type", "elastic_mode", "accounting")}
	clusterCacheSchema = &hcl.BodySchema{Attributes: attrSchema("node", "global")}
)

var (
	topologies     = []string{"star", "mesh", "hierarchical"}
	roles          = []string{"hub", "manager", "gateway", "worker"}
	schedulerTypes = []string{"builtin", "slurm"}
	elasticModes   = []string{"hvctl", "power_save"}
)

// Defaults from the template specification.
const (
	DefaultPort      = 51820
	DefaultKeepalive = 25 * time.Second
)

// DefaultElastic is the elastic block's defaults.
var DefaultElastic = Elastic{
	Interval:      5 * time.Second,
	IdleTime:      5 * time.Minute,
	IdleAuto:      true,
	ScaleUpWindow: time.Second,
	MaxBooting:    10,
	BootTimeout:   20 * time.Minute,
	MaxFailures:   3,
	HoldTime:      10 * time.Minute,
	KeepIdle:      0,
}

// siteInfo keeps source ranges the cross-site checks point at.
type siteInfo struct {
	site       *Site
	cidrRange  hcl.Range // network cidr expression, or the site block
	hasNetwork bool
}

type clusterDecoder struct {
	*loader
	c     *Cluster
	sites []*siteInfo // depth first
	// ranges for the cross-cutting checks
	overlayCIDR  hcl.Range
	overlayBlock hcl.Range
	hubsAttr     *hcl.Attribute
	cacheGlobal  *hcl.Attribute
	hasOverlay   bool
	overlayOK    bool
}

// single reports duplicates among blocks of one type that may appear once
// and returns the first, or nil.
func (l *loader) single(blocks hcl.Blocks, typ, where string) *hcl.Block {
	var first *hcl.Block
	for _, b := range blocks {
		if b.Type != typ {
			continue
		}
		if first != nil {
			l.diags = append(l.diags, errorf(b.DefRange, "Duplicate "+typ+" block",
				"%s may have only one %s block; the first is at %s.", where, typ, first.DefRange))
			continue
		}
		first = b
	}
	return first
}

func (l *loader) decodeCluster(b *hcl.Block) *Cluster {
	name := b.Labels[0]
	l.checkName("cluster", name, b.LabelRanges[0])
	d := &clusterDecoder{loader: l, c: &Cluster{
		Name:      name,
		DeclRange: b.DefRange,
		Overlay:   Overlay{Topology: Star, Port: DefaultPort, Keepalive: DefaultKeepalive},
		Elastic:   DefaultElastic,
		Scheduler: Scheduler{Type: "builtin", ElasticMode: "hvctl"},
	}}
	c := d.c
	content, diags := b.Body.Content(clusterSchema)
	l.diags = append(l.diags, diags...)
	l.getDuration(content.Attributes, "ttl", &c.TTL)
	l.getStringMap(content.Attributes, "tags", &c.Tags)

	if ob := l.single(content.Blocks, "overlay", "A cluster"); ob != nil {
		d.decodeOverlay(ob)
	} else {
		l.diags = append(l.diags, errorf(b.DefRange, "Missing overlay block",
			"The cluster %q needs an overlay block with at least a cidr, like overlay { cidr = \"10.200.0.0/16\" }.", name))
	}
	seen := map[string]*hcl.Block{}
	for _, sb := range content.Blocks.OfType("site") {
		if s := d.decodeSite(sb, nil, seen); s != nil {
			c.Sites = append(c.Sites, s)
		}
	}
	if len(content.Blocks.OfType("site")) == 0 {
		l.diags = append(l.diags, errorf(b.DefRange, "Missing site block",
			"The cluster %q needs at least one site \"NAME\" block with a network and its nodes or pools.", name))
	}
	if eb := l.single(content.Blocks, "elastic", "A cluster"); eb != nil {
		d.decodeElastic(eb)
	}
	if sb := l.single(content.Blocks, "scheduler", "A cluster"); sb != nil {
		sc, diags := sb.Body.Content(schedulerSchema)
		l.diags = append(l.diags, diags...)
		if a, v, ok := l.value(sc.Attributes, "type"); ok {
			var s string
			if l.toString(a, v, &s) {
				if contains(schedulerTypes, s) {
					c.Scheduler.Type = s
				} else {
					l.diags = append(l.diags, errorf(a.Expr.Range(), "Unknown scheduler type",
						"There is no scheduler type %q.%s The scheduler type is %s.", s, didYouMean(s, schedulerTypes), quotedList(schedulerTypes)))
				}
			}
		}
		if a, v, ok := l.value(sc.Attributes, "elastic_mode"); ok {
			var s string
			if l.toString(a, v, &s) {
				switch {
				case !contains(elasticModes, s):
					l.diags = append(l.diags, errorf(a.Expr.Range(), "Unknown elastic mode",
						"There is no elastic_mode %q.%s It is %s: hvctl's elastic daemon sizes the pools, or SLURM's power saving asks hvctl for nodes.", s, didYouMean(s, elasticModes), quotedList(elasticModes)))
				case s == "power_save" && c.Scheduler.Type != "slurm":
					l.diags = append(l.diags, errorf(a.Expr.Range(), "Power saving needs SLURM",
						"elastic_mode = \"power_save\" hands sizing to SLURM's power saving, so it needs type = \"slurm\"; the builtin scheduler is sized by hvctl's elastic daemon (elastic_mode = \"hvctl\", the default)."))
				default:
					c.Scheduler.ElasticMode = s
				}
			}
		}
		if a, v, ok := l.value(sc.Attributes, "accounting"); ok {
			var on bool
			if l.toBool(a, v, &on) {
				if on && c.Scheduler.Type != "slurm" {
					l.diags = append(l.diags, errorf(a.Expr.Range(), "Accounting needs SLURM",
						"accounting = true runs slurmdbd with a MariaDB database on the hub, so it needs type = \"slurm\"; the builtin scheduler keeps every job in its manager (hvctl jobs)."))
				} else {
					c.Scheduler.Accounting = on
				}
			}
		}
	}
	if cb := l.single(content.Blocks, "cache", "A cluster"); cb != nil {
		cc, diags := cb.Body.Content(clusterCacheSchema)
		l.diags = append(l.diags, diags...)
		l.getSize(cc.Attributes, "node", &c.Cache.Node)
		if l.getString(cc.Attributes, "global", &c.Cache.Global) {
			d.cacheGlobal = cc.Attributes["global"]
		}
	}
	d.check()
	return c
}

func (d *clusterDecoder) decodeOverlay(b *hcl.Block) {
	l, o := d.loader, &d.c.Overlay
	o.DeclRange = b.DefRange
	d.hasOverlay = true
	d.overlayBlock = b.DefRange
	content, diags := b.Body.Content(overlaySchema)
	l.diags = append(l.diags, diags...)
	if a, v, ok := l.value(content.Attributes, "cidr"); ok {
		d.overlayCIDR = a.Expr.Range()
		if p, ok := d.prefix(a, v); ok {
			o.CIDR = p
			d.overlayOK = true
		}
	}
	if a, v, ok := l.value(content.Attributes, "topology"); ok {
		var s string
		if l.toString(a, v, &s) {
			if contains(topologies, s) {
				o.Topology = Topology(s)
			} else {
				l.diags = append(l.diags, errorf(a.Expr.Range(), "Unknown topology",
					"There is no overlay topology %q.%s The topology is %s.", s, didYouMean(s, topologies), quotedList(topologies)))
			}
		}
	}
	if l.getStringList(content.Attributes, "hubs", &o.Hubs) {
		d.hubsAttr = content.Attributes["hubs"]
	}
	l.getInt(content.Attributes, "port", 1, 65535, &o.Port)
	if a, v, ok := l.value(content.Attributes, "mtu"); ok {
		if v.Type() == cty.String && v.AsString() == "auto" {
			o.MTU = 0
		} else if v.Type() == cty.String && !looksNumeric(v.AsString()) {
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid value for \"mtu\"",
				"mtu must be \"auto\" (the underlay MTU minus 80) or a number between 576 and 65535; got %q.", v.AsString()))
		} else {
			l.toInt(a, v, 576, 65535, &o.MTU)
		}
	}
	l.getDuration(content.Attributes, "keepalive", &o.Keepalive)
}

func looksNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

// prefix parses a CIDR attribute value.
func (d *clusterDecoder) prefix(a *hcl.Attribute, v cty.Value) (netip.Prefix, bool) {
	var s string
	if !d.toString(a, v, &s) {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		d.diags = append(d.diags, errorf(a.Expr.Range(), "Invalid CIDR",
			"%q is not a valid CIDR block: %s. A CIDR block is an address and a prefix length, like \"10.0.0.0/16\".", s, strings.TrimPrefix(err.Error(), "netip.ParsePrefix("+fmt.Sprintf("%q", s)+"): ")))
		return netip.Prefix{}, false
	}
	if p != p.Masked() {
		d.diags = append(d.diags, errorf(a.Expr.Range(), "Invalid CIDR",
			"%q has bits set after the prefix length. Did you mean %q?", s, p.Masked().String()))
		return netip.Prefix{}, false
	}
	return p, true
}

func (d *clusterDecoder) decodeSite(b *hcl.Block, parent *Site, siblings map[string]*hcl.Block) *Site {
	l := d.loader
	name := b.Labels[0]
	if !l.checkName("site", name, b.LabelRanges[0]) {
		return nil
	}
	if prev, ok := siblings[name]; ok {
		l.diags = append(l.diags, errorf(b.LabelRanges[0], "Duplicate site",
			"A site named %q is already defined at %s. Site names must be unique among their siblings.", name, prev.DefRange))
		return nil
	}
	siblings[name] = b
	s := &Site{Name: name, Path: name, Parent: parent, DeclRange: b.DefRange}
	if parent != nil {
		s.Path = parent.Path + "." + name
		s.Provider, s.Tier = parent.Provider, parent.Tier
	}
	info := &siteInfo{site: s, cidrRange: b.DefRange}
	d.sites = append(d.sites, info)
	content, diags := b.Body.Content(siteSchema)
	l.diags = append(l.diags, diags...)

	if a, v, ok := l.value(content.Attributes, "provider"); ok {
		if p := d.resolveProvider(a, v); p != nil {
			s.Provider = p
		}
	}
	if s.Provider == nil {
		s.Provider = l.provider("local", "default")
		if s.Provider.DeclRange.Filename == "" {
			s.Provider.DeclRange = b.DefRange
		}
	}
	l.getInt(content.Attributes, "tier", 0, math.MaxInt32, &s.Tier)
	var gatewayAttr *hcl.Attribute
	if l.getString(content.Attributes, "gateway", &s.Gateway) {
		gatewayAttr = content.Attributes["gateway"]
	}

	if nb := l.single(content.Blocks, "network", "A site"); nb != nil {
		nc, diags := nb.Body.Content(networkSchema)
		l.diags = append(l.diags, diags...)
		if a, v, ok := l.value(nc.Attributes, "cidr"); ok {
			info.cidrRange = a.Expr.Range()
			if p, ok := d.prefix(a, v); ok {
				s.Network.CIDR = p
				info.hasNetwork = true
			}
		}
		l.getString(nc.Attributes, "existing_id", &s.Network.ExistingID)
	} else {
		l.diags = append(l.diags, errorf(b.DefRange, "Missing network block",
			"The site %q needs a network block with its private network, like network { cidr = \"192.168.10.0/24\" }.", s.Path))
	}

	members := map[string]*hcl.Block{}
	for _, blk := range content.Blocks {
		if blk.Type != "node" && blk.Type != "pool" {
			continue
		}
		mname := blk.Labels[0]
		if !l.checkName(blk.Type, mname, blk.LabelRanges[0]) {
			continue
		}
		if prev, ok := members[mname]; ok {
			l.diags = append(l.diags, errorf(blk.LabelRanges[0], "Duplicate "+blk.Type,
				"The site %q already has a %s named %q at %s. Node and pool names must be unique within a site.", s.Path, prev.Type, mname, prev.DefRange))
			continue
		}
		members[mname] = blk
		if blk.Type == "node" {
			n := d.decodeNode(blk, s)
			s.Nodes = append(s.Nodes, n)
			l.nodes[n.Path()] = n
		} else {
			p := d.decodePool(blk, s)
			s.Pools = append(s.Pools, p)
			l.pools[p.Path()] = p
		}
	}
	if cb := l.single(content.Blocks, "cache", "A site"); cb != nil {
		cc, diags := cb.Body.Content(siteCacheSchema)
		l.diags = append(l.diags, diags...)
		s.Cache = &SiteCache{}
		l.getSize(cc.Attributes, "size", &s.Cache.Size)
	}
	d.checkGateway(s, gatewayAttr)

	nested := map[string]*hcl.Block{}
	for _, sb := range content.Blocks.OfType("site") {
		if sub := d.decodeSite(sb, s, nested); sub != nil {
			s.Sites = append(s.Sites, sub)
		}
	}
	return s
}

// resolveProvider turns a site's provider value, a provider.TYPE.NAME
// reference or a type string, into a Provider.
func (d *clusterDecoder) resolveProvider(a *hcl.Attribute, v cty.Value) *Provider {
	l := d.loader
	if v.Type() == cty.String {
		typ := v.AsString()
		if !contains(providerTypes, typ) {
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Unknown provider type",
				"There is no provider type %q.%s A site's provider is a reference like provider.aws.ohio, or one of the types %s for that type's default configuration.",
				typ, didYouMean(typ, providerTypes), quotedList(providerTypes)))
			return nil
		}
		p := l.provider(typ, "default")
		if p.Implicit && p.DeclRange.Filename == "" {
			p.DeclRange = a.Expr.Range()
		}
		return p
	}
	if v.Type().IsObjectType() && v.Type().HasAttribute("type") && v.Type().HasAttribute("name") {
		t, n := v.GetAttr("type"), v.GetAttr("name")
		if t.Type() == cty.String && n.Type() == cty.String && !t.IsNull() && !n.IsNull() {
			if p := l.provider(t.AsString(), n.AsString()); p != nil {
				if p.Implicit && p.DeclRange.Filename == "" {
					p.DeclRange = a.Expr.Range()
				}
				return p
			}
		}
	}
	l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid provider",
		"A site's provider is a reference to a provider block, like provider.aws.ohio, or a provider type string such as \"local\" or \"sim\"; got %s.", friendlyType(v)))
	return nil
}

func (d *clusterDecoder) decodeNode(b *hcl.Block, s *Site) *Node {
	l := d.loader
	n := &Node{Name: b.Labels[0], Site: s, Roles: []Role{RoleWorker}, DeclRange: b.DefRange}
	content, diags := b.Body.Content(nodeSchema)
	l.diags = append(l.diags, diags...)
	if a, v, ok := l.value(content.Attributes, "roles"); ok {
		var rs []string
		if l.toStringList(a, v, &rs) {
			n.Roles = d.roles(a, rs)
		}
	}
	l.getBool(content.Attributes, "public_ip", &n.PublicIP)
	if ib := l.single(content.Blocks, "instance", "A node"); ib != nil {
		d.decodeInstance(ib, &n.Instance)
	}
	static := s.Provider != nil && s.Provider.Type == "static"
	if a := content.Attributes["host"]; a != nil {
		if !static {
			l.diags = append(l.diags, errorf(a.NameRange, "Unexpected host",
				"The node %q sets host, but its site %q uses the %s provider, which makes its own machines. host names an existing machine, on sites whose provider is static.", n.Path(), s.Path, s.Provider.Type))
		} else if l.getString(content.Attributes, "host", &n.Host) && !validHost(n.Host) {
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid host",
				"host = %q: must be an IP address or a host name (a port goes in the provider's port setting).", n.Host))
		}
	} else if static {
		l.diags = append(l.diags, errorf(b.DefRange, "Missing host",
			"The node %q is on the static site %q: it needs host = \"ADDRESS\", the existing machine hvctl reaches over SSH.", n.Path(), s.Path))
	}
	return n
}

// validHost reports whether h looks like an IP address or a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// roles checks role names; elements of a literal list get their own
// source range.
func (d *clusterDecoder) roles(a *hcl.Attribute, names []string) []Role {
	elems := []hcl.Expression(nil)
	if tc, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok && len(tc.Exprs) == len(names) {
		elems = exprList(tc.Exprs)
	}
	if len(names) == 0 {
		d.diags = append(d.diags, errorf(a.Expr.Range(), "Invalid roles",
			"A node needs at least one role: any of %s.", quotedList(roles)))
		return nil
	}
	out := make([]Role, 0, len(names))
	seen := map[string]bool{}
	for i, r := range names {
		rng := a.Expr.Range()
		if elems != nil {
			rng = elems[i].Range()
		}
		if !contains(roles, r) {
			d.diags = append(d.diags, errorf(rng, "Unknown role",
				"There is no node role %q.%s Roles are %s.", r, didYouMean(r, roles), quotedList(roles)))
			continue
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		out = append(out, Role(r))
	}
	return out
}

func (d *clusterDecoder) decodePool(b *hcl.Block, s *Site) *Pool {
	l := d.loader
	p := &Pool{Name: b.Labels[0], Site: s, DeclRange: b.DefRange}
	content, diags := b.Body.Content(poolSchema)
	l.diags = append(l.diags, diags...)
	at := content.Attributes
	const maxPool = 1 << 20
	var count, lo, hi int
	hasCount := l.getInt(at, "count", 0, maxPool, &count)
	hasMin := l.getInt(at, "min", 0, maxPool, &lo)
	hasMax := l.getInt(at, "max", 0, maxPool, &hi)
	if d.decodeHosts(b, s, p, at) {
		l.getStringMap(at, "labels", &p.Labels)
		if ib := l.single(content.Blocks, "instance", "A pool"); ib != nil {
			d.decodeInstance(ib, &p.Instance)
		}
		return p
	}
	switch {
	case at["count"] != nil && (at["min"] != nil || at["max"] != nil):
		other := at["min"]
		if other == nil {
			other = at["max"]
		}
		l.diags = append(l.diags, errorf(other.NameRange, "Conflicting pool size",
			"The pool %q sets both count and %s. Use count for a fixed size, or min and max for an elastic pool.", p.Path(), other.Name))
	case at["count"] == nil && at["min"] == nil && at["max"] == nil:
		l.diags = append(l.diags, errorf(b.DefRange, "Missing pool size",
			"The pool %q needs count (a fixed size) or min and max (an elastic pool).", p.Path()))
	case at["count"] != nil:
		if hasCount {
			p.Min, p.Max = count, count
		}
	case at["max"] == nil:
		l.diags = append(l.diags, errorf(at["min"].NameRange, "Missing pool maximum",
			"The pool %q sets min but not max. An elastic pool needs both, with 0 ≤ min ≤ max.", p.Path()))
	default:
		if hasMax && (hasMin || at["min"] == nil) {
			if lo > hi {
				l.diags = append(l.diags, errorf(at["min"].Expr.Range(), "Invalid pool bounds",
					"The pool %q has min = %d greater than max = %d. Pool bounds must satisfy 0 ≤ min ≤ max.", p.Path(), lo, hi))
			} else {
				p.Min, p.Max = lo, hi
			}
		}
	}
	l.getStringMap(at, "labels", &p.Labels)
	if ib := l.single(content.Blocks, "instance", "A pool"); ib != nil {
		d.decodeInstance(ib, &p.Instance)
	}
	return p
}

// decodeHosts decodes a pool's hosts (static sites: one existing
// machine per member, a fixed pool) and reports whether the pool's size
// is settled by them (hosts given, or the pool refused for lack of them).
func (d *clusterDecoder) decodeHosts(b *hcl.Block, s *Site, p *Pool, at hcl.Attributes) bool {
	l := d.loader
	static := s.Provider != nil && s.Provider.Type == "static"
	a := at["hosts"]
	switch {
	case a == nil && !static:
		return false
	case a == nil:
		l.diags = append(l.diags, errorf(b.DefRange, "Missing hosts",
			"The pool %q is on the static site %q: it needs hosts = [\"ADDRESS\", ...], the existing machines hvctl reaches over SSH (one pool member per host).", p.Path(), s.Path))
		return true
	case !static:
		l.diags = append(l.diags, errorf(a.NameRange, "Unexpected hosts",
			"The pool %q sets hosts, but its site %q uses the %s provider, which makes its own machines. hosts names existing machines, on sites whose provider is static.", p.Path(), s.Path, s.Provider.Type))
		return true
	}
	for _, bound := range []string{"min", "max"} {
		if x := at[bound]; x != nil {
			l.diags = append(l.diags, errorf(x.NameRange, "Static pools cannot be elastic",
				"The pool %q is on static hosts, which exist already: hvctl can neither add machines to it nor give them back, so it has no min or max. Its size is the number of hosts; to burst, add an elastic pool on a cloud site.", p.Path()))
			return true
		}
	}
	var hosts []string
	if !l.getStringList(at, "hosts", &hosts) {
		return true
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		switch {
		case !validHost(h):
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid hosts",
				"hosts: %q is not an IP address or a host name.", h))
			return true
		case seen[h]:
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid hosts",
				"hosts: %q is listed twice; each host is one pool member.", h))
			return true
		}
		seen[h] = true
	}
	if len(hosts) == 0 {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid hosts", "The pool %q needs at least one host.", p.Path()))
		return true
	}
	var count int
	if c := at["count"]; c != nil && l.getInt(at, "count", 0, 1<<20, &count) && count != len(hosts) {
		l.diags = append(l.diags, errorf(c.Expr.Range(), "Conflicting pool size",
			"The pool %q has count = %d but %d hosts; a static pool has one member per host (leave count out).", p.Path(), count, len(hosts)))
		return true
	}
	p.Hosts, p.Min, p.Max = hosts, len(hosts), len(hosts)
	return true
}

func (d *clusterDecoder) decodeInstance(b *hcl.Block, in *Instance) {
	l := d.loader
	content, diags := b.Body.Content(instanceSchema)
	l.diags = append(l.diags, diags...)
	at := content.Attributes
	l.getString(at, "type", &in.Type)
	l.getInt(at, "cpus", 0, 1<<20, &in.CPUs)
	l.getSize(at, "memory", &in.Memory)
	l.getInt(at, "gpus", 0, 1<<10, &in.GPUs)
	l.getString(at, "gpu_type", &in.GPUType)
	l.getSize(at, "disk", &in.Disk)
	l.getString(at, "image", &in.Image)
	l.getFloat(at, "price", &in.Price)
	l.getBool(at, "spot", &in.Spot)
	l.getString(at, "user_data", &in.UserData)
}

func (d *clusterDecoder) decodeElastic(b *hcl.Block) {
	l, e := d.loader, &d.c.Elastic
	content, diags := b.Body.Content(elasticSchema)
	l.diags = append(l.diags, diags...)
	at := content.Attributes
	positive := func(name string, dst *time.Duration) {
		var v time.Duration
		if l.getDuration(at, name, &v) {
			if v <= 0 {
				l.diags = append(l.diags, errorf(at[name].Expr.Range(), "Invalid duration",
					"%s must be longer than zero.", name))
				return
			}
			*dst = v
		}
	}
	positive("interval", &e.Interval)
	if a, v, ok := l.value(at, "idle_time"); ok {
		switch {
		case v.Type() == cty.String && v.AsString() == "auto":
			e.IdleAuto = true
		case v.Type() == cty.String:
			if d, err := ParseDuration(v.AsString()); err != nil {
				l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid duration",
					"idle_time: %s. It is \"auto\" (the default: the policy chooses from boot and setup times and the gaps between bursts) or a duration like \"30s\", \"5m\" or \"1h\".", err))
			} else {
				e.IdleTime, e.IdleAuto = d, false
			}
		default:
			l.toDuration(a, v, &e.IdleTime) // reports the type error
		}
	}
	l.getDuration(at, "scale_up_window", &e.ScaleUpWindow)
	l.getInt(at, "max_booting", 0, math.MaxInt32, &e.MaxBooting)
	positive("boot_timeout", &e.BootTimeout)
	l.getInt(at, "max_failures", 0, math.MaxInt32, &e.MaxFailures)
	l.getDuration(at, "hold_time", &e.HoldTime)
	l.getInt(at, "keep_idle", 0, math.MaxInt32, &e.KeepIdle)
}

// checkGateway checks a site's gateway attribute, or picks the site's
// only gateway-role node when the attribute is absent.
func (d *clusterDecoder) checkGateway(s *Site, a *hcl.Attribute) {
	if a == nil {
		if s.Gateway == "" {
			var gw []*Node
			for _, n := range s.Nodes {
				if n.HasRole(RoleGateway) {
					gw = append(gw, n)
				}
			}
			if len(gw) == 1 {
				s.Gateway = gw[0].Name
			}
		}
		return
	}
	var node *Node
	names := make([]string, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		names = append(names, n.Name)
		if n.Name == s.Gateway {
			node = n
		}
	}
	switch {
	case node == nil && d.pools[s.Path+"."+s.Gateway] != nil:
		d.diags = append(d.diags, errorf(a.Expr.Range(), "Invalid gateway",
			"%q is a pool of site %q; a gateway must be a named node block with roles = [\"gateway\"].", s.Gateway, s.Path))
	case node == nil:
		d.diags = append(d.diags, errorf(a.Expr.Range(), "Unknown gateway node",
			"The site %q has no node named %q.%s A site's gateway names one of its own node blocks: %s.",
			s.Path, s.Gateway, didYouMean(s.Gateway, names), quotedList(names)))
	case !node.HasRole(RoleGateway):
		d.diags = append(d.diags, errorf(a.Expr.Range(), "Gateway node lacks the gateway role",
			"The node %q is the gateway of site %q but its roles are %s. Add \"gateway\" to its roles (at %s).",
			node.Path(), s.Path, roleList(node.Roles), node.DeclRange))
	}
}

func roleList(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return "[" + quotedListComma(s) + "]"
}

func quotedListComma(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
