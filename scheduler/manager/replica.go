package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/templates"
)

// ReplicaConfig configures the manager's replica of the control log
// (hashicorp/raft, a raft-boltdb log and file snapshots in Dir).
type ReplicaConfig struct {
	// Dir holds the log (raft.db) and the snapshots.
	Dir string
	// ID is this replica's raft server ID (its member ID).
	ID string
	// Listen, with TLS (ReplicaTLS), serves raft to the other replicas
	// (":51823"); "" = in-process only, which serves a single voter.
	Listen string
	TLS    *tls.Config
	// Resolve finds where a replica listens, by member ID; nil = its
	// overlay address (from the replicated registry) and ReplicaPort.
	Resolve func(id string) (string, error)
	// Transport, when set, replaces Listen (tests).
	Transport raft.Transport
	// Bootstrap, on a new log, makes a cluster of these voters (this
	// replica among them). Only the primary hub bootstraps; a log that
	// exists is never bootstrapped again. The others are added as they
	// join (manager nodes and Witnesses).
	Bootstrap []raft.Server
	// Witnesses are members that vote and keep the log but serve
	// nothing and hold no secret (see Witness).
	Witnesses []string
	// Results is the directory of this replica's copy of the job
	// results ("" = Dir/results).
	Results string
	// Tuning for tests; zero = raft's defaults.
	HeartbeatTimeout, ElectionTimeout time.Duration
	// TrailingLogs is how many entries a snapshot leaves in the log
	// (0 = raft's default).
	TrailingLogs uint64
}

// replica is one member of the control log's raft cluster.
type replica struct {
	raft  *raft.Raft
	fsm   *controlFSM
	store *raftboltdb.BoltStore
	trans raft.Transport
	cfg   ReplicaConfig
	// leading is true while this replica's manager serves: it leads
	// and has loaded the state.
	leading atomic.Bool
	// voters is the voter set last seen complete; adding is true while
	// voters are being added.
	voters atomic.Pointer[[]string]
	adding atomic.Bool
	done   chan struct{}
}

// applyTimeout bounds one write to the log.
const applyTimeout = 10 * time.Second

// logWriter sends raft's log lines to the manager's log.
type logWriter func(format string, args ...any)

