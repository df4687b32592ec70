package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/manager"
)

// Provisioner is the elastic daemon's elastic.Provisioner: it creates
// and destroys elastic pool nodes through the engine, opening the
// cluster under the state lock for each batch, and records the daemon's
// token on each node it creates, so that a retried create finds its
// node instead of making another.
type Provisioner struct {
	// Options open the cluster for each batch; Operation and
	// LockTimeout are the provisioner's own ("elastic", 5 minutes).
	Options Options
	// Manager, when set, is told of each node destroyed.
	Manager *manager.Client
	// Log receives what failed (nil: slog's default).
	Log *slog.Logger

	wg sync.WaitGroup
	// Changes asked for are queued and applied together, one engine
	// apply at a time: a scale-up of n nodes boots them in parallel.
	qmu     sync.Mutex
	queue   []queuedChange
	running bool
	// queued are the tokens of creates queued or being applied: the
	// daemon re-issues a create until its machine shows, and a token
	// must not make two machines.
	queued map[string]bool

	storeOnce sync.Once
	store     *provision.Store // where the template's state block puts the state
	storeErr  error
}

// BatchDelay is how long the provisioner lets a step's actions gather
// before it applies them: the daemon issues them one after another, and
// a scale-up of n should boot n nodes in one apply.
const BatchDelay = 300 * time.Millisecond

type queuedChange struct {
	build changeFunc
	token string // a create's token; "" for a destroy
}

// changeFunc builds one change against the open cluster; taken holds
// the addresses already changed in the same batch.
type changeFunc func(c *Cluster, taken map[string]bool) (*provision.Change, error)

func (p *Provisioner) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// Machines lists the pool nodes in the state (elastic.Provisioner). It
// answers elastic.ErrBusy while another process holds the state lock.
func (p *Provisioner) Machines(ctx context.Context) ([]elastic.Machine, error) {
	p.storeOnce.Do(func() {
		p.store, p.storeErr = ReadStore(p.template(), p.Options.Vars, p.Options.stateOptions())
	})
	if p.storeErr != nil {
		return nil, p.storeErr
	}
	p.qmu.Lock()
	ours := p.running
	p.qmu.Unlock()
	if h := p.store.LockInfoHint(); h != nil && !ours && h.PID != os.Getpid() {
		return nil, fmt.Errorf("%w: %s (pid %d) holds the state lock", elastic.ErrBusy, h.Operation, h.PID)
	}
	st, err := p.store.Load()
	if err != nil {
		return nil, err
	}
	var out []elastic.Machine
	for _, r := range st.Resources {
		pool, _ := r.Attrs["pool"].(string)
		if r.Kind != provision.KindInstance || pool == "" {
			continue
		}
		m := elastic.Machine{Name: manager.MemberID(r.Address), Pool: pool, CreatedAt: r.Created}
		m.Token, _ = r.Attrs["elastic_token"].(string)
		switch st, _ := r.Attrs["state"].(string); {
		case r.Status == provision.StatusReady && st == "stopped":
			m.State = elastic.MachineStopped
		case r.Status == provision.StatusReady:
			m.State = elastic.MachineRunning
		case r.Status == provision.StatusTainted:
			m.State = elastic.MachineFailed
		default:
			m.State = elastic.MachinePending
		}
		out = append(out, m)
	}
	return out, nil
}

func (p *Provisioner) template() string {
	if p.Options.Template == "" {
		return "."
	}
	return p.Options.Template
}

// Create queues the creation of a node in pool with the daemon's token
// (elastic.Provisioner); it returns before the node exists.
func (p *Provisioner) Create(ctx context.Context, pool, token string) error {
	p.qmu.Lock()
	if p.queued == nil {
		p.queued = map[string]bool{}
	}
	dup := p.queued[token]
	p.queued[token] = true
	p.qmu.Unlock()
	if dup {
		return nil // queued already: it shows once its batch is applied
	}
	p.enqueue(ctx, token, func(c *Cluster, taken map[string]bool) (*provision.Change, error) {
		pl := c.ElasticPools()[pool]
		if pl == nil {
			return nil, fmt.Errorf("no elastic pool %s in the template", pool)
		}
		for _, r := range c.State.Resources {
			if t, _ := r.Attrs["elastic_token"].(string); t == token {
				return nil, nil // made already: the create was retried
			}
		}
		idx, err := freeSlot(c.State, pl, taken)
		if err != nil {
			return nil, err
		}
		return c.Engine.PoolCreate(c.State, pl, idx, provision.Attrs{"elastic_token": token})
	})
	return nil
}

