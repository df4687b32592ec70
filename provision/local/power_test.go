package local

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
)

// TestStopCost: only with stop_idle; a start is boot_time plus the
// agent's start, and a stopped local node costs nothing whatever its
// template price.
func TestStopCost(t *testing.T) {
	cases := []struct {
		name  string
		s     Settings
		attrs provision.Attrs
		ok    bool
		start time.Duration
	}{
		{"stop_idle off", Settings{}, provision.Attrs{"price": 0.5}, false, 0},
		{"stop_idle off, boot_time set", Settings{BootTime: 20 * time.Second}, nil, false, 0},
		{"stop_idle on", Settings{StopIdle: true}, provision.Attrs{"price": 0.5}, true, agentStartEstimate},
		{"stop_idle on, boot_time 20s", Settings{StopIdle: true, BootTime: 20 * time.Second}, provision.Attrs{"price": 0.0464}, true, 20*time.Second + agentStartEstimate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cost, ok := Open(&provision.Env{StateDir: t.TempDir()}, c.s).StopCost(c.attrs)
			if ok != c.ok {
				t.Fatalf("StopCost ok = %v, want %v", ok, c.ok)
			}
			if cost.StartTime != c.start || cost.StoppedPrice != 0 {
				t.Errorf("StopCost = %+v, want StartTime %v and StoppedPrice 0", cost, c.start)
			}
		})
	}
}

// osState is what a node's processes made in its namespace and a
// power-off loses: a device (as the agent's kernel WireGuard device,
// which outlives its process), an nft table (the agent's guard rules),
// a process started with Exec that left the agent's group.
func osState(tc *testCluster, id string) {
	tc.t.Helper()
	ns := tc.record(id).Netns
	must(tc.t, ip(tc.ctx(), ns, "link", "add", "hvlstw", "type", "bridge"))
	must(tc.t, nftIn(tc.ctx(), ns, "add table inet hvctl_wg\n"))
	if code, out := tc.exec(id, "sh", "-c", "sleep 1000 >/dev/null 2>&1 &"); code != 0 {
		tc.t.Fatalf("start a background process: %d %s", code, out)
	}
}

// nodeDisk is the node directory's files an agent keeps (its WireGuard
// key and credential, as hvctl agent writes them) and agent.json.
func nodeDisk(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range []string{"agent.json", "wg.key", "credential"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		must(t, err)
		out[f] = b
	}
	return out
}

