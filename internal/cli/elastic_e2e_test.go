package cli_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/scheduler"
)

const elasticTemplate = `
provider "local" "lab" {}
provider "local" "cloud" { boot_time = "1s" }

cluster "%s" {
  overlay {
    cidr = "10.203.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.80.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" {
      count = 1
      instance { cpus = 2 }
    }
  }
  site "cloud" {
    provider = provider.local.cloud
    tier     = 1
    gateway  = "gw"
    network { cidr = "10.63.0.0/24" }
    node "gw" { roles = ["gateway"] }
    pool "burst" {
      min = 0
      max = 3
      instance { cpus = 2 }
    }
  }
  elastic {
    interval        = "1s"
    idle_time       = "6s"
    scale_up_window = "1s"
  }
}
`

func upElastic(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(elasticTemplate, fmt.Sprintf("el%d", rand.IntN(1e6)))), 0o644)
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return dir
}

// hubLog is the log of the elastic daemon the hub's manager runs (the
// local provider's machines share this host: provision.HostLocal).
type hubLog struct {
	t    *testing.T
	path string
}

func (l hubLog) String() string {
	b, _ := os.ReadFile(l.path)
	return string(b)
}

// hubDaemon finds the elastic daemon the hub's manager started.
func hubDaemon(t *testing.T, dir string) hubLog {
	t.Helper()
	items, err := local.List(filepath.Join(dir, ".hvctl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Kind == provision.KindInstance && strings.HasSuffix(it.Address, ".node.frontend") {
			l := hubLog{t: t, path: filepath.Join(it.Dir, "elastic.log")}
			waitFor(t, "the hub starts the elastic daemon", 30*time.Second, func() bool {
				return strings.Contains(l.String(), "elastic daemon started")
			})
			return l
		}
	}
	t.Fatal("no frontend node in the local provider's list")
	return hubLog{}
}

// daemonPID is the pid of the process holding the elastic daemon's lock.
func daemonPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".hvctl", "elastic.lock.info"))
	if err != nil {
		t.Fatal(err)
	}
	var info provision.LockInfo
	if err := json.Unmarshal(b, &info); err != nil || info.PID == 0 {
		t.Fatalf("elastic.lock.info: %v %s", err, b)
	}
	return info.PID
}

func burstNodes(t *testing.T, dir string) (inState []string, namespaces []string) {
	t.Helper()
	for _, r := range loadState(t, dir).Resources {
		if strings.Contains(r.Address, ".pool.burst.") {
			inState = append(inState, r.Address)
		}
	}
	items, _ := local.List(filepath.Join(dir, ".hvctl"))
	for _, it := range items {
		if it.Kind == provision.KindInstance && strings.Contains(it.Address, ".pool.burst.") && it.NetnsExists {
			namespaces = append(namespaces, it.Address)
		}
	}
	return
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	if !waitUntil(limit, cond) {
		t.Fatalf("%s: not within %s", what, limit)
	}
}

