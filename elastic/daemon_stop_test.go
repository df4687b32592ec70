package elastic

import (
	"context"
	"testing"
	"time"
)

// powerCloud is a fakeCloud that can stop and start machines; lost
// makes the next Stop or Start do nothing (the daemon died before the
// provisioner applied it).
type powerCloud struct {
	*fakeCloud
	stops, starts int
	lost          bool
}

func (c *powerCloud) set(name string, st MachineState) {
	for _, m := range c.machines {
		if m.Name == name {
			m.State = st
		}
	}
}

func (c *powerCloud) Stop(_ context.Context, name string) error {
	c.stops++
	if c.lost {
		c.lost = false
		return nil
	}
	c.set(name, MachineStopped)
	return nil
}

func (c *powerCloud) Start(_ context.Context, name string) error {
	c.starts++
	if c.lost {
		c.lost = false
		return nil
	}
	c.set(name, MachineRunning)
	return nil
}

type drainQueue struct {
	fakeQueue
	drained map[string]bool
}

func (q *drainQueue) Drain(_ context.Context, n string) error  { q.drained[n] = true; return nil }
func (q *drainQueue) Resume(_ context.Context, n string) error { delete(q.drained, n); return nil }

// TestDaemonStopStart: an idle cloud node of a pool that can stop is
// drained, then stopped (not destroyed); a stop the daemon asked for
// but that never happened (a crash) is asked again after a restart; a
// stopped node is started again, undrained, for queued work, and shows
// as booting until it runs; a stopped node kept past the stopped limit
// is destroyed.
func TestDaemonStopStart(t *testing.T) {
	dir := t.TempDir()
	now := t0
	cloud := &powerCloud{fakeCloud: newCloud()}
	cloud.machines["b1"] = &Machine{Name: "b1", Pool: "aws.burst", State: MachineRunning, CreatedAt: t0.Add(-time.Hour), Token: "b1"}
	idle := []QueueNode{
		{Name: "wn-1", Up: true, Capacity: Resources{CPUs: 2}},
		{Name: "wn-2", Up: true, Capacity: Resources{CPUs: 2}},
		{Name: "b1", Up: true, Capacity: Resources{CPUs: 2}, Since: t0.Add(-10 * time.Minute)},
	}
	q := &drainQueue{fakeQueue: fakeQueue{view: QueueView{Nodes: idle}}, drained: map[string]bool{}}
	newD := func() *Daemon {
		d := newDaemon(t, dir, cloud.fakeCloud, &q.fakeQueue, &now)
		d.Cloud, d.Queue = cloud, q
		d.Pools[1].StartTime, d.Pools[1].StoppedPrice = time.Minute, 0.001 // aws.burst
		return d
	}
	d := newD()
	step := stepper(t, &d, &now, Action.String)
	has := func(acts []string, prefix string) bool {
		for _, a := range acts {
			if len(a) >= len(prefix) && a[:len(prefix)] == prefix {
				return true
			}
		}
		return false
	}

	if acts := step(); !has(acts, "stop b1") || !q.drained["b1"] || cloud.stops != 0 {
		t.Fatalf("idle 10m: %q, drained %v, %d stops; want a Stop that drains first", acts, q.drained, cloud.stops)
	}
	cloud.lost = true // the daemon dies before the stop is applied
	if acts := step(); !has(acts, "stop b1: drained") || cloud.stops != 1 {
		t.Fatalf("next step: %q, %d stops; want the stop asked for", acts, cloud.stops)
	}
	d = newD()
	step()
	if cloud.stops != 2 || cloud.machines["b1"].State != MachineStopped {
		t.Fatalf("after a restart: %d stops, b1 %s; want the stop asked again and done", cloud.stops, cloud.machines["b1"].State)
	}
	if len(cloud.machines) != 3 {
		t.Fatalf("%d machines, want 3: a stop destroys nothing", len(cloud.machines))
	}
	// The queue shows a stopped node down; work comes.
	q.view = QueueView{Queue: jobs(6, now.Add(-time.Minute)), Nodes: []QueueNode{
		{Name: "wn-1", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
		{Name: "wn-2", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
		{Name: "b1", Up: false},
	}}
	cloud.lost = true
	acts := step()
	if !has(acts, "start b1") || q.drained["b1"] || cloud.starts != 1 {
		t.Fatalf("queued work: %q, drained %v, %d starts; want b1 started and undrained", acts, q.drained, cloud.starts)
	}
	for _, n := range d.merge(now, mustMachines(t, cloud), q.view.Nodes) {
		if n.Name == "b1" && n.State != Booting {
			t.Errorf("b1 while starting: %s, want booting", n.State)
		}
	}
	step()
	if cloud.starts != 2 || cloud.machines["b1"].State != MachineRunning {
		t.Fatalf("start lost: %d starts, b1 %s; want it asked again", cloud.starts, cloud.machines["b1"].State)
	}
	step()
	if cloud.starts != 2 {
		t.Errorf("%d starts once running, want 2", cloud.starts)
	}
	// It runs work again: the pool's start time is learnt, from the
	// first request (three steps, 15 s, before), and replaces the
	// provider's estimate in the next snapshot.
	q.view.Nodes[2] = QueueNode{Name: "b1", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}}
	step()
	if ph := d.state.History.Pools["aws.burst"]; ph == nil || ph.Starts != 1 || ph.Start != 15*time.Second {
		t.Errorf("pool history %+v, want one start of 15s", ph)
	}
	pools := append([]Pool(nil), d.Pools...)
	d.state.History.Fill(pools)
	if pools[1].StartTime != 15*time.Second {
		t.Errorf("policy start time %s, want the observed 15s", pools[1].StartTime)
	}

	// Stopped for long: destroyed, without a drain to wait for.
	cloud.set("b1", MachineStopped)
	q.view = QueueView{Nodes: idle[:2]}
	for range 3 {
		step()
	}
	now = now.Add(30 * 24 * time.Hour)
	step()
	if _, ok := cloud.machines["b1"]; ok {
		t.Errorf("b1 stopped for 30 days still exists; want it destroyed")
	}
}

func mustMachines(t *testing.T, c Provisioner) []Machine {
	t.Helper()
	ms, err := c.Machines(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// restartCloud is a powerCloud that restarts agents (AgentRestarter).
type restartCloud struct {
	*powerCloud
	restarts int
}

func (c *restartCloud) RestartAgent(context.Context, string) error { c.restarts++; return nil }

// TestDaemonReconcile: a node the queue shows down while the cloud shows
// it running has its agent restarted once, not once a step, while it
// comes back; the reconcile ends when the queue shows it up, and a node
// still down after boot_timeout is replaced.
func TestDaemonReconcile(t *testing.T) {
	now := t0
	cloud := &restartCloud{powerCloud: &powerCloud{fakeCloud: newCloud()}}
	cloud.machines["b1"] = &Machine{Name: "b1", Pool: "aws.burst", State: MachineRunning, CreatedAt: t0.Add(-time.Hour), Token: "b1"}
	busy := []QueueNode{
		{Name: "wn-1", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
		{Name: "wn-2", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
	}
	q := &fakeQueue{view: QueueView{Nodes: append(busy, QueueNode{Name: "b1", Up: false})}}
	d := newDaemon(t, t.TempDir(), cloud.fakeCloud, q, &now)
	d.Cloud = cloud
	step := stepper(t, &d, &now, brief)
	if acts := step(); len(acts) != 1 || acts[0] != "reconcile b1" || cloud.restarts != 1 {
		t.Fatalf("down: %q, %d restarts; want one reconcile", acts, cloud.restarts)
	}
	for range 3 {
		step()
	}
	if cloud.restarts != 1 {
		t.Errorf("%d restarts while it comes back, want 1", cloud.restarts)
	}
	q.view.Nodes[2] = QueueNode{Name: "b1", Up: true, Capacity: Resources{CPUs: 2}}
	step()
	if len(d.state.InFlight) != 0 {
		t.Errorf("in flight once b1 is up: %+v, want nothing", d.state.InFlight)
	}
	// Down again, and it stays down past boot_timeout: replaced.
	q.view.Nodes[2] = QueueNode{Name: "b1", Up: false}
	step()
	if cloud.restarts != 2 {
		t.Fatalf("%d restarts, want 2", cloud.restarts)
	}
	now = now.Add(d.Settings.BootTimeout)
	acts := step()
	replaced := false
	for _, a := range acts {
		replaced = replaced || a == "replace b1"
	}
	if !replaced || cloud.restarts != 2 {
		t.Errorf("down past boot_timeout: %q, %d restarts; want it replaced, not restarted again", acts, cloud.restarts)
	}
}

// stepper returns a step of *d five seconds after the last, failing t
// on an error, that answers the step's actions rendered by show (*d may
// be replaced between steps: a restart).
func stepper(t *testing.T, d **Daemon, now *time.Time, show func(Action) string) func() []string {
	return func() []string {
		t.Helper()
		*now = now.Add(5 * time.Second)
		acts, err := (*d).step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range acts {
			out = append(out, show(a))
		}
		return out
	}
}
