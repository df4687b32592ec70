package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/overlay/live"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/templates"
)

// Agent is one node's daemon.
type Agent struct {
	cfg *Config
	log *log.Logger
	// mc calls the cluster manager (every replica it knows); lc calls
	// the site's local manager (set with the runtime).
	mc *manager.Client
	lc *manager.Client

	key  wgtypes.Key
	cred string
	id   string

	dev     *live.Device
	mon     *live.Monitor
	pinger  *live.Pinger
	mu      sync.Mutex
	version uint64
	ps      *overlay.PeerSet

	ctx          context.Context
	rt           manager.Runtime
	localStarted bool
	mgr          *manager.Manager
	cluster      *templates.Cluster // the hub's template
	slurmHub     *slurmHub          // the hub of a SLURM cluster
	slurm        *slurmNode         // SLURM's daemons on this node
	fetching     map[string]*sync.Mutex
	containers   *ContainerStore        // this node's images (container.go)
	running      map[string]*runningJob // job ID -> its attempt here (runner.go)
	lastPoll     time.Time              // last work poll the local manager answered
	guarded      string
	// portOverride replaces the manager's listen port after the path
	// through the NAT wedged (see heartbeatLoop); 0 = none.
	portOverride int
	probeFails   int
	paths        pathTracker // health of the paths to the runtime's probe targets
	stopLocal    func()      // stops the local manager this node runs
	// witness is true once this node's witness replica runs.
	witness bool
}

// New prepares an agent; logs go to w.
func New(cfg *Config, w io.Writer) *Agent {
	return NewWithLogger(cfg, log.New(w, "", log.LstdFlags|log.LUTC))
}

// NewWithLogger prepares an agent that logs to l (hvctl agent passes
// one writing into the process's slog log).
func NewWithLogger(cfg *Config, l *log.Logger) *Agent {
	a := &Agent{cfg: cfg, log: l}
	mcfg := manager.ClientConfig{Endpoints: managerEndpoints(cfg), OnEndpoints: a.saveManagers}
	if ca := cfg.attr("cluster_ca"); ca != "" {
		if tc, err := manager.ClientTLS([]byte(ca)); err == nil {
			mcfg.TLS = tc
		} else {
			a.log.Printf("cluster CA: %v", err)
		}
	}
	a.mc = manager.NewClient(mcfg)
	return a
}

// DeviceName is the overlay interface name for a node: unique on the
// host, because userspace WireGuard's UAPI sockets share one directory.
func DeviceName(cluster, address string) string {
	h := sha256.Sum256([]byte(cluster + "\x00" + address))
	return "hv" + hex.EncodeToString(h[:5]) + "w"
}

