package elastic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/templates"
)

var t0 = time.Date(2024, 5, 1, 15, 0, 0, 0, time.UTC)

func settings() templates.Elastic {
	return templates.Elastic{
		Interval: 5 * time.Second, IdleTime: 5 * time.Minute, ScaleUpWindow: 10 * time.Second,
		MaxBooting: 10, BootTimeout: 20 * time.Minute, MaxFailures: 3, HoldTime: 10 * time.Minute,
	}
}

// pools: a fixed on-prem pool, a cloud pool and a dearer second cloud.
func pools() []Pool {
	two := Resources{CPUs: 2, Memory: 4 << 30}
	return []Pool{
		{Name: "onprem.wn", Site: "onprem", Tier: 0, Min: 2, Max: 2, Node: two},
		{Name: "aws.burst", Site: "aws", Tier: 1, Min: 0, Max: 3, Price: 0.0464, Node: two},
		{Name: "os.burst", Site: "os", Tier: 1, Min: 0, Max: 4, Price: 0.08, Node: two},
		{Name: "os.gpu", Site: "os", Tier: 2, Min: 0, Max: 2, Price: 2, Node: Resources{CPUs: 8, GPUs: 1}, Labels: map[string]string{"gpu": "a100"}},
	}
}

// busyOnprem is the on-prem pool full: both slots of both nodes used.
func busyOnprem() []Node {
	return []Node{
		{Name: "wn-1", Pool: "onprem.wn", State: Busy, Since: t0.Add(-time.Hour), Joined: true, Running: 2, Used: Resources{CPUs: 2}},
		{Name: "wn-2", Pool: "onprem.wn", State: Busy, Since: t0.Add(-time.Hour), Joined: true, Running: 2, Used: Resources{CPUs: 2}},
	}
}

func jobs(n int, since time.Time) []Demand {
	return []Demand{{Count: n, Since: since}}
}

func node(name, pool string, st NodeState, since time.Duration) Node {
	n := Node{Name: name, Pool: pool, State: st, Since: t0.Add(-since), CreatedAt: t0.Add(-since), Joined: st == Idle || st == Busy || st == PoweringOff}
	if st == Busy {
		n.Running, n.Used = 1, Resources{CPUs: 1}
	}
	return n
}

// brief renders an action without its reason.
func brief(a Action) string {
	switch a := a.(type) {
	case ScaleUp:
		return fmt.Sprintf("up %s +%d", a.Pool, a.Count)
	case ScaleDown:
		if a.Failed {
			return "destroy-failed " + a.Node
		}
		return "down " + a.Node
	case CancelPowerOff:
		return "cancel " + a.Node
	case Replace:
		return "replace " + a.Node
	case Hold:
		return fmt.Sprintf("hold %s %s", a.Pool, a.Until.Sub(t0))
	case Reconcile:
		return "reconcile " + a.Node
	case Stop:
		return "stop " + a.Node
	case Start:
		return "start " + a.Node
	}
	return fmt.Sprintf("%T", a)
}

// canStop lets s's aws.burst pool stop nodes: a start takes a minute,
// a new node ready, and a stopped one costs stopped per hour.
func canStop(s *Snapshot, ready time.Duration, stopped float64) {
	for i := range s.Pools {
		if s.Pools[i].Name == "aws.burst" {
			s.Pools[i].StartTime, s.Pools[i].StoppedPrice, s.Pools[i].Ready = time.Minute, stopped, ready
		}
	}
}

