package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
)

// The crash test re-runs this test binary as a helper "hvctl" that
// creates nodes until it is killed.
const helperEnv = "HVCTL_LOCAL_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "create" {
		helperCreate()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperCreate creates (and waits for) the nodes named in the
// environment, as apply would.
func helperCreate() {
	tc := &testCluster{name: os.Getenv("HELPER_CLUSTER"), env: &provision.Env{StateDir: os.Getenv("HELPER_STATE"), Cluster: os.Getenv("HELPER_CLUSTER")}}
	tc.p = Open(tc.env, Settings{AgentCommand: []string{os.Getenv("HELPER_AGENT")}})
	ctx := context.Background()
	for _, name := range strings.Fields(os.Getenv("HELPER_NODES")) {
		req := tc.nodeReq("a", name, os.Getenv("HELPER_NET"), true)
		resp, err := tc.p.Create(ctx, req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if _, err := tc.p.WaitReady(ctx, &provision.ReadRequest{Kind: req.Kind, ID: resp.ID}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// TestCrashRecovery SIGKILLs a process part-way through creating nodes,
// then creates them again with the same tokens: every node exists once,
// runs, and Cleanup removes everything (checked by newTestCluster).
func TestCrashRecovery(t *testing.T) {
	tc := newTestCluster(t, "crash", Settings{})
	netA := tc.network("a", "10.241.1.0/24")
	for round, delay := range []time.Duration{30 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		var names []string
		for i := range 4 {
			names = append(names, fmt.Sprintf("r%d-w%d", round, i))
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=create", "HELPER_CLUSTER="+tc.name, "HELPER_STATE="+tc.env.StateDir,
			"HELPER_AGENT="+tc.agent, "HELPER_NET="+netA, "HELPER_NODES="+strings.Join(names, " "))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		must(t, cmd.Start())
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		w, err := tc.p.store.load()
		must(t, err)
		var found []string
		for _, r := range w.Records {
			if r.Kind == provision.KindInstance && strings.HasPrefix(r.Name, fmt.Sprintf("r%d-", round)) {
				found = append(found, fmt.Sprintf("%s:%s(agent %v)", r.Name, r.State, r.Proc != nil))
			}
		}
		t.Logf("round %d: killed after %v with %v", round, delay, found)
		if strings.TrimSpace(out.String()) != "" {
			t.Logf("helper output: %s", out.String())
		}
		for _, name := range names {
			req := tc.nodeReq("a", name, netA, true)
			resp, err := tc.p.Create(tc.ctx(), req)
			if err != nil {
				t.Fatalf("round %d: re-create %s: %v", round, name, err)
			}
			rr, err := tc.p.WaitReady(tc.ctx(), &provision.ReadRequest{Kind: req.Kind, ID: resp.ID})
			if err != nil || rr.Attrs["state"] != StateRunning {
				t.Fatalf("round %d: wait %s: %v %v", round, name, err, rr)
			}
			n := 0
			for _, ns := range snapshot(t).netns {
				if strings.HasPrefix(ns, "hv-"+tc.name+"-a-"+name) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("round %d: %d namespaces for %s, want 1", round, n, name)
			}
			if agents := tc.agents(tc.record(resp.ID).Netns); agents != 1 {
				t.Errorf("round %d: %s runs %d agents, want 1", round, name, agents)
			}
		}
	}
}
