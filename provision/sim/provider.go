package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/hvctl/hvctl/provision"
)

// Provider is a sim provider configuration bound to one world. It is
// safe for concurrent use, and any number of Providers, in any number of
// processes, may share a world: every change is made under an flock.
//
// Client tokens are forever, as in EC2: a Create whose token was seen
// before returns that resource even when it has since been terminated,
// so a replacement must be created with a new token.
type Provider struct {
	settings Settings
	env      *provision.Env
	clock    Clock
	store    store
	limiter  *rate.Limiter // nil when api_rate is unlimited

	mu    sync.Mutex
	calls map[string]int // calls per operation and resource, for fail_rate
	// ops counts API calls per operation; throttled counts the calls
	// refused for going over api_rate.
	ops       map[string]int
	throttled int
}

// Calls returns how many API calls each operation got (Create, Read,
// List, ...), throttled ones included.
func (p *Provider) Calls() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.ops)
}

// Throttled returns how many calls were refused for exceeding api_rate.
func (p *Provider) Throttled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.throttled
}

var (
	_ provision.Provider = (*Provider)(nil)
	_ provision.Updater  = (*Provider)(nil)
	_ provision.Waiter   = (*Provider)(nil)
	_ provision.Lister   = (*Provider)(nil)
)

// Open returns a provider with settings s over the world in
// env.StateDir. clock nil means env's clock with real sleeps.
func Open(env *provision.Env, s Settings, clock Clock) *Provider {
	if env == nil {
		env = &provision.Env{}
	}
	if clock == nil {
		clock = envClock{env}
	}
	p := &Provider{settings: s, env: env, clock: clock, store: newStore(env.StateDir, s.World), calls: map[string]int{}}
	if s.APIRate > 0 {
		// One call of slack over the advertised burst, so an engine that
		// paces with a limiter built from Limits() is never throttled by
		// a rounding difference.
		p.limiter = rate.NewLimiter(rate.Limit(s.APIRate), p.Limits().Burst+1)
	}
	return p
}

// Settings returns the provider's settings.
func (p *Provider) Settings() Settings { return p.settings }

// WorldPath is the world file this provider uses.
func (p *Provider) WorldPath() string { return p.store.path }

// Limits reports api_rate; Burst is max(1, api_rate).
func (p *Provider) Limits() provision.Limits {
	if p.settings.APIRate <= 0 {
		return provision.Limits{}
	}
	return provision.Limits{APIRate: p.settings.APIRate, Burst: max(1, int(p.settings.APIRate))}
}

// gate charges one API call: the rate limit first, then an injected
// transient failure. Both happen before anything changes.
func (p *Provider) gate(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.ops == nil {
		p.ops = map[string]int{}
	}
	p.ops[op]++
	over := p.limiter != nil && !p.limiter.AllowN(p.clock.Now(), 1)
	if over {
		p.throttled++
	}
	p.mu.Unlock()
	if over {
		return &provision.RetryableError{Err: fmt.Errorf("sim: RequestLimitExceeded: %s %s: more than %g API calls per second (api_rate)", op, key, p.settings.APIRate)}
	}
	if p.settings.FailRate > 0 {
		p.mu.Lock()
		k := op + "\x00" + key
		n := p.calls[k]
		p.calls[k] = n + 1
		p.mu.Unlock()
		if chance(p.settings.Seed, "fail", op, key, strconv.Itoa(n)) < p.settings.FailRate {
			return &provision.RetryableError{Err: fmt.Errorf("sim: InternalError: %s %s failed (injected transient fault, fail_rate = %g)", op, key, p.settings.FailRate)}
		}
	}
	return nil
}

func checkKind(k provision.Kind) error {
	if k != provision.KindInstance && k != provision.KindNetwork {
		return fmt.Errorf("sim: unsupported resource kind %q", k)
	}
	return nil
}

// computed returns the attributes the sim decides: for an instance its
// state, private_ip and (with public_ip) public_address; for a network
// its cidr.
func computed(r *record, now time.Time) provision.Attrs {
	if r.Kind == provision.KindNetwork {
		return provision.Attrs{"cidr": r.CIDR}
	}
	a := provision.Attrs{"state": r.effectiveState(now), "private_ip": r.PrivateIP}
	if r.PublicAddress != "" {
		a["public_address"] = r.PublicAddress
	}
	return a
}