func (w logWriter) Write(p []byte) (int, error) {
	w("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func hclogFor(logf func(string, ...any)) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: logWriter(logf)})
}

func openReplica(cfg ReplicaConfig, logf func(string, ...any)) (*replica, error) {
	if cfg.Dir == "" || cfg.ID == "" {
		return nil, errors.New("control log: a directory and a replica ID are required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("control log directory: %w", err)
	}
	logger := hclogFor(logf)
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open the control log %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, logger)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("open the control snapshots in %s: %w", cfg.Dir, err)
	}
	results := cfg.Results
	if results == "" {
		results = filepath.Join(cfg.Dir, "results")
	}
	fsm := newControlFSM(results)
	trans := cfg.Transport
	if trans == nil && cfg.Listen != "" {
		resolve := cfg.Resolve
		if resolve == nil {
			resolve = fsm.resolve
		}
		trans, err = NewReplicaTransport(cfg.Listen, cfg.ID, cfg.TLS, resolve, logf)
		if err != nil {
			store.Close()
			return nil, err
		}
	}
	if trans == nil {
		_, trans = raft.NewInmemTransport(raft.ServerAddress(cfg.ID))
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = logger
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout, rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout, cfg.HeartbeatTimeout/2
	}
	if cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if len(cfg.Bootstrap) > 0 {
		has, err := raft.HasExistingState(store, store, snaps)
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("read the control log: %w", err)
		}
		if !has {
			if err := raft.BootstrapCluster(rc, store, store, snaps, trans, raft.Configuration{Servers: cfg.Bootstrap}); err != nil {
				store.Close()
				return nil, fmt.Errorf("bootstrap the control log: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, fsm, store, store, snaps, trans)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("start the control log: %w", err)
	}
	return &replica{raft: r, fsm: fsm, store: store, trans: trans, cfg: cfg, done: make(chan struct{})}, nil
}

// apply writes c through the log and waits until it is committed and
// applied here.
func (r *replica) apply(c *Command) error {
	b, err := EncodeCommand(c)
	if err != nil {
		return err
	}
	f := r.raft.Apply(b, applyTimeout)
	if err := f.Error(); err != nil {
		return fmt.Errorf("write %s to the control log: %w", c.Op, err)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return nil
}

// waitLeader waits until this replica leads and has applied everything
// committed before it did.
func (r *replica) waitLeader(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for r.raft.State() != raft.Leader {
		if time.Now().After(deadline) {
			return fmt.Errorf("the control log has no leader after %s", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.raft.Barrier(limit).Error(); err != nil {
		return fmt.Errorf("catch up with the control log: %w", err)
	}
	return nil
}

func (r *replica) close() error {
	select {
	case <-r.done:
		return nil
	default:
		close(r.done)
	}
	r.leading.Store(false)
	err := r.raft.Shutdown().Error()
	if c, ok := r.trans.(interface{ Close() error }); ok {
		c.Close()
	}
	if cerr := r.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// logJournal is the global job table's journal: the control log.
type logJournal struct{ r *replica }

// Record writes jobs the log has as updates (without their spec), the
// others whole.
func (j logJournal) Record(jobs []*scheduler.Job) error {
	c := &Command{Op: OpJobs}
	for _, job := range jobs {
		if j.r.fsm.has(job.ID) {
			c.Updates = append(c.Updates, updateOf(job))
		} else {
			c.Jobs = append(c.Jobs, job)
		}
	}
	return j.r.apply(c)
}

// RecordSubmit writes a submit's jobs and its idempotency key in one
// entry (scheduler.KeyJournal).
func (j logJournal) RecordSubmit(jobs []*scheduler.Job, key scheduler.SubmitKey) error {
	return j.r.apply(&Command{Op: OpJobs, Jobs: jobs, Key: &key})
}

// RecordArray writes an array submit as one entry: the spec and its
// count, not every job (scheduler.ArrayJournal).
func (j logJournal) RecordArray(a *scheduler.ArraySubmit, key *scheduler.SubmitKey) error {
	return j.r.apply(&Command{Op: OpJobs, Array: a, Key: key})
}

// openLog opens the control log. A log with this replica as its only
// voter elects it at once: New waits for that and loads the state. In
// a replica set the manager starts as a standby and serves when it
// leads (watchLeadership).
func (m *Manager) openLog(fromFile *persisted) error {
	rc := *m.cfg.Replica
	if rc.Results == "" && m.datasets != "" {
		rc.Results = filepath.Join(m.datasets, "results")
	}
	r, err := openReplica(rc, m.cfg.Logf)
	if err != nil {
		return err
	}
	m.replica = r
	m.global.Journal = logJournal{r}
	if r.soleVoter() {
		if err := r.waitLeader(30 * time.Second); err != nil {
			r.close()
			return err
		}
		if err := m.lead(fromFile); err != nil {
			r.close()
			return err
		}
	}
	go m.watchLeadership(fromFile)
	return nil
}

// soleVoter reports whether this replica is the log's only voter.
func (r *replica) soleVoter() bool {
	f := r.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	srv := f.Configuration().Servers
	return len(srv) == 1 && srv[0].ID == raft.ServerID(r.cfg.ID)
}

// watchLeadership makes the manager serve while its replica leads, and
// stop (answering 421) when it does not. A witness that finds itself
// leading hands leadership on.
func (m *Manager) watchLeadership(fromFile *persisted) {
	r := m.replica
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		leader := r.raft.State() == raft.Leader
		switch {
		case leader && !r.leading.Load():
			if err := r.raft.Barrier(applyTimeout).Error(); err != nil {
				m.cfg.Logf("control log: new leader cannot catch up: %v", err)
				continue
			}
			if err := m.lead(fromFile); err != nil {
				m.cfg.Logf("control log: load the state as the new leader: %v", err)
				continue
			}
			m.cfg.Logf("control log: this replica (%s) leads; serving the API", r.cfg.ID)
		case !leader && r.leading.Load():
			r.leading.Store(false)
			m.cfg.Logf("control log: this replica (%s) no longer leads; answering 421", r.cfg.ID)
		}
	}
}

// lead loads the registry and the job table from the log and starts
// serving. A registry from an old state file is imported into a new log.
func (m *Manager) lead(fromFile *persisted) error {
	r := m.replica
	m.templateFromLog()
	reg, jobs, err := r.fsm.state()
	if err != nil {
		return fmt.Errorf("read the control state: %w", err)
	}
	if reg == nil && fromFile != nil {
		if err := r.apply(&Command{Op: OpRegistry, Registry: fromFile}); err != nil {
			return fmt.Errorf("import %s into the control log: %w", m.cfg.StateFile, err)
		}
		reg = fromFile
		m.cfg.Logf("imported the registry of %s into the control log", m.cfg.StateFile)
	}
	m.mu.Lock()
	if reg != nil {
		m.loadLocked(reg)
	}
	// Liveness is not in the log: every member gets a fresh grace
	// period to heartbeat the new leader.
	now := m.cfg.Clock()
	for _, n := range m.nodes {
		n.LastSeen = now
	}
	m.replan()
	members := len(m.nodes)
	m.bumpLocked() // agents long-polling here take the current peer set
	m.mu.Unlock()
	m.global.Restore(jobs)
	m.global.RestoreKeys(r.fsm.submitKeys())
	m.mu.Lock()
	for site := range m.designated {
		m.linkSiteLocked(site)
	}
	m.mu.Unlock()
	r.leading.Store(true)
	if len(jobs) > 0 || reg != nil {
		m.cfg.Logf("control log replayed: %d members, %d jobs", members, len(jobs))
	}
	// Replicas that joined before this one led are made voters when
	// they are all ready.
	m.mu.Lock()
	m.addVotersLocked()
	m.mu.Unlock()
	return nil
}

// Leading reports whether this manager serves (its replica leads, or
// it has no control log).
func (m *Manager) Leading() bool {
	return m.replica == nil || m.replica.leading.Load()
}

// APIPort is the manager API's TCP port on every replica.
const APIPort = 51821

// apiURL is a member's manager API URL: its public address.
func apiURL(n *Node) string {
	if n == nil || !n.Endpoint.IsValid() {
		return ""
	}
	return "https://" + netip.AddrPortFrom(n.Endpoint.Addr(), APIPort).String()
}

func isReplica(n *Node) bool {
	for _, r := range n.Roles {
		if r == templates.RoleManager {
			return true
		}
	}
	return false
}

// managersLocked is every replica's API URL (manager nodes with a
// public address), sorted: agents and the CLI move among them.
func (m *Manager) managersLocked() []string {
	var out []string
	for _, n := range m.nodes {
		if isReplica(n) {
			if u := apiURL(n); u != "" {
				out = append(out, u)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Managers is every replica's API URL.
func (m *Manager) Managers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.managersLocked()
}

// LeaderURL is the API URL of the replica that leads, "" when unknown.
func (m *Manager) LeaderURL() string {
	if m.replica == nil {
		return ""
	}
	_, id := m.replica.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	return m.replica.fsm.apiURL(string(id))
}

// replicaIDs are the members the template makes replicas of the
// control log: every named node with the manager role and, with exactly
// two of them, the witness. A SLURM cluster keeps one manager.
func replicaIDs(c *templates.Cluster) []string {
	if c == nil || c.Scheduler.Type == "slurm" {
		return nil
	}
	var out []string
	for _, s := range c.AllSites() {
		for _, n := range s.Nodes {
			if n.HasRole(templates.RoleManager) {
				out = append(out, n.Path())
			}
		}
	}
	if w := Witness(c); w != nil {
		out = append(out, w.Path())
	}
	return out
}

// addVotersLocked makes the template's replicas voters of the control
// log, all together once every one of them has joined and its last
// heartbeat's probe through the overlay was answered: a voter added
// before it can be reached would cost the log its quorum (one leader
// and one unreachable voter elect nobody).
func (m *Manager) addVotersLocked() {
	r := m.replica
	if r == nil || (r.cfg.Listen == "" && r.cfg.Transport == nil) || !r.leading.Load() {
		return
	}
	ids := replicaIDs(m.cfg.Cluster)
	var add []string
	for _, id := range ids {
		if id == r.cfg.ID || r.voters.Load() != nil && slices.Contains(*r.voters.Load(), id) {
			continue
		}
		n := m.nodes[id]
		if n == nil || !n.ProbeOK {
			return // not every replica is ready
		}
		add = append(add, id)
	}
	if len(add) == 0 || !r.adding.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer r.adding.Store(false)
		f := r.raft.GetConfiguration()
		if f.Error() != nil {
			return
		}
		var have []string
		for _, s := range f.Configuration().Servers {
			have = append(have, string(s.ID))
		}
		for _, id := range add {
			if slices.Contains(have, id) {
				continue
			}
			if err := r.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, applyTimeout).Error(); err != nil {
				m.cfg.Logf("control log: add %s as a voter: %v", id, err)
				return
			}
			have = append(have, id)
			m.cfg.Logf("control log: %s is a voter", id)
		}
		r.voters.Store(&have)
	}()
}

// leaderOnly answers every /v1/ request with 421 and the leader's URL
// while this replica does not lead (the contract the typed client
// follows).
func (m *Manager) leaderOnly(h http.Handler) http.Handler {
	if m.replica == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.Leading() || !strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/v1/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		leader := m.LeaderURL()
		w.Header().Set("X-Hvctl-Leader", leader)
		writeJSON(w, http.StatusMisdirectedRequest, map[string]string{"error": "not the leader", "leader": leader})
	})
}

// RunWitness runs a witness replica until ctx ends: it votes and keeps
// the log, so two manager nodes survive the loss of one, but it holds no
// secret and serves nothing; elected, it hands leadership to a manager at
// once.
func RunWitness(ctx context.Context, cfg ReplicaConfig, logf func(string, ...any)) error {
	r, err := openReplica(cfg, logf)
	if err != nil {
		return err
	}
	defer r.close()
	logf("control log witness %s listening on %s", cfg.ID, cfg.Listen)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if r.raft.State() == raft.Leader {
			if err := r.raft.LeadershipTransfer().Error(); err != nil {
				logf("control log witness: hand leadership on: %v", err)
			} else {
				logf("control log witness: was elected; handed leadership on")
			}
		}
	}
}

// Witness is the node that gives a third vote when the cluster has
// exactly two manager nodes (two voters cannot lose one): the first
// gateway without the manager role, else the first named node without
// it that is not a hub. nil when none is needed or there is none.
func Witness(c *templates.Cluster) *templates.Node {
	var managers int
	var gateway, other *templates.Node
	for _, s := range c.AllSites() {
		for _, n := range s.Nodes {
			if n.HasRole(templates.RoleManager) {
				managers++
				continue
			}
			if gateway == nil && s.Gateway == n.Name {
				gateway = n
			}
			if other == nil && !n.HasRole(templates.RoleHub) {
				other = n
			}
		}
	}
	if managers != 2 {
		return nil
	}
	if gateway != nil {
		return gateway
	}
	return other
}

// Close stops the manager's control log.
func (m *Manager) Close() error {
	if m.replica == nil {
		return nil
	}
	return m.replica.close()
}

// SingleVoter is the bootstrap configuration of a control log with one
// voter, id (in-process transport).
func SingleVoter(id string) []raft.Server {
	return []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(id)}}
}
