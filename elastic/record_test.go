package elastic

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision/statecrypt"
)

// TestHistoryReport: a daemon with a FileHistory bursts 3 nodes, they
// join, work and go idle; a restarted daemon resumes the run. The report
// built from the file has the nodes' timelines, the queue, the
// decisions, and cost = paid time × price.
func TestHistoryReport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, HistoryFile)
	now := t0
	cloud := newCloud()
	onprem := []QueueNode{
		{Name: "wn-1", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
		{Name: "wn-2", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
	}
	q := &fakeQueue{view: QueueView{Queue: jobs(6, t0.Add(-time.Minute)), Nodes: onprem}}
	mk := func() *Daemon {
		d := newDaemon(t, dir, cloud, q, &now)
		d.History, d.Cluster = &FileHistory{Path: path}, "c1"
		return d
	}
	d := mk()
	step := func() {
		t.Helper()
		if err := d.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(5 * time.Second)
	}
	step() // scale up by 3
	if len(cloud.machines) != 5 {
		t.Fatalf("%d machines, want 5", len(cloud.machines))
	}
	step()
	// The cloud machines run and join with work.
	for _, m := range cloud.machines {
		if m.Pool != "onprem.wn" {
			m.State = MachineRunning
			q.view.Nodes = append(q.view.Nodes, QueueNode{Name: m.Name, Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}})
		}
	}
	q.view.Queue = nil
	step()
	d = mk() // restarted: resumes the run
	step()
	for i := range q.view.Nodes {
		q.view.Nodes[i].Running, q.view.Nodes[i].Used = 0, Resources{}
	}
	step()

	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("history %v, mode %v", err, info.Mode())
	}
	f, _ := os.Open(path)
	defer f.Close()
	run, steps, err := ReadHistory(path, f)
	if err != nil {
		t.Fatal(err)
	}
	if run.Cluster != "c1" || len(steps) < 4 {
		t.Fatalf("run %+v, %d steps", run, len(steps))
	}
	r := ReportFromHistory(run, steps, steps[len(steps)-1].T)
	cloudPool := poolReport(r, "aws.burst")
	if cloudPool.Nodes != 3 {
		t.Errorf("%d cloud nodes in the report, want 3", cloudPool.Nodes)
	}
	// Each cloud node: seen from t0 to t0+20s, busy from +10s to +20s.
	wantPaid := 3 * (20 * time.Second).Hours()
	if d := cloudPool.PaidHours - wantPaid; d > 1e-9 || d < -1e-9 {
		t.Errorf("paid %.6f h, want %.6f", cloudPool.PaidHours, wantPaid)
	}
	if d := cloudPool.Cost - wantPaid*0.0464; d > 1e-9 || d < -1e-9 {
		t.Errorf("cost %.6f, want %.6f", cloudPool.Cost, wantPaid*0.0464)
	}
	if cloudPool.BusyHours <= 0 {
		t.Errorf("busy %.6f h", cloudPool.BusyHours)
	}
	if len(r.Decisions) == 0 || !strings.Contains(r.Decisions[0].Action, "scale-up aws.burst +3") {
		t.Errorf("decisions %v", r.Decisions)
	}
	if len(r.QueueNames) != 1 || r.QueueNames[0] != "any" || r.Series[0].Queued != 6 {
		t.Errorf("queues %v, first sample %+v", r.QueueNames, r.Series[0])
	}
	if last := r.Series[len(r.Series)-1]; last.Cost <= 0 || last.Idle != 5 {
		t.Errorf("last sample %+v", last)
	}
}