func TestDecide(t *testing.T) {
	waited := t0.Add(-time.Minute)
	tests := []struct {
		name string
		edit func(s *Snapshot)
		want []string
	}{
		{
			name: "scale up when queued work does not fit",
			edit: func(s *Snapshot) { s.Queue = jobs(6, waited) },
			want: []string{"up aws.burst +3"},
		},
		{
			name: "a pool that can stop stops an idle node instead of powering it off",
			edit: func(s *Snapshot) {
				canStop(s, 25*time.Minute, 0.001)
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, 10*time.Minute))
			},
			want: []string{"stop aws-1"},
		},
		{
			name: "queued work starts a stopped node before it makes one",
			edit: func(s *Snapshot) {
				canStop(s, 25*time.Minute, 0.001)
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Stopped, time.Hour))
				s.Queue = jobs(4, waited)
			},
			want: []string{"start aws-1", "up aws.burst +1"},
		},
		{
			name: "a stopped node is kept while a new node would cost more than keeping it",
			edit: func(s *Snapshot) {
				canStop(s, 25*time.Minute, 0.001) // 24m less a start at 46x the stopped price: 18.6h
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Stopped, 18*time.Hour))
			},
		},
		{
			name: "a stopped node is destroyed past the stopped limit",
			edit: func(s *Snapshot) {
				canStop(s, 25*time.Minute, 0.001)
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Stopped, 19*time.Hour))
			},
			want: []string{"down aws-1"},
		},
		{
			name: "keep_idle starts a stopped node before it makes one",
			edit: func(s *Snapshot) {
				canStop(s, 25*time.Minute, 0.001)
				s.Settings.KeepIdle = 2
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Stopped, time.Hour))
			},
			want: []string{"start aws-1", "up aws.burst +1"},
		},
		{
			name: "a stopped node that costs nothing is kept",
			edit: func(s *Snapshot) {
				canStop(s, 25*time.Minute, 0)
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Stopped, 1000*time.Hour))
			},
		},
		{
			name: "wait for scale_up_window before scaling up",
			edit: func(s *Snapshot) { s.Queue = jobs(6, t0.Add(-5*time.Second)) },
		},
		{
			name: "batch: once the oldest has waited, newer work is counted too",
			edit: func(s *Snapshot) {
				s.Queue = append(jobs(2, waited), jobs(4, t0)...)
			},
			want: []string{"up aws.burst +3"},
		},
		{
			name: "work that fits free capacity starts no node",
			edit: func(s *Snapshot) {
				s.Nodes[1].Running, s.Nodes[1].Used, s.Nodes[1].State = 0, Resources{}, Idle
				s.Queue = jobs(2, waited)
			},
		},
		{
			name: "work that fits booting capacity starts no node",
			edit: func(s *Snapshot) {
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Booting, 5*time.Minute))
				s.Queue = jobs(2, waited)
			},
		},
		{
			name: "creates in flight count as booting capacity (no duplicate after restart)",
			edit: func(s *Snapshot) {
				s.InFlight = []Operation{{ID: "op-1", Kind: OpCreate, Pool: "aws.burst", Started: t0.Add(-time.Minute)}}
				s.Queue = jobs(4, waited)
			},
			want: []string{"up aws.burst +1"},
		},
		{
			name: "lower tier first",
			edit: func(s *Snapshot) {
				s.Pools = append(s.Pools, Pool{Name: "onprem.extra", Site: "onprem", Tier: 0, Min: 0, Max: 1, Price: 1, Node: Resources{CPUs: 2}})
				s.Queue = jobs(4, waited)
			},
			want: []string{"up onprem.extra +1", "up aws.burst +1"},
		},
		{
			name: "cheaper pool first within a tier, then the next",
			edit: func(s *Snapshot) { s.Queue = jobs(10, waited) },
			want: []string{"up aws.burst +3", "up os.burst +2"},
		},
		{
			name: "never beyond max",
			edit: func(s *Snapshot) {
				s.Pools = s.Pools[:2]
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Busy, time.Hour))
				s.Nodes[2].Running, s.Nodes[2].Used = 2, Resources{CPUs: 2}
				s.Queue = jobs(100, waited)
			},
			want: []string{"up aws.burst +2"},
		},
		{
			name: "max_booting caps nodes booting at once",
			edit: func(s *Snapshot) {
				s.Settings.MaxBooting = 2
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Booting, time.Minute))
				s.Queue = jobs(100, waited)
			},
			want: []string{"up aws.burst +1"},
		},
		{
			name: "labels choose the pool",
			edit: func(s *Snapshot) {
				s.Queue = []Demand{{Count: 1, Resources: Resources{CPUs: 4, GPUs: 1}, Labels: map[string]string{"gpu": "a100"}, Since: waited}}
			},
			want: []string{"up os.gpu +1"},
		},
		{
			name: "work pinned to a site grows that site",
			edit: func(s *Snapshot) { s.Queue = []Demand{{Count: 2, Site: "os", Since: waited}} },
			want: []string{"up os.burst +1"},
		},
		{
			name: "scale down a node idle for idle_time",
			edit: func(s *Snapshot) {
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, 6*time.Minute), node("aws-2", "aws.burst", Idle, 4*time.Minute))
			},
			want: []string{"down aws-1"},
		},
		{
			name: "never scale down a node running a job",
			edit: func(s *Snapshot) {
				n := node("aws-1", "aws.burst", Idle, time.Hour)
				n.Running, n.Used = 1, Resources{CPUs: 1} // queue lags: still idle state
				s.Nodes = append(s.Nodes, n, node("aws-2", "aws.burst", Busy, time.Hour))
			},
		},
		{
			name: "fixed pools and min are never scaled down",
			edit: func(s *Snapshot) {
				s.Pools[1].Min = 1
				s.Nodes = []Node{node("wn-1", "onprem.wn", Idle, time.Hour), node("wn-2", "onprem.wn", Idle, time.Hour),
					node("aws-1", "aws.burst", Idle, time.Hour), node("aws-2", "aws.burst", Idle, 2*time.Hour)}
			},
			want: []string{"down aws-2"},
		},
		{
			name: "keep_idle spare nodes are kept",
			edit: func(s *Snapshot) {
				s.Settings.KeepIdle = 1
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, time.Hour), node("aws-2", "aws.burst", Idle, time.Hour))
			},
			want: []string{"down aws-1"},
		},
		{
			name: "keep_idle starts a spare node",
			edit: func(s *Snapshot) { s.Settings.KeepIdle = 1 },
			want: []string{"up aws.burst +1"},
		},
		{
			name: "a pending power-off is cancelled when new work arrives",
			edit: func(s *Snapshot) {
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", PoweringOff, time.Minute), node("aws-2", "aws.burst", PoweringOff, time.Minute))
				s.Queue = jobs(2, t0) // new: no window for getting a node back
			},
			want: []string{"cancel aws-1"},
		},
		{
			name: "a node not joined within boot_timeout is replaced",
			edit: func(s *Snapshot) {
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Booting, 21*time.Minute))
				s.Queue = jobs(2, waited)
			},
			want: []string{"replace aws-1"},
		},
		{
			name: "a node that failed to boot is replaced",
			edit: func(s *Snapshot) {
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Failed, time.Minute))
			},
			want: []string{"replace aws-1"},
		},
		{
			name: "after max_failures the pool is held and its work goes to the next site",
			edit: func(s *Snapshot) {
				s.Pools[1].ConsecutiveFailures = 2
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Failed, time.Minute))
				s.Queue = jobs(2, waited)
			},
			want: []string{"destroy-failed aws-1", "hold aws.burst 10m0s", "up os.burst +1"},
		},
		{
			name: "a capacity error holds the pool and tries the next site at once",
			edit: func(s *Snapshot) {
				s.Pools[1].CapacityErrorAt = t0.Add(-time.Second)
				s.Queue = jobs(2, waited)
			},
			want: []string{"hold aws.burst 10m0s", "up os.burst +1"},
		},
		{
			name: "a held pool is skipped until its hold ends",
			edit: func(s *Snapshot) {
				s.Pools[1].HeldUntil = t0.Add(time.Minute)
				s.Queue = jobs(2, waited)
			},
			want: []string{"up os.burst +1"},
		},
		{
			name: "down in the queue but running in the cloud is reconciled, not power-cycled (vnode-5)",
			edit: func(s *Snapshot) {
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Down, 2*time.Minute))
				s.Queue = jobs(2, waited)
			},
			want: []string{"reconcile aws-1"},
		},
		{
			name: "a node being reconciled is left alone",
			edit: func(s *Snapshot) {
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Down, 2*time.Minute))
				s.InFlight = []Operation{{ID: "r", Kind: OpReconcile, Pool: "aws.burst", Node: "aws-1"}}
			},
		},
		{
			name: "down for longer than boot_timeout after reconciling is replaced",
			edit: func(s *Snapshot) {
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Down, 25*time.Minute))
			},
			want: []string{"replace aws-1"},
		},
		{
			name: "an elastic pool below min is grown",
			edit: func(s *Snapshot) {
				s.Pools[1].Min = 2
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, time.Minute))
			},
			want: []string{"up aws.burst +1"},
		},
		{
			// Fixed pools are sized by apply (up), not by the daemon.
			name: "a fixed pool below min is left to apply",
			edit: func(s *Snapshot) { s.Nodes = s.Nodes[:1] },
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Snapshot{Now: t0, Settings: settings(), Pools: pools(), Nodes: busyOnprem()}
			tt.edit(&s)
			acts := Decide(s)
			var got []string
			for _, a := range acts {
				got = append(got, brief(a))
				if a.Why() == "" {
					t.Errorf("%s has no reason", brief(a))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Decide:\n got %q\nwant %q\n%s", got, tt.want, render(acts))
			}
			checkInvariants(t, s, acts)
		})
	}
}

