package elastic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/statecrypt"
	"github.com/hvctl/hvctl/templates"
)

// QueueSource is the queue system as the daemon reads it: the builtin
// scheduler now, SLURM later. Required.
type QueueSource interface {
	// Observe returns the queued work and the worker nodes the queue
	// system knows.
	Observe(ctx context.Context) (QueueView, error)
}

// QueueView is one reading of the queue system.
type QueueView struct {
	Queue []Demand
	Nodes []QueueNode
}

// QueueNode is a worker as the queue system sees it.
type QueueNode struct {
	Name string
	// Up is false when the queue system shows the node down or lost.
	Up       bool
	Running  int
	Used     Resources
	Capacity Resources
	// Since is when the node last changed between idle, busy and down;
	// zero when the queue system does not know.
	Since time.Time
}

// Drainer is implemented by queue sources that can stop placing work on
// a node (a pending power-off) and start again (its cancellation).
// Without it, a power-off destroys the node at the next step.
type Drainer interface {
	Drain(ctx context.Context, node string) error
	Resume(ctx context.Context, node string) error
}

// Provisioner acts on the cloud through the provision engine, under its
// state lock. Required.
type Provisioner interface {
	// Machines lists the machines of the cluster's pools as the cloud
	// reports them.
	Machines(ctx context.Context) ([]Machine, error)
	// Create starts one machine in pool. It must be idempotent on token
	// (the provider's client token): after a crash, creating again with
	// the same token finds the machine instead of making another. It
	// returns a *provision.CapacityError when the cloud has no capacity.
	Create(ctx context.Context, pool, token string) error
	// Destroy removes a machine; one already gone is not an error.
	Destroy(ctx context.Context, name string) error
}

// AgentRestarter is implemented by provisioners that can restart a
// node's agent (over SSH, the cloud's run-command): Reconcile needs it.
// Without it, a down node is left to boot_timeout and then replaced.
type AgentRestarter interface {
	RestartAgent(ctx context.Context, node string) error
}

// ErrBusy is returned (wrapped) by Provisioner.Machines while someone
// else changes the cluster (an apply holds the state lock): the daemon
// skips the step, since what it would decide may be done by then.
var ErrBusy = errors.New("the cluster is being changed")

// MachineState is a machine's state in the cloud.
type MachineState string

const (
	MachinePending MachineState = "pending"
	MachineRunning MachineState = "running"
	MachineFailed  MachineState = "failed"
	// MachineStopped is a machine stopped through PowerSwitch.
	MachineStopped MachineState = "stopped"
)

// PowerSwitch is implemented by provisioners that can stop a machine
// and start it again (provision.Stopper). The daemon stops an idle node
// of a pool with a StartTime instead of destroying it, and starts it
// again for queued work. Both must be idempotent: after a crash the
// daemon asks again until the machine shows the state asked for.
type PowerSwitch interface {
	Stop(ctx context.Context, name string) error
	Start(ctx context.Context, name string) error
}

// Machine is one machine as the cloud reports it.
type Machine struct {
	Name      string
	Pool      string
	State     MachineState
	CreatedAt time.Time
	// Token is the client token it was created with.
	Token string
}

// Journal keeps the daemon's durable state: operations in flight,
// pending power-offs and the pools' failure history. Save must be
// atomic: after a crash Load returns the last state saved whole.
type Journal interface {
	Load() (JournalState, error)
	Save(JournalState) error
}

// JournalState is what the daemon keeps across restarts.
type JournalState struct {
	InFlight []Operation `json:"in_flight"`
	// PoweringOff maps nodes whose power-off is pending to when it began.
	PoweringOff map[string]time.Time `json:"powering_off"`
	// Stopping marks the pending power-offs that end in a stop, not a
	// destroy.
	Stopping map[string]bool `json:"stopping,omitempty"`
	History  History         `json:"history"`
	// Started is when the first daemon of this journal started: a
	// daemon that finds it zero starts a new run in the history.
	Started time.Time `json:"started,omitzero"`
}

// FileJournal is a Journal in a JSON file (0600), replaced atomically
// (write, fsync, rename). With a Sealer (the state block's encryption)
// the file is sealed whole; a plaintext journal is still read, and
// sealed at the next save.
type FileJournal struct {
	Path   string
	Sealer *statecrypt.Sealer
}

