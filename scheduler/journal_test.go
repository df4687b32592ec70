package scheduler

import (
	"errors"
	"testing"
	"time"
)

type failingJournal struct{ err error }

func (f failingJournal) Record([]*Job) error { return f.err }

type memJournal struct{ jobs map[string]Job }

func (m *memJournal) Record(jobs []*Job) error {
	for _, j := range jobs {
		m.jobs[j.ID] = *j
	}
	return nil
}

// A submit the journal cannot record is refused, and leaves nothing.
func TestSubmitNotRecordedIsRefused(t *testing.T) {
	g := NewGlobal([]SiteInfo{{Name: "a", Shapes: []*Node{{CPUs: 2}}}})
	g.Journal = failingJournal{errors.New("disk full")}
	if _, err := g.Submit(&Spec{Command: []string{"true"}, Count: 3}); err == nil {
		t.Fatal("a submit that was not recorded was accepted")
	}
	if n := len(g.List("")); n != 0 {
		t.Errorf("%d jobs in the table after a refused submit", n)
	}
}

// Every change of a job reaches the journal before it is acted on: a
// job handed to a site is recorded at that site.
func TestJournalSeesEveryChange(t *testing.T) {
	g := NewGlobal([]SiteInfo{{Name: "a"}})
	j := &memJournal{jobs: map[string]Job{}}
	g.Journal = j
	l := NewLocal("a", 0)
	g.SetLink("a", LocalLink{l})
	l.Poll(Node{ID: "n", CPUs: 1}, 0)
	g.Sync()
	sub, err := g.Submit(&Spec{Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	id := sub[0].ID
	if j.jobs[id].Site != "a" {
		t.Errorf("journal has the job at site %q after dispatch, want a", j.jobs[id].Site)
	}
	w := l.Poll(Node{ID: "n", CPUs: 1}, 0)
	l.Record("n", Report{JobID: id, Attempt: w[0].Attempt, State: Done})
	g.Sync()
	if got := j.jobs[id]; got.State != Done || got.Node != "n" || got.Attempt != 1 {
		t.Errorf("journal has %s on %q attempt %d, want done on n attempt 1", got.State, got.Node, got.Attempt)
	}
}

func TestSeed(t *testing.T) {
	now := time.Unix(1e9, 0)
	clk := func() time.Time { return now }
	running := &Job{ID: "r", Spec: Spec{Command: []string{"x"}}, State: Running, Site: "a", Node: "gone", Attempt: 1}
	queued := &Job{ID: "q", Spec: Spec{Command: []string{"x"}}, State: Queued, Site: "a"}
	adopted := &Job{ID: "ad", Spec: Spec{Command: []string{"x"}}, State: Queued, Site: "a"}
	done := &Job{ID: "d", Spec: Spec{Command: []string{"x"}}, State: Done, Site: "a", Node: "n", Attempt: 1}
	stopped := &Job{ID: "s", Spec: Spec{Command: []string{"x"}}, State: Running, Site: "a", Node: "n", Attempt: 3}
	l := NewLocal("a", 0)
	l.Clock = clk
	l.Seed([]*Job{running, queued, adopted, done, stopped})
	// A node says it runs "ad" (the global table had not heard yet).
	l.Adopt("n", []RunningJob{{ID: "ad", Attempt: 1}})
	if w := l.Poll(Node{ID: "n", CPUs: 4}, 0); len(w) != 0 {
		t.Errorf("placement during the seed hold: %d jobs handed out", len(w))
	}
	now = now.Add(DefaultSeedHold + time.Second)
	w := l.Poll(Node{ID: "n", CPUs: 4}, 0)
	got := map[string]int{}
	for _, x := range w {
		got[x.Job.ID] = x.Attempt
	}
	// q is queued; s was seeded as running on n, which did not list it:
	// it runs again as attempt 4.
	if len(w) != 2 || got["q"] != 1 || got["s"] != 4 {
		t.Fatalf("after the hold the node got %v, want q attempt 1 and s attempt 4", got)
	}
	if err := l.Record("n", Report{JobID: "ad", Attempt: 1, State: Done}); err != nil {
		t.Errorf("report of the adopted job refused: %v", err)
	}
	if err := l.Record("n", Report{JobID: "d", Attempt: 1, State: Done}); err == nil {
		t.Errorf("a job that had ended was seeded")
	}
	// "gone" never polls: after LossAfter its job runs again, once, as
	// a new attempt; the old attempt's late report is refused.
	now = now.Add(DefaultLossAfter + time.Second)
	l.Poll(Node{ID: "n", CPUs: 4}, 0)
	if lost := l.Sweep(); len(lost) != 1 || lost[0] != "gone" {
		t.Fatalf("lost = %v, want [gone]", lost)
	}
	w = l.Poll(Node{ID: "n", CPUs: 4}, 0)
	if len(w) != 1 || w[0].Job.ID != "r" || w[0].Attempt != 2 {
		t.Fatalf("after the loss the node got %+v, want r attempt 2", w)
	}
	if err := l.Record("gone", Report{JobID: "r", Attempt: 1, State: Done}); !errors.Is(err, ErrStaleAttempt) {
		t.Errorf("late report from the lost attempt: %v, want ErrStaleAttempt", err)
	}
	if err := l.Record("n", Report{JobID: "r", Attempt: 2, State: Done}); err != nil {
		t.Errorf("report of the new attempt: %v", err)
	}
}

// Idempotency keys replayed from the journal work again; expired and
// malformed ones are dropped.
func TestRestoreKeys(t *testing.T) {
	clk := time.Unix(1e9, 0)
	spec := &Spec{Command: []string{"true"}, Count: 2}
	h := specHash(spec)
	good := (&submission{At: clk, Spec: h, First: "x.0", ArrayID: "x", Count: 2}).record("good")
	cases := []struct {
		name     string
		key      SubmitKey
		replayed bool
	}{
		{"recent", good, true},
		{"expired", func() SubmitKey { k := good; k.At = clk.Add(-KeyTTL - time.Minute); return k }(), false},
		{"malformed hash", func() SubmitKey { k := good; k.Spec = "zz"; return k }(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGlobal([]SiteInfo{{Name: "a", Shapes: []*Node{{CPUs: 2}}}})
			g.Clock = func() time.Time { return clk }
			g.Restore([]*Job{{ID: "x.0", ArrayID: "x", State: Queued, Spec: *spec}, {ID: "x.1", ArrayID: "x", Index: 1, State: Queued, Spec: *spec}})
			g.RestoreKeys([]SubmitKey{tc.key})
			jobs, replayed, err := g.SubmitKey(spec, "good")
			if err != nil {
				t.Fatal(err)
			}
			if replayed != tc.replayed {
				t.Fatalf("replayed = %v, want %v", replayed, tc.replayed)
			}
			if tc.replayed && (len(jobs) != 2 || jobs[0].ID != "x.0") {
				t.Errorf("replayed %d jobs (first %s), want x.0 and x.1", len(jobs), jobs[0].ID)
			}
		})
	}
}