func render(acts []Action) string {
	var b strings.Builder
	for _, a := range acts {
		fmt.Fprintf(&b, "  %s\n", a)
	}
	return b.String()
}

// checkInvariants fails t when acts break a rule that must always hold:
// no pool beyond max, no busy node powered off, actions only on nodes
// and pools that exist.
func checkInvariants(t testing.TB, s Snapshot, acts []Action) {
	t.Helper()
	size := map[string]int{}
	max := map[string]int{}
	for _, p := range s.Pools {
		if _, ok := max[p.Name]; !ok {
			max[p.Name] = p.Max
		}
	}
	nodes := map[string]Node{}
	for _, n := range s.Nodes {
		size[n.Pool]++
		nodes[n.Name] = n
	}
	for _, op := range s.InFlight {
		if op.Kind == OpCreate {
			size[op.Pool]++
		}
	}
	before := maps2(size)
	for _, a := range acts {
		switch a := a.(type) {
		case ScaleUp:
			if a.Count <= 0 {
				t.Errorf("%s: count not positive", a)
			}
			if _, ok := max[a.Pool]; !ok {
				t.Errorf("%s: no such pool", a)
			}
			size[a.Pool] += a.Count
		case ScaleDown:
			n, ok := nodes[a.Node]
			switch {
			case !ok:
				t.Errorf("%s: no such node", a)
			case a.Failed && n.State != Failed && n.State != Booting && n.State != Down:
				t.Errorf("%s: node %s is not failed", a, n.State)
			case !a.Failed && (n.Running > 0 || (n.State != Idle && n.State != Stopped)):
				t.Errorf("%s: node is %s running %d jobs", a, n.State, n.Running)
			}
		case Stop:
			if n := nodes[a.Node]; n.State != Idle || n.Running > 0 {
				t.Errorf("%s: node is %s running %d jobs", a, n.State, n.Running)
			}
		case Start:
			if n := nodes[a.Node]; n.State != Stopped {
				t.Errorf("%s: node is %s", a, n.State)
			}
		case CancelPowerOff:
			if n := nodes[a.Node]; n.State != PoweringOff {
				t.Errorf("%s: node is %s", a, n.State)
			}
		case Replace:
			if n, ok := nodes[a.Node]; !ok || n.State == Idle || n.State == Busy || n.State == PoweringOff {
				t.Errorf("%s: node is %s", a, n.State)
			}
		case Reconcile:
			if n := nodes[a.Node]; n.State != Down {
				t.Errorf("%s: node is %s", a, n.State)
			}
		}
	}
	for p, n := range size {
		if m, ok := max[p]; ok && n > m && n > before[p] {
			t.Errorf("pool %s grows to %d nodes, max %d", p, n, m)
		}
	}
}