// TestElasticBurst: a burst larger than onprem grows the cloud pool, the
// jobs finish (some in the cloud), and the pool shrinks back to min.
func TestElasticBurst(t *testing.T) {
	dir := upElastic(t)
	if r := hv(t, dir, "", "submit", "-n", "16", "main.hcl", "--", "sh", "-c", "sleep 2; echo $HVCTL_NODE"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	log := hubDaemon(t, dir)
	jobs := waitJobs(t, dir, 16, 2*time.Minute)
	cloud := 0
	for _, j := range jobs {
		if j.State != scheduler.Done {
			t.Errorf("job %s: %s", j.ID, j.State)
		}
		if strings.HasPrefix(j.Node, "cloud.burst[") {
			cloud++
		}
	}
	if cloud == 0 {
		t.Errorf("no job ran on a burst node; daemon log:\n%s", log)
	}
	if !strings.Contains(log.String(), "scale-up cloud.burst") {
		t.Errorf("the daemon never scaled up:\n%s", log)
	}
	waitFor(t, "the pool shrinks back to min (0)", 90*time.Second, func() bool {
		s, n := burstNodes(t, dir)
		return len(s) == 0 && len(n) == 0
	})
	if !strings.Contains(log.String(), "scale-down cloud.burst") {
		t.Errorf("no scale-down in the log:\n%s", log)
	}
}

// TestElasticRestartNoDuplicates: the daemon the hub runs is killed
// during a scale-up; the hub restarts it, and no node is made twice. A
// second daemon started by hand is refused while one runs.
func TestElasticRestartNoDuplicates(t *testing.T) {
	dir := upElastic(t)
	if r := hv(t, dir, "", "submit", "-n", "16", "main.hcl", "--", "sh", "-c", "sleep 3"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	log := hubDaemon(t, dir)
	if r := hv(t, dir, "", "elastic", "run", "main.hcl"); r.code != 1 || !strings.Contains(r.stderr, "The elastic daemon already runs") {
		t.Errorf("a second daemon: exit %d\n%s", r.code, r.stderr)
	}
	waitFor(t, "a scale-up starts", 60*time.Second, func() bool { return strings.Contains(log.String(), "scale-up cloud.burst") })
	first := daemonPID(t, dir)
	syscall.Kill(first, syscall.SIGKILL)
	loadState(t, dir) // parses
	waitFor(t, "the hub restarts the daemon", 60*time.Second, func() bool {
		return strings.Count(log.String(), "elastic daemon started") >= 2
	})
	if again := daemonPID(t, dir); again == first {
		t.Errorf("the daemon's pid is still %d", again)
	}
	log2 := log
	waitJobs(t, dir, 16, 2*time.Minute)
	inState, ns := burstNodes(t, dir)
	seen := map[string]bool{}
	for _, a := range ns {
		if seen[a] {
			t.Errorf("two namespaces for %s", a)
		}
		seen[a] = true
	}
	if len(inState) > 3 || len(ns) > 3 {
		t.Errorf("burst nodes: %v in state, %v namespaces (max 3)\nfirst daemon:\n%s\nsecond:\n%s", inState, ns, log, log2)
	}
	for _, a := range ns {
		found := false
		for _, b := range inState {
			found = found || a == b
		}
		if !found {
			t.Errorf("orphan burst node %s (not in state)", a)
		}
	}
}

// failingTemplate has a tier-1 site whose nodes never boot
// (boot_fail_rate = 1) before a healthy tier-2 site.
const failingTemplate = `
provider "local" "lab" {}
provider "local" "flaky" {
  boot_time      = "1s"
  boot_fail_rate = 1
}
provider "local" "cloud" { boot_time = "1s" }

cluster "%s" {
  overlay {
    cidr = "10.204.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.81.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" {
      count = 1
      instance { cpus = 2 }
    }
  }
  site "flaky" {
    provider = provider.local.flaky
    tier     = 1
    network { cidr = "10.64.0.0/24" }
    pool "burst" {
      min = 0
      max = 3
      instance { cpus = 2 }
    }
  }
  site "cloud" {
    provider = provider.local.cloud
    tier     = 2
    gateway  = "gw"
    network { cidr = "10.65.0.0/24" }
    node "gw" { roles = ["gateway"] }
    pool "burst" {
      min = 0
      max = 3
      instance { cpus = 2 }
    }
  }
  elastic {
    interval        = "1s"
    idle_time       = "6s"
    scale_up_window = "1s"
    max_booting     = 1
    max_failures    = 2
    hold_time       = "10m"
  }
}
`

// TestElasticBootFailures: nodes of the flaky pool never boot. The first
// failure is replaced, the second holds the pool, and the work goes to
// the next site; no failed node is left behind.
func TestElasticBootFailures(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(failingTemplate, fmt.Sprintf("ef%d", rand.IntN(1e6)))), 0o644)
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, dir, "", "submit", "-n", "16", "main.hcl", "--", "sh", "-c", "sleep 5"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	log := hubDaemon(t, dir)
	jobs := waitJobs(t, dir, 16, 3*time.Minute)
	cloud := 0
	for _, j := range jobs {
		if j.State != scheduler.Done {
			t.Errorf("job %s: %s", j.ID, j.State)
		}
		if strings.HasPrefix(j.Node, "flaky.") {
			t.Errorf("job %s ran on %s, a node that never booted", j.ID, j.Node)
		}
		if strings.HasPrefix(j.Node, "cloud.burst[") {
			cloud++
		}
	}
	out := log.String()
	t.Logf("daemon log:\n%s", out)
	if strings.Contains(out, "elastic daemon waits") && !strings.Contains(out, "elastic daemon resumes") {
		info, _ := os.ReadFile(filepath.Join(dir, ".hvctl", "state.json.lock.info"))
		locks, _ := os.ReadFile("/proc/locks")
		t.Errorf("the daemon never resumed after up let go of the state lock; lock info %q; /proc/locks:\n%s", info, locks)
	}
	for _, want := range []string{"replace flaky.burst[", "hold flaky.burst", "2 consecutive failures (max_failures 2)", "scale-up cloud.burst"} {
		if !strings.Contains(out, want) {
			t.Errorf("daemon log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "replace flaky.burst[") && strings.Index(out, "replace flaky.burst[") > strings.Index(out, "hold flaky.burst") {
		t.Errorf("the pool was held before its first failure was replaced:\n%s", out)
	}
	if cloud == 0 {
		t.Errorf("no job ran in the next site (cloud.burst); daemon log:\n%s", out)
	}
	// max_booting 1: the first node, then its replacement; then held.
	if n := strings.Count(out, "failed to boot (injected"); n != 2 {
		t.Errorf("%d flaky nodes were made, want 2 (the first and its replacement, one at a time)", n)
	}
	// Failed nodes are destroyed, not kept: nothing of the flaky pool
	// is left in state or as a namespace.
	waitFor(t, "the failed flaky nodes are removed", 60*time.Second, func() bool {
		for _, r := range loadState(t, dir).Resources {
			if strings.Contains(r.Address, "site.flaky.pool.burst") {
				return false
			}
		}
		items, _ := local.List(filepath.Join(dir, ".hvctl"))
		for _, it := range items {
			if strings.Contains(it.Address, "site.flaky.pool.burst") && it.NetnsExists {
				return false
			}
		}
		return true
	})
}
