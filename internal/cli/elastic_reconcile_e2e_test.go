package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/scheduler"
)

// TestElasticReconcile: a burst node whose agent hangs (SIGSTOP: the
// machine runs, the queue shows the node down) is reconciled: the daemon
// restarts it through the provider (a stop and a start of the same
// machine) instead of replacing it; its agent rejoins and runs the next
// jobs, and no node is made for them.
func TestElasticReconcile(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	dir, log, burst, marks := upVariant(t, "er", `idle_time       = "6s"`, `idle_time       = "5m"`, 1)
	burst(2)
	first := waitEnded(t, dir, 2, 3*time.Minute)
	checkOnce(t, marks, first)
	nodes := burstItems(t, dir)
	if len(nodes) != 1 {
		t.Fatalf("%d burst nodes, want 1: %v", len(nodes), nodes)
	}
	var hung local.Item
	for _, it := range nodes {
		hung = it
	}
	if hung.PID == 0 {
		b, _ := os.ReadFile(filepath.Join(hung.Dir, "agent.log"))
		t.Fatalf("burst node %s runs no agent: %+v\nagent.log:\n%s\ndaemon:\n%s", hung.Address, hung, b, log)
	}
	// The recorded process leads the agent's session (its time
	// namespace wrapper): stop the whole group, the agent with it.
	if err := syscall.Kill(-hung.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-hung.PID, syscall.SIGCONT) })
	if !waitUntil(2*time.Minute, func() bool {
		it, ok := burstItems(t, dir)[hung.Address]
		return strings.Contains(log.String(), "reconcile cloud.burst") && ok && it.State == "running" && it.PID != 0 && it.PID != hung.PID
	}) {
		t.Fatalf("the daemon did not reconcile the hung node within 2m (its agent runs again):\n%s\n%s", log, hv(t, dir, "", "status", "main.hcl").stdout)
	}
	burst(2)
	all := waitEnded(t, dir, 4, 3*time.Minute)
	checkOnce(t, marks, all)
	seen := map[string]bool{}
	for _, j := range first {
		seen[j.ID] = true
	}
	for _, j := range all {
		if !seen[j.ID] && (j.State != scheduler.Done || !strings.HasPrefix(j.Node, "cloud.burst[")) {
			t.Errorf("job %s after the reconcile: %s on %q, want done on the burst node", j.ID, j.State, j.Node)
		}
	}
	now := burstItems(t, dir)
	if it, ok := now[hung.Address]; len(now) != 1 || !ok || it.ID != hung.ID {
		t.Errorf("burst nodes after the reconcile: %v; want only %s (%s), the same machine", now, hung.Address, hung.ID)
	}
	if strings.Contains(log.String(), "replace cloud.burst") {
		t.Errorf("the hung node was replaced, not reconciled:\n%s", log)
	}
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "elastic decision") && strings.Contains(l, "reconcile") {
			t.Log(l)
		}
	}
}