func maps2(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// FuzzDecide builds a snapshot from the fuzzer's bytes and checks that
// Decide does not panic and keeps its invariants.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte("\x05\x00\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0\xf0"))
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := snapshotFrom(data)
		acts := Decide(s)
		checkInvariants(t, s, acts)
	})
}

// snapshotFrom decodes bytes into a small but arbitrary snapshot.
func snapshotFrom(data []byte) Snapshot {
	i := 0
	next := func() int {
		if i >= len(data) {
			return 0
		}
		i++
		return int(data[i-1])
	}
	dur := func() time.Duration { return time.Duration(next()) * 15 * time.Second }
	s := Snapshot{Now: t0, Settings: templates.Elastic{
		IdleTime: dur(), ScaleUpWindow: dur(), MaxBooting: next() % 5, BootTimeout: dur(),
		MaxFailures: next() % 4, HoldTime: dur(), KeepIdle: next() % 3,
	}}
	np := 1 + next()%4
	for p := range np {
		mn := next() % 3
		s.Pools = append(s.Pools, Pool{
			Name: fmt.Sprintf("s%d.p", p%3), Site: fmt.Sprintf("s%d", p%3), Tier: next() % 3,
			Min: mn, Max: mn + next()%4, Price: float64(next()) / 10,
			Node:                Resources{CPUs: next() % 5, Memory: int64(next() % 3), GPUs: next() % 2},
			ConsecutiveFailures: next() % 4,
			HeldUntil:           t0.Add(time.Duration(next()%3-1) * time.Minute),
		})
		if next()%4 == 0 {
			s.Pools[p].CapacityErrorAt = t0
		}
	}
	nn := next() % 12
	for k := range nn {
		st := NodeState(next() % int(numStates+1))
		n := Node{Name: fmt.Sprintf("n%d", k), Pool: s.Pools[next()%np].Name, State: st,
			Since: t0.Add(-dur()), CreatedAt: t0.Add(-dur()), Joined: next()%2 == 0, Running: next() % 3}
		n.Used = Resources{CPUs: n.Running}
		s.Nodes = append(s.Nodes, n)
	}
	for range next() % 4 {
		s.InFlight = append(s.InFlight, Operation{ID: "op", Kind: OpKind(next() % 4), Pool: s.Pools[next()%np].Name, Node: fmt.Sprintf("n%d", next()%12)})
	}
	// Last, so the corpus's earlier bytes keep their meaning: pools that
	// can stop their nodes.
	for p := range s.Pools {
		if next()%3 == 0 {
			s.Pools[p].StartTime, s.Pools[p].StoppedPrice, s.Pools[p].Ready = dur(), float64(next())/100, dur()
		}
	}
	for range next() % 5 {
		d := Demand{Count: next() % 7, Resources: Resources{CPUs: next() % 4, Memory: int64(next() % 2), GPUs: next() % 2}, Since: t0.Add(-dur())}
		switch next() % 4 {
		case 1:
			d.Site = s.Pools[next()%np].Site
		case 2:
			d.Pool = s.Pools[next()%np].Name
		}
		s.Queue = append(s.Queue, d)
	}
	// The automatic policy's inputs come last, so older corpus entries
	// keep their meaning.
	if next()%2 == 1 {
		s.Settings.IdleAuto = true
		s.JobTime = dur() / 4
		for range next() % 4 {
			s.Gaps = append(s.Gaps, dur())
		}
		for i := range s.Pools {
			s.Pools[i].Ready = dur()
		}
	}
	return s
}