// Create makes a network or an instance. A ClientToken seen before
// returns the resource it made, whatever its state now.
func (p *Provider) Create(ctx context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	if err := checkKind(req.Kind); err != nil {
		return nil, err
	}
	key := req.ClientToken
	if key == "" {
		key = req.Address
	}
	if err := p.gate(ctx, "Create", key); err != nil {
		return nil, err
	}
	now := p.clock.Now()
	var out *record
	err := p.store.update(func(w *world) (bool, error) {
		if r := byToken(w, req.ClientToken); r != nil {
			if r.Kind != req.Kind || r.Address != req.Address {
				return false, fmt.Errorf("sim: IdempotentParameterMismatch: client token %q was used for %s %s, not %s %s", req.ClientToken, r.Kind, r.Address, req.Kind, req.Address)
			}
			out = r
			return false, nil
		}
		n := len(w.Records)
		var err error
		if req.Kind == provision.KindNetwork {
			out, err = p.createNetwork(w, req, now)
		} else {
			out, err = p.createInstance(w, req, now)
		}
		return err == nil && len(w.Records) > n, err
	})
	if err != nil {
		return nil, err
	}
	return &provision.CreateResponse{ID: out.ID, Attrs: computed(out, now)}, nil
}

func (p *Provider) newRecord(w *world, req *provision.CreateRequest, now time.Time) *record {
	site, _ := req.Attrs["site"].(string)
	return &record{
		ID:          newID(w, p.settings.Seed, req.Kind, req.ClientToken+"\x00"+req.Address),
		Kind:        req.Kind,
		Address:     req.Address,
		Cluster:     req.Cluster,
		Lineage:     req.Lineage,
		ClientToken: req.ClientToken,
		Site:        site,
		CreatedAt:   now.UTC(),
		ExpiresAt:   req.ExpiresAt.UTC(),
		Attrs:       provision.PublicAttrs(req.Attrs),
	}
}

func (p *Provider) createNetwork(w *world, req *provision.CreateRequest, now time.Time) (*record, error) {
	cidr, _ := req.Attrs["cidr"].(string)
	if cidr != "" {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return nil, fmt.Errorf("sim: InvalidParameterValue: network %s: cidr %q: %v", req.Address, cidr, err)
		}
	}
	if existing, _ := req.Attrs["existing_id"].(string); existing != "" {
		if r := byID(w, existing); r != nil {
			if r.Kind != provision.KindNetwork || !r.live() {
				return nil, fmt.Errorf("sim: InvalidNetworkID.NotFound: network %s (existing_id of %s) does not exist", existing, req.Address)
			}
			return r, nil // adopt without changing anything
		}
		// A network made outside hvctl: record it so instances can
		// take addresses in it; Delete leaves it alone.
		r := p.newRecord(w, req, now)
		r.ID, r.ClientToken, r.External = existing, "", true
		r.State, r.CIDR = StateAvailable, cidr
		if r.CIDR == "" {
			r.CIDR = defaultNetworkCIDR(w)
		}
		w.Records = append(w.Records, r)
		return r, nil
	}
	r := p.newRecord(w, req, now)
	r.State, r.CIDR = StateAvailable, cidr
	if r.CIDR == "" {
		r.CIDR = defaultNetworkCIDR(w)
	}
	w.Records = append(w.Records, r)
	return r, nil
}

func (p *Provider) createInstance(w *world, req *provision.CreateRequest, now time.Time) (*record, error) {
	r := p.newRecord(w, req, now)
	if c := p.settings.Capacity; c != Unlimited {
		n := 0
		for _, o := range w.Records {
			if o.Kind == provision.KindInstance && o.live() && o.Site == r.Site {
				n++
			}
		}
		if n >= c {
			return nil, &provision.CapacityError{Provider: "sim", Detail: fmt.Sprintf("site %q already has %d of its %d machines (capacity); cannot create %s", r.Site, n, c, req.Address)}
		}
	}
	netKey, prefix, err := p.instanceNetwork(w, req, r.Site)
	if err != nil {
		return nil, err
	}
	if r.PrivateIP, err = allocPrivateIP(w, netKey, prefix); err != nil {
		return nil, err
	}
	r.NetworkID = netKey
	if pub, _ := req.Attrs["public_ip"].(bool); pub {
		if r.PublicAddress, err = allocPublicIP(w); err != nil {
			return nil, err
		}
	}
	r.State = StatePending
	r.ReadyAt = r.CreatedAt.Add(p.settings.BootTime)
	r.FailBoot = p.settings.BootFailRate > 0 && chance(p.settings.Seed, "boot", req.ClientToken, req.Address, r.ID) < p.settings.BootFailRate
	w.Records = append(w.Records, r)
	return r, nil
}

