package cli_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/manager"
)

// nestedNATTemplate is issue 13's first cluster: core with the public hub
// (its gateway), edge behind NAT with gateway gw, and edge.far nested in
// edge, with a network of its own and gateway gw2; one worker each.
const nestedNATTemplate = `
provider "local" "lab" {}

cluster "%s" {
  overlay {
    cidr     = "10.203.0.0/16"
    topology = "hierarchical"
    hubs     = ["core.hub"]
  }
  site "core" {
    provider = provider.local.lab
    gateway  = "hub"
    network { cidr = "192.168.81.0/24" }
    node "hub" {
      roles     = ["hub", "manager", "gateway"]
      public_ip = true
    }
    pool "w" { count = 1 }
  }
  site "edge" {
    provider = provider.local.lab
    gateway  = "gw"
    network { cidr = "10.71.0.0/24" }
    node "gw" { roles = ["gateway"] }
    pool "w" { count = 1 }
    site "far" {
      gateway = "gw2"
      network { cidr = "10.72.0.0/24" }
      node "gw2" { roles = ["gateway"] }
      pool "w" { count = 1 }
    }
  }
}
`

// campusMeshTemplate is issue 13's second cluster: a mesh with the public
// hub in campus, campus.lab nested in it and campus.lab.rack in that (each
// with a network of its own), and a NAT'd cloud site.
const campusMeshTemplate = `
provider "local" "lab" {}

cluster "%s" {
  overlay {
    cidr     = "10.204.0.0/16"
    topology = "mesh"
    hubs     = ["campus.hub"]
  }
  site "campus" {
    provider = provider.local.lab
    network { cidr = "192.168.82.0/24" }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "w" { count = 1 }
    site "lab" {
      network { cidr = "10.73.0.0/24" }
      pool "w" { count = 1 }
      site "rack" {
        network { cidr = "10.74.0.0/24" }
        pool "w" { count = 1 }
      }
    }
  }
  site "cloud" {
    provider = provider.local.lab
    tier     = 1
    network { cidr = "10.75.0.0/24" }
    pool "w" { count = 2 }
  }
}
`

// upTemplate writes src (with the cluster name filled in) to a scratch
// directory and brings the cluster up; down runs at cleanup.
func upTemplate(t *testing.T, prefix, src string) (dir, cluster string) {
	t.Helper()
	requireRoot(t)
	dir = t.TempDir()
	cluster = fmt.Sprintf("%s%d", prefix, rand.IntN(1e6))
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(src, cluster)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	r := hv(t, dir, "", "up", "-join-timeout=120s", "main.hcl")
	if r.code != 0 {
		// The error first: CI shows the head of a long failure.
		t.Fatalf("up: exit %d\n%s\n--- up's output:\n%s\n%s", r.code, r.stderr, r.stdout, agentLogs(dir))
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "All ") && strings.Contains(l, " joined") {
			t.Log(l)
		}
	}
	return dir, cluster
}

// deadPairs pings every node's overlay address from every other node,
// through exec, giving each pair up to perPair, and returns the pairs
// that never answered. Sources run in parallel.
func deadPairs(t *testing.T, dir string, want int, perPair time.Duration) []string {
	t.Helper()
	doc := localStatus(t, dir)
	if len(doc.Nodes) != want {
		t.Fatalf("status shows %d nodes, want %d", len(doc.Nodes), want)
	}
	var mu sync.Mutex
	var dead []string
	var wg sync.WaitGroup
	for _, from := range doc.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, to := range doc.Nodes {
				if from.Address == to.Address {
					continue
				}
				deadline := time.Now().Add(perPair)
				for {
					r := hv(t, dir, "", "exec", from.Address, "main.hcl", "--", "ping", "-c", "1", "-W", "2", to.OverlayIP)
					if r.code == 0 {
						break
					}
					if time.Now().After(deadline) {
						mu.Lock()
						dead = append(dead, fmt.Sprintf("%s -> %s (%s)", manager.MemberID(from.Address), manager.MemberID(to.Address), to.OverlayIP))
						mu.Unlock()
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	return dead
}

// checkAllPairs fails the test when some pair of nodes does not ping,
// right after up and again 60 s later (after endpoint learning and
// roaming).
func checkAllPairs(t *testing.T, dir string, nodes int) {
	t.Helper()
	if dead := deadPairs(t, dir, nodes, 15*time.Second); len(dead) > 0 {
		t.Errorf("right after up, %d of %d pairs do not ping:\n  %s", len(dead), nodes*(nodes-1), strings.Join(dead, "\n  "))
	}
	time.Sleep(60 * time.Second)
	if dead := deadPairs(t, dir, nodes, 10*time.Second); len(dead) > 0 {
		t.Errorf("60 s after up, %d of %d pairs do not ping:\n  %s", len(dead), nodes*(nodes-1), strings.Join(dead, "\n  "))
	}
}

// TestTopologyIssueClusters brings up the two clusters issue 13 found
// broken (a site nested in a NAT'd site, hierarchical; three levels of
// nesting plus a NAT'd cloud, mesh): every pair of nodes pings over the
// overlay right after up and 60 s later, and on the first 60 jobs finish.
func TestTopologyIssueClusters(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name, prefix, src string
		nodes             int
		jobs              bool
	}{
		{"nested-in-nat-hierarchical", "tni", nestedNATTemplate, 6, true},
		{"three-levels-mesh", "tcm", campusMeshTemplate, 6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, _ := upTemplate(t, tc.prefix, tc.src)
			if tc.jobs {
				r := hv(t, dir, "", "submit", "-n", "60", "main.hcl", "--", "sh", "-c", "sleep 0.2; echo out-$HVCTL_ARRAY_INDEX")
				if r.code != 0 {
					t.Fatalf("submit: %s%s", r.stdout, r.stderr)
				}
			}
			checkAllPairs(t, dir, tc.nodes)
			if tc.jobs {
				jobs := waitJobs(t, dir, 60, 3*time.Minute)
				sites := map[string]int{}
				for _, j := range jobs {
					if j.State != scheduler.Done || j.ExitCode == nil || *j.ExitCode != 0 {
						t.Errorf("job %s in %s: %s exit %v %s", j.ID, j.Site, j.State, j.ExitCode, j.Error)
					}
					sites[j.Site]++
				}
				t.Logf("60 jobs by site: %v", sites)
			}
			if t.Failed() {
				t.Log(agentLogs(dir))
			}
		})
	}
}