// BenchmarkDecide is one decision of the default (automatic) policy at
// 10,000 nodes, 100 pools and 100,000 queued jobs, with 32 gaps seen;
// half the pools can stop their nodes, and some of those are stopped.
func BenchmarkDecide(b *testing.B) {
	s := bigSnapshot(10_000, 100, 100_000)
	s.Settings.IdleAuto = true
	s.JobTime = 20 * time.Second
	for i := range 32 {
		s.Gaps = append(s.Gaps, time.Duration(60+i*37)*time.Second)
	}
	for i := range s.Pools {
		s.Pools[i].Ready = time.Duration(5+i%20) * time.Minute
		if i%2 == 0 { // half the pools can stop their nodes
			s.Pools[i].StartTime, s.Pools[i].StoppedPrice = time.Minute, s.Pools[i].Price/50
		}
	}
	// A third of their idle nodes are stopped.
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.State == Idle && i%3 == 0 && (i%len(s.Pools))%2 == 0 {
			n.State, n.Joined = Stopped, false
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Decide(s)
	}
}

// BenchmarkDecideFixed is BenchmarkDecide with a fixed idle_time (the
// policy before idle_time "auto"), for the ratio.
func BenchmarkDecideFixed(b *testing.B) {
	s := bigSnapshot(10_000, 100, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Decide(s)
	}
}

