package cli_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/templates"
)

// simLiveTemplate is paper 003's cluster scaled down: two on-prem
// workers, up to three cloud workers that boot in 20 s, the default
// (automatic) policy. %[1]s is the provider type: local for the live
// run, sim for the simulation; %[3]s more settings of the cloud's.
const simLiveTemplate = `
provider "%[1]s" "lab" {}
provider "%[1]s" "cloud" {
  boot_time = "20s"
  %[3]s
}

cluster "%[2]s" {
  overlay {
    cidr = "10.204.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.%[1]s.lab
    network { cidr = "192.168.81.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" {
      count = 2
      instance { cpus = 2 }
    }
  }
  site "cloud" {
    provider = provider.%[1]s.cloud
    tier     = 1
    gateway  = "gw"
    network { cidr = "10.64.0.0/24" }
    node "gw" { roles = ["gateway"] }
    pool "burst" {
      min = 0
      max = 3
      instance {
        cpus  = 2
        price = 0.0464
      }
    }
  }
  elastic {
    interval        = "1s"
    scale_up_window = "1s"
    boot_timeout    = "2m"
  }
}
`

// The scaled workload: a tenth of the paper's jobs per batch, jobs of
// 1.5–2 s after a one-time setup of 4.5 s per node, gaps of 48, 72 and
// 36 s after each batch ends.
var simLiveBatches = []struct {
	count int
	gap   time.Duration
}{{87, 0}, {89, 48 * time.Second}, {93, 72 * time.Second}, {99, 36 * time.Second}}

const simLiveSetup = 4500 * time.Millisecond

// TestElasticSimVsLive runs the scaled paper workload live on the local
// provider with the elastic daemon the hub runs, then in the simulator
// with the same template (sim provider) and workload, and compares
// makespan, cloud node-hours (from the daemon's history, as hvctl report
// reads it) and nodes made. Makespan and node-hours must agree within
// 15%. Run with -v for the table in docs/elastic.md.
func TestElasticSimVsLive(t *testing.T) {
	requireRoot(t)
	// The cloud's idle nodes are destroyed, or (stop_idle) stopped and
	// started again: a local start is its boot_time plus the agent's
	// start (local.StopCost), which the sim is told as start_time.
	for _, v := range []struct{ name, live, sim string }{
		{"destroy", "", ""},
		{"stop", "stop_idle = true", `start_time = "22s"`},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel() // with each other only: the test's own clusters, no other test's
			simVsLive(t, v.live, v.sim)
		})
	}
}