// instanceNetwork finds the network an instance takes its address from:
// the network among its Deps, else its cluster's live network of the
// same site, else a default range per cluster and site.
func (p *Provider) instanceNetwork(w *world, req *provision.CreateRequest, site string) (string, netip.Prefix, error) {
	addrs := make([]string, 0, len(req.Deps))
	for a := range req.Deps {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		id := req.Deps[a]
		n := byID(w, id)
		if n == nil || n.Kind != provision.KindNetwork {
			if n == nil && len(id) > len("sim-net-") && id[:len("sim-net-")] == "sim-net-" {
				return "", netip.Prefix{}, fmt.Errorf("sim: InvalidNetworkID.NotFound: network %s (%s) does not exist", id, a)
			}
			continue
		}
		if !n.live() {
			return "", netip.Prefix{}, fmt.Errorf("sim: InvalidNetworkID.NotFound: network %s (%s) was deleted", id, a)
		}
		prefix, err := netip.ParsePrefix(n.CIDR)
		if err != nil {
			return "", netip.Prefix{}, fmt.Errorf("sim: network %s has a bad cidr %q", id, n.CIDR)
		}
		return n.ID, prefix, nil
	}
	for _, n := range w.Records {
		if n.Kind == provision.KindNetwork && n.live() && n.Cluster == req.Cluster && n.Site == site {
			if prefix, err := netip.ParsePrefix(n.CIDR); err == nil {
				return n.ID, prefix, nil
			}
		}
	}
	return "default:" + req.Cluster + "/" + site, defaultSiteCIDR, nil
}

// find looks a resource up by ID, or by client token when ID is empty.
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

// find returns a copy of the record req names, or nil.
func (p *Provider) find(req *provision.ReadRequest) (*record, error) {
	var out *record
	err := p.store.view(func(w *world) error {
		if r := find(w, req); r != nil {
			cp := *r
			out = &cp
		}
		return nil
	})
	return out, err
}

// Read reports a resource by ID, or by ClientToken when ID is empty.
// Terminated, deleted and unknown resources have Exists = false.
func (p *Provider) Read(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	key := req.ID
	if key == "" {
		key = req.ClientToken
	}
	if err := p.gate(ctx, "Read", key); err != nil {
		return nil, err
	}
	return p.read(req)
}

// read is Read without the API charge.
func (p *Provider) read(req *provision.ReadRequest) (*provision.ReadResponse, error) {
	if req.ID == "" && req.ClientToken == "" {
		return nil, fmt.Errorf("sim: read %s: neither an ID nor a client token", req.Address)
	}
	r, err := p.find(req)
	if err != nil {
		return nil, err
	}
	if r == nil || !r.live() {
		resp := &provision.ReadResponse{ID: req.ID}
		if r != nil {
			resp.ID = r.ID
		}
		return resp, nil
	}
	return &provision.ReadResponse{Exists: true, ID: r.ID, Attrs: computed(r, p.clock.Now())}, nil
}

