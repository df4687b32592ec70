package scheduler

import (
	"testing"
	"time"
)

// TestCancelReachesTheNode: a node running an attempt that is cancelled,
// or queued again elsewhere after the node was lost, is told to kill it
// at its next poll, and only that attempt.
func TestCancelReachesTheNode(t *testing.T) {
	for _, c := range []struct {
		name  string
		end   func(l *Local, clk *fakeClock, j *Job)
		state State
	}{
		{"cancelled", func(l *Local, clk *fakeClock, j *Job) {
			if _, err := l.Cancel(j.ID); err != nil {
				t.Fatal(err)
			}
		}, Cancelled},
		{"node lost", func(l *Local, clk *fakeClock, j *Job) {
			clk.Add(l.LossAfter + time.Second)
			if lost := l.Sweep(); len(lost) != 1 {
				t.Fatalf("lost = %v", lost)
			}
		}, Queued},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1e9, 0)}
			l := NewLocal("onprem", 0)
			l.Clock = clk.Now
			n := Node{ID: "wn0", CPUs: 1, MemoryMiB: 1024}
			l.Poll(n, 0)
			l.Enqueue([]*Job{{ID: "a", Spec: Spec{Command: []string{"sleep", "60"}}}})
			work := l.Poll(n, 0)
			if len(work) != 1 || work[0].Cancel {
				t.Fatalf("first poll: %+v", work)
			}
			c.end(l, clk, work[0].Job)
			got := l.Poll(n, 0)
			if len(got) == 0 || !got[0].Cancel || got[0].Job.ID != "a" || got[0].Attempt != work[0].Attempt {
				t.Fatalf("poll after the attempt ended: %+v, want a cancel of a attempt %d first", got, work[0].Attempt)
			}
			for _, w := range got[1:] {
				if w.Cancel {
					t.Errorf("a second cancel: %+v", w)
				}
			}
			if again := l.Poll(n, 0); len(again) > 0 && again[0].Cancel {
				t.Errorf("the cancel was handed out twice")
			}
			if j := l.jobs["a"]; j.State != c.state && !(c.state == Queued && j.State == Running) {
				t.Errorf("job state %s, want %s", j.State, c.state)
			}
		})
	}
}
