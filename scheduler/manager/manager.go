package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/addrs"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/slurm"
	"github.com/hvctl/hvctl/templates"
)

// Node states as status shows them.
const (
	StateJoined = "joined"
	StateFailed = "failed"
)

// DefaultHeartbeat is how often agents report; a node silent for
// FailAfter heartbeats is failed.
const (
	DefaultHeartbeat = 3 * time.Second
	FailAfter        = 4
)

// Capabilities are what a node offers.
type Capabilities struct {
	CPUs      int               `json:"cpus"`
	MemoryMiB int64             `json:"memory_mib"`
	GPUs      int               `json:"gpus,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// PeerStatus is one peer as a node's device sees it.
type PeerStatus struct {
	LastHandshake time.Time      `json:"last_handshake,omitzero"`
	Endpoint      netip.AddrPort `json:"endpoint,omitzero"`
}

// Node is a member of the cluster as the manager knows it. Nothing in it
// is secret.
type Node struct {
	ID        string           `json:"id"`      // overlay member ID, "onprem.frontend"
	Address   string           `json:"address"` // hvctl address
	Site      string           `json:"site"`
	Pool      string           `json:"pool,omitempty"`
	Roles     []templates.Role `json:"roles"`
	PublicKey string           `json:"public_key"`
	Endpoint  netip.AddrPort   `json:"endpoint,omitzero"`
	SiteAddr  netip.Addr       `json:"site_addr,omitzero"`
	NAT       bool             `json:"nat"`
	// ListenPort is the node's WireGuard port. Nodes behind one NAT get
	// distinct ports, so the NAT keeps each mapping the same whatever the
	// destination and peers in other sites can reach them (mesh).
	ListenPort int        `json:"listen_port"`
	OverlayIP  netip.Addr `json:"overlay_ip"`
	// ObservedIP is the address the node's requests come from: for a
	// node behind NAT, its NAT's public address.
	ObservedIP netip.Addr   `json:"observed_ip,omitzero"`
	Caps       Capabilities `json:"capabilities"`
	JoinedAt   time.Time    `json:"joined_at"`
	LastSeen   time.Time    `json:"last_seen"`
	// ProbeOK is true when the node's last probe through the overlay (to
	// the hub) got an answer.
	ProbeOK bool                  `json:"probe_ok"`
	Peers   map[string]PeerStatus `json:"peers,omitempty"`
	// Paths is the health of the node's path to every overlay address
	// it must reach (paths.go); filled in by Nodes.
	Paths []PathHealth `json:"paths,omitempty"`
	State string       `json:"state"`
}

// Config configures a Manager.
type Config struct {
	Cluster *templates.Cluster
	Secret  Secret
	// StateFile persists the registry across restarts ("" = memory only).
	StateFile string
	// Heartbeat is the agents' heartbeat interval (default 3s).
	Heartbeat time.Duration
	// Datasets is the global data tier's directory (cache.global's path).
	Datasets string
	// ResultQuota bounds a job's result files together (default
	// MaxResultBytes).
	ResultQuota int64
	Clock       func() time.Time
	Logf        func(format string, args ...any)
	// Reserve are member IDs that get overlay addresses before they
	// join (a SLURM cluster's slurm.conf names every slot's address).
	// Hubs come first in the order given, so they keep the lowest.
	Reserve []string
	// Slurm, when set, gives each joining member its SLURM setup.
	Slurm func(memberID string) *SlurmSetup
	// Signals, when set, replaces the builtin scheduler's queue signals
	// (GET /v1/queue): a SLURM cluster reads squeue and sinfo.
	Signals func() (scheduler.Signals, error)
	// Drain, when set, stops (on) or restarts the queue system giving
	// a node work: the elastic daemon's pending power-off.
	Drain func(memberID string, on bool) error
	// Replica, when set, keeps the control state (registry and job
	// table) in a raft log instead of StateFile; an existing StateFile
	// is imported into a new log once.
	Replica *ReplicaConfig
	// SlurmJobs, when set, lists the jobs SLURM's accounting recorded
	// (GET /v1/slurm/jobs).
	SlurmJobs func() ([]slurm.AcctJob, error)
	// TemplateDir is where a template sent later (PUT /v1/template)
	// resolves relative paths; OnTemplate, when set, is told of each
	// template the manager takes (template.go).
	TemplateDir string
	OnTemplate  func(*templates.Config)
	// Template, when set, is the template Cluster was loaded from: the
	// same one sent again is not recorded again.
	Template *Template
}

// SlurmSetup is what a node needs to run SLURM: sent at join, over TLS,
// to authenticated members only (the munge key is the cluster's SLURM
// secret).
type SlurmSetup struct {
	// Conf is slurm.conf, with @DIR@ where the node's own SLURM
	// directory goes.
	Conf     string `json:"conf"`
	MungeKey []byte `json:"munge_key"`
	// NodeName is the member's SLURM node name; "" when it is not a
	// compute node.
	NodeName string `json:"node_name,omitempty"`
	// Controller is set for the member that runs slurmctld.
	Controller bool `json:"controller,omitempty"`
	// Gres is gres.conf, "" when the cluster has no GPU nodes.
	Gres string `json:"gres,omitempty"`
	// Accounting: the controller runs MariaDB and slurmdbd and
	// registers ClusterName (scheduler.accounting).
	Accounting  bool   `json:"accounting,omitempty"`
	ClusterName string `json:"cluster_name,omitempty"`
}

// Manager is the join service and node registry.
type Manager struct {
	cfg Config

	mu      sync.Mutex
	nodes   map[string]*Node
	used    map[string]bool   // join token nonces already spent
	creds   map[string]string // member ID -> its credential's generation; none = revoked
	addrs   map[string]netip.Addr
	grants  map[string]ReplicaGrant // member ID -> replica certificate for a late witness
	version uint64
	changed chan struct{} // closed and replaced whenever version moves
	topo    *overlay.Topology
	topoErr error

	// The runtime plane: the global manager's job table, and which node
	// runs each site's local manager.
	global     *scheduler.Global
	designated map[string]string // site -> member ID
	datasets   string            // the global tier's directory

	replica *replica // the control log; nil = StateFile or memory only
	// template is the hash of the template taken after start ("" =
	// the one in Config).
	template string
}

type persisted struct {
	Designated map[string]string     `json:"designated,omitempty"`
	Nodes      map[string]*Node      `json:"nodes"`
	Used       map[string]bool       `json:"used_nonces"`
	Addrs      map[string]netip.Addr `json:"addresses"`
	Version    uint64                `json:"version"`
	// Credentials is each member's credential generation (authz.go);
	// a member without one is revoked.
	Credentials map[string]string `json:"credentials,omitempty"`
	// Grants are replica certificates for witnesses made before they
	// were (witness_grant.go).
	Grants map[string]ReplicaGrant `json:"replica_grants,omitempty"`
}

// New returns a manager, loading its registry from cfg.StateFile.
func New(cfg Config) (*Manager, error) {
	if cfg.Cluster == nil || len(cfg.Secret) == 0 {
		return nil, errors.New("manager needs the cluster and its secret")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ResultQuota <= 0 {
		cfg.ResultQuota = MaxResultBytes
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	m := &Manager{cfg: cfg, nodes: map[string]*Node{}, used: map[string]bool{}, creds: map[string]string{}, addrs: map[string]netip.Addr{}, grants: map[string]ReplicaGrant{}, changed: make(chan struct{}),
		designated: map[string]string{}, datasets: cfg.Datasets}
	if cfg.Template != nil {
		m.template = cfg.Template.Hash()
	}
	m.global = scheduler.NewGlobal(siteInfos(cfg.Cluster))
	m.global.Clock = cfg.Clock
	var fromFile *persisted
	if cfg.StateFile != "" {
		b, err := os.ReadFile(cfg.StateFile)
		switch {
		case err == nil:
			var p persisted
			if err := json.Unmarshal(b, &p); err != nil {
				return nil, fmt.Errorf("manager state %s is corrupt: %w", cfg.StateFile, err)
			}
			fromFile = &p
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("read manager state: %w", err)
		}
	}
	if cfg.Replica != nil {
		if err := m.openLog(fromFile); err != nil {
			return nil, err
		}
		return m, nil
	}
	if fromFile != nil {
		m.loadLocked(fromFile)
	}
	m.replan()
	for site := range m.designated {
		m.linkSiteLocked(site)
	}
	return m, nil
}

// loadLocked takes the registry from p (the state file, or the control
// log).
func (m *Manager) loadLocked(p *persisted) {
	if p.Nodes != nil {
		m.nodes = p.Nodes
	}
	if p.Used != nil {
		m.used = p.Used
	}
	if p.Addrs != nil {
		m.addrs = p.Addrs
	}
	m.version = p.Version
	if p.Designated != nil {
		m.designated = p.Designated
	}
	if p.Credentials != nil {
		m.creds = p.Credentials
	}
	if p.Grants != nil {
		m.grants = p.Grants
	}
}

// persistedLocked is the registry as saved.
func (m *Manager) persistedLocked() *persisted {
	return &persisted{Nodes: m.nodes, Used: m.used, Addrs: m.addrs, Version: m.version, Designated: m.designated, Credentials: m.creds, Grants: m.grants}
}

// saveLocked persists the registry: through the control log, else to
// the state file.
func (m *Manager) saveLocked() error {
	if m.replica != nil {
		return m.replica.apply(&Command{Op: OpRegistry, Registry: m.persistedLocked()})
	}
	if m.cfg.StateFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(m.persistedLocked(), "", "  ")
	if err != nil {
		return err
	}
	return provision.WriteFileAtomic(m.cfg.StateFile, b)
}

// bumpLocked records a change: waiting peer polls wake up.
func (m *Manager) bumpLocked() {
	m.version++
	close(m.changed)
	m.changed = make(chan struct{})
	m.replan()
}

// replan recomputes addresses and the topology from the members.
func (m *Manager) replan() {
	ids := make([]string, 0, len(m.nodes))
	for id := range m.nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	all := ids
	if len(m.cfg.Reserve) > 0 {
		all = append([]string(nil), m.cfg.Reserve...)
		seen := map[string]bool{}
		for _, id := range all {
			seen[id] = true
		}
		for _, id := range ids {
			if !seen[id] {
				all = append(all, id)
			}
		}
	}
	addrs, err := overlay.Allocate(m.cfg.Cluster.Overlay.CIDR, m.addrs, all)
	if err != nil {
		m.topo, m.topoErr = nil, err
		return
	}
	m.addrs = addrs
	members := make([]overlay.Member, 0, len(ids))
	joined := make(map[string]netip.Addr, len(ids))
	for _, id := range ids {
		joined[id] = addrs[id]
	}
	addrs = joined
	for _, id := range ids {
		n := m.nodes[id]
		n.OverlayIP = addrs[id]
		key, err := parseKey(n.PublicKey)
		if err != nil {
			continue
		}
		members = append(members, overlay.Member{
			ID: id, Site: n.Site, Roles: n.Roles, PublicKey: key, Endpoint: n.Endpoint,
			SiteAddr: n.SiteAddr, NAT: n.NAT, ListenPort: n.ListenPort,
		})
	}
	m.topo, m.topoErr = overlay.Plan(m.cfg.Cluster, members, addrs)
}

// Addresses returns the overlay address of every member and reserved
// ID.
func (m *Manager) Addresses() map[string]netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]netip.Addr, len(m.addrs))
	for k, v := range m.addrs {
		out[k] = v
	}
	return out
}

// JoinRequest is what an agent sends to join.
type JoinRequest struct {
	Token     string           `json:"token"`
	Address   string           `json:"address"`
	Site      string           `json:"site"`
	Pool      string           `json:"pool,omitempty"`
	Roles     []templates.Role `json:"roles"`
	PublicKey string           `json:"public_key"`
	Endpoint  netip.AddrPort   `json:"endpoint,omitzero"`
	SiteAddr  netip.Addr       `json:"site_addr,omitzero"`
	NAT       bool             `json:"nat"`
	Caps      Capabilities     `json:"capabilities"`
}

// JoinResponse gives the node its credential and first peer set.
type JoinResponse struct {
	ID         string           `json:"id"`
	Credential string           `json:"credential"`
	Version    uint64           `json:"version"`
	PeerSet    *overlay.PeerSet `json:"peer_set"`
	// Managers is every manager replica's API URL.
	Managers []string `json:"managers,omitempty"`
	Runtime
}

// Runtime tells a node where its site's local manager is, with the
// credential for it; the node chosen to run it also gets the site secret.
type Runtime struct {
	LocalManager   string `json:"local_manager,omitempty"` // URL over the overlay
	SiteCredential string `json:"site_credential,omitempty"`
	RunLocal       string `json:"run_local_manager,omitempty"` // site secret, only to the node that runs it
	NodeCache      int64  `json:"node_cache_bytes,omitempty"`
	SiteCache      int64  `json:"site_cache_bytes,omitempty"`
	GlobalSite     string `json:"global_site,omitempty"`
	// Slurm is set in a SLURM cluster.
	Slurm *SlurmSetup `json:"slurm,omitempty"`
	// Probe lists the overlay addresses the node keeps probing (paths.go).
	Probe []ProbeTarget `json:"probe,omitempty"`
	// Witness, for a node made before the template named it the
	// control log's witness, is its replica certificate: it starts its
	// witness replica.
	Witness *ReplicaGrant `json:"witness,omitempty"`
}

// movesPort takes the WireGuard port a NAT'd node reports it listens on
// when it is not the one on record (its agent moved off a wedged NAT
// flow): an endpoint predicted from the old port (the address its
// requests come from, and the port a port-keeping NAT keeps) moves with
// it. Without this, peers in other private networks whose only view of
// the node is that prediction (no public node outside its network sees
// its packets) would keep sending to a port nothing listens on, and the
// hole punch between two NATs would never meet. It reports whether
// anything changed.
func (m *Manager) movesPort(n *Node, port int) bool {
	if !n.NAT || port <= 0 || port > 65535 || port == n.ListenPort {
		return false
	}
	old := n.ListenPort
	n.ListenPort = port
	if n.ObservedIP.IsValid() && n.Endpoint == netip.AddrPortFrom(n.ObservedIP, uint16(old)) {
		n.Endpoint = netip.AddrPortFrom(n.ObservedIP, uint16(port))
	}
	m.cfg.Logf("node %s moved its WireGuard port from %d to %d", n.ID, old, port)
	return true
}

// predictEndpoint gives a NAT'd node without a known endpoint the
// address its requests come from and its listen port: NATs that keep
// source ports (Linux masquerade does when it can) map it there.
func (n *Node) predictEndpoint() {
	if n.NAT && !n.Endpoint.IsValid() && n.ObservedIP.IsValid() && n.ObservedIP != n.SiteAddr {
		n.Endpoint = netip.AddrPortFrom(n.ObservedIP, uint16(n.ListenPort))
	}
}

// ErrUnauthorized is returned for bad tokens and credentials.
var ErrUnauthorized = errors.New("unauthorized")

// ErrForbidden is returned for a valid credential asking for more than
// it may have (roles, site or capacity the engine did not give its node;
// another node's job).
var ErrForbidden = errors.New("forbidden")

// Join admits a node with a single-use join token, or with its node
// credential when it rejoins after a restart.
func (m *Manager) Join(req *JoinRequest, credential string) (*JoinResponse, error) {
	return m.JoinFrom(req, credential, netip.Addr{})
}

// JoinFrom is Join for a request that came from address from. The
// node's site, pool, roles and capacity come from the cluster's model
// (what the engine created at the address the token is bound to); a
// request that claims more is refused and nothing changes.
func (m *Manager) JoinFrom(req *JoinRequest, credential string, from netip.Addr) (*JoinResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var id, gen, nonce string
	if credential != "" {
		cid, cgen, err := m.cfg.Secret.checkNodeCredential(credential)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
		if err := m.currentLocked(cid, cgen); err != nil {
			return nil, err
		}
		id, gen = cid, cgen
	} else {
		c, err := m.cfg.Secret.checkJoinToken(req.Token, m.cfg.Clock())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
		if m.used[c.Nonce] {
			return nil, fmt.Errorf("%w: this join token was already used; a node joins once with its token, then with its credential", ErrUnauthorized)
		}
		id, nonce = c.ID, c.Nonce
	}
	if want := MemberID(req.Address); want != id {
		return nil, fmt.Errorf("%w: the token is for %s, not %s", ErrUnauthorized, id, req.Address)
	}
	spec, ok := modelMember(m.cfg.Cluster, req.Address)
	if !ok {
		return nil, fmt.Errorf("%w: the cluster's template has no node %s", ErrForbidden, req.Address)
	}
	if err := spec.checkClaims(req); err != nil {
		return nil, err
	}
	if _, err := parseKey(req.PublicKey); err != nil {
		return nil, &BadRequest{Field: "public_key", Msg: "not a WireGuard public key"}
	}
	oldNode := m.nodes[id]
	oldGen, hadGen := m.creds[id]
	if nonce != "" {
		// Spent only once the request is known good, so a malformed
		// request does not burn the node's token.
		m.used[nonce] = true
		gen = newGeneration()
		m.creds[id] = gen
	}
	// undo takes the join back when it could not be recorded: the
	// token is not spent here, and a retry can join.
	undo := func() {
		if nonce != "" {
			delete(m.used, nonce)
			if hadGen {
				m.creds[id] = oldGen
			} else {
				delete(m.creds, id)
			}
		}
		if oldNode != nil {
			m.nodes[id] = oldNode
		} else {
			delete(m.nodes, id)
		}
	}
	now := m.cfg.Clock()
	n := &Node{ID: id, Address: req.Address, Site: spec.Site, Pool: spec.Pool, Roles: spec.Roles,
		PublicKey: req.PublicKey, Endpoint: req.Endpoint, SiteAddr: req.SiteAddr, NAT: req.NAT,
		Caps: spec.Caps, JoinedAt: now, LastSeen: now}
	if old := m.nodes[id]; old != nil {
		n.JoinedAt = old.JoinedAt
		n.ListenPort = old.ListenPort
		if n.NAT && old.Endpoint.IsValid() && !n.Endpoint.IsValid() {
			n.Endpoint = old.Endpoint
		}
	}
	if n.ListenPort == 0 {
		n.ListenPort = m.freePortLocked(n)
	}
	n.ObservedIP = from.Unmap()
	n.predictEndpoint()
	m.nodes[id] = n
	m.bumpLocked()
	// A node the overlay cannot be planned with yet (a worker of a star
	// whose hub has not joined) is not joined: its token stays unspent,
	// so its retry joins once the plan works.
	ps, err := m.peerSetLocked(id)
	if err != nil {
		undo()
		m.bumpLocked()
		return nil, err
	}
	if err := m.saveLocked(); err != nil {
		undo()
		m.replan()
		return nil, err
	}
	m.cfg.Logf("node %s joined (site %s, key %s)", id, n.Site, req.PublicKey)
	m.designateLocked(n)
	return &JoinResponse{ID: id, Credential: m.cfg.Secret.NodeCredential(id, gen), Version: m.version, PeerSet: ps,
		Managers: m.managersLocked(), Runtime: m.runtimeLocked(id)}, nil
}

// freePortLocked picks a node's WireGuard port: overlay.port, or for a
// node behind NAT the lowest port from overlay.port up that no other
// NAT'd node of its private network uses (nested sites share their
// parent's NAT, as zones share a region's NAT gateway).
func (m *Manager) freePortLocked(n *Node) int {
	base := m.cfg.Cluster.Overlay.Port
	if base == 0 {
		base = overlay.DefaultPort
	}
	if !n.NAT {
		return base
	}
	used := map[int]bool{}
	for id, o := range m.nodes {
		if id != n.ID && o.NAT && m.samePrivateNetwork(o.Site, n.Site) {
			used[o.ListenPort] = true
		}
	}
	p := base
	for used[p] {
		p++
	}
	return p
}

func (m *Manager) peerSetLocked(id string) (*overlay.PeerSet, error) {
	if m.topo == nil {
		return nil, fmt.Errorf("overlay plan: %v", m.topoErr)
	}
	return m.topo.PeersFor(id)
}

// RuntimeFor tells node id where its site's local manager is.
func (m *Manager) RuntimeFor(id string) Runtime {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runtimeLocked(id)
}

// Peers returns node id's peer set once the registry's version is past
// since, waiting up to wait for a change.
func (m *Manager) Peers(id string, since uint64, wait time.Duration) (uint64, *overlay.PeerSet, error) {
	deadline := time.After(wait)
	for {
		m.mu.Lock()
		if _, ok := m.nodes[id]; !ok {
			m.mu.Unlock()
			return 0, nil, fmt.Errorf("%w: node %s is not a member; join again", ErrUnauthorized, id)
		}
		// A version below since is a manager that restarted from an
		// older save: the node takes the current set at once.
		if m.version != since || wait <= 0 {
			ps, err := m.peerSetLocked(id)
			v := m.version
			m.mu.Unlock()
			return v, ps, err
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			wait = 0
		}
	}
}

// Heartbeat is what an agent reports periodically.
type Heartbeat struct {
	ProbeOK bool                  `json:"probe_ok"`
	Peers   map[string]PeerStatus `json:"peers,omitempty"`
	Paths   []PathHealth          `json:"paths,omitempty"`
	// ListenPort is the WireGuard port the node's device listens on (0:
	// not reported). It differs from the one the manager gave when the
	// agent moved its port to get out of a wedged NAT flow.
	ListenPort int `json:"listen_port,omitempty"`
}

// Beat records a heartbeat from node id. When the reporter is a public
// node (a hub), the endpoints it sees for NAT'd peers are learnt, so that
// peers in other sites can reach them through their NAT.
func (m *Manager) Beat(id string, hb *Heartbeat) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[id]
	if n == nil {
		return fmt.Errorf("%w: node %s is not a member; join again", ErrUnauthorized, id)
	}
	n.LastSeen = m.cfg.Clock()
	n.ProbeOK = hb.ProbeOK
	if hb.ProbeOK {
		m.addVotersLocked()
	}
	n.Peers = hb.Peers
	n.Paths = hb.Paths
	if m.movesPort(n, hb.ListenPort) {
		m.bumpLocked()
		m.saveLocked()
	}
	if !n.NAT {
		// A public node sees where NAT'd peers' packets come from.
		learnt := false
		for pid, ps := range hb.Peers {
			p := m.nodes[pid]
			if p != nil && m.learnsEndpoint(n, p, ps.Endpoint) {
				p.Endpoint = ps.Endpoint
				learnt = true
			}
		}
		if learnt && m.cfg.Cluster.Overlay.Topology != templates.Star {
			m.bumpLocked()
			m.saveLocked()
		}
	}
	return nil
}

// Leave removes a node (it is being destroyed): peers drop it.
func (m *Manager) Leave(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.nodes[id]; !ok {
		return nil
	}
	site := m.nodes[id].Site
	delete(m.nodes, id)
	delete(m.addrs, id)
	m.bumpLocked()
	m.redesignateLocked(site, id)
	m.cfg.Logf("node %s left", id)
	return m.saveLocked()
}

// Nodes lists the members with their current state.
func (m *Manager) Nodes() []Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Clock()
	out := make([]Node, 0, len(m.nodes))
	for _, n := range m.nodes {
		c := *n
		c.State = StateJoined
		c.Paths = m.pathsLocked(n.ID, n.Paths)
		if now.Sub(n.LastSeen) > FailAfter*m.cfg.Heartbeat {
			c.State = StateFailed
			c.ProbeOK = false
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// MemberID maps an hvctl address to the overlay member ID:
// site.onprem.node.frontend → onprem.frontend,
// site.cloud.pool.burst.node[2] → cloud.burst[2],
// site.cloud.site.zone-a.pool.gpu.node[0] → cloud.zone-a.gpu[0].
// Anything else (a network's address, a bad one) is returned as it is.
func MemberID(addr string) string {
	r, err := addrs.Parse(addr)
	if err != nil || r.Kind == addrs.Network {
		return addr
	}
	return r.MemberID()
}

// PeerSets returns every member's peer set (no secrets: public keys only).
func (m *Manager) PeerSets() (uint64, []*overlay.PeerSet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.topo == nil {
		return 0, nil, fmt.Errorf("overlay plan: %v", m.topoErr)
	}
	return m.version, m.topo.All(), nil
}
