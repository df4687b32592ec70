package provision_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/sim"
	"github.com/hvctl/hvctl/templates"
)

// bigTemplate is sites sites of perSite nodes each: one gateway node and
// a fixed pool; the first site's gateway is also the hub.
func bigTemplate(sites, perSite int, provider string) string {
	var b strings.Builder
	b.WriteString(provider)
	b.WriteString("cluster \"big\" {\n  overlay {\n    cidr = \"100.64.0.0/10\"\n    hubs = [\"s0.gw\"]\n  }\n")
	for i := 0; i < sites; i++ {
		roles := `["gateway"]`
		pub := "false"
		if i == 0 {
			roles, pub = `["gateway", "hub"]`, "true"
		}
		fmt.Fprintf(&b, `  site "s%d" {
    provider = provider.sim.lab
    gateway  = "gw"
    network { cidr = "10.%d.0.0/16" }
    node "gw" {
      roles     = %s
      public_ip = %s
      instance { cpus = 2 }
    }
    pool "p" {
      count = %d
      instance {
        cpus   = 4
        memory = "8GiB"
      }
    }
  }
`, i, i, roles, pub, perSite-1)
	}
	b.WriteString("}\n")
	return b.String()
}

func loadBig(b *testing.B, src string) *templates.Config {
	cfg, d := templates.LoadSource(map[string][]byte{"big.hcl": []byte(src)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		b.Fatal(d)
	}
	return cfg
}

// BenchmarkPlan10k plans a 10,000-node, 50-site template from scratch
// (load + graph + diff against an empty state), and again against a
// state that already holds every resource (the no-change plan).
func BenchmarkPlan10k(b *testing.B) {
	src := bigTemplate(50, 200, "provider \"sim\" \"lab\" {}\n")
	for _, withState := range []bool{false, true} {
		name := "empty-state"
		if withState {
			name = "full-state"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			store := &provision.Store{Path: filepath.Join(dir, "state.json")}
			st := provision.NewState()
			if withState {
				cfg := loadBig(b, src)
				g, err := provision.BuildGraph(cfg.Cluster, nil)
				if err != nil {
					b.Fatal(err)
				}
				st = provision.FakeStateForBench(g)
			}
			var peak uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				start := time.Now()
				cfg := loadBig(b, src)
				e, _ := provision.NewEngine(cfg, store)
				plan, _, err := e.Plan(context.Background(), st, provision.PlanOptions{})
				if err != nil {
					b.Fatal(err)
				}
				el := time.Since(start)
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				peak = max(peak, after.TotalAlloc-before.TotalAlloc)
				add, _, _ := plan.Counts()
				b.ReportMetric(el.Seconds(), "s/plan")
				b.ReportMetric(float64(add), "creates")
			}
			b.ReportMetric(float64(peak)/(1<<20), "MiB-alloc/plan")
			b.ReportMetric(float64(peakRSS())/(1<<10), "MiB-peak-RSS")
		})
	}
}

// BenchmarkApply200 creates 200 sim nodes (boot_time 2s) at the default
// parallelism (with and without an API rate of 20 calls/s), at 10, 100,
// and unlimited under the rate of 20, and reports each as a ratio to one
// node's create time measured in the same run, with the calls the sim
// refused for going over its rate.
func BenchmarkApply200(b *testing.B) {
	cases := []struct {
		name  string
		nodes int
		par   int
		rate  string
	}{
		{"single", 1, 10, ""},
		{"default", 200, provision.DefaultParallelism, ""},
		{"default-rate20", 200, provision.DefaultParallelism, "api_rate = 20"},
		{"par10", 200, 10, ""},
		{"par100", 200, 100, ""},
		{"unlimited-rate20", 200, 0, "api_rate = 20"},
	}
	var single time.Duration
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				src := fmt.Sprintf(`
provider "sim" "lab" {
  boot_time = "2s"
  %s
}
cluster "bench" {
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "mesh"
  }
  site "a" {
    provider = provider.sim.lab
    network { cidr = "10.1.0.0/16" }
    pool "p" {
      count = %d
      instance { cpus = 1 }
    }
  }
}
`, c.rate, c.nodes)
				cfg := loadBig(b, src)
				store := &provision.Store{Path: filepath.Join(dir, "state.json")}
				e, d := provision.NewEngine(cfg, store)
				if d.HasErrors() {
					b.Fatal(d)
				}
				e.Parallelism = c.par
				st, _ := store.Load()
				// The network first, so the timing is of the nodes alone.
				plan, refreshed, err := e.Plan(context.Background(), st, provision.PlanOptions{})
				if err != nil {
					b.Fatal(err)
				}
				var net, nodes provision.Plan = *plan, *plan
				net.Changes, nodes.Changes = nil, nil
				for _, ch := range plan.Changes {
					if ch.Kind == provision.KindNetwork {
						net.Changes = append(net.Changes, ch)
					} else {
						nodes.Changes = append(nodes.Changes, ch)
					}
				}
				if r := e.Apply(context.Background(), refreshed, &net); r.Err() != nil {
					b.Fatal(r.Err())
				}
				start := time.Now()
				if r := e.Apply(context.Background(), refreshed, &nodes); r.Err() != nil {
					b.Fatal(r.Err())
				}
				el := time.Since(start)
				if pv, ok := e.Provider("provider.sim.lab"); ok {
					b.ReportMetric(float64(pv.(*sim.Provider).Throttled()), "throttled")
				}
				if c.name == "single" {
					single = el
				}
				b.ReportMetric(el.Seconds(), "s/apply")
				if single > 0 {
					b.ReportMetric(float64(el)/float64(single), "x-single-node")
					b.ReportMetric(float64(c.nodes)*float64(single)/float64(el), "speedup-vs-serial")
				}
			}
		})
	}
}

// peakRSS is the process's peak resident set (VmHWM) in KiB.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkPlanScaling plans 10,000 and 100,000 nodes (50 sites) in
// process — graph and diff against a state that holds every resource
// (the no-change plan), and against an empty one — and reports the
// 100k/10k time ratio measured in the same run: 10 for O(n), about 12.5
// for O(n log n), 100 for O(n²).
func BenchmarkPlanScaling(b *testing.B) {
	for _, full := range []bool{false, true} {
		name := "empty-state"
		if full {
			name = "full-state"
		}
		b.Run(name, func(b *testing.B) {
			var times [2]time.Duration
			for k, perSite := range []int{200, 2000} {
				cfg := loadBig(b, bigTemplate(50, perSite, "provider \"sim\" \"lab\" {}\n"))
				st := provision.NewState()
				if full {
					g, err := provision.BuildGraph(cfg.Cluster, nil)
					if err != nil {
						b.Fatal(err)
					}
					st = provision.FakeStateForBench(g)
				}
				e, _ := provision.NewEngine(cfg, &provision.Store{Path: filepath.Join(b.TempDir(), "state.json")})
				runtime.GC()
				start := time.Now()
				plan, _, err := e.Plan(context.Background(), st, provision.PlanOptions{})
				if err != nil {
					b.Fatal(err)
				}
				times[k] = time.Since(start)
				add, _, _ := plan.Counts()
				if full && add != 0 || !full && add != 50*perSite+50 {
					b.Fatalf("%d nodes: plan adds %d", 50*perSite, add)
				}
				b.ReportMetric(times[k].Seconds(), fmt.Sprintf("s/plan-%dk", 50*perSite/1000))
			}
			b.ReportMetric(float64(times[1])/float64(times[0]), "ratio-100k/10k")
			b.ReportMetric(float64(peakRSS())/(1<<10), "MiB-peak-RSS")
		})
	}
}
