package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hvctl/hvctl/provision"
)

// Provider is a local provider configuration over the world in one state
// directory. It is safe for concurrent use; several processes may share a
// world (every change is made under an flock), but two operations on one
// resource must not run in different processes at once (the engine's
// state lock sees to that).
type Provider struct {
	settings Settings
	env      *provision.Env
	store    store

	mu       sync.Mutex
	locks    map[string]*sync.Mutex
	children map[int]chan struct{} // closed when an agent this process started exits
}

var (
	_ provision.Provider = (*Provider)(nil)
	_ provision.Updater  = (*Provider)(nil)
	_ provision.Waiter   = (*Provider)(nil)
	_ provision.Lister   = (*Provider)(nil)
	_ provision.Stopper  = (*Provider)(nil)
	_ Executor           = (*Provider)(nil)
)

// Executor runs commands on a node: `hvctl exec`. The local provider runs
// them inside the node's namespace.
type Executor interface {
	Exec(ctx context.Context, id string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (exitCode int, err error)
}

// startGrace is how long WaitReady watches a freshly started agent: one
// that exits within it is a boot failure.
var startGrace = 300 * time.Millisecond

// Open returns a provider with settings s over the world in
// env.StateDir. It does not check privileges (New does).
func Open(env *provision.Env, s Settings) *Provider {
	if env == nil {
		env = &provision.Env{}
	}
	return &Provider{settings: s, env: env, store: newStore(env.StateDir),
		locks: map[string]*sync.Mutex{}, children: map[int]chan struct{}{}}
}

// Settings returns the provider's settings.
func (p *Provider) Settings() Settings { return p.settings }

// WorldPath is the world file this provider uses.
func (p *Provider) WorldPath() string { return p.store.path }

// Limits: the local machine has no API rate limit.
func (p *Provider) Limits() provision.Limits { return provision.Limits{} }

// lockID serializes long operations on one resource within this process.
func (p *Provider) lockID(id string) func() {
	p.mu.Lock()
	m := p.locks[id]
	if m == nil {
		m = new(sync.Mutex)
		p.locks[id] = m
	}
	p.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (p *Provider) stateDir() string {
	d, err := filepath.Abs(p.env.StateDir)
	if err != nil {
		return p.env.StateDir
	}
	return d
}

// computed returns the attributes the provider decides.
func (p *Provider) computed(r *record) provision.Attrs {
	if r.Kind == provision.KindNetwork {
		return provision.Attrs{"cidr": r.CIDR}
	}
	a := provision.Attrs{"state": p.instanceState(r), "private_ip": r.PrivateIP}
	if r.PublicAddress != "" {
		a["public_address"] = r.PublicAddress
	}
	return a
}

// instanceState is pending until the agent runs, running while it does,
// failed once it died, and stopped once Stop ended it (or is ending it).
func (p *Provider) instanceState(r *record) string { return nodeState(r) }

// nodeState is a made node's reported state (see instanceState).
func nodeState(r *record) string {
	switch {
	case r.State != recCreated:
		return StatePending
	case r.Power == powerStopped || r.Power == powerStopping:
		return StateStopped
	case r.Proc == nil:
		return StatePending
	case r.Proc.alive():
		return StateRunning
	}
	return StateFailed
}

// Create makes a site network or a node. A client token seen before
// returns (and, if a crash left it half made, completes) what it made.
func (p *Provider) Create(ctx context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	if req.Kind != provision.KindNetwork && req.Kind != provision.KindInstance {
		return nil, fmt.Errorf("local: unsupported resource kind %q", req.Kind)
	}
	if id, _ := req.Attrs["existing_id"].(string); id != "" {
		return nil, fmt.Errorf("local: network %s: existing_id is not supported by the local provider (it makes every site network itself)", req.Address)
	}
	if req.Kind == provision.KindNetwork {
		// Choosing the cluster's public /24 and making its bridge must
		// not interleave with another hvctl doing the same.
		unlock, err := globalLock(ctx)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	var rec *record
	err := p.store.update(func(w *world) (bool, error) {
		if r := byToken(w, req.ClientToken); r != nil {
			if r.Kind != req.Kind || r.Address != req.Address {
				return false, fmt.Errorf("local: client token %q was used for %s %s, not %s %s", req.ClientToken, r.Kind, r.Address, req.Kind, req.Address)
			}
			if r.State == recDeleting {
				return false, fmt.Errorf("local: %s %s (%s) is being deleted", r.Kind, r.Address, r.ID)
			}
			rec = r
			return false, nil
		}
		var err error
		if req.Kind == provision.KindNetwork {
			rec, err = p.networkIntent(ctx, w, req)
		} else {
			rec, err = p.instanceIntent(w, req)
		}
		if err != nil {
			return false, err
		}
		w.Records = append(w.Records, rec)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if rec, err = p.complete(ctx, rec.ID, req.Attrs); err != nil {
		return nil, err
	}
	return &provision.CreateResponse{ID: rec.ID, Attrs: p.computed(rec)}, nil
}

// networkIntent records a new site network and, for the cluster's first,
// its internet; nothing is made yet.
func (p *Provider) networkIntent(ctx context.Context, w *world, req *provision.CreateRequest) (*record, error) {
	site, _ := req.Attrs["site"].(string)
	cidr, _ := req.Attrs["cidr"].(string)
	if cidr == "" {
		cidr = defaultCIDR(w, req.Cluster)
	}
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil || !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("local: network %s: cidr %q must be an IPv4 network of at least 4 addresses (/30)", req.Address, cidr)
	}
	prefix = prefix.Masked()
	in := internetOf(w, req.Cluster)
	if in == nil {
		pp, err := pickPublicPrefix(ctx, w, req.Cluster)
		if err != nil {
			return nil, err
		}
		h := newHex(w)
		in = &internet{Cluster: req.Cluster, Bridge: linkName(h, sufBridge), Prefix: pp.String(), Table: nftTable + "_" + h, Next: 2,
			HostNetns: hostNetnsName(req.Cluster)}
		w.Header.Internets = append(w.Header.Internets, in)
	}
	if err := addOutside(w, in, p.settings.OutsideInterfaces); err != nil {
		return nil, fmt.Errorf("local: network %s: %w", req.Address, err)
	}
	r := p.newRecord(w, req, site)
	r.Netns = uniqueNetns(w, netnsName(req.Cluster, site, "router"))
	r.CIDR = prefix.String()
	r.Gateway = hostAt(prefix, 1).String()
	r.Next = 2
	if parent := parentNetwork(w, req, site); parent != nil {
		// A nested site (a zone in a region) lives inside its parent's
		// network, as subnets of one VPC do: its router has an address on
		// the parent's site network, routes the zone there (proxy ARP for
		// the parent's nodes), and reaches the internet through the
		// parent's router and NAT.
		pprefix, err := netip.ParsePrefix(parent.CIDR)
		if err != nil {
			return nil, fmt.Errorf("local: network %s has a bad cidr %q", parent.ID, parent.CIDR)
		}
		up, ok := allocHost(pprefix, 2, &parent.Next, usedAddrs(w, parent.ID))
		if !ok {
			return nil, &provision.CapacityError{Provider: "local", Detail: fmt.Sprintf("network %s (%s) has no free address for the router of %s", parent.ID, pprefix, site)}
		}
		r.NetworkID = parent.ID
		r.RouterNetns = parent.Netns
		r.SiteLink = linkName(idHex(r.ID), sufRouter)
		r.PrivateIP = up.String()
		return r, nil
	}
	pub, err := p.allocPublic(w, in)
	if err != nil {
		return nil, err
	}
	r.Links = []string{linkName(idHex(r.ID), sufRouter)}
	r.NftTables = []string{"ip " + nftTable}
	r.PublicAddress = pub
	return r, nil
}

// parentNetwork is the network of site's parent site among req's
// dependencies, or nil for a top-level site.
func parentNetwork(w *world, req *provision.CreateRequest, site string) *record {
	for _, id := range req.Deps {
		n := byID(w, id)
		if n != nil && n.Kind == provision.KindNetwork && n.Cluster == req.Cluster && strings.HasPrefix(site, n.Site+".") {
			return n
		}
	}
	return nil
}

// usedAddrs are the addresses taken on network id: its nodes' and nested
// routers'.
func usedAddrs(w *world, id string) map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	for _, o := range w.Records {
		if o.NetworkID == id {
			if a, err := netip.ParseAddr(o.PrivateIP); err == nil {
				used[a] = true
			}
		}
	}
	return used
}

func (p *Provider) allocPublic(w *world, in *internet) (string, error) {
	pp, err := netip.ParsePrefix(in.Prefix)
	if err != nil {
		return "", fmt.Errorf("local: cluster %s: bad public prefix %q", in.Cluster, in.Prefix)
	}
	used := usedPublic(w, in.Cluster)
	used[hostAt(pp, 1)] = true
	a, ok := allocHost(pp, 2, &in.Next, used)
	if !ok {
		return "", fmt.Errorf("local: cluster %s: all public addresses of %s are in use", in.Cluster, pp)
	}
	return a.String(), nil
}

func (p *Provider) newRecord(w *world, req *provision.CreateRequest, site string) *record {
	now := p.env.Now().UTC()
	return &record{
		ID:          newID(w, req.Kind),
		Kind:        req.Kind,
		Address:     req.Address,
		Cluster:     req.Cluster,
		Lineage:     req.Lineage,
		ClientToken: req.ClientToken,
		Site:        site,
		State:       recCreating,
		CreatedAt:   now,
		ExpiresAt:   req.ExpiresAt.UTC(),
		Attrs:       provision.PublicAttrs(req.Attrs),
	}
}

// instanceIntent records a new node with its names and addresses.
func (p *Provider) instanceIntent(w *world, req *provision.CreateRequest) (*record, error) {
	site, _ := req.Attrs["site"].(string)
	network, err := instanceNetwork(w, req, site)
	if err != nil {
		return nil, err
	}
	prefix, err := netip.ParsePrefix(network.CIDR)
	if err != nil {
		return nil, fmt.Errorf("local: network %s has a bad cidr %q", network.ID, network.CIDR)
	}
	priv, ok := allocHost(prefix, 2, &network.Next, usedAddrs(w, network.ID))
	if !ok {
		return nil, &provision.CapacityError{Provider: "local", Detail: fmt.Sprintf("network %s (%s, site %s) has no free address for %s", network.ID, prefix, site, req.Address)}
	}
	name, _ := req.Attrs["name"].(string)
	if name == "" {
		name = req.Address[strings.LastIndexByte(req.Address, '.')+1:]
	}
	r := p.newRecord(w, req, site)
	r.Name = name
	r.ReadyAt = r.CreatedAt.Add(p.settings.BootTime)
	r.BootFail = p.settings.BootFailRate > 0 && rand.Float64() < p.settings.BootFailRate
	r.Netns = uniqueNetns(w, netnsName(req.Cluster, site, name))
	r.NetworkID = network.ID
	r.RouterNetns = network.Netns
	r.SiteLink = linkName(idHex(r.ID), sufSite)
	r.CIDR = prefix.String()
	r.Gateway = network.Gateway
	r.PrivateIP = priv.String()
	r.Dir = filepath.Join(p.stateDir(), "local", "nodes", r.ID)
	if pub, _ := req.Attrs["public_ip"].(bool); pub {
		in := internetOf(w, req.Cluster)
		if in == nil {
			return nil, fmt.Errorf("local: %s: cluster %s has no internet (no site network)", req.Address, req.Cluster)
		}
		if r.PublicAddress, err = p.allocPublic(w, in); err != nil {
			return nil, err
		}
		r.Links = []string{linkName(idHex(r.ID), sufPublic)}
	}
	return r, nil
}

// instanceNetwork finds a node's site network: the network among its
// Deps, else its cluster's network of the same site.
func instanceNetwork(w *world, req *provision.CreateRequest, site string) (*record, error) {
	deps := make([]string, 0, len(req.Deps))
	for a := range req.Deps {
		deps = append(deps, a)
	}
	sort.Strings(deps)
	var found *record
	for _, a := range deps {
		if n := byID(w, req.Deps[a]); n != nil && n.Kind == provision.KindNetwork {
			found = n
			break
		}
	}
	if found == nil {
		for _, n := range w.Records {
			if n.Kind == provision.KindNetwork && n.Cluster == req.Cluster && n.Site == site && n.State != recDeleting {
				found = n
				break
			}
		}
	}
	switch {
	case found == nil:
		return nil, fmt.Errorf("local: %s: site %q of cluster %s has no network: create the site network first", req.Address, site, req.Cluster)
	case found.State == recDeleting:
		return nil, fmt.Errorf("local: %s: network %s is being deleted", req.Address, found.ID)
	}
	return found, nil
}

// complete makes whatever of record id does not exist yet and marks it
// created. attrs (may be nil) are the full desired attributes, for the
// agent's configuration.
func (p *Provider) complete(ctx context.Context, id string, attrs provision.Attrs) (*record, error) {
	defer p.lockID(id)()
	w, err := p.store.load()
	if err != nil {
		return nil, err
	}
	r := byID(w, id)
	if r == nil {
		return nil, fmt.Errorf("local: %s no longer exists", id)
	}
	if r.State != recCreating {
		if attrs != nil && r.Kind == provision.KindInstance {
			// A retried Create: refresh the agent's configuration.
			if err := p.writeAgentConfig(r, attrs); err != nil {
				return nil, err
			}
		}
		return r, nil
	}
	if r.Kind == provision.KindNetwork {
		if attrs == nil {
			// Completing after a crash: the cluster's bridge may not
			// exist yet, and its /24 must not be taken meanwhile.
			unlock, err := globalLock(ctx)
			if err != nil {
				return nil, err
			}
			defer unlock()
		}
		in := internetOf(w, r.Cluster)
		if in == nil {
			return nil, fmt.Errorf("local: network %s: cluster %s has no internet record", r.ID, r.Cluster)
		}
		if r.NetworkID != "" {
			err = makeNestedNetwork(ctx, r, byID(w, r.NetworkID))
			if err == nil {
				err = nestedRoutes(ctx, w, r)
			}
		} else {
			err = makeNetwork(ctx, r, in)
		}
	} else {
		err = p.makeInstance(ctx, w, r, attrs)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (hvctl completes it on the next apply, or removes it on destroy)", err)
	}
	err = p.store.update(func(w *world) (bool, error) {
		cur := byID(w, id)
		if cur == nil {
			return false, fmt.Errorf("local: %s was removed while it was being created", id)
		}
		if cur.State == recCreating {
			cur.State = recCreated
		}
		r = cur
		return true, nil
	})
	return r, err
}

// makeInternet makes the cluster's internet bridge unless it exists.
func makeInternet(ctx context.Context, in *internet) error {
	pp, err := netip.ParsePrefix(in.Prefix)
	if err != nil {
		return fmt.Errorf("local: cluster %s: bad public prefix %q", in.Cluster, in.Prefix)
	}
	if err := ensureBridge(ctx, "", in.Bridge); err != nil {
		return err
	}
	if in.HostNetns != "" && !netnsExists(in.HostNetns) {
		if err := ip(ctx, "", "netns", "attach", in.HostNetns, strconv.Itoa(os.Getpid())); err != nil {
			return err
		}
	}
	if err := ip(ctx, "", "addr", "replace", netip.PrefixFrom(hostAt(pp, 1), 24).String(), "dev", in.Bridge); err != nil {
		return err
	}
	if err := ip(ctx, "", "link", "set", in.Bridge, "up"); err != nil {
		return err
	}
	if in.Table == "" {
		return nil
	}
	if _, err = run(ctx, []byte(isolateScript(in)), "nft", "-f", "-"); err != nil {
		return err
	}
	if len(in.Outside) == 0 {
		return nil
	}
	// The machine routes between the internet and its outside
	// interfaces: IPv4 forwarding on exactly those links (the
	// machine-wide switch stays as it is), the table above keeping the
	// rest out.
	for _, n := range append([]string{in.Bridge}, outsideNames(in)...) {
		if err := writeForwarding(n, "1"); err != nil {
			return fmt.Errorf("local: cluster %s: route the internet to %s: %w", in.Cluster, n, err)
		}
	}
	return nil
}

// addOutside records names as outside interfaces of internet in, each
// with its forwarding setting as it is now (what removing the internet
// restores). An interface another cluster of the world routes to is
// refused: its table would keep this cluster's traffic out.
func addOutside(w *world, in *internet, names []string) error {
	for _, n := range names {
		if outsideOf(in, n) != nil {
			continue
		}
		for _, o := range w.Header.Internets {
			if o != in && outsideOf(o, n) != nil {
				return fmt.Errorf("outside interface %s is routed to cluster %s's internet already; an interface can be outside one cluster at a time", n, o.Cluster)
			}
		}
		fwd, err := readForwarding(n)
		if err != nil {
			return fmt.Errorf("outside interface %s: %w", n, err)
		}
		in.Outside = append(in.Outside, &outside{Name: n, Forwarding: fwd})
	}
	return nil
}

func outsideOf(in *internet, name string) *outside {
	for _, o := range in.Outside {
		if o.Name == name {
			return o
		}
	}
	return nil
}

func outsideNames(in *internet) []string {
	var out []string
	for _, o := range in.Outside {
		out = append(out, o.Name)
	}
	return out
}

// forwardingPath is the IPv4 forwarding switch of interface name in this
// process's network namespace.
func forwardingPath(name string) string {
	return filepath.Join("/proc/sys/net/ipv4/conf", name, "forwarding")
}

func readForwarding(name string) (string, error) {
	b, err := os.ReadFile(forwardingPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("this machine has no interface %s", name)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func writeForwarding(name, v string) error {
	err := os.WriteFile(forwardingPath(name), []byte(v+"\n"), 0o644)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("this machine has no interface %s", name)
	}
	return err
}

// restoreOutside gives internet in's outside interfaces back the
// forwarding they had (those still there).
func restoreOutside(in *internet) error {
	var errs []error
	for _, o := range in.Outside {
		if o.Forwarding == "1" || o.Forwarding == "" {
			continue
		}
		if err := writeForwarding(o.Name, o.Forwarding); err != nil && !strings.Contains(err.Error(), "no interface") {
			errs = append(errs, fmt.Errorf("local: cluster %s: restore forwarding on %s: %w", in.Cluster, o.Name, err))
		}
	}
	return errors.Join(errs...)
}

// isolateScript (re)defines the root-namespace table that drops whatever
// the host would route from a cluster's internet bridge elsewhere (its
// real uplink, another cluster): the internet is local to the machine.
// Bridged traffic and traffic to and from the host itself pass.
//
// Outside interfaces (outside_interfaces) are routed to and from the
// bridge too. One whose forwarding hvctl turned on may forward only to
// the bridge (and within itself): the machine routes nothing else for it.
func isolateScript(in *internet) string {
	ours := fmt.Sprintf("%q", in.Bridge)
	var only []string
	for _, o := range in.Outside {
		ours += fmt.Sprintf(", %q", o.Name)
		if o.Forwarding != "1" {
			only = append(only, fmt.Sprintf("\t\tiifname %q oifname != { %q, %q } counter drop\n", o.Name, o.Name, in.Bridge))
		}
	}
	return fmt.Sprintf(`add table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "%[2]s" oifname != { %[3]s } counter drop
		oifname "%[2]s" iifname != { %[3]s } counter drop
%[4]s	}
}
`, in.Table, in.Bridge, ours, strings.Join(only, ""))
}

// makeNetwork makes a site router: namespace, site bridge with the
// gateway address, uplink to the internet bridge, default route, NAT.
func makeNetwork(ctx context.Context, r *record, in *internet) error {
	prefix, err := netip.ParsePrefix(r.CIDR)
	if err != nil {
		return err
	}
	pp, err := netip.ParsePrefix(in.Prefix)
	if err != nil {
		return err
	}
	ns, up := r.Netns, r.Links[0]
	steps := []func() error{
		func() error { return makeInternet(ctx, in) },
		func() error { return addNetns(ctx, ns) },
		func() error { return bridgeNetfilterOff(ns) },
		func() error { return ensureBridge(ctx, ns, siteBridge) },
		func() error {
			return ip(ctx, ns, "addr", "replace", netip.PrefixFrom(netip.MustParseAddr(r.Gateway), prefix.Bits()).String(), "dev", siteBridge)
		},
		func() error { return ip(ctx, ns, "link", "set", siteBridge, "up") },
		func() error { return ensureVeth(ctx, "", up, ns, routerWAN) },
		func() error { return ip(ctx, "", "link", "set", up, "master", in.Bridge, "up") },
		func() error {
			return ip(ctx, ns, "addr", "replace", netip.PrefixFrom(netip.MustParseAddr(r.PublicAddress), 24).String(), "dev", routerWAN)
		},
		func() error { return ip(ctx, ns, "link", "set", routerWAN, "up") },
		func() error {
			return ip(ctx, ns, "route", "replace", "default", "via", hostAt(pp, 1).String(), "dev", routerWAN)
		},
		func() error { return nftIn(ctx, ns, natScript(prefix)) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("local: make site %s router %s: %w", r.Site, ns, err)
		}
	}
	return nil
}

// makeNestedNetwork makes a nested site's router: its bridge, and an
// uplink on the parent's site bridge with a route back from the parent.
func makeNestedNetwork(ctx context.Context, r, parent *record) error {
	if parent == nil || !netnsExists(parent.Netns) {
		return fmt.Errorf("local: make site %s: its parent site's network %s does not exist", r.Site, r.NetworkID)
	}
	prefix, err := netip.ParsePrefix(r.CIDR)
	if err != nil {
		return err
	}
	pprefix, err := netip.ParsePrefix(parent.CIDR)
	if err != nil {
		return err
	}
	ns := r.Netns
	steps := []func() error{
		func() error { return addNetns(ctx, ns) },
		func() error { return bridgeNetfilterOff(ns) },
		func() error { return ensureBridge(ctx, ns, siteBridge) },
		func() error {
			return ip(ctx, ns, "addr", "replace", netip.PrefixFrom(netip.MustParseAddr(r.Gateway), prefix.Bits()).String(), "dev", siteBridge)
		},
		func() error { return ip(ctx, ns, "link", "set", siteBridge, "up") },
		func() error { return ensureVeth(ctx, parent.Netns, r.SiteLink, ns, routerWAN) },
		func() error { return ip(ctx, parent.Netns, "link", "set", r.SiteLink, "master", siteBridge, "up") },
		func() error {
			return ip(ctx, ns, "addr", "replace", netip.PrefixFrom(netip.MustParseAddr(r.PrivateIP), pprefix.Bits()).String(), "dev", routerWAN)
		},
		func() error { return ip(ctx, ns, "link", "set", routerWAN, "up") },
		func() error { return writeSysctlIn(ns, "net/ipv4/conf/"+routerWAN+"/proxy_arp", "1") },
		func() error {
			return ip(ctx, ns, "route", "replace", "default", "via", parent.Gateway, "dev", routerWAN)
		},
		func() error {
			return ip(ctx, parent.Netns, "route", "replace", r.CIDR, "via", r.PrivateIP, "dev", siteBridge)
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("local: make nested site %s router %s: %w", r.Site, ns, err)
		}
	}
	return nil
}

// natScript (re)defines the router's nft table: masquerade the site out
// of wan0, and let nothing from the internet into the site or the router
// but replies.
func natScript(site netip.Prefix) string {
	return fmt.Sprintf(`add table ip %[1]s
delete table ip %[1]s
table ip %[1]s {
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		oifname "%[3]s" counter masquerade comment "site %[2]s and its nested sites"
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "%[3]s" oifname "%[4]s" ct state established,related accept
		iifname "%[3]s" oifname "%[4]s" drop
	}
	chain input {
		type filter hook input priority 0; policy accept;
		# Like a real NAT: unsolicited packets to the router are dropped
		# before conntrack records them, so a peer's first hole-punching
		# packet cannot take the port a node's mapping needs.
		iifname "%[3]s" ct state new drop
	}
}
`, nftTable, site, routerWAN, siteBridge)
}

// makeInstance makes a node: namespace, eth0 on the site bridge, pub0 on
// the internet bridge when public, routes, and the agent's files.
func (p *Provider) makeInstance(ctx context.Context, w *world, r *record, attrs provision.Attrs) error {
	prefix, err := netip.ParsePrefix(r.CIDR)
	if err != nil {
		return err
	}
	network := byID(w, r.NetworkID)
	if network == nil || !netnsExists(r.RouterNetns) {
		return fmt.Errorf("local: node %s: its site network %s does not exist", r.Address, r.NetworkID)
	}
	ns := r.Netns
	steps := []func() error{
		func() error { return addNetns(ctx, ns) },
		func() error { return ensureVeth(ctx, r.RouterNetns, r.SiteLink, ns, nodeSite) },
		func() error { return ip(ctx, r.RouterNetns, "link", "set", r.SiteLink, "master", siteBridge, "up") },
		func() error {
			return ip(ctx, ns, "addr", "replace", netip.PrefixFrom(netip.MustParseAddr(r.PrivateIP), prefix.Bits()).String(), "dev", nodeSite)
		},
		func() error { return ip(ctx, ns, "link", "set", nodeSite, "up") },
	}
	if r.PublicAddress != "" {
		in := internetOf(w, r.Cluster)
		if in == nil {
			return fmt.Errorf("local: node %s: cluster %s has no internet", r.Address, r.Cluster)
		}
		pp, err := netip.ParsePrefix(in.Prefix)
		if err != nil {
			return err
		}
		steps = append(steps,
			func() error { return ensureVeth(ctx, "", r.Links[0], ns, nodePublic) },
			func() error { return ip(ctx, "", "link", "set", r.Links[0], "master", in.Bridge, "up") },
			func() error {
				return ip(ctx, ns, "addr", "replace", netip.PrefixFrom(netip.MustParseAddr(r.PublicAddress), 24).String(), "dev", nodePublic)
			},
			func() error { return ip(ctx, ns, "link", "set", nodePublic, "up") },
			func() error {
				return ip(ctx, ns, "route", "replace", "default", "via", hostAt(pp, 1).String(), "dev", nodePublic)
			})
	} else {
		steps = append(steps, func() error {
			return ip(ctx, ns, "route", "replace", "default", "via", r.Gateway, "dev", nodeSite)
		})
	}
	steps = append(steps, func() error { return p.writeAgentConfig(r, attrs) })
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("local: make node %s (%s): %w", r.Address, ns, err)
		}
	}
	return nil
}

// Read reports a resource by ID, or by ClientToken when ID is empty. A
// node whose namespace is gone does not exist (what is left of it is
// removed); a half-made one exists, pending, and WaitReady completes it.
func (p *Provider) Read(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	if req.ID == "" && req.ClientToken == "" {
		return nil, fmt.Errorf("local: read %s: neither an ID nor a client token", req.Address)
	}
	w, err := p.store.load()
	if err != nil {
		return nil, err
	}
	r := find(w, req)
	if r == nil {
		return &provision.ReadResponse{ID: req.ID}, nil
	}
	if r.State == recDeleting || (r.State == recCreated && !netnsExists(r.Netns)) {
		// Deleted outside hvctl, or a delete that did not finish.
		if err := p.destroy(ctx, r.ID, false); err != nil {
			return nil, err
		}
		return &provision.ReadResponse{ID: r.ID}, nil
	}
	if r.Kind == provision.KindInstance && r.Power == powerStopping {
		// A stop that did not finish (a crash): "stopped" must mean no
		// process is left, so finish it, as a half delete is finished.
		if err := p.Stop(ctx, &provision.PowerRequest{Address: r.Address, ID: r.ID}); err != nil {
			return nil, err
		}
		if w, err = p.store.load(); err != nil {
			return nil, err
		}
		if r = find(w, req); r == nil {
			return &provision.ReadResponse{ID: req.ID}, nil
		}
	}
	return &provision.ReadResponse{Exists: true, ID: r.ID, Attrs: p.computed(r)}, nil
}

// List returns the cluster's networks and nodes from one read of the
// world file. A record that Read would find gone, half deleted or half
// stopped is left out, so the engine reads it on its own (which cleans
// it up, or finishes the stop).
func (p *Provider) List(ctx context.Context, req *provision.ListRequest) (*provision.ListPage, error) {
	w, err := p.store.load()
	if err != nil {
		return nil, err
	}
	page := &provision.ListPage{Kinds: []provision.Kind{provision.KindInstance, provision.KindNetwork}}
	for _, r := range w.Records {
		if r.Cluster != req.Cluster || r.State == recDeleting || (r.State == recCreated && !netnsExists(r.Netns)) || r.Power == powerStopping {
			continue
		}
		page.Items = append(page.Items, provision.Listed{Kind: r.Kind, ID: r.ID, ClientToken: r.ClientToken, Attrs: p.computed(r)})
	}
	return page, nil
}

func find(w *world, req *provision.ReadRequest) *record {
	var r *record
	if req.ID != "" {
		r = byID(w, req.ID)
	} else {
		r = byToken(w, req.ClientToken)
	}
	if r == nil || (req.Kind != "" && r.Kind != req.Kind) {
		return nil
	}
	return r
}

// WaitReady completes a half-made resource, waits until a node's
// boot_time has passed (on the env clock), starts its agent in its
// namespace, and fails if the agent exits at once. It does not start a
// stopped node (Start does).
func (p *Provider) WaitReady(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		w, err := p.store.load()
		if err != nil {
			return nil, err
		}
		r := find(w, req)
		if r == nil || r.State == recDeleting {
			name := req.ID
			if name == "" {
				name = req.Address
			}
			return nil, fmt.Errorf("local: %s %s does not exist", req.Kind, name)
		}
		if r.State == recCreating {
			if _, err := p.complete(ctx, r.ID, nil); err != nil {
				return nil, err
			}
			continue
		}
		if r.Kind == provision.KindNetwork {
			return &provision.ReadResponse{Exists: true, ID: r.ID, Attrs: p.computed(r)}, nil
		}
		if !netnsExists(r.Netns) {
			return nil, fmt.Errorf("local: node %s: namespace %s is gone", r.Address, r.Netns)
		}
		if r.Power == powerStopped || r.Power == powerStopping {
			return &provision.ReadResponse{Exists: true, ID: r.ID, Attrs: p.computed(r)},
				fmt.Errorf("local: node %s (%s) is stopped: Start starts it", r.Address, r.ID)
		}
		if r.Proc != nil {
			resp := &provision.ReadResponse{Exists: true, ID: r.ID, Attrs: p.computed(r)}
			if !r.Proc.alive() {
				return resp, p.agentFailed(r, "")
			}
			return resp, nil
		}
		if wait := r.ReadyAt.Sub(p.env.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(min(wait, 100*time.Millisecond)):
			}
			continue
		}
		if r.BootFail {
			return &provision.ReadResponse{Exists: true, ID: r.ID, Attrs: p.computed(r)},
				fmt.Errorf("local: node %s failed to boot (injected: boot_fail_rate %g)", r.Address, p.settings.BootFailRate)
		}
		if err := publicNodeRoutes(ctx, w, r); err != nil {
			return nil, err
		}
		r, exited, err := p.startAgent(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-exited:
		case <-time.After(startGrace):
		}
		resp := &provision.ReadResponse{Exists: true, ID: r.ID, Attrs: p.computed(r)}
		if !r.Proc.alive() {
			return resp, p.agentFailed(r, "right after it started")
		}
		return resp, nil
	}
}

