package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/templates"
)

// queueSource reads the builtin scheduler's queue signals from the
// cluster manager (elastic.QueueSource).
type queueSource struct {
	a  *App
	mc *managerClient
}

func (q *queueSource) Observe(ctx context.Context) (elastic.QueueView, error) {
	var sig scheduler.Signals
	if _, err := q.mc.send(q.a, "GET", "/v1/queue", nil, &sig); err != nil {
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
func (q *queueSource) Drain(ctx context.Context, node string) error { return q.drain(node, true) }

// Resume gives a drained node work again (elastic.Drainer).
func (q *queueSource) Resume(ctx context.Context, node string) error { return q.drain(node, false) }

func (q *queueSource) drain(node string, on bool) error {
	code, err := q.mc.send(q.a, "POST", "/v1/nodes/"+node+"/drain", strings.NewReader(fmt.Sprintf(`{"drain": %v}`, on)), nil)
	if code == http.StatusNotImplemented {
		return nil
	}
	return err
}

// engineProvisioner creates and destroys elastic pool nodes through the
// provision engine, under the state lock, recording the daemon's token on
// each node so a retried create finds it (elastic.Provisioner).
type engineProvisioner struct {
	a    *App
	tmpl string
	o    opFlags
	mc   *managerClient
	wg   sync.WaitGroup

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

type queuedChange struct {
	build changeFunc
	token string // a create's token; "" for a destroy
}

// changeFunc builds one change against the locked state; taken holds the
// addresses already changed in the same batch.
type changeFunc func(s *session, taken map[string]bool) (*provision.Change, error)

func (p *engineProvisioner) pools(cfg *templates.Config) map[string]*templates.Pool {
	out := map[string]*templates.Pool{}
	for _, s := range cfg.Cluster.AllSites() {
		for _, pl := range s.Pools {
			if pl.Elastic() {
				out[pl.Path()] = pl
			}
		}
	}
	return out
}

func (p *engineProvisioner) Machines(ctx context.Context) ([]elastic.Machine, error) {
	p.storeOnce.Do(func() { p.store, p.storeErr = p.a.readStore(&p.o.tmplFlags, p.tmpl) })
	if p.storeErr != nil {
		return nil, p.storeErr
	}
	store := p.store
	p.qmu.Lock()
	ours := p.running
	p.qmu.Unlock()
	if h := store.LockInfoHint(); h != nil && !ours && h.PID != os.Getpid() {
		return nil, fmt.Errorf("%w: %s (pid %d) holds the state lock", elastic.ErrBusy, h.Operation, h.PID)
	}
	st, err := store.Load()
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
		switch r.Status {
		case provision.StatusReady:
			m.State = elastic.MachineRunning
		case provision.StatusTainted:
			m.State = elastic.MachineFailed
		default:
			m.State = elastic.MachinePending
		}
		out = append(out, m)
	}
	return out, nil
}

// apply queues a change; a background worker applies what is queued,
// batch by batch, through the engine under the state lock. Boots take a
// while and the daemon keeps deciding meanwhile (its journal counts the
// create as in flight).
func (p *engineProvisioner) apply(token string, build changeFunc) {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	p.queue = append(p.queue, queuedChange{build: build, token: token})
	if !p.running {
		p.running = true
		p.wg.Add(1)
		go p.drain()
	}
}

func (p *engineProvisioner) drain() {
	defer p.wg.Done()
	// The daemon issues a step's actions one after another: let them
	// gather, so a scale-up of n boots n nodes in one apply.
	time.Sleep(300 * time.Millisecond)
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
		p.applyBatch(batch)
		var tokens []string
		for _, q := range batch {
			tokens = append(tokens, q.token)
		}
		p.forget(tokens)
	}
}

func (p *engineProvisioner) applyBatch(batch []queuedChange) {
	o := p.o
	o.lockTimeout = 5 * time.Minute
	quiet := &App{Stdin: p.a.Stdin, Stdout: p.a.Stderr, Stderr: p.a.Stderr, Environ: p.a.Environ, Ctx: p.a.Ctx}
	s, ok := quiet.open(p.tmpl, &o, "elastic")
	if !ok {
		return
	}
	defer s.close()
	taken := map[string]bool{}
	var changes []*provision.Change
	for _, q := range batch {
		c, err := q.build(s, taken)
		if err != nil {
			slog.Error("elastic change", "err", err)
			continue
		}
		if c != nil {
			taken[c.Address] = true
			changes = append(changes, c)
		}
	}
	if len(changes) == 0 {
		return
	}
	if err := s.bootstrap(s.st); err != nil {
		slog.Error("elastic change", "err", err)
		return
	}
	plan := s.eng.PoolPlan(s.st, changes)
	s.eng.UI = &provision.TextUI{R: &provision.Renderer{W: p.a.Stderr}}
	if res := s.eng.Apply(context.WithoutCancel(p.a.Ctx), s.st, plan); res.Err() != nil {
		slog.Error("elastic changes", "err", res.Err())
	}
}

// forget drops the tokens of an applied batch: from now on the state
// answers whether their machines exist.
func (p *engineProvisioner) forget(tokens []string) {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	for _, t := range tokens {
		delete(p.queued, t)
	}
}

func (p *engineProvisioner) Create(ctx context.Context, pool, token string) error {
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
	p.apply(token, func(s *session, taken map[string]bool) (*provision.Change, error) {
		pl := p.pools(s.cfg)[pool]
		if pl == nil {
			return nil, fmt.Errorf("no elastic pool %s in the template", pool)
		}
		used := map[int]bool{}
		for _, r := range s.st.Resources {
			if t, _ := r.Attrs["elastic_token"].(string); t == token {
				return nil, nil // made already: the create was retried
			}
			if i, ok := provision.PoolIndex(provision.PoolPrefix(pl), r.Address); ok {
				used[i] = true
			}
		}
		idx := -1
		for i := 0; i < pl.Max; i++ {
			if !used[i] && !taken[provision.PoolNodeAddress(pl, i)] {
				idx = i
				break
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("pool %s is at its max of %d", pool, pl.Max)
		}
		return s.eng.PoolCreate(s.st, pl, idx, provision.Attrs{"elastic_token": token})
	})
	return nil
}

func (p *engineProvisioner) Destroy(ctx context.Context, name string) error {
	p.apply("", func(s *session, taken map[string]bool) (*provision.Change, error) {
		for _, r := range s.st.Resources {
			if r.Kind == provision.KindInstance && manager.MemberID(r.Address) == name && !taken[r.Address] {
				if p.mc != nil {
					p.mc.send(p.a, "DELETE", "/v1/nodes/"+name, nil, nil)
				}
				return provision.DeleteChange(r), nil
			}
		}
		return nil, nil // gone already
	})
	return nil
}

func runElasticRun(a *App, args []string) int {
	c := findCommand("elastic").sub("run")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optParallelism)
	metrics := fs.String("metrics", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9108)")
	steps := fs.Int("steps", 0, "stop after this many decisions (0 = run until interrupted)")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	tmpl := templatePath(pos)
	o.lock = false
	s, mc, ok := a.runtimeSession(tmpl, &o)
	if !ok {
		return exitError
	}
	cfg, store := s.cfg, s.store
	s.close()
	pools := elastic.PoolsOf(cfg)
	elasticPools := 0
	for _, p := range pools {
		if p.Min < p.Max {
			elasticPools++
		}
	}
	if elasticPools == 0 {
		return a.fail("No elastic pools", "The template has no pool with min < max: there is nothing for the daemon to size.")
	}
	// One daemon per cluster: the hub's manager starts one where it can
	// (provision.HostLocal), and people start them by hand.
	dl, err := (&provision.Store{Path: filepath.Join(store.Dir(), "elastic")}).Lock(a.Ctx, "elastic run", 0)
	if err != nil {
		var le *provision.LockError
		if errors.As(err, &le) && le.Holder != nil {
			return a.fail("The elastic daemon already runs",
				fmt.Sprintf("Process %d (%s, since %s) runs the elastic daemon of cluster %s; one runs per cluster. "+
					"Stop it first (kill %d), or leave it running. When the cluster's manager runs on this host it starts one itself.",
					le.Holder.PID, le.Holder.Who, le.Holder.Created.Format(time.RFC3339), cfg.Cluster.Name, le.Holder.PID))
		}
		return a.failErr(err)
	}
	defer dl.Unlock()
	logger := a.Log
	prov := &engineProvisioner{a: a, tmpl: tmpl, o: o, mc: mc}
	// Under the state's encryption the journal and the history are
	// sealed with the state's passphrase.
	journal := elastic.FileJournal{Path: filepath.Join(store.Dir(), "elastic-journal.json"), Sealer: store.Sealer}
	if _, err := journal.Load(); err != nil {
		return a.fail("Unreadable elastic journal", err.Error()+". The daemon did not start and changed nothing.")
	}
	d := &elastic.Daemon{Pools: pools, Settings: cfg.Cluster.Elastic, Queue: &queueSource{a: a, mc: mc}, Cloud: prov,
		Journal: journal, Log: logger,
		History: &elastic.FileHistory{Path: filepath.Join(store.Dir(), elastic.HistoryFile), Sealer: store.Sealer}, Cluster: cfg.Cluster.Name}
	if *metrics != "" {
		reg := prometheus.NewRegistry()
		m, err := elastic.NewMetrics(reg)
		if err != nil {
			return a.failErr(err)
		}
		d.Metrics = m
		srv := manager.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), manager.Timeouts{})
		srv.Addr = *metrics
		go srv.ListenAndServe()
		defer srv.Close()
	}
	logger.Info("elastic daemon started", "cluster", cfg.Cluster.Name, "pools", elasticPools, "interval", cfg.Cluster.Elastic.Interval.String())
	iv := cfg.Cluster.Elastic.Interval
	for i := 0; *steps == 0 || i < *steps; i++ {
		if err := d.Step(a.Ctx); err != nil && a.Ctx.Err() == nil {
			logger.Error("elastic step", "err", err)
		}
		select {
		case <-a.Ctx.Done():
			i = -2
		case <-time.After(iv):
		}
		if i == -2 {
			break
		}
	}
	prov.wg.Wait()
	return exitOK
}