// List returns every live network and instance of a cluster in one
// page: one API call reading the world once.
func (p *Provider) List(ctx context.Context, req *provision.ListRequest) (*provision.ListPage, error) {
	if err := p.gate(ctx, "List", req.Cluster); err != nil {
		return nil, err
	}
	now := p.clock.Now()
	page := &provision.ListPage{Kinds: []provision.Kind{provision.KindInstance, provision.KindNetwork}}
	err := p.store.view(func(w *world) error {
		for _, r := range w.Records {
			if r.Cluster == req.Cluster && r.live() {
				page.Items = append(page.Items, provision.Listed{Kind: r.Kind, ID: r.ID, ClientToken: r.ClientToken, Attrs: computed(r, now)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// Delete terminates an instance or deletes a network; a resource already
// gone is fine. A network still holding live instances is refused
// (DependencyViolation), and one adopted through existing_id is left
// alone.
func (p *Provider) Delete(ctx context.Context, req *provision.DeleteRequest) error {
	if req.ID == "" {
		return fmt.Errorf("sim: delete %s: no ID", req.Address)
	}
	if err := p.gate(ctx, "Delete", req.ID); err != nil {
		return err
	}
	now := p.clock.Now().UTC()
	return p.store.update(func(w *world) (bool, error) {
		r := byID(w, req.ID)
		if r == nil || !r.live() {
			return false, nil
		}
		if r.Kind == provision.KindInstance {
			r.State, r.GoneAt = StateTerminated, now
			w.Changed(r)
			return true, nil
		}
		if r.External || (req.Address != "" && r.Address != req.Address) {
			return false, nil
		}
		n := 0
		for _, o := range w.Records {
			if o.Kind == provision.KindInstance && o.live() && o.NetworkID == r.ID {
				n++
			}
		}
		if n > 0 {
			return false, fmt.Errorf("sim: DependencyViolation: network %s still has %d live instances", r.ID, n)
		}
		r.State, r.GoneAt = StateDeleted, now
		w.Changed(r)
		return true, nil
	})
}

// updatable are the instance attributes Update changes in place.
var updatable = map[string]bool{"labels": true, "price": true, "roles": true}

// Updatable reports whether an attribute changes in place: an instance's
// labels, price and roles do; everything else forces replacement.
func (p *Provider) Updatable(kind provision.Kind, attr string) bool {
	return kind == provision.KindInstance && updatable[attr]
}

// Update changes an instance's labels, price or roles.
func (p *Provider) Update(ctx context.Context, req *provision.UpdateRequest) (*provision.UpdateResponse, error) {
	changed := map[string]bool{}
	for k, v := range req.After {
		if !sameValue(v, req.Before[k]) {
			changed[k] = true
		}
	}
	for k := range req.Before {
		if _, ok := req.After[k]; !ok {
			changed[k] = true
		}
	}
	for k := range changed {
		if !p.Updatable(req.Kind, k) {
			return nil, fmt.Errorf("sim: %s %s: attribute %q cannot change in place", req.Kind, req.ID, k)
		}
	}
	if err := p.gate(ctx, "Update", req.ID); err != nil {
		return nil, err
	}
	now := p.clock.Now()
	var out *record
	err := p.store.update(func(w *world) (bool, error) {
		r := byID(w, req.ID)
		if r == nil || !r.live() || r.Kind != req.Kind {
			return false, fmt.Errorf("sim: update %s %s: %w", req.Kind, req.ID, provision.ErrNotFound)
		}
		out = r
		if len(changed) == 0 {
			return false, nil
		}
		w.Changed(r)
		r.Attrs = maps.Clone(r.Attrs) // the cached world shares the old map
		if r.Attrs == nil {
			r.Attrs = map[string]any{}
		}
		for k := range changed {
			if v, ok := req.After[k]; ok {
				r.Attrs[k] = v
			} else {
				delete(r.Attrs, k)
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return &provision.UpdateResponse{Attrs: computed(out, now)}, nil
}

// sameValue compares attribute values by their JSON form, so a []string
// equals the []any a decoder made of it.
func sameValue(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// WaitReady sleeps (on the provider's clock) until an instance has
// booted, and fails if it ended "failed" or is gone. Waiting is not an
// API call: it is neither rate limited nor subject to fail_rate.
func (p *Provider) WaitReady(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := p.find(req)
		if err != nil {
			return nil, err
		}
		name := req.ID
		if name == "" {
			name = req.Address
		}
		if r == nil || !r.live() {
			return nil, fmt.Errorf("sim: %s %s does not exist", req.Kind, name)
		}
		now := p.clock.Now()
		switch r.effectiveState(now) {
		case StateFailed:
			return nil, fmt.Errorf("instance %s failed to boot", r.ID)
		case StatePending:
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-p.clock.After(r.ReadyAt.Sub(now)):
			}
			continue
		}
		return &provision.ReadResponse{Exists: true, ID: r.ID, Attrs: computed(r, now)}, nil
	}
}
