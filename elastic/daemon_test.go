package elastic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hvctl/hvctl/provision"
)

// fakeCloud is an idempotent cloud: Create with a known token makes
// nothing. hidden makes the cloud machines invisible to Machines for a while
// (eventual consistency); fail makes Create fail after doing nothing.
type fakeCloud struct {
	machines map[string]*Machine // by token
	creates  int
	hidden   bool
	fail     error
	capacity map[string]int // most machines per pool
}

func (c *fakeCloud) Machines(context.Context) ([]Machine, error) {
	var out []Machine
	for _, m := range c.machines {
		if c.hidden && m.Pool != "onprem.wn" {
			continue
		}
		out = append(out, *m)
	}
	return out, nil
}

func (c *fakeCloud) Create(_ context.Context, pool, token string) error {
	c.creates++
	if c.fail != nil {
		return c.fail
	}
	if _, ok := c.machines[token]; ok {
		return nil
	}
	n := 0
	for _, m := range c.machines {
		if m.Pool == pool {
			n++
		}
	}
	if limit, ok := c.capacity[pool]; ok && n >= limit {
		return &provision.CapacityError{Provider: "fake", Detail: "full"}
	}
	c.machines[token] = &Machine{Name: fmt.Sprintf("%s-%s", pool, token), Pool: pool, State: MachinePending, CreatedAt: t0, Token: token}
	return nil
}

func (c *fakeCloud) Destroy(_ context.Context, name string) error {
	for k, m := range c.machines {
		if m.Name == name {
			delete(c.machines, k)
		}
	}
	return nil
}

type fakeQueue struct{ view QueueView }

func (q *fakeQueue) Observe(context.Context) (QueueView, error) { return q.view, nil }

// newCloud is a cloud with the two on-prem workers running.
func newCloud() *fakeCloud {
	c := &fakeCloud{machines: map[string]*Machine{}}
	for _, n := range []string{"wn-1", "wn-2"} {
		c.machines[n] = &Machine{Name: n, Pool: "onprem.wn", State: MachineRunning, Token: n}
	}
	return c
}

func newDaemon(t *testing.T, dir string, cloud *fakeCloud, q *fakeQueue, now *time.Time) *Daemon {
	return &Daemon{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Pools: pools()[:2], Settings: settings(), Queue: q, Cloud: cloud,
		Journal: FileJournal{Path: filepath.Join(dir, "elastic.json")}, Now: func() time.Time { return *now }}
}