// Run runs the agent until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	c := a.cfg
	a.ctx = ctx
	a.log.Printf("hvctl agent starting: node %s of cluster %s", c.Address, c.Cluster)
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return err
	}
	key, err := overlay.LoadOrCreateKey(filepath.Join(c.Dir, "wg.key"))
	if err != nil {
		return fmt.Errorf("wireguard key: %w", err)
	}
	a.key = key
	a.log.Printf("wireguard public key %s", key.PublicKey())

	var srv *http.Server
	if c.IsHub() {
		srv, err = a.startManager()
		if err != nil {
			return err
		}
		defer srv.Close()
		defer a.mgr.Close()
	}
	if b, err := os.ReadFile(filepath.Join(c.Dir, "credential")); err == nil {
		a.cred = strings.TrimSpace(string(b))
	}
	resp, err := a.joinLoop(ctx)
	if err != nil {
		return err
	}
	a.id = resp.ID
	a.dev, err = live.Open(live.Config{Name: DeviceName(c.Cluster, c.Address), PrivateKey: key,
		Logf: func(f string, args ...any) { a.log.Printf("wireguard: "+f, args...) }})
	if err != nil {
		return err
	}
	defer a.dev.Close()
	if err := a.apply(resp.Version, resp.PeerSet); err != nil {
		return err
	}
	a.log.Printf("overlay up: %s as %s on %s (%s), %d peers", a.id, resp.PeerSet.Address, a.dev.Name(), a.dev.Kind(), len(resp.PeerSet.Peers))
	a.pinger, err = live.NewPinger("")
	if err != nil {
		return err
	}
	defer a.pinger.Close()
	a.mon = &live.Monitor{Device: a.dev, Prober: a.pinger, Logf: a.log.Printf}
	a.setRuntime(resp.Runtime)

	var wg sync.WaitGroup
	loops := []func(context.Context){a.pollLoop, a.heartbeatLoop, func(ctx context.Context) { a.mon.Run(ctx) }, a.runLoop, a.pathLoop}
	a.mu.Lock()
	startWitness := a.mgr == nil && !a.witness && (c.attr("raft_witness") == "true" || a.lateWitness() != nil)
	a.witness = a.witness || startWitness
	a.mu.Unlock()
	if startWitness {
		loops = append(loops, a.witnessLoop)
	}
	if a.mgr != nil {
		loops = append(loops, a.mgr.Run)
		if a.hostCommand() != nil && hasElasticPools(a.cluster) && a.cluster.Scheduler.ElasticMode != "power_save" {
			loops = append(loops, a.elasticLoop)
		}
	}
	if rt := a.runtime(); rt.Slurm != nil {
		sn, err := a.startSlurm(ctx, rt.Slurm)
		if err != nil {
			return fmt.Errorf("slurm: %w", err)
		}
		a.mu.Lock()
		a.slurm = sn
		a.mu.Unlock()
		defer sn.stop()
		if rt.Slurm.Controller && a.slurmHub != nil {
			loops = append(loops, func(ctx context.Context) { sn.controlLoop(ctx, a.slurmHub) })
		}
	}
	for _, f := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	<-ctx.Done()
	wg.Wait()
	a.log.Printf("hvctl agent stopping")
	return nil
}