// TestStopStart: a stopped node reads stopped, no process of it is left
// (its agent, what the agent started, what Exec started), nor what they
// held in the kernel (a device, an nft table); its directory, namespace,
// links and addresses stay. A start runs the agent again from the same
// directory, with the same private (and public) address. Stopping or
// starting twice is fine, and a stopped node can be deleted.
func TestStopStart(t *testing.T) {
	cases := []struct {
		name   string
		public bool
	}{
		{"private node", false},
		{"public node", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := newTestCluster(t, "lst", Settings{StopIdle: true})
			ctx := tc.ctx()
			netA := tc.network("a", "10.242.1.0/24")
			id, attrs := tc.node("a", "n1", netA, c.public)
			req := &provision.PowerRequest{Address: "site.a.node.n1", ID: id, Attrs: attrs}
			rec := tc.record(id)
			// What hvctl agent keeps on its disk.
			must(t, os.WriteFile(filepath.Join(rec.Dir, "wg.key"), []byte("KEY-n1\n"), 0o600))
			must(t, os.WriteFile(filepath.Join(rec.Dir, "credential"), []byte("CRED-n1\n"), 0o600))
			disk := nodeDisk(t, rec.Dir)
			osState(tc, id)
			if pids := netnsPIDs(ctx, rec.Netns); len(pids) < 2 {
				t.Fatalf("before the stop the namespace runs %v, want the agent and the background process", pids)
			}

			for i := range 2 {
				must(t, tc.p.Stop(ctx, req))
				rr, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: id})
				must(t, err)
				if !rr.Exists || rr.Attrs["state"] != StateStopped || rr.Attrs["private_ip"] != attrs["private_ip"] || rr.Attrs["public_address"] != attrs["public_address"] {
					t.Errorf("stop %d: Read = %+v, want stopped with the addresses %v %v", i+1, rr, attrs["private_ip"], attrs["public_address"])
				}
			}
			if pids := netnsPIDs(ctx, rec.Netns); len(pids) != 0 {
				t.Errorf("processes left in the stopped node's namespace: %v", pids)
			}
			if rec.Proc.alive() {
				t.Errorf("the agent (pid %d) still runs", rec.Proc.PID)
			}
			for pid, cmd := range snapshot(t).procs {
				if strings.Contains(cmd, tc.agent) {
					t.Errorf("agent process %s (%s) left", pid, cmd)
				}
			}
			if linkExists(rec.Netns, "hvlstw") {
				t.Errorf("the device the node's processes made outlived the stop")
			}
			if out, err := run(ctx, nil, "ip", "netns", "exec", rec.Netns, "nft", "list", "tables"); err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("nft tables in the stopped node: %q %v", out, err)
			}
			// Kept: the namespace, its links, addresses and routes, the
			// root-namespace links, the directory.
			if !netnsExists(rec.Netns) || !linkExists(rec.RouterNetns, rec.SiteLink) {
				t.Fatalf("the stopped node lost its namespace or its site link")
			}
			for _, l := range rec.Links {
				if !linkExists("", l) {
					t.Errorf("root link %s gone", l)
				}
			}
			out, err := run(ctx, nil, "ip", "-n", rec.Netns, "-o", "addr", "show", "dev", nodeSite)
			if err != nil || !strings.Contains(out, rec.PrivateIP+"/") {
				t.Errorf("eth0 of the stopped node: %v\n%s", err, out)
			}
			if routes, err := run(ctx, nil, "ip", "-n", rec.Netns, "route"); err != nil || !strings.Contains(routes, "default via") {
				t.Errorf("the stopped node lost its default route: %v\n%s", err, routes)
			}
			for f, b := range nodeDisk(t, rec.Dir) {
				if !bytes.Equal(b, disk[f]) {
					t.Errorf("%s changed across the stop: %q, was %q", f, b, disk[f])
				}
			}
			if _, err := tc.p.Exec(ctx, id, []string{"true"}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "stopped") {
				t.Errorf("Exec in a stopped node: %v, want an error saying it is stopped", err)
			}
			if _, err := tc.p.WaitReady(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: id}); err == nil || tc.agents(rec.Netns) != 0 {
				t.Errorf("WaitReady of a stopped node: %v, %d agents; want an error and no agent started", err, tc.agents(rec.Netns))
			}
			items, err := List(tc.env.StateDir)
			must(t, err)
			for _, it := range items {
				if it.ID == id && (it.State != StateStopped || it.PID != 0 || !it.NetnsExists) {
					t.Errorf("List item of the stopped node = %+v", it)
				}
			}

			var pid int
			for i := range 2 {
				rr, err := tc.p.Start(ctx, req)
				must(t, err)
				if !rr.Exists || rr.ID != id || rr.Attrs["state"] != StateRunning || rr.Attrs["private_ip"] != attrs["private_ip"] || rr.Attrs["public_address"] != attrs["public_address"] {
					t.Errorf("start %d = %+v, want running with the same addresses", i+1, rr)
				}
				r := tc.record(id)
				if i == 0 {
					pid = r.Proc.PID
				} else if r.Proc.PID != pid {
					t.Errorf("the second start started another agent (pid %d, was %d)", r.Proc.PID, pid)
				}
				if r.Power != "" || !r.Proc.alive() || tc.agents(r.Netns) != 1 {
					t.Errorf("start %d: power %q, agent %+v alive %v, %d agents; want one running", i+1, r.Power, r.Proc, r.Proc.alive(), tc.agents(r.Netns))
				}
			}
			if pid == rec.Proc.PID {
				t.Errorf("the started agent has the stopped one's pid %d", pid)
			}
			// The agent runs from the same directory and configuration.
			logb, _ := os.ReadFile(filepath.Join(rec.Dir, "agent.log"))
			if n := strings.Count(string(logb), "stand-in agent -config "+filepath.Join(rec.Dir, "agent.json")); n != 2 {
				t.Errorf("agent.log has %d starts with -config %s/agent.json, want 2:\n%s", n, rec.Dir, logb)
			}
			for f, b := range nodeDisk(t, rec.Dir) {
				if !bytes.Equal(b, disk[f]) {
					t.Errorf("%s changed across the start: %q, was %q", f, b, disk[f])
				}
			}
			if c.public && !tc.canPing(id, "10.242.1.1") {
				t.Errorf("the started node cannot reach its gateway")
			}

			// A stopped node is deleted like a running one.
			must(t, tc.p.Stop(ctx, req))
			must(t, tc.p.Delete(ctx, &provision.DeleteRequest{Address: req.Address, Kind: provision.KindInstance, ID: id}))
			rr, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: id})
			must(t, err)
			if rr.Exists {
				t.Errorf("a deleted stopped node exists: %+v", rr)
			}
			if netnsExists(rec.Netns) || linkExists(rec.RouterNetns, rec.SiteLink) {
				t.Errorf("the deleted stopped node left its namespace or site link")
			}
			for _, l := range rec.Links {
				if linkExists("", l) {
					t.Errorf("root link %s left", l)
				}
			}
			if _, err := os.Stat(rec.Dir); !os.IsNotExist(err) {
				t.Errorf("the deleted stopped node's directory: %v, want it gone", err)
			}
		})
	}
}