func TestDaemonRestartCreatesNoDuplicates(t *testing.T) {
	tests := []struct {
		name  string
		crash func(c *fakeCloud) // how the first daemon's create goes
	}{
		{"machine made but not yet listed", func(c *fakeCloud) { c.hidden = true }},
		{"killed before the cloud got the create", func(c *fakeCloud) { c.fail = context.Canceled }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			now := t0
			cloud := newCloud()
			q := &fakeQueue{view: QueueView{Queue: jobs(6, t0.Add(-time.Minute)), Nodes: []QueueNode{
				{Name: "wn-1", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
				{Name: "wn-2", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
			}}}
			tt.crash(cloud)
			d := newDaemon(t, dir, cloud, q, &now)
			d.Step(context.Background()) // asks for 3; "crashes"
			cloud.hidden, cloud.fail = false, nil

			for i := range 3 { // a new daemon, then more steps
				now = now.Add(5 * time.Second)
				if i == 0 {
					d = newDaemon(t, dir, cloud, q, &now)
				}
				if err := d.Step(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(cloud.machines) - 2; n != 3 {
				t.Errorf("%d machines after restart, want 3 (the queue needs 3)", n)
			}
		})
	}
}

func TestDaemonCapacityErrorFailsOver(t *testing.T) {
	dir := t.TempDir()
	now := t0
	cloud := newCloud()
	cloud.capacity = map[string]int{"aws.burst": 1}
	q := &fakeQueue{view: QueueView{Queue: jobs(4, t0.Add(-time.Minute)), Nodes: []QueueNode{
		{Name: "wn-1", Up: true, Running: 2, Used: Resources{CPUs: 2}},
		{Name: "wn-2", Up: true, Running: 2, Used: Resources{CPUs: 2}},
	}}}
	d := newDaemon(t, dir, cloud, q, &now)
	d.Pools = append(d.Pools, pools()[2])
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	d.Metrics = m
	var ce *provision.CapacityError
	if err := d.Step(context.Background()); !errors.As(err, &ce) {
		t.Fatalf("step: %v, want the capacity error", err)
	}
	now = now.Add(5 * time.Second)
	acts, err := d.step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range acts {
		got = append(got, brief(a))
	}
	if len(got) < 2 || got[0] != "hold aws.burst 10m5s" || got[1] != "up os.burst +1" {
		t.Errorf("after a capacity error: %q, want a hold then the next site", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	holds := -1.0
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			if mf.GetName() == "hvctl_elastic_actions_total" && len(mt.GetLabel()) == 1 && mt.GetLabel()[0].GetValue() == "hold" {
				holds = mt.GetCounter().GetValue()
			}
		}
	}
	if holds != 1 {
		t.Errorf("hvctl_elastic_actions_total{kind=\"hold\"} = %v, want 1", holds)
	}
}

func TestDaemonMerge(t *testing.T) {
	d := &Daemon{since: map[string]nodeSeen{}, state: JournalState{PoweringOff: map[string]time.Time{"c": t0}}}
	machines := []Machine{
		{Name: "a", Pool: "p", State: MachinePending},
		{Name: "b", Pool: "p", State: MachineRunning},
		{Name: "c", Pool: "p", State: MachineRunning},
		{Name: "d", Pool: "p", State: MachineRunning},
		{Name: "e", Pool: "p", State: MachineFailed},
		{Name: "f", Pool: "p", State: MachineRunning},
	}
	q := []QueueNode{{Name: "b", Up: true, Running: 1}, {Name: "c", Up: true}, {Name: "d", Up: false}, {Name: "onprem", Up: true}}
	want := map[string]NodeState{"a": Booting, "b": Busy, "c": PoweringOff, "d": Down, "e": Failed, "f": Booting, "onprem": Idle}
	for _, n := range d.merge(t0, machines, q) {
		if want[n.Name] != n.State {
			t.Errorf("%s: %s, want %s", n.Name, n.State, want[n.Name])
		}
		delete(want, n.Name)
	}
	if len(want) > 0 {
		t.Errorf("missing %v", want)
	}
}

// TestLearner: what the daemon learns between steps for the automatic
// policy: a gap when the queue fills again; the mean job time from the
// drop in outstanding jobs (jobs replaced between steps show no drop on
// their node) and from drops on nodes; a node's ready time as create →
// join plus its setup (its first jobs' excess over the mean job time).
func TestLearner(t *testing.T) {
	var l learner
	var h History
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	c1 := Node{Name: "c1", Pool: "aws.burst", CreatedAt: at(0)}
	steps := []struct {
		t, queued, op1, c1 int
		joined             bool
	}{
		{0, 8, 2, 0, false},  // outstanding 10; c1 boots
		{10, 6, 2, 0, false}, // 2 ended, replaced: 20 job-s / 2 = 10 s
		{20, 2, 2, 2, true},  // 2 ended: 20 job-s / 2 = 10 s; c1 joins busy
		{30, 0, 2, 2, true},  // 2 ended: 40 job-s / 2 = 20 s; queue quiet
		{40, 0, 0, 0, true},  // 4 ended: 40 job-s / 4 = 10 s; c1's first jobs ran 20 s
		{60, 5, 0, 0, true},  // new work: a gap of 30 s; arrivals, not counted
	}
	for _, st := range steps {
		v := QueueView{Nodes: []QueueNode{{Name: "op1", Up: true, Running: st.op1}}}
		if st.queued > 0 {
			v.Queue = []Demand{{Count: st.queued, Since: at(st.t)}}
		}
		n := c1
		if st.joined {
			n.Joined, n.Running = true, st.c1
			v.Nodes = append(v.Nodes, QueueNode{Name: "c1", Up: true, Running: st.c1})
		}
		l.observe(&h, at(st.t), v, []Node{n})
	}
	if got := h.Queue.Gaps; len(got) != 1 || got[0] != 30*time.Second {
		t.Errorf("gaps %v, want [30s]", got)
	}
	// 10 jobs: 4 × 10 s, 2 × 20 s, 4 × 10 s = 12 s.
	near := func(a, b time.Duration) bool { return (a - b).Abs() < time.Millisecond }
	if h.Queue.Jobs != 10 || !near(h.Queue.JobTime, 12*time.Second) {
		t.Errorf("job time %s over %d jobs, want 12s over 10", h.Queue.JobTime, h.Queue.Jobs)
	}
	// Joined 20 s after its create request; its first jobs ran 20 s
	// against a mean of 12 s: a setup of 8 s.
	if p := h.Pools["aws.burst"]; p == nil || p.Readies != 1 || !near(p.Ready, 28*time.Second) {
		t.Errorf("ready %+v, want 28s over 1 node", p)
	}
}
