package elastic

import (
	"strings"
	"testing"
	"time"
)

// autoSnapshot: the automatic policy, the cloud pool ready 24m30s after
// a create (observed over 3 nodes), jobs of 17.5 s.
func autoSnapshot() Snapshot {
	s := Snapshot{Now: t0, Settings: settings(), Pools: pools(), Nodes: busyOnprem(), JobTime: 17500 * time.Millisecond}
	s.Settings.IdleAuto = true
	for i := range s.Pools {
		s.Pools[i].Ready, s.Pools[i].ReadyObserved = 24*time.Minute+30*time.Second, 3
	}
	return s
}

func TestDecideAuto(t *testing.T) {
	min := func(m int) time.Duration { return time.Duration(m) * time.Minute }
	waited := t0.Add(-time.Minute)
	tests := []struct {
		name string
		edit func(s *Snapshot)
		want []string
		// why are strings each reason must contain, in order of actions.
		why []string
	}{
		{
			name: "no gap seen: an idle node stays for the break-even (boot and setup)",
			edit: func(s *Snapshot) { s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, min(24))) },
			want: nil,
		},
		{
			name: "no gap seen: idle beyond the break-even is powered off, the reason names it",
			edit: func(s *Snapshot) { s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, min(25))) },
			want: []string{"down aws-1"},
			why:  []string{"idle for 25m0s (idle_time auto: no gap between bursts seen yet, so the break-even 24m30s (a new node's boot and setup, observed mean over 3 nodes))"},
		},
		{
			name: "gaps of 8 to 12 minutes seen: an idle node is kept past 15m (longest × 4/3)",
			edit: func(s *Snapshot) {
				s.Gaps = []time.Duration{min(8), min(12), min(6)}
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, min(15)))
			},
			want: nil,
		},
		{
			name: "gaps of 8 to 12 minutes seen: idle beyond 16m10s is powered off",
			edit: func(s *Snapshot) {
				s.Gaps = []time.Duration{min(8), min(12), min(6)}
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, min(17)))
			},
			want: []string{"down aws-1"},
			why:  []string{"idle_time auto = 16m10s: over the 3 gaps between bursts seen (longest 12m0s) and a next one of up to 16m0s"},
		},
		{
			name: "gaps longer than boot and setup: power off at once (two intervals)",
			edit: func(s *Snapshot) {
				s.Gaps = []time.Duration{min(35), min(25)}
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, 11*time.Second))
			},
			want: []string{"down aws-1"},
			why:  []string{"idle_time auto = 10s"},
		},
		{
			name: "explicit idle_time overrides auto",
			edit: func(s *Snapshot) {
				s.Settings.IdleAuto = false
				s.Gaps = []time.Duration{min(8), min(12), min(6)}
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, min(6)))
			},
			want: []string{"down aws-1"},
			why:  []string{"(idle_time 5m0s)"},
		},
		{
			name: "unknown boot time: the fallback idle_time",
			edit: func(s *Snapshot) {
				for i := range s.Pools {
					s.Pools[i].Ready = 0
				}
				s.Nodes = append(s.Nodes, node("aws-1", "aws.burst", Idle, min(6)))
			},
			want: []string{"down aws-1"},
			why:  []string{"the pool's boot time is unknown, so 5m0s"},
		},
		{
			name: "scale up only the nodes that pay off: all when the queue drains in an hour",
			edit: func(s *Snapshot) { s.Queue = jobs(873, waited) },
			// 873 × 17.5 s = 4h15m of slot time; 4 slots drain it in
			// 1h04m; by 24m30s they did 1h38m; the rest on 4 + 6 + 8 +
			// 16 slots takes 4m37s: every node works longer than a job.
			want: []string{"up aws.burst +3", "up os.burst +4", "up os.gpu +2"},
			why:  []string{"forecast: 873 queued jobs × 17.5s (observed mean) = 4h15m of slot time, on 4 joined slots it drains in 1h04m"},
		},
		{
			name: "scale up only the nodes that pay off: none when the queue drains before a node is ready",
			edit: func(s *Snapshot) { s.Queue = jobs(100, waited) },
			// 100 × 17.5 s on 4 slots: 7m18s < 24m30s.
			want: nil,
		},
		{
			name: "scale up only the nodes that pay off: stop at the node that would work less than a job",
			edit: func(s *Snapshot) { s.Queue = jobs(360, waited) },
			// 360 × 17.5 s = 1h45m: 7m of it is left at 24m30s. On 18
			// slots (aws +3, os +4) each works 23s; with an 8-slot gpu
			// node 16.2s, less than a job's 17.5s.
			want: []string{"up aws.burst +3", "up os.burst +4"},
			why:  []string{"another os.gpu node would be ready in 24m30s (observed mean over 3 nodes) and then work 16.2s: not started"},
		},
		{
			name: "no job finished yet: every node that fits starts (no forecast)",
			edit: func(s *Snapshot) { s.JobTime = 0; s.Queue = jobs(100, waited) },
			want: []string{"up aws.burst +3", "up os.burst +4", "up os.gpu +2"},
			why:  []string{"no job has finished yet"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := autoSnapshot()
			tt.edit(&s)
			acts := Decide(s)
			checkInvariants(t, s, acts)
			var got []string
			for _, a := range acts {
				got = append(got, brief(a))
			}
			if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Fatalf("got %q, want %q\nreasons: %v", got, tt.want, acts)
			}
			for i, w := range tt.why {
				if !strings.Contains(acts[i].Why(), w) {
					t.Errorf("reason of %s\n  %q\nlacks %q", got[i], acts[i].Why(), w)
				}
			}
		})
	}
}

func TestRentOrBuy(t *testing.T) {
	m := func(x float64) time.Duration { return time.Duration(x * float64(time.Minute)) }
	floor := 10 * time.Second
	tests := []struct {
		name  string
		ready time.Duration
		gaps  []time.Duration
		want  time.Duration
	}{
		{"one short gap: keep through a gap up to twice as long", m(24.5), []time.Duration{m(8)}, m(16) + floor},
		{"three gaps: the longest × 4/3", m(24.5), []time.Duration{m(8), m(12), m(6)}, m(16) + floor},
		{"gaps longer than ready: power off at once", m(24.5), []time.Duration{m(35), m(25), m(45)}, floor},
		{"short boot, one long outlier: the outlier is not worth it", m(2), []time.Duration{m(1), m(1), m(1), m(1), m(30)}, m(1) + floor},
		{"many short gaps: keep through them", m(9.5), []time.Duration{m(2), m(1), m(3)}, m(4) + floor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, _, _ := rentOrBuy(tt.ready, tt.gaps, floor)
			if got != tt.want {
				t.Errorf("rentOrBuy(%s, %v) = %s, want %s", tt.ready, tt.gaps, got, tt.want)
			}
		})
	}
}