func (a *Agent) startManager() (*http.Server, error) {
	c := a.cfg
	secret, err := manager.ParseSecret(c.attr("cluster_secret"))
	if err != nil {
		return nil, err
	}
	var t Template
	if err := json.Unmarshal([]byte(c.attr("template")), &t); err != nil {
		return nil, fmt.Errorf("hub: the cluster template passed to the agent is unreadable: %w", err)
	}
	cfg, err := manager.LoadTemplate(&t, c.Dir)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	datasets := filepath.Join(c.Dir, "datasets")
	if g := cfg.Cluster.Cache.Global; g != "" {
		if node, path, ok := strings.Cut(g, ":"); ok && manager.MemberID(c.Address) == node && path != "" {
			datasets = path
		}
	}
	// The control state lives in a raft log in the agent's directory;
	// manager.json of an older agent is imported once.
	rc, err := a.replicaConfig(cfg.Cluster)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	mc := manager.Config{Cluster: cfg.Cluster, Secret: secret, Datasets: datasets,
		StateFile: filepath.Join(c.Dir, "manager.json"), Logf: a.log.Printf, Replica: rc, TemplateDir: c.Dir, Template: &t}
	if cfg.Cluster.Scheduler.Type == "slurm" {
		h, err := newSlurmHub(cfg.Cluster, secret)
		if err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		h.confPath = a.slurmConfPath
		a.slurmHub = h
		mc.Reserve = slurmReserve(cfg.Cluster, h.controller, h.nodes)
		mc.Slurm = h.setup
		mc.Signals = h.signals
		mc.Drain = h.drain
		if cfg.Cluster.Scheduler.Accounting {
			mc.SlurmJobs = h.jobs
		}
	}
	m, err := manager.New(mc)
	if err != nil {
		return nil, err
	}
	if a.slurmHub != nil {
		if err := a.slurmHub.render(m.Addresses()); err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
	}
	a.mgr = m
	a.cluster = cfg.Cluster
	port := DefaultManagerPort
	if u := c.attr("manager_url"); u != "" {
		if i := strings.LastIndex(u, ":"); i > 0 {
			if p, err := strconv.Atoi(strings.TrimSuffix(u[i+1:], "/")); err == nil {
				port = p
			}
		}
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("hub: manager listen: %w", err)
	}
	srv := manager.NewServer(m.Handler(), manager.Timeouts{})
	if strings.HasPrefix(c.attr("manager_url"), "https:") {
		tc, err := manager.ServerTLS([]byte(c.attr("tls_cert")), []byte(c.attr("tls_key")))
		if err != nil {
			ln.Close()
			return nil, err
		}
		srv.TLSConfig = tc
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	a.log.Printf("manager listening on %s", ln.Addr())
	return srv, nil
}

// replicaConfig is this node's replica of the control log: a single
// voter on a cluster with one manager; in a replica set, mutual TLS on
// ReplicaPort with the replica certificate, the primary bootstrapping
// the log and the others added by the leader when they join.
func (a *Agent) replicaConfig(cluster *templates.Cluster) (*manager.ReplicaConfig, error) {
	c := a.cfg
	id := manager.MemberID(c.Address)
	rc := &manager.ReplicaConfig{Dir: filepath.Join(c.Dir, "raft"), ID: id}
	cert, key := c.attr("replica_cert"), c.attr("replica_key")
	if g := a.lateWitness(); cert == "" && g != nil {
		cert, key = g.Cert, g.Key
	}
	if cert == "" {
		rc.Bootstrap = manager.SingleVoter(id)
		return rc, nil
	}
	tc, err := manager.ReplicaTLS([]byte(c.attr("cluster_ca")), []byte(cert), []byte(key))
	if err != nil {
		return nil, err
	}
	rc.Listen, rc.TLS = ":"+strconv.Itoa(manager.ReplicaPort), tc
	if c.attr("raft_bootstrap") == "true" {
		rc.Bootstrap = manager.SingleVoter(id)
	}
	if cluster != nil {
		if w := manager.Witness(cluster); w != nil {
			rc.Witnesses = []string{w.Path()}
		}
	}
	return rc, nil
}

// lateWitnessFile keeps the replica certificate of a node made before
// the template named it the witness (manager.ReplicaGrant), mode 0600.
const lateWitnessFile = "replica.json"

// lateWitness is this node's replica certificate given at run time, nil
// if none.
func (a *Agent) lateWitness() *manager.ReplicaGrant {
	b, err := os.ReadFile(filepath.Join(a.cfg.Dir, lateWitnessFile))
	if err != nil {
		return nil
	}
	var g manager.ReplicaGrant
	if json.Unmarshal(b, &g) != nil || g.Cert == "" {
		return nil
	}
	return &g
}

// becomeWitness keeps g and starts this node's witness replica, once.
func (a *Agent) becomeWitness(g *manager.ReplicaGrant) {
	a.mu.Lock()
	if a.witness || a.mgr != nil || a.ctx == nil {
		a.mu.Unlock()
		return
	}
	a.witness = true
	a.mu.Unlock()
	b, _ := json.Marshal(g)
	if err := os.WriteFile(filepath.Join(a.cfg.Dir, lateWitnessFile), b, 0o600); err != nil {
		a.log.Printf("control log witness: keep the replica certificate: %v", err)
	}
	a.log.Printf("control log witness: this node is the witness now; starting its replica")
	go a.witnessLoop(a.ctx)
}

// witnessLoop runs this node's witness replica (no secret, no API).
func (a *Agent) witnessLoop(ctx context.Context) {
	rc, err := a.replicaConfig(nil)
	if err != nil {
		a.log.Printf("control log witness: %v", err)
		return
	}
	for ctx.Err() == nil {
		if err := manager.RunWitness(ctx, *rc, a.log.Printf); err != nil {
			a.log.Printf("control log witness: %v", err)
			sleep(ctx, 2*time.Second)
		}
	}
}

func (a *Agent) joinRequest() *manager.JoinRequest {
	c := a.cfg
	req := &manager.JoinRequest{Token: c.attr("join_token"), Address: c.Address, Site: c.Site, Pool: c.Pool,
		PublicKey: a.key.PublicKey().String(), NAT: true,
		Caps: manager.Capabilities{CPUs: c.CPUs, MemoryMiB: c.MemoryMiB, GPUs: c.GPUs, Labels: c.Labels}}
	for _, r := range c.Roles {
		req.Roles = append(req.Roles, templates.Role(r))
	}
	if ip, err := netip.ParseAddr(first(c.PrivateIP, c.attr("private_ip"))); err == nil {
		req.SiteAddr = ip
	}
	if pub, err := netip.ParseAddr(first(c.PublicAddress, c.attr("public_address"))); err == nil {
		req.Endpoint = netip.AddrPortFrom(pub, uint16(overlayPort(c)))
		req.NAT = false
	}
	return req
}

func overlayPort(c *Config) int {
	if p, ok := c.Attrs["overlay_port"].(float64); ok && p > 0 {
		return int(p)
	}
	return overlay.DefaultPort
}

// joinLoop joins, retrying until the manager answers.
func (a *Agent) joinLoop(ctx context.Context) (*manager.JoinResponse, error) {
	delay := 200 * time.Millisecond
	for {
		resp, err := a.join(ctx)
		if err == nil {
			return resp, nil
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return nil, err
		}
		a.log.Printf("join: %v (retrying in %s)", err, delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 5*time.Second {
			delay *= 2
		}
	}
}

type fatalError struct{ error }

// refusedRetry is how long an agent that the manager refuses (its
// credential revoked, its join token spent) waits between tries: a
// revoked node stays out, and need not knock every two seconds.
const refusedRetry = 30 * time.Second

func (a *Agent) join(ctx context.Context) (*manager.JoinResponse, error) {
	resp, err := a.mc.WithToken(a.cred).Join(ctx, a.joinRequest())
	if err != nil {
		if code := manager.StatusOf(err); code == http.StatusUnauthorized && a.cred != "" {
			// The credential was not accepted (new cluster?): fall back to the token.
			a.cred = ""
		} else if code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusBadRequest {
			return nil, &fatalError{err}
		}
		return nil, err
	}
	a.cred = resp.Credential
	if err := os.WriteFile(filepath.Join(a.cfg.Dir, "credential"), []byte(resp.Credential+"\n"), 0o600); err != nil {
		return nil, err
	}
	a.log.Printf("joined as %s (overlay address %s)", resp.ID, resp.PeerSet.Address)
	return resp, nil
}

func (a *Agent) apply(v uint64, ps *overlay.PeerSet) error {
	a.mu.Lock()
	if a.portOverride != 0 {
		c := *ps
		c.ListenPort = a.portOverride
		ps = &c
	}
	if err := a.dev.Apply(ps); err != nil {
		a.mu.Unlock()
		return fmt.Errorf("apply peer set version %d: %w", v, err)
	}
	old := a.ps
	a.version, a.ps = v, ps
	pinger := a.pinger
	a.mu.Unlock()
	a.guard(ps)
	// Greet new peers at once: a peer behind NAT may have sent its first
	// handshake before this node knew it; a packet from here starts the
	// handshake now instead of at the peer's next retry (5 s).
	if pinger != nil && a.ctx != nil {
		for _, p := range ps.Peers {
			if old != nil && old.Peer(p.Node) != nil {
				continue
			}
			go func(dst netip.Addr) {
				ctx, cancel := context.WithTimeout(a.ctx, time.Second)
				defer cancel()
				pinger.Ping(ctx, dst)
			}(p.Address)
		}
	}
	return nil
}

// pollLoop long-polls the manager for peer-set changes.
func (a *Agent) pollLoop(ctx context.Context) {
	for ctx.Err() == nil {
		a.mu.Lock()
		since := a.version
		a.mu.Unlock()
		resp, err := a.mc.WithToken(a.cred).Peers(ctx, since, 25*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if manager.StatusOf(err) == http.StatusUnauthorized {
				// The manager forgot us (restarted with a new registry): rejoin.
				jr, jerr := a.join(ctx)
				if jerr == nil {
					a.apply(jr.Version, jr.PeerSet)
					a.setRuntime(jr.Runtime)
					continue
				}
				// Say why: a revoked credential falls back to the join
				// token, and a spent token is refused for good.
				a.log.Printf("rejoin: %v", jerr)
				var fatal *fatalError
				if errors.As(jerr, &fatal) {
					a.log.Printf("the manager refuses this node's credential and its join token: it stays out of the cluster until the engine creates it again (next try in %s)", refusedRetry)
					select {
					case <-ctx.Done():
						return
					case <-time.After(refusedRetry):
					}
					continue
				}
			}
			a.log.Printf("peer updates: %v", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			continue
		}
		a.setRuntime(resp.Runtime)
		if resp.Version != since && resp.PeerSet != nil {
			if err := a.apply(resp.Version, resp.PeerSet); err != nil {
				a.log.Printf("%v", err)
				continue
			}
			a.log.Printf("peer set version %d applied: %d peers", resp.Version, len(resp.PeerSet.Peers))
		}
	}
}

// heartbeatLoop reports probe results and peer handshakes.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(manager.DefaultHeartbeat)
	defer t.Stop()
	for {
		a.beat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) beat(ctx context.Context) {
	hb := manager.Heartbeat{ProbeOK: a.probe(ctx), Peers: map[string]manager.PeerStatus{}, Paths: a.paths.report()}
	a.unwedge(hb.ProbeOK)
	a.mu.Lock()
	ps, moved := a.ps, a.portOverride
	a.mu.Unlock()
	byKey := map[wgtypes.Key]string{}
	if ps != nil {
		for _, p := range ps.Peers {
			byKey[p.PublicKey] = p.Node
		}
	}
	if d, err := a.dev.Device(); err == nil {
		if moved != 0 && d.ListenPort == moved {
			// The port unwedge moved to, once the device listens there:
			// the manager moves the endpoint it predicted for this node.
			hb.ListenPort = moved
		}
		for _, p := range d.Peers {
			st := manager.PeerStatus{LastHandshake: p.LastHandshakeTime}
			if p.Endpoint != nil {
				if ap, ok := netip.AddrFromSlice(p.Endpoint.IP); ok {
					st.Endpoint = netip.AddrPortFrom(ap.Unmap(), uint16(p.Endpoint.Port))
				}
			}
			if id := byKey[p.PublicKey]; id != "" {
				hb.Peers[id] = st
			}
		}
	}
	if err := a.mc.WithToken(a.cred).Heartbeat(ctx, &hb); err != nil && ctx.Err() == nil {
		a.log.Printf("heartbeat: %v", err)
	}
}

// probe sends a packet through the tunnel to the hub (or, on a hub, to
// any peer) and reports whether it was answered.
func (a *Agent) probe(ctx context.Context) bool {
	a.mu.Lock()
	ps := a.ps
	a.mu.Unlock()
	if ps == nil {
		return false
	}
	var targets []netip.Addr
	for _, p := range ps.Peers {
		if p.Role == overlay.PeerHub {
			targets = append(targets, p.Address)
		}
	}
	if len(targets) == 0 {
		if len(ps.Peers) == 0 {
			return true // alone: nothing to carry yet
		}
		for _, p := range ps.Peers {
			targets = append(targets, p.Address)
		}
	}
	for _, dst := range targets {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := a.pinger.Ping(pctx, dst)
		cancel()
		if err == nil {
			return true
		}
	}
	return false
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// unwedge rebinds WireGuard to a fresh port when probes through the
// tunnel have failed for four heartbeats in a row on a node behind NAT.
// A NAT can hold a flow's conntrack entry without a translation (a Linux
// router with br_netfilter loaded that once switched a packet of the
// flow; docs/overlay.md); WireGuard's retries keep the entry alive, so
// the path never recovers by itself. The local provider's routers no
// longer do this; NATs hvctl does not make still can. A new source port
// is a new flow, translated afresh; the hub learns the new endpoint when
// the node's next handshake arrives (roaming).
func (a *Agent) unwedge(ok bool) {
	a.mu.Lock()
	if ok {
		a.probeFails = 0
		a.mu.Unlock()
		return
	}
	a.probeFails++
	fails, ps, v := a.probeFails, a.ps, a.version
	public := a.cfg.PublicAddress != "" || a.cfg.attr("public_address") != ""
	a.mu.Unlock()
	if fails < 4 || public || ps == nil {
		return
	}
	port := 40000 + int(time.Now().UnixNano()%20000)
	a.log.Printf("probes through the overlay failed %d times in a row: moving WireGuard from port %d to %d", fails, ps.ListenPort, port)
	a.mu.Lock()
	a.portOverride, a.probeFails = port, 0
	a.mu.Unlock()
	if err := a.apply(v, ps); err != nil {
		a.log.Printf("rebind: %v", err)
	}
}
