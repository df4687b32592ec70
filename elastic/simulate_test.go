package elastic

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// testTemplate is an on-prem pool of 2 and two cloud sites; cloud is
// tuned by the sim provider settings given.
func testTemplate(t testing.TB, cloudSettings, elastic string) *templates.Config {
	t.Helper()
	src := fmt.Sprintf(`
provider "sim" "lab" {}
provider "sim" "cloud" {
  %s
}
provider "sim" "backup" {
  boot_time = "1m"
}
cluster "t" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.hub"]
  }
  site "onprem" {
    provider = provider.sim.lab
    tier     = 0
    network { cidr = "192.168.10.0/24" }
    node "hub" {
      roles = ["hub", "manager"]
      public_ip = true
      instance { cpus = 1 }
    }
    pool "wn" {
      count = 2
      instance { cpus = 2 }
    }
  }
  site "cloud" {
    provider = provider.sim.cloud
    tier     = 1
    network { cidr = "10.4.2.0/24" }
    pool "burst" {
      min = 0
      max = 3
      instance {
        cpus  = 2
        price = 0.05
      }
    }
  }
  site "backup" {
    provider = provider.sim.backup
    tier     = 2
    network { cidr = "10.4.3.0/24" }
    pool "burst" {
      min = 0
      max = 3
      instance {
        cpus  = 2
        price = 0.5
      }
    }
  }
  elastic {
    %s
  }
}
`, cloudSettings, elastic)
	cfg, diags := templates.LoadSource(map[string][]byte{"t.hcl": []byte(src)}, ".", templates.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func burst(n int, d time.Duration) Workload {
	return Workload{Name: "burst", Batches: []Batch{{Count: n, Duration: d, DurationMax: d + 10*time.Second, After: "submit"}}}
}

func poolReport(r *Report, name string) PoolReport {
	for _, p := range r.Pools {
		if p.Name == name {
			return p
		}
	}
	return PoolReport{}
}

func TestSimulate(t *testing.T) {
	tests := []struct {
		name          string
		cloud, policy string
		opts          Options
		check         func(t *testing.T, r *Report)
	}{
		{
			name:  "a burst larger than onprem grows the cloud pool and shrinks it back",
			cloud: `boot_time = "2m"`,
			check: func(t *testing.T, r *Report) {
				cloud, backup := poolReport(r, "cloud.burst").Nodes, poolReport(r, "backup.burst").Nodes
				if cloud != 3 {
					t.Errorf("cloud.burst (tier 1) made %d nodes, want its max 3 before tier 2 grows", cloud)
				}
				if r.Operations.ScaleDowns != cloud+backup || r.PowerOffTail < (5*time.Minute).Seconds() {
					t.Errorf("%d power-offs of %d nodes, tail %s: want all after idle_time", r.Operations.ScaleDowns, cloud+backup, hm(r.PowerOffTail))
				}
			},
		},
		{
			name:   "boot failures are replaced, then the pool is held and the work goes to the next site",
			cloud:  `boot_time = "2m"` + "\n" + `boot_fail_rate = 1`,
			policy: `max_failures = 5`,
			check: func(t *testing.T, r *Report) {
				o := r.Operations
				if o.BootFailures < 3 || o.Holds == 0 || o.Replacements == 0 {
					t.Errorf("operations %+v: want ≥3 boot failures, replacements and a hold", o)
				}
				if poolReport(r, "backup.burst").Nodes == 0 {
					t.Error("no node on the backup site")
				}
			},
		},
		{
			name:  "a capacity error fails over to the next site at once",
			cloud: `capacity = 1`,
			check: func(t *testing.T, r *Report) {
				if r.Operations.CapacityErrors == 0 || r.Operations.Holds == 0 {
					t.Errorf("operations %+v: want a capacity error and a hold", r.Operations)
				}
				if poolReport(r, "cloud.burst").Nodes != 1 || poolReport(r, "backup.burst").Nodes == 0 {
					t.Errorf("pools %+v: want 1 cloud node and the rest on backup", r.Pools)
				}
			},
		},
		{
			name:  "lost agents are reconciled, not power-cycled (vnode-5)",
			cloud: `boot_time = "2m"`,
			opts:  Options{AgentLossRate: 0.5, AgentLossAfter: time.Minute},
			check: func(t *testing.T, r *Report) {
				o := r.Operations
				if o.AgentsLost == 0 || o.Reconciles != o.AgentsLost || o.Replacements != 0 {
					t.Errorf("operations %+v: want every lost agent reconciled and nothing replaced", o)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testTemplate(t, tt.cloud, `idle_time = "5m"`+"\n"+tt.policy)
			opts := tt.opts
			opts.Seed = 7
			r, err := SimulateWith(cfg, burst(200, 30*time.Second), opts)
			if err != nil {
				t.Fatal(err)
			}
			if r.Finished != r.Jobs {
				var b bytes.Buffer
				r.WriteText(&b)
				t.Fatalf("%d of %d jobs finished\n%s", r.Finished, r.Jobs, b.String())
			}
			tt.check(t, r)
			if t.Failed() {
				for _, d := range r.Decisions {
					t.Logf("%8s %s", hm(d.T), d.Action)
				}
			}
		})
	}
}

func TestSimulateDeterministic(t *testing.T) {
	cfg := testTemplate(t, `boot_time = "2m"`+"\n"+`boot_fail_rate = 0.3`, `idle_time = "1m"`)
	w := Workload{Setup: time.Minute, Batches: []Batch{
		{Count: 300, Duration: 10 * time.Second, DurationMax: time.Minute, After: "submit"},
		{Count: 300, Gap: 3 * time.Minute, After: "done", Duration: 10 * time.Second, DurationMax: time.Minute},
	}}
	run := func(seed int64) string {
		r, err := SimulateWith(cfg, w, Options{Seed: seed, AgentLossRate: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	a, b, c := run(1), run(1), run(2)
	if a != b {
		t.Error("two runs with seed 1 differ")
	}
	if a == c {
		t.Error("seeds 1 and 2 give the same run: the seed is not used")
	}
}

// TestSimulateTenHours checks that ten simulated hours run in seconds.
func TestSimulateTenHours(t *testing.T) {
	cfg := testTemplate(t, `boot_time = "5m"`, `interval = "5s"`)
	var w Workload
	for i := range 10 * 6 { // a burst every 10 minutes for 10 hours
		w.Jobs = append(w.Jobs, Job{Submit: time.Duration(i) * 10 * time.Minute, Duration: 20 * time.Second})
		w.Batches = append(w.Batches, Batch{Count: 150, Gap: 10 * time.Minute, After: "submit", Duration: 20 * time.Second, DurationMax: 40 * time.Second})
	}
	start := time.Now()
	r, err := Simulate(cfg, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %s", el)
	}
	if r.Duration < (10 * time.Hour).Seconds() {
		t.Errorf("simulated only %s", hm(r.Duration))
	}
	t.Logf("%s simulated in %s", hm(r.Duration), time.Since(start))
}

func TestReportHTML(t *testing.T) {
	cfg := testTemplate(t, `boot_time = "2m"`, "")
	r, err := Simulate(cfg, burst(100, time.Minute), 1)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "<polygon", "cloud.burst-1", "scale-up cloud.burst", `class="chart chart-states"`, `class="axis axis-y2"`,
		"queued jobs (right axis)", `class="chart chart-queues"`, `class="chart chart-slots"`, "utilisation (%)", `class="chart chart-cost"`, "cost so far (US$)",
		`class="chart chart-nodes"`, "time since the start (h:m)", `<table class="decisions">`, "<td class=\"n\">0:00:"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	// The legend lists only the states that occur: no node failed or
	// went down here.
	for _, absent := range []string{"failed (left axis)", "down (left axis)"} {
		if strings.Contains(b.String(), absent) {
			t.Errorf("HTML report's legend lists %q, which never occurs", absent)
		}
	}
}