// TestStopReopen: a provider opened afresh on the state directory (hvctl
// run again) reads a stopped node as stopped, lists it so, and starts it.
func TestStopReopen(t *testing.T) {
	tc := newTestCluster(t, "lstre", Settings{StopIdle: true})
	ctx := tc.ctx()
	netA := tc.network("a", "10.242.2.0/24")
	id, attrs := tc.node("a", "n1", netA, false)
	req := &provision.PowerRequest{Address: "site.a.node.n1", ID: id, Attrs: attrs}
	must(t, tc.p.Stop(ctx, req))

	p2 := Open(&provision.Env{StateDir: tc.env.StateDir, Cluster: tc.name}, Settings{StopIdle: true, AgentCommand: []string{tc.agent}})
	rr, err := p2.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: id})
	must(t, err)
	if !rr.Exists || rr.Attrs["state"] != StateStopped {
		t.Errorf("reopened provider reads %+v, want stopped", rr)
	}
	page, err := p2.List(ctx, &provision.ListRequest{Cluster: tc.name})
	must(t, err)
	found := false
	for _, it := range page.Items {
		if it.ID == id {
			found = true
			if it.Attrs["state"] != StateStopped {
				t.Errorf("reopened provider lists %v, want stopped", it.Attrs)
			}
		}
	}
	if !found {
		t.Errorf("reopened provider does not list the stopped node")
	}
	rr, err = p2.Start(ctx, req)
	must(t, err)
	if rr.Attrs["state"] != StateRunning || tc.agents(tc.record(id).Netns) != 1 {
		t.Errorf("start by the reopened provider = %+v, %d agents; want running, one agent", rr, tc.agents(tc.record(id).Netns))
	}
}

// TestStopCrash: a Stop or Start killed part-way leaves its mark in the
// world; whichever call comes next completes it, and nothing runs twice.
func TestStopCrash(t *testing.T) {
	cases := []struct {
		name string
		// crash leaves the node as a crash would (given the running
		// node's ID).
		crash func(tc *testCluster, id string)
		// then is the next call; want the state it leaves.
		then string
		want string
	}{
		{"stop's intent recorded, then Read", stopIntent, "read", StateStopped},
		{"stop's intent recorded, then Stop", stopIntent, "stop", StateStopped},
		{"stop's intent recorded, then Start", stopIntent, "start", StateRunning},
		{"stop's intent recorded, then Delete", stopIntent, "delete", ""},
		// Half started: pending (the stray is not its agent) until a
		// Start, WaitReady or Stop completes it.
		{"start's intent recorded, then Read", startIntent, "read", StatePending},
		{"start's intent recorded, then Start", startIntent, "start", StateRunning},
		{"start's intent recorded, then Stop", startIntent, "stop", StateStopped},
		{"start's intent recorded, then WaitReady", startIntent, "wait", StateRunning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := newTestCluster(t, "lstcr", Settings{StopIdle: true})
			ctx := tc.ctx()
			netA := tc.network("a", "10.242.3.0/24")
			id, attrs := tc.node("a", "n1", netA, false)
			req := &provision.PowerRequest{Address: "site.a.node.n1", ID: id, Attrs: attrs}
			c.crash(tc, id)
			ns := tc.record(id).Netns
			switch c.then {
			case "read":
			case "stop":
				must(t, tc.p.Stop(ctx, req))
			case "start":
				_, err := tc.p.Start(ctx, req)
				must(t, err)
			case "wait":
				_, err := tc.p.WaitReady(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: id})
				must(t, err)
			case "delete":
				must(t, tc.p.Delete(ctx, &provision.DeleteRequest{Address: req.Address, Kind: provision.KindInstance, ID: id}))
			}
			rr, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: id})
			must(t, err)
			if c.want == "" {
				if rr.Exists || netnsExists(ns) {
					t.Errorf("after %s: %+v, namespace %v; want it gone", c.then, rr, netnsExists(ns))
				}
				return
			}
			if got := rr.Attrs["state"]; got != c.want {
				t.Fatalf("after %s: state %v, want %s", c.then, got, c.want)
			}
			switch c.want {
			case StateStopped:
				if pids := netnsPIDs(ctx, ns); len(pids) != 0 {
					t.Errorf("processes left in the stopped node: %v", pids)
				}
			case StateRunning:
				if n := tc.agents(ns); n != 1 {
					t.Errorf("%d agents run, want 1", n)
				}
				if r := tc.record(id); r.Power != "" || !r.Proc.alive() {
					t.Errorf("record after %s: power %q, agent %+v", c.then, r.Power, r.Proc)
				}
			}
		})
	}
}