func bigSnapshot(nodes, npools, queued int) Snapshot {
	r := rand.New(rand.NewPCG(1, 2))
	s := Snapshot{Now: t0, Settings: settings()}
	s.Settings.MaxBooting = 0
	for p := range npools {
		s.Pools = append(s.Pools, Pool{
			Name: fmt.Sprintf("site%d.pool%d", p%20, p), Site: fmt.Sprintf("site%d", p%20), Tier: p % 3,
			Min: 0, Max: 2 * nodes / npools, Price: float64(r.IntN(100)) / 100,
			Node:   Resources{CPUs: 8, Memory: 32 << 30, GPUs: p % 2},
			Labels: map[string]string{"arch": []string{"x86_64", "arm64"}[p%2]},
		})
	}
	states := []NodeState{Idle, Busy, Busy, Busy, Booting, PoweringOff, Failed, Down}
	for n := range nodes {
		st := states[r.IntN(len(states))]
		nd := Node{Name: fmt.Sprintf("node-%d", n), Pool: s.Pools[n%npools].Name, State: st,
			Since: t0.Add(-time.Duration(r.IntN(3600)) * time.Second), CreatedAt: t0.Add(-time.Hour), Joined: st != Booting}
		if st == Busy {
			nd.Running = 1 + r.IntN(8)
			nd.Used = Resources{CPUs: nd.Running, Memory: int64(nd.Running) << 30}
		}
		s.Nodes = append(s.Nodes, nd)
	}
	for q := range queued {
		d := Demand{Resources: Resources{CPUs: 1 + r.IntN(4), Memory: int64(1+r.IntN(4)) << 30}, Since: t0.Add(-time.Duration(r.IntN(600)) * time.Second)}
		switch q % 10 {
		case 0:
			d.Site = fmt.Sprintf("site%d", r.IntN(20))
		case 1:
			d.Labels = map[string]string{"arch": "arm64"}
		}
		s.Queue = append(s.Queue, d)
	}
	return s
}

// TestDestroyedSlotReused: a failed node is destroyed and its pool slot
// is taken again by its replacement while the destroy is still in
// flight. The destroy covers the old machine only: the replacement
// counts as booting (max_booting holds), and a destroy recorded without
// the machine's creation time still covers any machine of that name.
func TestDestroyedSlotReused(t *testing.T) {
	cases := []struct {
		name        string
		nodeCreated time.Time
		want        []string
	}{
		{"replacement counted", t0.Add(-time.Minute), nil},
		{"old journal: name only", time.Time{}, []string{"up aws.burst +1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Snapshot{Now: t0, Settings: settings(), Pools: pools(), Queue: jobs(4, t0.Add(-time.Minute))}
			s.Settings.MaxBooting = 1
			s.Nodes = append(busyOnprem(), node("aws.burst[0]", "aws.burst", Booting, 5*time.Second))
			s.InFlight = []Operation{{ID: "d1", Kind: OpDestroy, Pool: "aws.burst", Node: "aws.burst[0]", NodeCreated: c.nodeCreated, Started: t0.Add(-10 * time.Second)}}
			var got []string
			for _, a := range Decide(s) {
				got = append(got, brief(a))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("actions = %v, want %v", got, c.want)
			}
		})
	}
}
