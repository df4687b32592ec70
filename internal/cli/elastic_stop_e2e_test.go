package cli_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/scheduler"
)

// burstItems are the local provider's burst nodes by address.
func burstItems(t *testing.T, dir string) map[string]local.Item {
	t.Helper()
	items, err := local.List(filepath.Join(dir, ".hvctl"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]local.Item{}
	for _, it := range items {
		if it.Kind == provision.KindInstance && strings.Contains(it.Address, ".pool.burst.") {
			out[it.Address] = it
		}
	}
	return out
}

// upVariant brings up elasticTemplate with old replaced by new (under a
// cluster name of prefix and a random number), and returns its
// directory, the hub's daemon log and a submitter of n marker jobs
// pinned to the cloud site (each sleeping sleep seconds).
func upVariant(t *testing.T, prefix, old, new string, sleep int) (dir string, log hubLog, burst func(n int), marks string) {
	t.Helper()
	dir = t.TempDir()
	tmpl := strings.Replace(elasticTemplate, old, new, 1)
	if tmpl == elasticTemplate {
		t.Fatalf("the elastic template has no %q: update this test", old)
	}
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(tmpl, fmt.Sprintf("%s%d", prefix, rand.IntN(1e6)))), 0o644)
	t.Cleanup(func() {
		hv(t, dir, "", "down", "-auto-approve", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	log = hubDaemon(t, dir)
	marks = t.TempDir()
	burst = func(n int) {
		t.Helper()
		r := hv(t, dir, "", append([]string{"submit", "-n", fmt.Sprint(n), "-site", "cloud", "main.hcl", "--"}, markerJob(marks, sleep)...)...)
		if r.code != 0 {
			t.Fatalf("submit: %s", r.stderr)
		}
	}
	return dir, log, burst, marks
}

// TestElasticStopStart: with stop_idle on the cloud's provider, the
// daemon stops the burst nodes once idle instead of destroying them
// (state "stopped", no process left, namespace and address kept), and
// starts the same nodes again for the next burst: no node is made for
// it, every job runs exactly once, and the second burst's jobs run on
// the restarted nodes, which rejoined with the identity they kept.
func TestElasticStopStart(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	dir, log, burst, marks := upVariant(t, "es", `provider "local" "cloud" { boot_time = "1s" }`,
		"provider \"local\" \"cloud\" {\n  boot_time = \"1s\"\n  stop_idle = true\n}", 2)

	burst(6)
	first := waitEnded(t, dir, 6, 3*time.Minute)
	checkOnce(t, marks, first)
	var stopped map[string]local.Item
	waitFor(t, "the daemon stops the idle burst nodes", 90*time.Second, func() bool {
		stopped = burstItems(t, dir)
		if len(stopped) == 0 {
			return false
		}
		for _, it := range stopped {
			if it.State != "stopped" {
				return false
			}
		}
		return true
	})
	for addr, it := range stopped {
		if it.PID != 0 || !it.NetnsExists || it.PrivateIP == "" {
			t.Errorf("stopped %s: pid %d, namespace %v, ip %q; want no process, namespace and address kept", addr, it.PID, it.NetnsExists, it.PrivateIP)
		}
		r := loadState(t, dir).Resource(addr)
		if r == nil || r.Attrs["state"] != "stopped" {
			t.Errorf("state of %s: %+v, want it kept with state stopped", addr, r)
		}
	}
	if !strings.Contains(log.String(), "stop cloud.burst") || strings.Contains(log.String(), "destroy cloud.burst") {
		t.Errorf("want stops and no destroys in the daemon log:\n%s", log)
	}
	if r := hv(t, dir, "", "status", "main.hcl"); !strings.Contains(r.stdout, "stopped") {
		t.Errorf("status does not show the stopped nodes:\n%s%s", r.stdout, r.stderr)
	}

	burst(6)
	all := waitEnded(t, dir, 12, 3*time.Minute)
	checkOnce(t, marks, all)
	seen := map[string]bool{}
	for _, j := range first {
		seen[j.ID] = true
	}
	again := 0
	for _, j := range all {
		if !seen[j.ID] && j.State == scheduler.Done && strings.HasPrefix(j.Node, "cloud.burst[") {
			again++
		}
	}
	if again == 0 {
		t.Errorf("no job of the second burst ran on a burst node:\n%s", log)
	}
	if !strings.Contains(log.String(), "start cloud.burst") {
		t.Errorf("the daemon never started a stopped node:\n%s", log)
	}
	now := burstItems(t, dir)
	for addr, it := range now {
		was, ok := stopped[addr]
		if !ok {
			t.Errorf("%s was made for the second burst; want the stopped nodes started instead", addr)
			continue
		}
		if it.ID != was.ID || it.PrivateIP != was.PrivateIP {
			t.Errorf("%s: id %s ip %s after the start, was %s %s; want the same machine", addr, it.ID, it.PrivateIP, was.ID, was.PrivateIP)
		}
	}
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "elastic decision") && (strings.Contains(l, "stop ") || strings.Contains(l, "start ") || strings.Contains(l, "scale-")) {
			t.Log(l)
		}
	}
}
