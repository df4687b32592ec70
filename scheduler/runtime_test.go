package scheduler

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// cluster is two sites with in-process managers; agents are driven by
// the test (fake agents: they "run" a job by reporting it done).
func cluster(t testing.TB, cacheBytes int64) (*Global, map[string]*Local, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	g := NewGlobal([]SiteInfo{{Name: "onprem", Tier: 0}, {Name: "cloud", Tier: 1}})
	g.Clock = clk.Now
	locals := map[string]*Local{}
	for _, s := range []string{"onprem", "cloud"} {
		l := NewLocal(s, cacheBytes)
		l.Clock, l.GlobalSite, l.NodeCache = clk.Now, "onprem", cacheBytes
		l.DatasetSize = func(string) int64 { return 1 << 20 }
		locals[s] = l
		g.SetLink(s, LocalLink{l})
	}
	return g, locals, clk
}

// runAll drives fake agents until no work is left: each poll's work is
// reported done with output "out:<id>".
func runAll(t testing.TB, g *Global, locals map[string]*Local, nodes map[string][]Node) int {
	ran := 0
	for round := 0; round < 10000; round++ {
		g.Sync()
		any := false
		for site, ns := range nodes {
			for _, n := range ns {
				for _, w := range locals[site].Poll(n, 0) {
					any = true
					ran++
					if err := locals[site].Record(n.ID, Report{JobID: w.Job.ID, Attempt: w.Attempt, State: Done, Output: "out:" + w.Job.ID}); err != nil {
						t.Fatalf("record: %v", err)
					}
				}
			}
		}
		if !any && len(g.List(Queued))+len(g.List(Running))+len(g.List(Assigned)) == 0 {
			break
		}
	}
	g.Sync()
	return ran
}

func TestTwoHundredJobsTwoSites(t *testing.T) {
	g, locals, _ := cluster(t, 0)
	nodes := map[string][]Node{
		"onprem": {{ID: "onprem.wn[0]", CPUs: 2}, {ID: "onprem.wn[1]", CPUs: 2}},
		"cloud":  {{ID: "cloud.w[0]", CPUs: 2}},
	}
	// Register nodes so routing sees capacity.
	for site, ns := range nodes {
		for _, n := range ns {
			locals[site].Poll(n, 0)
		}
	}
	g.Sync()
	for i := 0; i < 4; i++ {
		if _, err := g.Submit(&Spec{Command: []string{"echo"}, Count: 50}); err != nil {
			t.Fatal(err)
		}
	}
	ran := runAll(t, g, locals, nodes)
	sites := map[string]int{}
	for _, j := range g.List("") {
		if j.State != Done {
			t.Fatalf("job %s is %s", j.ID, j.State)
		}
		out, _ := g.Output(j.ID)
		if string(out) != "out:"+j.ID {
			t.Errorf("job %s output %q", j.ID, out)
		}
		sites[j.Site]++
	}
	if ran != 200 || len(g.List(Done)) != 200 {
		t.Errorf("ran %d, done %d, want 200", ran, len(g.List(Done)))
	}
	if sites["onprem"] == 0 || sites["cloud"] == 0 {
		t.Errorf("jobs per site = %v, want both sites used", sites)
	}
}

func TestNodeLostRunsElsewhereExactlyOnce(t *testing.T) {
	g, locals, clk := cluster(t, 0)
	l := locals["onprem"]
	a, b := Node{ID: "a", CPUs: 1}, Node{ID: "b", CPUs: 1}
	l.Poll(a, 0)
	g.Sync()
	jobs, err := g.Submit(&Spec{Command: []string{"x"}})
	if err != nil || jobs[0].Site != "onprem" {
		t.Fatalf("submit: %v %+v", err, jobs[0])
	}
	w := l.Poll(a, 0)
	if len(w) != 1 {
		t.Fatalf("a got %d jobs", len(w))
	}
	// a dies mid-job; b comes up.
	l.Poll(b, 0)
	clk.Add(DefaultLossAfter + time.Second)
	l.Poll(b, 0) // b is seen; a is silent
	if lost := l.Sweep(); len(lost) != 1 || lost[0] != "a" {
		t.Fatalf("lost = %v", lost)
	}
	w2 := l.Poll(b, 0)
	if len(w2) != 1 || w2[0].Attempt != 2 {
		t.Fatalf("b got %+v", w2)
	}
	// a's late report is ignored: the job completes once, from b.
	if err := l.Record("a", Report{JobID: w[0].Job.ID, Attempt: w[0].Attempt, State: Done, Output: "from a"}); err != ErrStaleAttempt {
		t.Errorf("stale report: %v", err)
	}
	if err := l.Record("b", Report{JobID: w2[0].Job.ID, Attempt: 2, State: Done, Output: "from b"}); err != nil {
		t.Fatal(err)
	}
	g.Sync()
	j, _ := g.Get(jobs[0].ID)
	out, _ := g.Output(j.ID)
	if j.State != Done || j.Node != "b" || string(out) != "from b" {
		t.Errorf("job = %+v output %q", j, out)
	}
}