// Load reads the journal; a missing file is an empty journal.
func (j FileJournal) Load() (JournalState, error) {
	var st JournalState
	data, err := os.ReadFile(j.Path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read elastic journal: %w", err)
	}
	if statecrypt.IsSealed(data) {
		if j.Sealer == nil {
			return st, fmt.Errorf("read elastic journal %s: it is encrypted, and the state block has no encryption to open it", j.Path)
		}
		if data, err = j.Sealer.Open(data); err != nil {
			return st, fmt.Errorf("read elastic journal %s: %w", j.Path, err)
		}
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("read elastic journal %s: %w", j.Path, err)
	}
	return st, nil
}

// Save writes the journal atomically.
func (j FileJournal) Save(st JournalState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if j.Sealer != nil {
		if data, err = j.Sealer.Seal(data); err != nil {
			return fmt.Errorf("save elastic journal: %w", err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(j.Path), ".elastic-journal-*")
	if err != nil {
		return fmt.Errorf("save elastic journal: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err == nil {
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("save elastic journal: %w", err)
	}
	if err := os.Rename(f.Name(), j.Path); err != nil {
		return fmt.Errorf("save elastic journal: %w", err)
	}
	return nil
}

// Daemon runs the policy against the real queue and cloud: every
// interval it observes, decides and acts.
//
// It survives restarts without provisioning twice: before it asks for a
// machine it records the create, with its client token, in the Journal;
// the snapshot counts recorded creates as booting capacity (so Decide
// does not ask again); and a create still recorded when the daemon starts
// is issued again with the same token, which the provider's idempotent
// Create turns into the machine the first call made. A create is
// forgotten once its machine shows in Machines.
type Daemon struct {
	Pools    []Pool // from PoolsOf(cfg)
	Settings templates.Elastic
	Queue    QueueSource
	Cloud    Provisioner
	Journal  Journal
	// Policy decides; nil means Decide.
	Policy func(Snapshot) []Action
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
	// Metrics, when set, are registered by NewMetrics and updated every
	// step.
	Metrics *Metrics
	// History, when set, records every step that changed something (for
	// hvctl report). Its errors are logged, never fatal.
	History HistoryWriter
	// Cluster names the cluster in the history.
	Cluster string

	loaded bool
	state  JournalState
	since  map[string]nodeSeen
	// created maps the machines of the current step to when they were
	// made (the identity a destroy records).
	created map[string]time.Time
	// stopped are the machines of the current step that are stopped.
	stopped map[string]bool
	// startAsked is when the daemon asked to start each node it has not
	// yet seen running work again (the pool's observed start time).
	startAsked map[string]time.Time
	busy       bool
	// learn is what the daemon measures for the automatic policy
	// between steps (see observe).
	learn learner
}

type nodeSeen struct {
	state NodeState
	since time.Time
}

// PoolsOf returns the template's pools as the policy sees them.
func PoolsOf(cfg *templates.Config) []Pool {
	var out []Pool
	for _, site := range cfg.Cluster.AllSites() {
		for _, p := range site.Pools {
			out = append(out, Pool{Name: p.Path(), Site: site.Path, Tier: site.Tier, Min: p.Min, Max: p.Max, Price: p.Instance.Price,
				Node: Resources{CPUs: max(p.Instance.CPUs, 1), Memory: p.Instance.Memory, GPUs: p.Instance.GPUs}, Labels: p.Labels})
		}
	}
	return out
}

// Run steps every Settings.Interval until ctx is done.
func (d *Daemon) Run(ctx context.Context) error {
	iv := d.Settings.Interval
	if iv <= 0 {
		iv = templates.DefaultElastic.Interval
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		if err := d.Step(ctx); err != nil {
			d.log().Error("elastic step", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (d *Daemon) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

func (d *Daemon) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

// Step observes, decides and acts once, and returns the actions taken.
func (d *Daemon) Step(ctx context.Context) error {
	_, err := d.step(ctx)
	return err
}

func (d *Daemon) step(ctx context.Context) ([]Action, error) {
	if !d.loaded {
		st, err := d.Journal.Load()
		if err != nil {
			return nil, err
		}
		d.state, d.loaded = st, true
		if d.state.PoweringOff == nil {
			d.state.PoweringOff = map[string]time.Time{}
		}
		if d.state.Stopping == nil {
			d.state.Stopping = map[string]bool{}
		}
		d.since = map[string]nodeSeen{}
		fresh := d.state.Started.IsZero()
		if fresh {
			d.state.Started = d.now()
		}
		if d.History != nil {
			if err := d.History.Start(HistoryRun{Cluster: d.Cluster, Start: d.now(), Pools: d.Pools}, fresh); err != nil {
				d.log().Warn("elastic history", "err", err)
			}
		}
	}
	now := d.now()
	view, err := d.Queue.Observe(ctx)
	if err != nil {
		return nil, fmt.Errorf("observe queue: %w", err)
	}
	machines, err := d.Cloud.Machines(ctx)
	if errors.Is(err, ErrBusy) {
		if !d.busy {
			d.log().Info("elastic daemon waits", "why", err.Error())
		}
		d.busy = true
		return nil, nil
	}
	if d.busy {
		d.log().Info("elastic daemon resumes", "why", "the state lock is free")
	}
	d.busy = false
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	d.created = make(map[string]time.Time, len(machines))
	d.stopped = map[string]bool{}
	for _, m := range machines {
		d.created[m.Name] = m.CreatedAt
		if m.State == MachineStopped {
			d.stopped[m.Name] = true
		}
	}
	if err := d.settle(ctx, machines); err != nil {
		return nil, err
	}
	nodes := d.merge(now, machines, view.Nodes)
	// A reconcile is done once the queue shows its node up again.
	up := map[string]bool{}
	for _, n := range nodes {
		up[n.Name] = n.Joined
	}
	d.state.InFlight = slices.DeleteFunc(d.state.InFlight, func(op Operation) bool { return op.Kind == OpReconcile && up[op.Node] })
	// A start in flight shows as a booting node (merge), not as an
	// operation that hides the node from the policy.
	var inFlight []Operation
	for _, op := range d.state.InFlight {
		if op.Kind != OpStart {
			inFlight = append(inFlight, op)
		}
	}
	snap := Snapshot{Now: now, Settings: d.Settings, Pools: append([]Pool(nil), d.Pools...), Queue: view.Queue,
		Nodes: nodes, InFlight: inFlight}
	d.learn.observe(&d.state.History, now, view, snap.Nodes)
	for _, n := range snap.Nodes {
		if at, ok := d.startAsked[n.Name]; ok && n.Joined && (n.State == Idle || n.State == Busy) {
			d.state.History.Started(n.Pool, now.Sub(at))
			delete(d.startAsked, n.Name)
		}
	}
	d.state.History.FillSnapshot(&snap)
	policy := d.Policy
	if policy == nil {
		policy = Decide
	}
	start := time.Now()
	acts := policy(snap)
	if d.Metrics != nil {
		d.Metrics.observe(snap, time.Since(start))
	}
	// A pending power-off of a node that is still idle completes now:
	// the policy had an interval to cancel it.
	for _, n := range snap.Nodes {
		if n.State == PoweringOff && n.Running == 0 && !cancelled(acts, n.Name) {
			if d.state.Stopping[n.Name] {
				acts = append(acts, stopDone{node: n.Name, pool: n.Pool})
				continue
			}
			acts = append(acts, powerOffDone{node: n.Name, pool: n.Pool})
		}
	}
	var errs []error
	for _, a := range acts {
		d.log().Info("elastic decision", "action", a.String(), "reason", a.Why())
		if d.Metrics != nil {
			d.Metrics.Actions.WithLabelValues(kindOf(a)).Inc()
		}
		if err := d.act(ctx, now, a); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.Journal.Save(d.state); err != nil {
		errs = append(errs, err)
	}
	if d.History != nil {
		if err := d.History.Step(historyStep(snap, view, acts)); err != nil {
			d.log().Warn("elastic history", "err", err)
		}
	}
	return acts, errors.Join(errs...)
}

func cancelled(acts []Action, node string) bool {
	for _, a := range acts {
		if c, ok := a.(CancelPowerOff); ok && c.Node == node {
			return true
		}
	}
	return false
}

// powerOffDone is the destroy that ends a pending power-off.
type powerOffDone struct{ node, pool string }

func (a powerOffDone) Why() string { return "power-off not cancelled within an interval" }
func (a powerOffDone) String() string {
	return fmt.Sprintf("destroy %s: %s", a.node, a.Why())
}

// stopDone is the stop that ends a pending power-off of a Stop.
type stopDone struct{ node, pool string }

func (a stopDone) Why() string { return "drained, and not needed again within an interval" }
func (a stopDone) String() string {
	return fmt.Sprintf("stop %s: %s", a.node, a.Why())
}

// settle forgets the operations the cloud shows done, and re-issues the
// creates still in flight from before a restart.
func (d *Daemon) settle(ctx context.Context, machines []Machine) error {
	byToken := map[string]bool{}
	byName := map[string]time.Time{}
	state := map[string]MachineState{}
	for _, m := range machines {
		byToken[m.Token] = true
		byName[m.Name] = m.CreatedAt
		state[m.Name] = m.State
	}
	kept := d.state.InFlight[:0]
	var errs []error
	for _, op := range d.state.InFlight {
		switch op.Kind {
		case OpCreate:
			if byToken[op.ID] {
				continue
			}
			if !op.Started.IsZero() && d.Settings.BootTimeout > 0 && d.now().Sub(op.Started) > 2*d.Settings.BootTimeout {
				d.state.History.Failed(op.Pool)
				continue // the create never produced a machine: give up on it
			}
			if err := d.create(ctx, op); err != nil {
				errs = append(errs, err)
				if isCapacity(err) {
					continue
				}
			}
		case OpDestroy:
			// Done when the machine is gone; a later machine in the same
			// pool slot (a replacement) is another machine.
			if created, ok := byName[op.Node]; !ok || !op.On(op.Node, created) {
				continue
			}
			if err := d.Cloud.Destroy(ctx, op.Node); err != nil {
				errs = append(errs, fmt.Errorf("destroy %s: %w", op.Node, err))
			}
		case OpReconcile:
			// In flight until the queue shows the node up (step), the
			// machine is gone, or boot_timeout passes: then the policy
			// replaces it.
			if _, ok := byName[op.Node]; !ok || (d.Settings.BootTimeout > 0 && d.now().Sub(op.Started) > d.Settings.BootTimeout) {
				continue
			}
		case OpStop, OpStart:
			// Done when the machine shows the state asked for, or is
			// gone; else asked again (both are idempotent).
			created, ok := byName[op.Node]
			want := MachineStopped
			if op.Kind == OpStart {
				want = MachineRunning
			}
			if !ok || !op.On(op.Node, created) || state[op.Node] == want {
				continue
			}
			if op.Kind == OpStart && state[op.Node] == MachineFailed {
				continue // it failed to start: the policy replaces it
			}
			if err := d.power(ctx, op); err != nil {
				errs = append(errs, err)
			}
		}
		kept = append(kept, op)
	}
	d.state.InFlight = kept
	return errors.Join(errs...)
}

func isCapacity(err error) bool {
	var ce *provision.CapacityError
	return errors.As(err, &ce)
}

func (d *Daemon) create(ctx context.Context, op Operation) error {
	err := d.Cloud.Create(ctx, op.Pool, op.ID)
	if isCapacity(err) {
		d.state.History.CapacityError(op.Pool, d.now())
	}
	if err != nil {
		return fmt.Errorf("create in %s: %w", op.Pool, err)
	}
	return nil
}

// merge builds the policy's nodes from the cloud's machines and the
// queue's nodes.
func (d *Daemon) merge(now time.Time, machines []Machine, qnodes []QueueNode) []Node {
	q := map[string]QueueNode{}
	for _, n := range qnodes {
		q[n.Name] = n
	}
	var out []Node
	seen := map[string]bool{}
	for _, m := range machines {
		seen[m.Name] = true
		n := Node{Name: m.Name, Pool: m.Pool, CreatedAt: m.CreatedAt}
		qn, inQueue := q[m.Name]
		switch {
		case m.State == MachineFailed:
			n.State = Failed
		case d.starting(m.Name):
			n.State = Booting // being started: its boot_timeout counts from the start
		case m.State == MachineStopped:
			n.State = Stopped
		case m.State == MachinePending || !inQueue:
			n.State = Booting
		case !qn.Up:
			n.State = Down
		default:
			n.Joined, n.Running, n.Used, n.Capacity = true, qn.Running, qn.Used, qn.Capacity
			n.State = Idle
			if qn.Running > 0 {
				n.State = Busy
			}
			if _, ok := d.state.PoweringOff[m.Name]; ok {
				n.State = PoweringOff
			}
		}
		n.Since = d.sinceOf(now, n.Name, n.State, qn.Since)
		out = append(out, n)
	}
	for _, qn := range qnodes {
		if seen[qn.Name] {
			continue
		}
		// A node the queue knows and the cloud does not list (a fixed
		// on-prem node): capacity only.
		n := Node{Name: qn.Name, Joined: qn.Up, Running: qn.Running, Used: qn.Used, Capacity: qn.Capacity, State: Idle}
		switch {
		case !qn.Up:
			continue
		case qn.Running > 0:
			n.State = Busy
		}
		n.Since = d.sinceOf(now, n.Name, n.State, qn.Since)
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sinceOf is when a node entered its state: the queue's word when it has
// one, else when the daemon first saw it in that state (after a restart,
// that is the restart: a node idle before it waits idle_time again).
func (d *Daemon) sinceOf(now time.Time, name string, st NodeState, q time.Time) time.Time {
	if st == PoweringOff {
		return d.state.PoweringOff[name]
	}
	prev, ok := d.since[name]
	if !ok || prev.state != st {
		prev = nodeSeen{state: st, since: now}
		if !q.IsZero() && st != Booting {
			prev.since = q
		}
		d.since[name] = prev
	}
	return prev.since
}

// beginPowerOff records node's pending power-off (a destroy, or a stop
// when Stopping marks it) and stops placing work on it.
func (d *Daemon) beginPowerOff(ctx context.Context, now time.Time, node string) error {
	d.state.PoweringOff[node] = now
	if dr, ok := d.Queue.(Drainer); ok {
		return dr.Drain(ctx, node)
	}
	return nil
}

// starting reports whether a start of node is in flight.
func (d *Daemon) starting(node string) bool {
	for _, op := range d.state.InFlight {
		if op.Kind == OpStart && op.Node == node {
			return true
		}
	}
	return false
}

// power asks the provisioner to stop or start op's node.
func (d *Daemon) power(ctx context.Context, op Operation) error {
	ps, ok := d.Cloud.(PowerSwitch)
	if !ok {
		return fmt.Errorf("%s %s: the provisioner cannot stop or start machines", op.Kind, op.Node)
	}
	var err error
	if op.Kind == OpStop {
		err = ps.Stop(ctx, op.Node)
	} else {
		err = ps.Start(ctx, op.Node)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op.Kind, op.Node, err)
	}
	return nil
}

// powerOp records a stop or start of node in the journal, then asks
// for it: a crash between the two asks again after the restart.
func (d *Daemon) powerOp(ctx context.Context, now time.Time, kind OpKind, node, pool string) error {
	op := Operation{ID: newToken(), Kind: kind, Pool: pool, Node: node, NodeCreated: d.created[node], Started: now}
	d.state.InFlight = append(d.state.InFlight, op)
	if err := d.Journal.Save(d.state); err != nil {
		return err
	}
	return d.power(ctx, op)
}

func (d *Daemon) act(ctx context.Context, now time.Time, a Action) error {
	d.state.History.Record(a)
	switch a := a.(type) {
	case Stop:
		// Drained first, like a power-off; stopped at the next step
		// unless new work cancels it (stopDone).
		d.state.Stopping[a.Node] = true
		return d.beginPowerOff(ctx, now, a.Node)
	case stopDone:
		delete(d.state.PoweringOff, a.node)
		delete(d.state.Stopping, a.node)
		return d.powerOp(ctx, now, OpStop, a.node, a.pool)
	case Start:
		// Its drain is lifted first: it comes back to take work.
		if dr, ok := d.Queue.(Drainer); ok {
			if err := dr.Resume(ctx, a.Node); err != nil {
				return err
			}
		}
		if d.startAsked == nil {
			d.startAsked = map[string]time.Time{}
		}
		d.startAsked[a.Node] = now
		return d.powerOp(ctx, now, OpStart, a.Node, a.Pool)
	case ScaleUp:
		for range a.Count {
			op := Operation{ID: newToken(), Kind: OpCreate, Pool: a.Pool, Started: now}
			// Record before asking: a crash between the two re-issues
			// the create with the same token instead of making another.
			d.state.InFlight = append(d.state.InFlight, op)
			if err := d.Journal.Save(d.state); err != nil {
				return err
			}
			if err := d.create(ctx, op); err != nil {
				if isCapacity(err) {
					d.dropOp(op.ID)
				}
				return err
			}
		}
	case ScaleDown:
		if a.Failed || d.stopped[a.Node] {
			// A stopped node runs nothing: no drain to wait for.
			return d.destroy(ctx, now, a.Node, a.Pool)
		}
		return d.beginPowerOff(ctx, now, a.Node)
	case CancelPowerOff:
		delete(d.state.PoweringOff, a.Node)
		delete(d.state.Stopping, a.Node)
		if dr, ok := d.Queue.(Drainer); ok {
			return dr.Resume(ctx, a.Node)
		}
	case powerOffDone:
		delete(d.state.PoweringOff, a.node)
		return d.destroy(ctx, now, a.node, a.pool)
	case Replace:
		if err := d.destroy(ctx, now, a.Node, a.Pool); err != nil {
			return err
		}
		return d.act(ctx, now, ScaleUp{Pool: a.Pool, Count: 1, Reason: a.Reason})
	case Reconcile:
		r, ok := d.Cloud.(AgentRestarter)
		if !ok {
			return nil
		}
		d.state.InFlight = append(d.state.InFlight, Operation{ID: newToken(), Kind: OpReconcile, Pool: a.Pool, Node: a.Node, Started: now})
		return r.RestartAgent(ctx, a.Node)
	}
	return nil
}

func (d *Daemon) destroy(ctx context.Context, now time.Time, node, pool string) error {
	op := Operation{ID: newToken(), Kind: OpDestroy, Pool: pool, Node: node, NodeCreated: d.created[node], Started: now}
	d.state.InFlight = append(d.state.InFlight, op)
	if err := d.Journal.Save(d.state); err != nil {
		return err
	}
	if err := d.Cloud.Destroy(ctx, node); err != nil {
		return fmt.Errorf("destroy %s: %w", node, err)
	}
	return nil
}

func (d *Daemon) dropOp(id string) {
	for i, op := range d.state.InFlight {
		if op.ID == id {
			d.state.InFlight = append(d.state.InFlight[:i], d.state.InFlight[i+1:]...)
			return
		}
	}
}

func newToken() string {
	var b [12]byte
	rand.Read(b[:])
	return "hvctl-elastic-" + hex.EncodeToString(b[:])
}

func kindOf(a Action) string {
	switch a.(type) {
	case ScaleUp:
		return "scale_up"
	case ScaleDown:
		return "scale_down"
	case CancelPowerOff:
		return "cancel_power_off"
	case Replace:
		return "replace"
	case Hold:
		return "hold"
	case Reconcile:
		return "reconcile"
	case powerOffDone:
		return "destroy"
	case Stop, stopDone:
		return "stop"
	case Start:
		return "start"
	}
	return "other"
}

// Metrics are the daemon's Prometheus metrics.
type Metrics struct {
	Nodes    *prometheus.GaugeVec   // hvctl_elastic_nodes{pool,state}
	Queued   prometheus.Gauge       // hvctl_elastic_queued_jobs
	Actions  *prometheus.CounterVec // hvctl_elastic_actions_total{kind}
	Decision prometheus.Histogram   // hvctl_elastic_decision_seconds
}

// NewMetrics makes the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Nodes:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hvctl_elastic_nodes", Help: "Worker nodes by pool and state."}, []string{"pool", "state"}),
		Queued:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "hvctl_elastic_queued_jobs", Help: "Jobs waiting in the queue."}),
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hvctl_elastic_actions_total", Help: "Actions the policy took, by kind."}, []string{"kind"}),
		Decision: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hvctl_elastic_decision_seconds", Help: "Time one policy decision took.",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10)}),
	}
	for _, c := range []prometheus.Collector{m.Nodes, m.Queued, m.Actions, m.Decision} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register elastic metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) observe(s Snapshot, took time.Duration) {
	m.Decision.Observe(took.Seconds())
	m.Nodes.Reset()
	for _, n := range s.Nodes {
		m.Nodes.WithLabelValues(n.Pool, n.State.String()).Inc()
	}
	q := 0
	for _, d := range s.Queue {
		q += d.count()
	}
	m.Queued.Set(float64(q))
}

// learner measures, from one step to the next, what the automatic policy
// needs:
//
//   - the queue's gaps (History.ObserveQueue);
//   - a job's mean run time by Little's law: running job-seconds over the
//     jobs that ended. Jobs that ended are counted two ways, and the
//     larger is taken: drops in a node's running jobs, and the drop in
//     all outstanding jobs (queued + running; a step in which that grew
//     had arrivals and is left out). Jobs that end and are replaced on a
//     node between two steps are seen only by the second;
//   - a new node's ready time: from its create request to its join, plus
//     its setup, seen as how much longer than the mean job its first
//     jobs ran (from the step that saw them start to the step that saw
//     the first end). Only nodes this daemon saw booting count.
type learner struct {
	last        time.Time
	outstanding int
	running     map[string]int
	nodes       map[string]*learnNode
	jobSecs     float64
	jobsDone    int
}

// learnNode follows one machine from boot to the end of its first job.
type learnNode struct {
	booted, joined, busy time.Time // zero until seen
	done                 bool
}

func (l *learner) observe(h *History, now time.Time, view QueueView, nodes []Node) {
	queued := 0
	for _, q := range view.Queue {
		queued += q.count()
	}
	h.ObserveQueue(now, queued)
	if l.running == nil {
		l.running, l.nodes = map[string]int{}, map[string]*learnNode{}
	}
	dt := now.Sub(l.last).Seconds()
	if l.last.IsZero() || dt < 0 {
		dt = 0
	}
	running, drops, secs0 := 0, 0, 0.0
	before := make(map[string]int, len(view.Nodes))
	for _, qn := range view.Nodes {
		prev := l.running[qn.Name]
		before[qn.Name] = prev
		secs0 += float64(prev) * dt
		if qn.Running < prev {
			drops += prev - qn.Running
		}
		running += qn.Running
		l.running[qn.Name] = qn.Running
	}
	outstanding := queued + running
	if !l.last.IsZero() && outstanding <= l.outstanding {
		l.jobSecs += secs0
		l.jobsDone += max(drops, l.outstanding-outstanding)
	}
	l.outstanding = outstanding
	if l.jobsDone > 0 && l.jobSecs > 0 {
		mean := secs(l.jobSecs / float64(l.jobsDone))
		for range l.jobsDone {
			h.JobDone(mean)
		}
		l.jobSecs, l.jobsDone = 0, 0
	}
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if n.Pool == "" || n.CreatedAt.IsZero() {
			continue
		}
		key := n.Name + "\x00" + n.CreatedAt.String()
		seen[key] = true
		ln := l.nodes[key]
		if ln == nil {
			ln = &learnNode{}
			l.nodes[key] = ln
		}
		switch {
		case ln.done:
		case !n.Joined:
			ln.booted = now
		case ln.booted.IsZero():
			ln.done = true // joined before this daemon saw it boot
		case ln.joined.IsZero():
			ln.joined = now
			if n.Running > 0 {
				ln.busy = now
			}
		case ln.busy.IsZero():
			if n.Running > 0 {
				ln.busy = now
			}
		case n.Running < before[n.Name]:
			ln.done = true
			setup := time.Duration(0)
			if jt := h.Queue.JobTime; jt > 0 {
				setup = max(now.Sub(ln.busy)-jt, 0)
			}
			h.Ready(n.Pool, ln.joined.Sub(n.CreatedAt)+setup)
		}
	}
	for k := range l.nodes {
		if !seen[k] {
			delete(l.nodes, k)
		}
	}
	for name := range l.running {
		if _, ok := before[name]; !ok {
			delete(l.running, name)
		}
	}
	l.last = now
}