// agentFailed is the error for a node whose agent is not running,
// quoting the end of its log.
func (p *Provider) agentFailed(r *record, when string) error {
	msg := fmt.Sprintf("local: node %s: the agent exited", r.Address)
	if when != "" {
		msg += " " + when
	}
	logPath := filepath.Join(r.Dir, "agent.log")
	if tail := tailLines(logPath, 10); tail != "" {
		msg += "; last lines of " + logPath + ":\n" + tail
	} else {
		msg += " (" + logPath + " is empty)"
	}
	return errors.New(msg)
}

// tailLines returns the last n lines of a file.
func tailLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max64(0, st.Size()-max)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, "\n")
	if strings.TrimSpace(out) == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(out, "\n", "\n  ")
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// startAgent starts the node agent inside the node's namespace, unless
// it was started already or the node is stopped, and records its pid
// and start time (clearing a start's intent). The
// returned channel closes when the process exits (never, when another
// process started it).
func (p *Provider) startAgent(ctx context.Context, id string) (*record, <-chan struct{}, error) {
	defer p.lockID(id)()
	argv, err := p.settings.agentCommand()
	if err != nil {
		return nil, nil, err
	}
	var out *record
	exited := make(chan struct{})
	err = p.store.update(func(w *world) (bool, error) {
		r := byID(w, id)
		if r == nil || r.State != recCreated {
			return false, fmt.Errorf("local: start agent: node %s does not exist", id)
		}
		out = r
		if r.Power == powerStopped || r.Power == powerStopping {
			return false, fmt.Errorf("local: start agent of %s: the node is stopped", r.Address)
		}
		if r.Proc != nil {
			return false, nil
		}
		// Strays of a start that crashed before it was recorded.
		killNetnsProcs(ctx, r.Netns, true)
		config := filepath.Join(r.Dir, "agent.json")
		if _, err := os.Stat(config); err != nil {
			return false, fmt.Errorf("local: start agent of %s: %w", r.Address, err)
		}
		logf, err := os.OpenFile(filepath.Join(r.Dir, "agent.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return false, fmt.Errorf("local: start agent of %s: %w", r.Address, err)
		}
		defer logf.Close()
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return false, err
		}
		defer devnull.Close()
		// nsenter, not ip netns exec: the agent stays in the host's
		// mount namespace (see HostCommand).
		args := append([]string{"--net=" + filepath.Join(netnsDir, r.Netns), "--"}, bootNow(argv)...)
		args = append(args, "-config", config)
		cmd := exec.Command("nsenter", args...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
		cmd.Dir = r.Dir
		cmd.Env = append(os.Environ(), "HVCTL_NODE_CONFIG="+config)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return false, fmt.Errorf("local: start agent of %s: %w", r.Address, err)
		}
		pid := cmd.Process.Pid
		start, _, _ := procStat(pid) // 0 when it is already gone: recorded as dead
		r.Proc = &proc{PID: pid, Start: start, StartedAt: p.env.Now().UTC()}
		r.Power = "" // a start's intent is done once its agent is recorded
		p.mu.Lock()
		p.children[pid] = exited
		p.mu.Unlock()
		go func() {
			cmd.Wait() // reap, so a dead agent is not a zombie
			p.mu.Lock()
			delete(p.children, pid)
			p.mu.Unlock()
			close(exited)
		}()
		return true, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, exited, nil
}

// Delete removes a node (agent, namespace, links, files) or a site
// network (router, links, NAT; the internet bridge with the cluster's
// last network). A network that still has nodes is refused. Deleting
// what is gone is fine.
func (p *Provider) Delete(ctx context.Context, req *provision.DeleteRequest) error {
	if req.ID == "" {
		return fmt.Errorf("local: delete %s: no ID", req.Address)
	}
	return p.destroy(ctx, req.ID, true)
}

// destroy removes resource id; with check, a network with nodes is
// refused.
func (p *Provider) destroy(ctx context.Context, id string, check bool) error {
	defer p.lockID(id)()
	var r *record
	err := p.store.update(func(w *world) (bool, error) {
		r = byID(w, id)
		if r == nil {
			return false, nil
		}
		if r.Kind == provision.KindNetwork && check {
			var names []string
			for _, o := range w.Records {
				if o.NetworkID == r.ID { // its nodes and nested sites' routers
					names = append(names, o.Address)
				}
			}
			if len(names) > 0 {
				sort.Strings(names)
				return false, fmt.Errorf("local: DependencyViolation: network %s (site %s) still has %d node(s): %s", r.ID, r.Site, len(names), strings.Join(names, ", "))
			}
		}
		changed := r.State != recDeleting
		r.State = recDeleting
		return changed, nil
	})
	if err != nil || r == nil {
		return err
	}
	if err := teardown(ctx, r); err != nil {
		return err
	}
	return p.store.update(func(w *world) (bool, error) {
		removeRecord(w, id)
		return true, dropIdleInternets(ctx, w)
	})
}

// teardown removes everything record r made on the machine.
func teardown(ctx context.Context, r *record) error {
	var errs []error
	killProcs(ctx, r)
	if r.Dir != "" {
		os.Remove(provision.ShortDir(r.Dir)) // the agent's link (SLURM)
		os.RemoveAll(provision.PublicDir(r.Dir))
		os.RemoveAll(provision.ContainerRunDir(r.Dir))
	}
	for _, t := range r.NftTables {
		if netnsExists(r.Netns) {
			// Gone with the namespace anyway; removed first so nothing
			// half-deleted keeps forwarding.
			_ = nftIn(ctx, r.Netns, "delete table "+t+"\n")
		}
	}
	for _, l := range r.Links {
		errs = append(errs, delLink(ctx, "", l))
	}
	if r.SiteLink != "" {
		errs = append(errs, delLink(ctx, r.RouterNetns, r.SiteLink))
	}
	errs = append(errs, delNetns(ctx, r.Netns))
	errs = append(errs, removeAll(r.Dir))
	if r.Dir != "" {
		// The nodes directory goes with its last node, so the world's
		// directory can go with its last record.
		os.Remove(filepath.Dir(r.Dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("local: delete %s %s (%s): %w", r.Kind, r.Address, r.ID, err)
	}
	return nil
}

// killProcs ends what runs in record r's namespace: its agent's process
// group (SIGTERM, SIGKILL after killGrace), then any other process (a
// command run with Exec, a stray of a crashed start). Delete and Stop.
func killProcs(ctx context.Context, r *record) {
	if r.Proc != nil {
		r.Proc.stop()
	}
	killNetnsProcs(ctx, r.Netns, false)
}

// dropIdleInternets removes the internet bridge of every cluster of w
// that has no network left. Called under the world lock.
func dropIdleInternets(ctx context.Context, w *world) error {
	var errs []error
	for _, in := range append([]*internet(nil), w.Header.Internets...) {
		busy := false
		for _, r := range w.Records {
			busy = busy || (r.Cluster == in.Cluster && r.Kind == provision.KindNetwork)
		}
		if busy {
			continue
		}
		if err := restoreOutside(in); err != nil {
			errs = append(errs, err)
			continue
		}
		if in.Table != "" {
			if _, err := run(ctx, []byte("add table inet "+in.Table+"\ndelete table inet "+in.Table+"\n"), "nft", "-f", "-"); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := delLink(ctx, "", in.Bridge); err != nil {
			errs = append(errs, err)
			continue
		}
		if in.HostNetns != "" && netnsExists(in.HostNetns) {
			// Unmounts the name only: the namespace is the host's.
			if err := ip(ctx, "", "netns", "delete", in.HostNetns); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		removeInternet(w, in.Cluster)
	}
	return errors.Join(errs...)
}

// updatable are the node attributes Update changes in place.
var updatable = map[string]bool{"labels": true, "roles": true}

// Updatable: a node's labels and roles change in place (agent.json is
// rewritten); everything else forces replacement.
func (p *Provider) Updatable(kind provision.Kind, attr string) bool {
	return kind == provision.KindInstance && updatable[attr]
}

// Update changes a node's labels or roles.
func (p *Provider) Update(ctx context.Context, req *provision.UpdateRequest) (*provision.UpdateResponse, error) {
	// Before also holds computed attributes (state, addresses), which
	// After does not: only After's keys can be changes.
	for k, v := range req.After {
		if !sameValue(req.Before[k], v) && !p.Updatable(req.Kind, k) && !provision.IsInternal(k) {
			return nil, fmt.Errorf("local: %s %s: attribute %q cannot change in place", req.Kind, req.ID, k)
		}
	}
	defer p.lockID(req.ID)()
	var out *record
	err := p.store.update(func(w *world) (bool, error) {
		r := byID(w, req.ID)
		if r == nil || r.Kind != req.Kind || r.State == recDeleting {
			return false, fmt.Errorf("local: update %s %s: %w", req.Kind, req.ID, provision.ErrNotFound)
		}
		attrs := map[string]any{}
		for k, v := range r.Attrs {
			attrs[k] = v
		}
		for k := range updatable {
			if v, ok := req.After[k]; ok {
				attrs[k] = v
			} else {
				delete(attrs, k)
			}
		}
		r.Attrs = attrs
		out = r
		return true, updateAgentConfig(r, req.After)
	})
	if err != nil {
		return nil, err
	}
	return &provision.UpdateResponse{Attrs: p.computed(out)}, nil
}

// Exec runs argv inside the namespace of node (or site router) id and
// returns its exit code.
func (p *Provider) Exec(ctx context.Context, id string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 {
		return -1, fmt.Errorf("local: exec: no command")
	}
	w, err := p.store.load()
	if err != nil {
		return -1, err
	}
	r := byID(w, id)
	if r == nil || r.State == recDeleting {
		return -1, fmt.Errorf("local: exec: %s does not exist", id)
	}
	if !netnsExists(r.Netns) {
		return -1, fmt.Errorf("local: exec: %s (%s): namespace %s is gone", r.Address, id, r.Netns)
	}
	if r.Power == powerStopped || r.Power == powerStopping {
		return -1, fmt.Errorf("local: exec: %s (%s) is stopped", r.Address, id)
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", r.Netns}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Env = append(os.Environ(), nodeEnv(r.Dir)...)
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("local: exec in %s: %w", r.Address, err)
	}
	return 0, nil
}

// HostCommand runs argv in the network namespace hvctl ran in when it
// made the cluster's internet, where the provider builds namespaces
// (provision.HostLocal). Agents share the host's mount namespace (they
// are started with nsenter, not ip netns exec), so the namespaces hvctl
// makes from there are seen by all.
func (p *Provider) HostCommand(argv []string) []string {
	return append([]string{"nsenter", "--net=" + filepath.Join(netnsDir, hostNetnsName(p.env.Cluster)), "--"}, argv...)
}

// hostNetnsName names the handle on the network namespace hvctl runs
// in ("." cannot be in a site name, so no router or node has it).
func hostNetnsName(cluster string) string { return netnsName(cluster) + ".host" }

// bootNow wraps argv so that it runs in a time namespace whose boot
// time is now: nodes share the host's kernel, but each should look
// freshly booted (SLURM's power saving waits for a resumed node to have
// rebooted). Without time namespaces (Linux < 5.6) argv is unchanged.
func bootNow(argv []string) []string {
	if _, err := os.Stat("/proc/self/ns/time"); err != nil {
		return argv
	}
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return argv
	}
	up, err := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	if err != nil {
		return argv
	}
	// The offset is from the host's boot: hvctl itself may run in a
	// node's time namespace (SLURM's resume program on the hub).
	if off, err := os.ReadFile("/proc/self/timens_offsets"); err == nil {
		for _, l := range strings.Split(string(off), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "boottime" {
				if sec, err := strconv.ParseFloat(f[1], 64); err == nil {
					up -= sec
				}
			}
		}
	}
	if up < 2 {
		return argv
	}
	return append([]string{"unshare", "--time", "--fork", "--kill-child=SIGTERM", "--boottime", strconv.Itoa(-int(up) + 1), "--"}, argv...)
}

// nodeEnv is the environment the node's agent asks commands run on it
// to have (DIR/node.env, KEY=VALUE lines: SLURM_CONF in a SLURM
// cluster), as a login on a real machine would.
func nodeEnv(dir string) []string {
	b, err := os.ReadFile(filepath.Join(dir, "node.env"))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(l, "="); ok && k != "" && !strings.ContainsAny(k, " \t") {
			out = append(out, l)
		}
	}
	return out
}

// RunsAgents reports that local nodes run hvctl agent (provision.AgentHost).
func (p *Provider) RunsAgents() bool { return true }

// NodeDir is the directory of node id's files (agent.json, agent.log, its
// WireGuard key), or "" when the node is unknown.
func (p *Provider) NodeDir(id string) string {
	items, err := List(p.stateDir())
	if err != nil {
		return ""
	}
	for _, it := range items {
		if it.ID == id {
			return it.Dir
		}
	}
	return ""
}