func simVsLive(t *testing.T, liveSettings, simSettings string) {
	name := fmt.Sprintf("sl%d", rand.IntN(1e6))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(simLiveTemplate, "local", name, liveSettings)), 0o644)
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	log := hubDaemon(t, dir)
	marks := t.TempDir() // one setup marker per node (the nodes share this host's files)
	// The job: the first on a node does the setup (others wait for it
	// on the lock), then 1.5–2 s of work, drawn per job.
	job := `m=` + marks + `/$HVCTL_NODE; ( flock 9; [ -f "$m" ] || { sleep 4.5; touch "$m"; } ) 9>"$m.lock"; ` +
		`sleep $(awk -v i="$HVCTL_ARRAY_INDEX" -v b=BATCH 'BEGIN{srand(i*7919+b); printf "%.3f", 1.5+rand()/2}')`
	total := 0
	for i, b := range simLiveBatches {
		if i > 0 {
			time.Sleep(b.gap)
		}
		r := hv(t, dir, "", "submit", "-n", fmt.Sprint(b.count), "main.hcl", "--", "sh", "-c", strings.ReplaceAll(job, "BATCH", fmt.Sprint(i)))
		if r.code != 0 {
			t.Fatalf("submit batch %d: %s", i+1, r.stderr)
		}
		total += b.count
		waitJobs(t, dir, total, 5*time.Minute)
	}
	jobs := waitJobs(t, dir, total, time.Minute)
	var first, last time.Time
	// Where live time goes: a job's run (its command's 1.5–2 s, plus the
	// setup for a node's first), and the pause on a slot between one
	// job's end and the next's start there.
	var jobRun time.Duration
	byNode := map[string][]scheduler.Job{}
	for _, j := range jobs {
		jobRun += j.Ended.Sub(j.Started)
		byNode[j.Node] = append(byNode[j.Node], j)
	}
	var pause time.Duration
	pauses := 0
	for _, js := range byNode {
		starts := make([]time.Time, 0, len(js))
		for _, j := range js {
			starts = append(starts, j.Started)
		}
		sort.Slice(starts, func(a, b int) bool { return starts[a].Before(starts[b]) })
		for _, j := range js {
			k := sort.Search(len(starts), func(i int) bool { return !starts[i].Before(j.Ended) })
			if k < len(starts) {
				if d := starts[k].Sub(j.Ended); d < 5*time.Second {
					pause += d
					pauses++
				}
			}
		}
	}
	t.Logf("live: mean job run %s (command 1.75 s, setup 4.5 s once per node), mean pause between a job's end and the next start on its node %s over %d",
		(jobRun / time.Duration(len(jobs))).Round(time.Millisecond), (pause / time.Duration(max(pauses, 1))).Round(time.Millisecond), pauses)
	for _, j := range jobs {
		if j.State != scheduler.Done {
			t.Errorf("job %s: %s", j.ID, j.State)
		}
		if first.IsZero() || j.Submitted.Before(first) {
			first = j.Submitted
		}
		if j.Ended.After(last) {
			last = j.Ended
		}
	}
	waitFor(t, "the pool shrinks back to min (0), or its nodes are stopped", 3*time.Minute, func() bool {
		if liveSettings == "" {
			s, n := burstNodes(t, dir)
			return len(s) == 0 && len(n) == 0
		}
		for _, it := range burstItems(t, dir) {
			if it.State != "stopped" {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // one more step records the last node gone
	f, err := os.Open(filepath.Join(dir, ".hvctl", elastic.HistoryFile))
	if err != nil {
		t.Fatalf("no history: %v\n%s", err, log)
	}
	run, steps, err := elastic.ReadHistory(f.Name(), f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	live := elastic.ReportFromHistory(run, steps, steps[len(steps)-1].T)
	// hvctl report renders the same history.
	page := filepath.Join(t.TempDir(), "report.html")
	if r := hv(t, dir, "", "report", "main.hcl", "-o", page); r.code != 0 {
		t.Errorf("hvctl report: exit %d: %s", r.code, r.stderr)
	} else if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), "chart-states") || !strings.Contains(string(b), "scale-up cloud.burst") {
		t.Errorf("hvctl report's page lacks the charts or the decisions (%v)", err)
	}
	liveCloud := poolOf(live, "cloud.burst")
	liveMakespan := last.Sub(first).Seconds()

	// The same template and workload in the simulator.
	simPath := filepath.Join(t.TempDir(), "sim.hcl")
	os.WriteFile(simPath, []byte(fmt.Sprintf(simLiveTemplate, "sim", name, simSettings)), 0o644)
	cfg, diags := templates.Load(simPath, templates.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	w := elastic.Workload{Name: "paper-scaled", Setup: simLiveSetup}
	for i, b := range simLiveBatches {
		bt := elastic.Batch{Count: b.count, Gap: b.gap, Duration: 1500 * time.Millisecond, DurationMax: 2 * time.Second}
		if i > 0 {
			bt.After = "done"
		}
		w.Batches = append(w.Batches, bt)
	}
	sim, err := elastic.Simulate(cfg, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	simCloud := poolOf(sim, "cloud.burst")

	t.Log("| run | makespan | cloud node-hours | cloud busy h | cloud nodes made | efficiency |")
	t.Log("|---|---|---|---|---|---|")
	t.Logf("| live (local provider, hub's daemon) | %s | %.4f | %.4f | %d | %.0f%% |", secs(liveMakespan), liveCloud.PaidHours, liveCloud.BusyHours, liveCloud.Nodes, 100*liveCloud.Efficiency)
	t.Logf("| simulator | %s | %.4f | %.4f | %d | %.0f%% |", secs(sim.Makespan), simCloud.PaidHours, simCloud.BusyHours, simCloud.Nodes, 100*simCloud.Efficiency)
	t.Logf("| live ÷ sim | %.2f | %.2f | %.2f | | |", liveMakespan/sim.Makespan, liveCloud.PaidHours/simCloud.PaidHours, liveCloud.BusyHours/max(simCloud.BusyHours, 1e-9))
	if d := math.Abs(liveMakespan/sim.Makespan - 1); d > 0.15 {
		t.Errorf("makespan: live %s, simulated %s: %.0f%% apart, want within 15%%", secs(liveMakespan), secs(sim.Makespan), 100*d)
	}
	if d := math.Abs(liveCloud.PaidHours/simCloud.PaidHours - 1); d > 0.15 {
		t.Errorf("cloud node-hours: live %.4f, simulated %.4f: %.0f%% apart, want within 15%%", liveCloud.PaidHours, simCloud.PaidHours, 100*d)
	}
	if t.Failed() || testing.Verbose() {
		var b strings.Builder
		for _, d := range live.Decisions {
			fmt.Fprintf(&b, "live %7.1fs %s\n", d.T, d.Action)
		}
		for _, d := range sim.Decisions {
			fmt.Fprintf(&b, "sim  %7.1fs %s\n", d.T, d.Action)
		}
		t.Logf("decisions:\n%s", b.String())
	}
}

func poolOf(r *elastic.Report, name string) elastic.PoolReport {
	for _, p := range r.Pools {
		if p.Name == name {
			return p
		}
	}
	return elastic.PoolReport{}
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}