// stopIntent: Stop recorded "stopping", then died before ending
// anything.
func stopIntent(tc *testCluster, id string) {
	must(tc.t, tc.p.store.update(func(w *world) (bool, error) {
		byID(w, id).Power = powerStopping
		return true, nil
	}))
}

// startIntent: the node was stopped; Start recorded "starting", started
// an agent and died before recording it (a stray runs in the
// namespace).
func startIntent(tc *testCluster, id string) {
	r := tc.record(id)
	must(tc.t, tc.p.Stop(tc.ctx(), &provision.PowerRequest{Address: r.Address, ID: id}))
	must(tc.t, tc.p.store.update(func(w *world) (bool, error) {
		byID(w, id).Power = powerStarting
		return true, nil
	}))
	// The stray: the stand-in agent, detached from this process.
	if _, err := run(tc.ctx(), nil, "ip", "netns", "exec", r.Netns, "sh", "-c", "setsid "+tc.agent+" >/dev/null 2>&1 &"); err != nil {
		tc.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tc.agents(r.Netns) != 1 && time.Now().Before(deadline) { // the sh that started it names it too, until it exits
		time.Sleep(20 * time.Millisecond)
	}
	if tc.agents(r.Netns) != 1 {
		tc.t.Fatalf("the stray agent did not start")
	}
}

// TestStartBootTime: a start waits boot_time on the env clock, as a
// boot does, before it runs the agent.
func TestStartBootTime(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	tc := newTestCluster(t, "lstbt", Settings{StopIdle: true, BootTime: time.Hour})
	tc.env.Clock = clock.Now
	ctx := tc.ctx()
	netA := tc.network("a", "10.242.4.0/24")
	req := tc.nodeReq("a", "n1", netA, false)
	resp, err := tc.p.Create(ctx, req)
	must(t, err)
	clock.Advance(time.Hour)
	_, err = tc.p.WaitReady(ctx, &provision.ReadRequest{Kind: req.Kind, ID: resp.ID})
	must(t, err)
	pr := &provision.PowerRequest{Address: req.Address, ID: resp.ID}
	must(t, tc.p.Stop(ctx, pr))
	done := make(chan error, 1)
	go func() {
		_, err := tc.p.Start(ctx, pr)
		done <- err
	}()
	ns := tc.record(resp.ID).Netns
	deadline := time.Now().Add(10 * time.Second)
	for tc.record(resp.ID).Power != powerStarting && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Start returned before boot_time: %v", err)
	default:
	}
	rr, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: req.Kind, ID: resp.ID})
	must(t, err)
	if rr.Attrs["state"] != StatePending || tc.agents(ns) != 0 {
		t.Errorf("starting, before boot_time: state %v, %d agents; want pending and none", rr.Attrs["state"], tc.agents(ns))
	}
	clock.Advance(time.Hour)
	must(t, <-done)
	if n := tc.agents(ns); n != 1 {
		t.Errorf("after boot_time: %d agents, want 1", n)
	}
}
