package elastic

import (
	"fmt"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// Snapshot is everything the policy sees at one instant: the queue, the
// nodes as the queue system and the cloud report them, the pools with
// their bounds and failure history, the operations still in flight and
// the clock. Decide reads nothing else.
type Snapshot struct {
	// Now is the clock reading the decision is made at.
	Now time.Time
	// Settings are the cluster's elastic settings, defaults filled in.
	Settings templates.Elastic
	// Pools are every worker pool, fixed ones included (their nodes are
	// capacity even though the policy never resizes them).
	Pools []Pool
	// Nodes are the worker nodes that exist, in any state.
	Nodes []Node
	// Queue is the work waiting to start.
	Queue []Demand
	// InFlight are operations asked for but not yet visible in Nodes
	// (a create whose machine has not appeared) or not yet finished (a
	// destroy, a reconcile).
	InFlight []Operation

	// What the executor learned (History.FillSnapshot), used by the
	// automatic policy (Settings.IdleAuto):
	//
	// Gaps are the last quiet periods of the queue (nothing queued
	// between two bursts), oldest first.
	Gaps []time.Duration
	// QuietFor is how long the queue has been empty now; 0 while work is
	// queued.
	QuietFor time.Duration
	// JobTime is the mean observed run time of a job; 0 when none was
	// seen yet.
	JobTime time.Duration
}

// Resources are what a job needs or a node offers.
type Resources struct {
	CPUs   int   `json:"cpus,omitempty"`
	Memory int64 `json:"memory,omitempty"` // bytes
	GPUs   int   `json:"gpus,omitempty"`
}

// Fits reports whether r fits in free.
func (r Resources) Fits(free Resources) bool {
	return r.CPUs <= free.CPUs && r.Memory <= free.Memory && r.GPUs <= free.GPUs
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.CPUs - o.CPUs, r.Memory - o.Memory, r.GPUs - o.GPUs}
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.CPUs + o.CPUs, r.Memory + o.Memory, r.GPUs + o.GPUs}
}

// times returns how many r fit in free (a large number when r asks for
// nothing).
func (r Resources) times(free Resources) int {
	n := 1 << 30
	if r.CPUs > 0 {
		n = min(n, free.CPUs/r.CPUs)
	}
	if r.Memory > 0 {
		n = min(n, int(min(free.Memory/r.Memory, 1<<30)))
	}
	if r.GPUs > 0 {
		n = min(n, free.GPUs/r.GPUs)
	}
	if free.CPUs < 0 || free.Memory < 0 || free.GPUs < 0 {
		return 0
	}
	return max(n, 0)
}

// Demand is queued work: Count identical jobs, waiting since Since.
type Demand struct {
	// Count is how many identical jobs this entry stands for; 0 means 1.
	Count int `json:"count,omitempty"`
	// Resources are what each job needs. A job asking for nothing takes
	// one CPU slot.
	Resources
	// Labels must all be present, with equal values, in a pool's labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Site pins the jobs to a site path ("cloud", "cloud.zone-a"); ""
	// lets them run anywhere.
	Site string `json:"site,omitempty"`
	// Pool pins the jobs to a pool path ("cloud.burst"); "" for any.
	Pool string `json:"pool,omitempty"`
	// Since is when the jobs were queued.
	Since time.Time `json:"since"`
}

func (d Demand) count() int {
	if d.Count <= 0 {
		return 1
	}
	return d.Count
}

// need is what one job takes: a job asking for nothing takes a CPU.
func (d Demand) need() Resources {
	r := d.Resources
	if r.CPUs <= 0 && r.Memory <= 0 && r.GPUs <= 0 {
		r.CPUs = 1
	}
	return r
}

// Pool is one pool as the policy sees it: bounds, placement order and
// failure history.
type Pool struct {
	// Name is the pool path, "SITE.POOL".
	Name string `json:"name"`
	// Site is the site path.
	Site string `json:"site"`
	// Tier orders bursting: lower tiers fill first.
	Tier     int `json:"tier"`
	Min, Max int
	// Price is per node-hour; among pools of a tier, cheaper fill first.
	Price float64 `json:"price,omitempty"`
	// Node is what one node of the pool offers.
	Node   Resources         `json:"node"`
	Labels map[string]string `json:"labels,omitempty"`
	// Ready is how long a new node of the pool takes from its create
	// request until it runs work at full speed: boot, join and one-time
	// setup. It is the pool's observed mean once ReadyObserved nodes were
	// seen (History), else the provider's setting (the sim's boot_time);
	// 0 when unknown.
	Ready         time.Duration `json:"ready,omitempty"`
	ReadyObserved int           `json:"ready_observed,omitempty"`
	// StartTime is how long a stopped node of the pool takes to run work
	// again; 0 when the pool's provider cannot stop machines (an idle
	// node is then destroyed).
	StartTime time.Duration `json:"start_time,omitempty"`
	// StoppedPrice is per stopped node-hour (its disk).
	StoppedPrice float64 `json:"stopped_price,omitempty"`

	// ConsecutiveFailures counts boot failures, join timeouts and create
	// errors since the pool's last node joined or its last hold. The
	// executor of the actions keeps it (see History).
	ConsecutiveFailures int `json:"consecutive_failures,omitempty"`
	// CapacityErrorAt is when the provider last refused a create for lack
	// of capacity (provision.CapacityError), zero when that has not
	// happened since the pool's last hold.
	CapacityErrorAt time.Time `json:"capacity_error_at,omitzero"`
	// HeldUntil is when the pool's current hold ends; zero or past when
	// it is not held.
	HeldUntil time.Time `json:"held_until,omitzero"`
}