func TestReadHistoryErrors(t *testing.T) {
	run := `{"run":{"cluster":"c","start":"2024-05-01T15:00:00Z","pools":[]}}` + "\n"
	step := `{"t":"2024-05-01T15:00:05Z","nodes":[]}` + "\n"
	tests := []struct {
		name, in, err string
		steps         int
	}{
		{"a run and a step", run + step, "", 1},
		{"the last run wins", run + step + run, "", 0},
		{"a line cut short at the end is ignored", run + step + `{"t":"2024-05`, "", 1},
		{"a bad line in the middle", run + `{"t":` + "\n" + step, "h.jsonl:2:", 0},
		{"a step before any run", step, "h.jsonl:1: a step before any run", 0},
		{"nothing", "", "no run recorded", 0},
		{"an unknown line", run + `{"x":1}` + "\n", "h.jsonl:2: neither a run", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, steps, err := ReadHistory("h.jsonl", strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || len(steps) != tt.steps {
				t.Fatalf("%d steps, %v; want %d", len(steps), err, tt.steps)
			}
		})
	}
}

// FuzzReadHistory: no input panics ReadHistory or the report built from
// what it returns, and every error names the file.
func FuzzReadHistory(f *testing.F) {
	f.Add([]byte(`{"run":{"cluster":"c","start":"2024-05-01T15:00:00Z","pools":[{"name":"a.p","Min":0,"Max":2,"price":1}]}}` + "\n" +
		`{"t":"2024-05-01T15:00:05Z","nodes":[{"n":"x","p":"a.p","s":"busy","u":1,"c":2}],"queues":{"any":3},"actions":["scale-up a.p +1: why"]}` + "\n"))
	f.Add([]byte(`{"resume":"2024-05-01T15:00:00Z"}`))
	f.Add([]byte("SFZDVExFTkMBAQAAAAEAACAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"))
	sealer := statecrypt.NewWithParams("fuzz", statecrypt.Params{Time: 1, MemKiB: 8 << 10, Threads: 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		run, steps, err := ReadHistory("h.jsonl", strings.NewReader(string(data)))
		if len(data) < 4096 {
			// The sealed path too (each new salt costs a derivation).
			if _, _, serr := ReadSealedHistory("h.jsonl", strings.NewReader(string(data)), sealer); serr != nil && !strings.HasPrefix(serr.Error(), "h.jsonl:") {
				t.Fatalf("error does not name the file: %v", serr)
			}
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "h.jsonl:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		ReportFromHistory(run, steps, time.Time{})
	})
}

// TestHistoryReportStopped: a node's stopped time is not paid time; it
// is billed at the pool's stopped price, in the usage and in the cost
// over time, as the simulator bills it.
func TestHistoryReportStopped(t *testing.T) {
	pool := Pool{Name: "aws.burst", Site: "aws", Min: 0, Max: 3, Price: 3.6, StartTime: time.Minute, StoppedPrice: 0.36}
	run := HistoryRun{Cluster: "c1", Start: t0, Pools: []Pool{pool}}
	at := func(s int, st NodeState) HistoryStep {
		return HistoryStep{T: t0.Add(time.Duration(s) * time.Second), Nodes: []HistoryNode{{Name: "b1", Pool: pool.Name, State: st, Created: t0}}}
	}
	// Busy 0–10 s, stopped 10–70 s, idle 70–80 s.
	steps := []HistoryStep{at(0, Busy), at(10, Stopped), at(70, Idle), at(80, Idle)}
	r := ReportFromHistory(run, steps, steps[len(steps)-1].T)
	p := poolReport(r, "aws.burst")
	paid, stopped := (20 * time.Second).Hours(), time.Minute.Hours()
	wantCost := paid*3.6 + stopped*0.36
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	if !near(p.PaidHours, paid) || !near(p.StoppedHours, stopped) || !near(p.Cost, wantCost) {
		t.Errorf("paid %.6f h, stopped %.6f h, cost %.6f; want %.6f, %.6f, %.6f", p.PaidHours, p.StoppedHours, p.Cost, paid, stopped, wantCost)
	}
	if last := r.Series[len(r.Series)-1]; !near(last.Cost, wantCost) {
		t.Errorf("cost over time ends at %.6f, want %.6f", last.Cost, wantCost)
	}
}