// Destroy queues the destruction of the node named name (a member ID)
// (elastic.Provisioner).
func (p *Provisioner) Destroy(ctx context.Context, name string) error {
	p.enqueue(ctx, "", func(c *Cluster, taken map[string]bool) (*provision.Change, error) {
		for _, r := range c.State.Resources {
			if r.Kind == provision.KindInstance && manager.MemberID(r.Address) == name && !taken[r.Address] {
				forget(ctx, p.Manager, name)
				return provision.DeleteChange(r), nil
			}
		}
		return nil, nil // gone already
	})
	return nil
}

// Stop queues the stop of the node named name (elastic.PowerSwitch);
// its provider must be a provision.Stopper.
func (p *Provisioner) Stop(ctx context.Context, name string) error {
	return p.power(ctx, name, provision.ActionStop)
}

// Start queues the start of the stopped node named name
// (elastic.PowerSwitch).
func (p *Provisioner) Start(ctx context.Context, name string) error {
	return p.power(ctx, name, provision.ActionStart)
}

// RestartAgent queues a restart of the node named name
// (elastic.AgentRestarter, the daemon's Reconcile): a stop and a start
// through its provider's Stopper, so the machine, its disk, address and
// identity stay and its agent begins again. A provider that cannot stop
// fails the change (logged); the node is then replaced after
// boot_timeout.
func (p *Provisioner) RestartAgent(ctx context.Context, name string) error {
	return p.power(ctx, name, provision.ActionRestart)
}

func (p *Provisioner) power(ctx context.Context, name string, a provision.Action) error {
	p.enqueue(ctx, "", func(c *Cluster, taken map[string]bool) (*provision.Change, error) {
		for _, r := range c.State.Resources {
			if r.Kind == provision.KindInstance && manager.MemberID(r.Address) == name && !taken[r.Address] {
				stopped := r.Attrs["state"] == "stopped"
				if (a == provision.ActionStop && stopped) || (a == provision.ActionStart && !stopped) {
					return nil, nil // in that state already
				}
				return provision.PowerChange(r, a, "elastic"), nil
			}
		}
		return nil, nil // gone: nothing to stop or start
	})
	return nil
}

// PolicyPools are the template's pools as the elastic policy sees
// them, with what stopping a node costs where the pool's provider can
// stop machines (provision.Stopper).
func (c *Cluster) PolicyPools() []elastic.Pool {
	pools := elastic.PoolsOf(c.Config)
	byPath := c.ElasticPools()
	for i := range pools {
		pl := byPath[pools[i].Name]
		if pl == nil {
			continue
		}
		if sc, ok := c.Engine.PoolStopCost(pl); ok {
			pools[i].StartTime, pools[i].StoppedPrice = max(sc.StartTime, time.Second), sc.StoppedPrice
		}
	}
	return pools
}

// Wait waits until every queued change is applied (or has failed).
func (p *Provisioner) Wait() { p.wg.Wait() }

// enqueue queues a change; a background worker applies what is queued,
// batch by batch, through the engine under the state lock. Boots take a
// while and the daemon keeps deciding meanwhile (its journal counts the
// create as in flight). The batches outlive ctx's cancellation: a
// create in flight is finished, not abandoned.
func (p *Provisioner) enqueue(ctx context.Context, token string, build changeFunc) {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	p.queue = append(p.queue, queuedChange{build: build, token: token})
	if !p.running {
		p.running = true
		p.wg.Add(1)
		go p.drain(context.WithoutCancel(ctx))
	}
}