// Elastic reports whether the policy may resize the pool.
func (p *Pool) Elastic() bool { return p.Min < p.Max }

// Held reports whether the pool is held at now.
func (p *Pool) Held(now time.Time) bool { return now.Before(p.HeldUntil) }

// NodeState is a node's state, merged from the queue system's view and
// the cloud's.
type NodeState int

const (
	// Booting: the machine exists (or is being created) and has not yet
	// joined the queue system.
	Booting NodeState = iota
	// Idle: joined, no job running.
	Idle
	// Busy: joined, running at least one job.
	Busy
	// PoweringOff: chosen for power-off, draining or shutting down; the
	// power-off can still be cancelled.
	PoweringOff
	// Failed: the cloud reports the machine failed (it did not boot).
	Failed
	// Down: the queue system shows the node down (or lost) while the
	// cloud shows the machine running — paper 003's vnode-5. It needs a
	// reconcile (its agent restarted), not a power cycle.
	Down
	// Stopped: the machine is stopped (not billed for compute; its disk,
	// agent and setup are kept) and can be started again in the pool's
	// StartTime.
	Stopped
	numStates
)

var stateNames = [...]string{"booting", "idle", "busy", "powering-off", "failed", "down", "stopped"}

func (s NodeState) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// MarshalText renders the state by name.
func (s NodeState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a state name.
func (s *NodeState) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = NodeState(i)
			return nil
		}
	}
	return fmt.Errorf("unknown node state %q", b)
}

// Node is one worker node.
type Node struct {
	// Name identifies the node to the queue system and the provisioner.
	Name string `json:"name"`
	// Pool is the pool path; "" for a named node (capacity only).
	Pool  string    `json:"pool"`
	State NodeState `json:"state"`
	// Since is when the node entered State.
	Since time.Time `json:"since"`
	// CreatedAt is when the machine was asked for.
	CreatedAt time.Time `json:"created_at"`
	// Joined reports whether the node has registered with the queue
	// system (false while Booting).
	Joined bool `json:"joined"`
	// Capacity is what the node offers; zero means its pool's Node.
	Capacity Resources `json:"capacity,omitzero"`
	// Running is how many jobs run on the node; Used is what they take.
	Running int       `json:"running"`
	Used    Resources `json:"used"`
}

// OpKind is the kind of an operation in flight.
type OpKind int

const (
	// OpCreate: a node was asked for and has not appeared in Nodes yet.
	OpCreate OpKind = iota
	// OpDestroy: a node is being destroyed.
	OpDestroy
	// OpReconcile: a node's agent is being restarted.
	OpReconcile
	// OpStop: an idle node is being stopped (PowerSwitch).
	OpStop
	// OpStart: a stopped node is being started again.
	OpStart
)

var opNames = [...]string{"create", "destroy", "reconcile", "stop", "start"}

func (k OpKind) String() string {
	if k >= 0 && int(k) < len(opNames) {
		return opNames[k]
	}
	return "unknown"
}

// MarshalText renders the kind by name.
func (k OpKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses a kind name.
func (k *OpKind) UnmarshalText(b []byte) error {
	for i, n := range opNames {
		if n == string(b) {
			*k = OpKind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown operation kind %q", b)
}

// Operation is one operation in flight.
type Operation struct {
	// ID is unique and stable across restarts; for a create it is the
	// provider's idempotency (client) token.
	ID   string `json:"id"`
	Kind OpKind `json:"kind"`
	Pool string `json:"pool"`
	Node string `json:"node,omitempty"` // "" for a create
	// NodeCreated is when the machine the operation acts on was made:
	// pool slots are reused, and a machine made later under the same
	// name (a replacement) is not the one being destroyed. Zero when
	// unknown (any machine of that name).
	NodeCreated time.Time `json:"node_created,omitzero"`
	Started     time.Time `json:"started"`
}

// On reports whether op acts on node n.
func (op Operation) On(name string, created time.Time) bool {
	return op.Node == name && (op.NodeCreated.IsZero() || created.IsZero() || op.NodeCreated.Equal(created))
}