func TestFailureRetriesAndCancel(t *testing.T) {
	g, locals, _ := cluster(t, 0)
	l := locals["onprem"]
	n := Node{ID: "a", CPUs: 1}
	l.Poll(n, 0)
	g.Sync()
	jobs, _ := g.Submit(&Spec{Command: []string{"false"}, MaxRetries: 1})
	for attempt := 1; attempt <= 2; attempt++ {
		w := l.Poll(n, 0)
		if len(w) != 1 || w[0].Attempt != attempt {
			t.Fatalf("attempt %d: %+v", attempt, w)
		}
		l.Record("a", Report{JobID: w[0].Job.ID, Attempt: attempt, State: Failed, ExitCode: 1})
	}
	g.Sync()
	if j, _ := g.Get(jobs[0].ID); j.State != Failed || j.Retries != 1 {
		t.Errorf("after retries: %+v", j)
	}
	// Cancel a queued job: it never runs.
	l.Poll(Node{ID: "a", CPUs: 1}, 0)
	big, _ := g.Submit(&Spec{Command: []string{"x"}, Priority: -1})
	blocker, _ := g.Submit(&Spec{Command: []string{"x"}, Priority: 5})
	_ = blocker
	if _, err := g.Cancel(big[0].ID); err != nil {
		t.Fatal(err)
	}
	for _, w := range l.Poll(n, 0) {
		if w.Job.ID == big[0].ID {
			t.Errorf("cancelled job was dispatched")
		}
	}
}

func TestJobsWaitForRoom(t *testing.T) {
	g := NewGlobal([]SiteInfo{{Name: "onprem"}, {Name: "cloud", Tier: 1, Shapes: []*Node{{CPUs: 4, GPUs: 1}}}})
	jobs, err := g.Submit(&Spec{Command: []string{"x"}, Resources: Resources{GPUs: 1}, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if jobs[0].Site != "" {
		t.Fatalf("a job was given to site %q with no node", jobs[0].Site)
	}
	if w := g.Signals().Waiting; w.PendingJobs != 3 || len(w.Demand) != 1 || w.Demand[0].Count != 3 || w.Demand[0].Resources.GPUs != 1 {
		t.Errorf("waiting demand = %+v", w)
	}
	// The cloud's first node brings a local manager: jobs go there as
	// far as it has room plus a few rounds of backlog (one GPU: one job
	// runs, the others wait at the site).
	l := NewLocal("cloud", 0)
	g.SetLink("cloud", LocalLink{l})
	l.Poll(Node{ID: "c", CPUs: 4, GPUs: 1}, 0)
	g.Sync()
	if w := l.Poll(Node{ID: "c", CPUs: 4, GPUs: 1}, 0); len(w) != 1 {
		t.Errorf("first cloud node got %d jobs, want 1", len(w))
	}
	if w := g.Signals().Waiting; w.PendingJobs != 0 {
		t.Errorf("still waiting globally = %d, want 0", w.PendingJobs)
	}
	if _, err := g.Submit(&Spec{Command: []string{"x"}, Resources: Resources{CPUs: 99}}); err == nil {
		t.Errorf("a job no site can run was accepted")
	}
}

// TestCachesMoveFewerBytes: a workload that reuses its inputs moves fewer
// bytes between sites with caches than without.
func TestCachesMoveFewerBytes(t *testing.T) {
	moved := map[bool]int64{}
	for _, caches := range []bool{false, true} {
		size := int64(0)
		if caches {
			size = 100 << 20
		}
		g, locals, _ := cluster(t, size)
		nodes := map[string][]Node{"cloud": {{ID: "c1", CPUs: 2}, {ID: "c2", CPUs: 2}}}
		for _, n := range nodes["cloud"] {
			locals["cloud"].Poll(n, 0)
		}
		g.Sync()
		for i := 0; i < 40; i++ {
			if _, err := g.Submit(&Spec{Command: []string{"x"}, Inputs: []string{fmt.Sprintf("d%d", i%4)}, Site: "cloud"}); err != nil {
				t.Fatal(err)
			}
		}
		runAll(t, g, locals, nodes)
		fetched, m := g.CacheStats()
		moved[caches] = m
		if caches && fetched[TierNode]+fetched[TierSite] == 0 {
			t.Errorf("no cache hits with caches on: %v", fetched)
		}
	}
	if moved[true] >= moved[false] || moved[true] != 4<<20 {
		t.Errorf("bytes moved between sites: caches on %d, off %d (want 4 MiB with caches)", moved[true], moved[false])
	}
}

// BenchmarkDispatch measures jobs/s through in-process managers with fake
// agents that finish each job at once.
func BenchmarkDispatch(b *testing.B) {
	for i := 0; i < b.N; i++ {
		g, locals, _ := cluster(b, 0)
		nodes := map[string][]Node{}
		for s, l := range locals {
			for k := 0; k < 10; k++ {
				n := Node{ID: fmt.Sprintf("%s-%d", s, k), CPUs: 4}
				l.Poll(n, 0)
				nodes[s] = append(nodes[s], n)
			}
		}
		g.Sync()
		const jobs = 10000
		start := time.Now()
		if _, err := g.Submit(&Spec{Command: []string{"x"}, Count: jobs}); err != nil {
			b.Fatal(err)
		}
		runAll(b, g, locals, nodes)
		b.ReportMetric(jobs/time.Since(start).Seconds(), "jobs/s")
	}
}
