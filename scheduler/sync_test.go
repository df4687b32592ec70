package scheduler

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLink wraps a site's Local: its State can block until released,
// and its calls can fail, as a dead or partitioned local manager does.
type fakeLink struct {
	inner LocalLink

	mu          sync.Mutex
	block       chan struct{} // State waits for it to close (nil = no wait)
	failState   bool
	failEnqueue bool
	states      int
	enqueued    int
}

func (f *fakeLink) Enqueue(jobs []*Job) error {
	f.mu.Lock()
	fail := f.failEnqueue
	if !fail {
		f.enqueued += len(jobs)
	}
	f.mu.Unlock()
	if fail {
		return errors.New("connection refused")
	}
	return f.inner.Enqueue(jobs)
}

func (f *fakeLink) Cancel(id string) error { return f.inner.Cancel(id) }

func (f *fakeLink) State(since uint64) (SiteState, error) {
	f.mu.Lock()
	f.states++
	block, fail := f.block, f.failState
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if fail {
		return SiteState{}, errors.New("dial tcp 10.0.0.9:51822: connection refused")
	}
	return f.inner.State(since)
}

func (f *fakeLink) Output(id string) ([]byte, error) { return f.inner.Output(id) }

func (f *fakeLink) set(fn func(*fakeLink)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

func (f *fakeLink) count() (states, enqueued int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states, f.enqueued
}

// syncWithin runs g.Sync and fails the test if it has not returned
// after a generous deadline (it would be waiting for a blocked site).
func syncWithin(t *testing.T, g *Global) {
	t.Helper()
	done := make(chan struct{})
	go func() { g.Sync(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Sync is still waiting for a blocked site")
	}
}

func TestBlockedSiteNeverDelaysAnother(t *testing.T) {
	g, locals, _ := cluster(t, 0)
	g.SyncWait = 50 * time.Millisecond
	cloud := &fakeLink{inner: LocalLink{locals["cloud"]}}
	g.SetLink("cloud", cloud)
	on := Node{ID: "onprem.wn[0]", CPUs: 2}
	locals["onprem"].Poll(on, 0)
	locals["cloud"].Poll(Node{ID: "cloud.w[0]", CPUs: 2}, 0)
	syncWithin(t, g)

	// The cloud's local manager stops answering (State blocks).
	release := make(chan struct{})
	cloud.set(func(f *fakeLink) { f.block = release })
	jobs, err := g.Submit(&Spec{Command: []string{"echo"}, Site: "onprem"})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 5; round++ {
		syncWithin(t, g)
		for _, w := range locals["onprem"].Poll(on, 0) {
			if err := locals["onprem"].Record(on.ID, Report{JobID: w.Job.ID, Attempt: w.Attempt, State: Done}); err != nil {
				t.Fatal(err)
			}
		}
	}
	syncWithin(t, g)
	if j, _ := g.Get(jobs[0].ID); j.State != Done {
		t.Fatalf("onprem's job is %s while cloud is blocked, want done", j.State)
	}
	if states, _ := cloud.count(); states != 2 {
		t.Fatalf("cloud was pulled %d times: want its first pull and one blocked pull, no second pull while one is in flight", states)
	}
	close(release)
	// The blocked pull's answer is applied when it comes; syncs go on.
	deadline := time.Now().Add(20 * time.Second)
	for {
		syncWithin(t, g)
		if states, _ := cloud.count(); states > 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cloud was never pulled again after it answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnreachableSiteGetsNoJobs(t *testing.T) {
	g, locals, _ := cluster(t, 0)
	g.SyncWait = time.Second
	cloud := &fakeLink{inner: LocalLink{locals["cloud"]}}
	g.SetLink("cloud", cloud)
	on := Node{ID: "onprem.wn[0]", CPUs: 2}
	locals["onprem"].Poll(on, 0)
	locals["cloud"].Poll(Node{ID: "cloud.w[0]", CPUs: 8}, 0)
	syncWithin(t, g)

	cloud.set(func(f *fakeLink) { f.failState = true })
	syncWithin(t, g)
	if why := g.Unreachable()["cloud"]; !strings.Contains(why, "connection refused") {
		t.Fatalf("cloud's unreachability: %q", why)
	}
	// Work both sites could run goes to onprem only; work only cloud
	// can run waits, saying why.
	both, err := g.Submit(&Spec{Command: []string{"echo"}, Count: 6, Resources: Resources{CPUs: 2}})
	if err != nil {
		t.Fatal(err)
	}
	big, err := g.Submit(&Spec{Command: []string{"echo"}, Resources: Resources{CPUs: 8}})
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for round := 0; round < 50 && ran < len(both); round++ {
		syncWithin(t, g)
		for _, w := range locals["onprem"].Poll(on, 0) {
			ran++
			if err := locals["onprem"].Record(on.ID, Report{JobID: w.Job.ID, Attempt: w.Attempt, State: Done}); err != nil {
				t.Fatal(err)
			}
		}
	}
	syncWithin(t, g)
	for _, j := range both {
		if c, _ := g.Get(j.ID); c.State != Done || c.Site != "onprem" {
			t.Fatalf("job %s: %s at %q, want done at onprem", j.ID, c.State, c.Site)
		}
	}
	if _, enq := cloud.count(); enq != 0 {
		t.Fatalf("%d jobs were sent to the unreachable site", enq)
	}
	j, _ := g.Get(big[0].ID)
	if j.State != Queued || j.Site != "" || !strings.Contains(j.Reason, "site cloud: local manager unreachable") {
		t.Fatalf("the 8-CPU job: %s at %q, reason %q; want waiting with the reason", j.State, j.Site, j.Reason)
	}

	// Cloud answers again: the job goes there and the reason is gone.
	cloud.set(func(f *fakeLink) { f.failState = false })
	syncWithin(t, g)
	syncWithin(t, g)
	if len(g.Unreachable()) != 0 {
		t.Fatalf("still unreachable: %v", g.Unreachable())
	}
	j, _ = g.Get(big[0].ID)
	if j.Site != "cloud" || j.Reason != "" {
		t.Fatalf("after cloud came back: site %q, reason %q", j.Site, j.Reason)
	}

	// A failed enqueue marks the site too: the job is not lost, it
	// waits again with the reason.
	cloud.set(func(f *fakeLink) { f.failEnqueue = true })
	big2, err := g.Submit(&Spec{Command: []string{"echo"}, Resources: Resources{CPUs: 8}})
	if err != nil {
		t.Fatal(err)
	}
	j, _ = g.Get(big2[0].ID)
	if j.State != Queued || j.Site != "" || !strings.Contains(j.Reason, "enqueue") {
		t.Fatalf("after a failed enqueue: %s at %q, reason %q", j.State, j.Site, j.Reason)
	}
}