func (p *Provisioner) drain(ctx context.Context) {
	defer p.wg.Done()
	time.Sleep(BatchDelay)
	for {
		p.qmu.Lock()
		batch := p.queue
		p.queue = nil
		if len(batch) == 0 {
			p.running = false
			p.qmu.Unlock()
			return
		}
		p.qmu.Unlock()
		p.applyBatch(ctx, batch)
		p.qmu.Lock()
		for _, q := range batch {
			// From now on the state answers whether its machine exists.
			delete(p.queued, q.token)
		}
		p.qmu.Unlock()
	}
}

func (p *Provisioner) applyBatch(ctx context.Context, batch []queuedChange) {
	o := p.Options
	o.Operation, o.NoLock = "elastic", false
	if o.LockTimeout == 0 {
		o.LockTimeout = 5 * time.Minute
	}
	c, err := Open(ctx, o)
	if err != nil {
		p.log().Error("elastic changes: open the cluster", "err", err)
		return
	}
	defer c.Close()
	taken := map[string]bool{}
	var changes []*provision.Change
	for _, q := range batch {
		ch, err := q.build(c, taken)
		if err != nil {
			p.log().Error("elastic change", "err", err)
			continue
		}
		if ch != nil {
			taken[ch.Address] = true
			changes = append(changes, ch)
		}
	}
	if err := c.ApplyPool(ctx, changes); err != nil {
		p.log().Error("elastic changes", "err", err)
	}
}

// QueueSource reads the builtin scheduler's queue signals from the
// cluster's manager (elastic.QueueSource), and drains and resumes nodes
// (elastic.Drainer).
type QueueSource struct {
	Manager *manager.Client
}

// Observe reads /v1/queue: the demand waiting globally and per site,
// and every node with what it runs and how long it has been idle.
func (q *QueueSource) Observe(ctx context.Context) (elastic.QueueView, error) {
	var sig scheduler.Signals
	if err := q.Manager.Do(ctx, &manager.Call{Method: "GET", Path: "/v1/queue", Out: &sig, Retry: true}); err != nil {
		return elastic.QueueView{}, err
	}
	var v elastic.QueueView
	demand := func(site string, groups []scheduler.DemandGroup) {
		for _, g := range groups {
			pin := site
			if pin == "" {
				pin = g.Site
			}
			v.Queue = append(v.Queue, elastic.Demand{Count: g.Count, Site: pin, Since: g.Oldest, Labels: g.Resources.Labels,
				Resources: elastic.Resources{CPUs: g.Resources.CPUSlots(), Memory: g.Resources.MemoryMiB << 20, GPUs: g.Resources.GPUs}})
		}
	}
	demand("", sig.Waiting.Demand)
	for _, s := range sig.Sites {
		demand(s.Site, s.Demand)
		for _, n := range s.Nodes {
			qn := elastic.QueueNode{Name: n.ID, Up: !n.Lost, Running: n.Running,
				Used:     elastic.Resources{CPUs: n.UsedCPUs, Memory: n.UsedMiB << 20, GPUs: n.UsedGPUs},
				Capacity: elastic.Resources{CPUs: max(n.CPUs, 1), Memory: n.MemoryMiB << 20, GPUs: n.GPUs}}
			if n.Running == 0 && n.IdleFor > 0 {
				qn.Since = sig.Time.Add(-time.Duration(n.IdleFor * float64(time.Second)))
			}
			v.Nodes = append(v.Nodes, qn)
		}
	}
	return v, nil
}

// Drain asks the manager to give node no new work (elastic.Drainer);
// a scheduler that cannot (the builtin) is not an error.
func (q *QueueSource) Drain(ctx context.Context, node string) error { return q.drain(ctx, node, true) }

// Resume gives a drained node work again (elastic.Drainer).
func (q *QueueSource) Resume(ctx context.Context, node string) error {
	return q.drain(ctx, node, false)
}

func (q *QueueSource) drain(ctx context.Context, node string, on bool) error {
	err := q.Manager.Do(ctx, &manager.Call{Method: "POST", Path: "/v1/nodes/" + node + "/drain", In: map[string]bool{"drain": on}})
	if manager.StatusOf(err) == http.StatusNotImplemented {
		return nil
	}
	return err
}

var (
	_ elastic.Provisioner = (*Provisioner)(nil)
	_ elastic.QueueSource = (*QueueSource)(nil)
	_ elastic.Drainer     = (*QueueSource)(nil)
)
