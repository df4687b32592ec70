package local

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/vishvananda/netns"
)

// TestReachability builds two sites and checks what can reach what with
// real pings: same-site nodes reach each other, a NATed node reaches a
// public node, sites' private networks are closed to each other, and the
// host reaches public addresses.
func TestReachability(t *testing.T) {
	tc := newTestCluster(t, "reach", Settings{})
	netA := tc.network("a", "10.231.1.0/24")
	netB := tc.network("b", "10.231.2.0/24")
	a1, a1Attrs := tc.node("a", "a1", netA, false)
	_, a2Attrs := tc.node("a", "a2", netA, false)
	b1, b1Attrs := tc.node("b", "b1", netB, false)
	pub, pubAttrs := tc.node("b", "hub", netB, true)
	// A nested site: its own router, its network inside its parent's.
	netZ := tc.network("b.zone", "10.231.2.128/25")
	z1, _ := tc.node("b.zone", "z1", netZ, false)
	// A site nested in b, with a network of its own routed inside b's,
	// and a public node: its default route is the internet, yet b's
	// network is its private network too.
	netR := tc.nestedNetwork("b.rack", "10.231.3.0/24", netB)
	zpub, zpubAttrs := tc.node("b.rack", "zpub", netR, true)

	if got := a1Attrs["private_ip"]; got != "10.231.1.2" {
		t.Errorf("a1 private_ip = %v, want 10.231.1.2 (the first address after the gateway)", got)
	}
	if got := a2Attrs["private_ip"]; got != "10.231.1.3" {
		t.Errorf("a2 private_ip = %v, want 10.231.1.3", got)
	}
	if _, ok := a1Attrs["public_address"]; ok {
		t.Errorf("a1 has a public_address without public_ip")
	}
	pubAddr, _ := pubAttrs["public_address"].(string)
	if a, err := netip.ParseAddr(pubAddr); err != nil || !publicSpace.Contains(a) {
		t.Fatalf("public node's public_address = %q, want an address in %s", pubAddr, publicSpace)
	}

	cases := []struct {
		name     string
		from, to string
		want     bool
	}{
		{"same site", a1, a2Attrs["private_ip"].(string), true},
		{"NATed node to a public node", a1, pubAddr, true},
		{"other site's private address", a1, b1Attrs["private_ip"].(string), false},
		{"public node to its own site", pub, b1Attrs["private_ip"].(string), true},
		{"public node to another site's private address", pub, a1Attrs["private_ip"].(string), false},
		{"site gateway", b1, "10.231.2.1", true},
		{"nested site to a public node", z1, pubAddr, true},
		{"nested site to its parent's private address", z1, b1Attrs["private_ip"].(string), false},
		{"nested site's public node to its parent's private address", zpub, b1Attrs["private_ip"].(string), true},
		{"parent's node to a nested site's public node", b1, zpubAttrs["private_ip"].(string), true},
		{"nested site's public node to another site's private address", zpub, a1Attrs["private_ip"].(string), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := tc.canPing(c.from, c.to); got != c.want {
				t.Errorf("ping %s from %s: reached = %v, want %v", c.to, c.from, got, c.want)
			}
		})
	}
	// The user's machine (root namespace) reaches public addresses.
	if out, err := run(tc.ctx(), nil, "ping", "-c", "1", "-W", "1", pubAddr); err != nil {
		t.Errorf("ping %s from the host: %v %s", pubAddr, err, out)
	}
	// Forwarding is on in routers and nodes.
	for _, ns := range []string{tc.record(netA).Netns, tc.record(a1).Netns} {
		if v, err := readSysctlIn(tc.ctx(), ns, "net/ipv4/ip_forward"); err != nil || v != "1" {
			t.Errorf("ip_forward in %s = %q (%v), want 1", ns, v, err)
		}
	}
	// The site network is masqueraded and closed to the internet.
	out, err := run(tc.ctx(), nil, "ip", "netns", "exec", tc.record(netA).Netns, "nft", "list", "table", "ip", nftTable)
	if err != nil || !strings.Contains(out, "masquerade") || !strings.Contains(out, "10.231.1.0/24") {
		t.Errorf("router nft table: %v\n%s", err, out)
	}
	// ... and the ping to the public node went through that rule.
	if m := regexp.MustCompile(`counter packets (\d+) bytes \d+ masquerade`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("the masquerade rule counted no packet:\n%s", out)
	}
	// The root namespace does not route the internet elsewhere.
	items, err := List(tc.env.StateDir)
	must(t, err)
	if it := items[0]; it.Kind != KindInternet || len(it.NftTables) != 1 {
		t.Errorf("first List item = %+v, want the internet with its nft table", it)
	} else if out, err := run(tc.ctx(), nil, "nft", "list", "table", it.NftTables[0]); err != nil || !strings.Contains(out, `iifname "`+it.Links[0]+`"`) {
		t.Errorf("root nft table %s: %v\n%s", it.NftTables[0], err, out)
	}
	// Routes: a public node leaves by the internet, keeps its site on eth0.
	_, routes := tc.exec(pub, "ip", "route")
	if !strings.Contains(routes, "default via") || !strings.Contains(routes, "dev "+nodePublic) || !strings.Contains(routes, "10.231.2.0/24 dev "+nodeSite) {
		t.Errorf("public node routes:\n%s", routes)
	}

	// Names carry the cluster; root links are short.
	for _, id := range []string{a1, pub, netA} {
		r := tc.record(id)
		if !strings.HasPrefix(r.Netns, "hv-"+tc.name+"-") {
			t.Errorf("namespace %q does not carry the cluster", r.Netns)
		}
		for _, l := range append(r.Links, r.SiteLink) {
			if len(l) > 15 {
				t.Errorf("link name %q is longer than 15", l)
			}
		}
	}
	if got, want := tc.record(a1).Netns, "hv-"+tc.name+"-a-a1"; got != want {
		t.Errorf("node namespace = %q, want %q", got, want)
	}
	if got, want := tc.record(netZ).Netns, "hv-"+tc.name+"-b.zone-router"; got != want {
		t.Errorf("nested router namespace = %q, want %q", got, want)
	}

	// The agent got its configuration (secrets included, 0600); the world
	// file has no secret.
	r := tc.record(a1)
	cfgPath := filepath.Join(r.Dir, "agent.json")
	st, err := os.Stat(cfgPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("agent.json: %v mode %v, want 0600", err, st.Mode())
	}
	cfg, err := ReadAgentConfig(cfgPath)
	must(t, err)
	if cfg.Cluster != tc.name || cfg.Address != "site.a.node.a1" || cfg.Name != "a1" || cfg.Site != "a" ||
		cfg.CPUs != 2 || cfg.MemoryMiB != 512 || cfg.Labels["zone"] != "a" || cfg.Roles[0] != "worker" ||
		cfg.PrivateIP != "10.231.1.2" || cfg.Attrs["join_token"] != "SECRET-a1" || cfg.StateDir == "" {
		t.Errorf("agent config = %+v", cfg)
	}
	world, err := os.ReadFile(tc.p.WorldPath())
	must(t, err)
	if strings.Contains(string(world), "SECRET-") {
		t.Errorf("world.json holds a join token")
	}
	logb, _ := os.ReadFile(filepath.Join(r.Dir, "agent.log"))
	if !strings.Contains(string(logb), "-config "+cfgPath) {
		t.Errorf("agent.log = %q, want the stand-in's arguments with -config", logb)
	}
	// The agent lives in the node's namespace.
	pids := netnsPIDs(tc.ctx(), r.Netns)
	if r.Proc == nil || len(pids) == 0 || !containsInt(pids, r.Proc.PID) {
		t.Errorf("agent %+v not among the namespace's processes %v", r.Proc, pids)
	}

	// Exec reports exit codes.
	if code, _ := tc.exec(a1, "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exec exit code = %d, want 7", code)
	}

	// A network with nodes cannot go.
	err = tc.p.Delete(tc.ctx(), &provision.DeleteRequest{Address: "site.a.network", Kind: provision.KindNetwork, ID: netA})
	if err == nil || !strings.Contains(err.Error(), "DependencyViolation") {
		t.Errorf("delete of a network with nodes: %v, want DependencyViolation", err)
	}

	items, err = List(tc.env.StateDir)
	must(t, err)
	kinds := map[provision.Kind]int{}
	for _, it := range items {
		kinds[it.Kind]++
		if it.Kind == provision.KindInstance && (it.State != StateRunning || it.PID == 0 || !it.NetnsExists) {
			t.Errorf("list item %+v: want running with a pid and a namespace", it)
		}
	}
	if kinds[KindInternet] != 1 || kinds[provision.KindNetwork] != 4 || kinds[provision.KindInstance] != 6 {
		t.Errorf("List kinds = %v, want 1 internet, 4 networks, 6 instances", kinds)
	}
}

func containsInt(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// TestDeleteLeavesNothing deletes nodes and networks through the
// provider (not Cleanup) and compares the machine before and after.
func TestDeleteLeavesNothing(t *testing.T) {
	tc := newTestCluster(t, "del", Settings{})
	before := snapshot(t)
	netA := tc.network("a", "10.232.1.0/24")
	netB := tc.network("b", "10.232.2.0/24")
	n1, _ := tc.node("a", "n1", netA, true)
	n2, _ := tc.node("b", "n2", netB, false)
	agents := []*proc{tc.record(n1).Proc, tc.record(n2).Proc}
	ctx := tc.ctx()
	for _, id := range []string{n1, n2, netA, netB} {
		kind := provision.KindInstance
		if strings.HasPrefix(id, "local-net-") {
			kind = provision.KindNetwork
		}
		must(t, tc.p.Delete(ctx, &provision.DeleteRequest{Kind: kind, ID: id}))
		// Idempotent.
		must(t, tc.p.Delete(ctx, &provision.DeleteRequest{Kind: kind, ID: id}))
		rr, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: kind, ID: id})
		must(t, err)
		if rr.Exists {
			t.Errorf("%s exists after Delete", id)
		}
	}
	for _, a := range agents {
		if a.alive() {
			t.Errorf("agent pid %d still runs", a.PID)
		}
	}
	after := snapshot(t)
	for _, d := range diff(before.netns, after.netns) {
		t.Errorf("namespace %s appeared", d)
	}
	for _, d := range diff(before.links, after.links) {
		if strings.HasPrefix(d, "hv") && len(d) == 11 {
			t.Errorf("link %s appeared", d)
		}
	}
	for _, d := range diff(before.tables, after.tables) {
		t.Errorf("nft %s appeared", d)
	}
	for pid, cmd := range after.procs {
		if _, ok := before.procs[pid]; !ok && strings.Contains(cmd, tc.agent) {
			t.Errorf("process %s %q appeared", pid, cmd)
		}
	}
	items, err := List(tc.env.StateDir)
	must(t, err)
	if len(items) != 0 {
		t.Errorf("List after deleting everything = %+v", items)
	}
}

// TestCreateIdempotent: a retried Create (same token) returns the node
// the first made, and completes one a crash left half made.
func TestCreateIdempotent(t *testing.T) {
	tc := newTestCluster(t, "idem", Settings{})
	ctx := tc.ctx()
	netA := tc.network("a", "10.233.1.0/24")
	if again := tc.network("a", "10.233.1.0/24"); again != netA {
		t.Errorf("second network Create = %s, want %s", again, netA)
	}
	req := tc.nodeReq("a", "n1", netA, true)
	r1, err := tc.p.Create(ctx, req)
	must(t, err)
	r2, err := tc.p.Create(ctx, req)
	must(t, err)
	if r1.ID != r2.ID {
		t.Fatalf("Create twice with one token: %s and %s", r1.ID, r2.ID)
	}
	countNetns := func(prefix string) int {
		n := 0
		for _, ns := range snapshot(t).netns {
			if strings.HasPrefix(ns, prefix) {
				n++
			}
		}
		return n
	}
	if n := countNetns("hv-" + tc.name + "-a-n1"); n != 1 {
		t.Errorf("%d namespaces for n1, want 1", n)
	}

	// Simulate a crash right after the intent was recorded and half the
	// node made: the namespace exists, its links do not.
	rec := tc.record(r1.ID)
	must(t, tc.p.store.update(func(w *world) (bool, error) {
		byID(w, r1.ID).State = recCreating
		return true, nil
	}))
	must(t, delLink(ctx, "", rec.Links[0]))
	must(t, delLink(ctx, rec.RouterNetns, rec.SiteLink))

	// Read by token finds it (pending), so the engine adopts it.
	rr, err := tc.p.Read(ctx, &provision.ReadRequest{Address: req.Address, Kind: req.Kind, ClientToken: req.ClientToken})
	must(t, err)
	if !rr.Exists || rr.ID != r1.ID || rr.Attrs["state"] != StatePending {
		t.Fatalf("Read by token of a half-made node = %+v", rr)
	}
	// WaitReady completes it and starts the agent.
	rr, err = tc.p.WaitReady(ctx, &provision.ReadRequest{Address: req.Address, Kind: req.Kind, ID: r1.ID})
	must(t, err)
	if rr.Attrs["state"] != StateRunning {
		t.Fatalf("after WaitReady: %+v", rr.Attrs)
	}
	if !linkExists("", rec.Links[0]) || !linkExists(rec.RouterNetns, rec.SiteLink) {
		t.Errorf("WaitReady did not remake the links")
	}
	// A Create retry after the agent started changes nothing.
	r3, err := tc.p.Create(ctx, req)
	must(t, err)
	if r3.ID != r1.ID || r3.Attrs["state"] != StateRunning {
		t.Errorf("Create retry = %+v", r3)
	}
	if n := countNetns("hv-" + tc.name + "-"); n != 2 {
		t.Errorf("%d namespaces for the cluster, want 2 (router, n1)", n)
	}
	// Same token for another address is refused.
	other := tc.nodeReq("a", "n2", netA, false)
	other.ClientToken = req.ClientToken
	if _, err := tc.p.Create(ctx, other); err == nil {
		t.Errorf("Create of another address with a used token succeeded")
	}
}

// TestTwoClusters: two clusters with the same site and node names live
// side by side, each on its own public /24.
func TestTwoClusters(t *testing.T) {
	var cs [2]*testCluster
	var ids [2]string
	var pubs [2]string
	for i := range cs {
		cs[i] = newTestCluster(t, "two", Settings{})
		net := cs[i].network("onprem", "10.234.0.0/24")
		id, attrs := cs[i].node("onprem", "hub", net, true)
		ids[i], pubs[i] = id, attrs["public_address"].(string)
	}
	p0, p1 := netip.MustParsePrefix(pubs[0]+"/24").Masked(), netip.MustParsePrefix(pubs[1]+"/24").Masked()
	if p0 == p1 {
		t.Errorf("both clusters' public ranges are %s", p0)
	}
	for i := range cs {
		if !cs[i].canPing(ids[i], "10.234.0.1") {
			t.Errorf("cluster %d: hub cannot reach its gateway", i)
		}
	}
	// Removing one leaves the other working.
	must(t, Cleanup(cs[0].env.StateDir, cs[0].name))
	if !cs[1].canPing(ids[1], "10.234.0.1") || !cs[1].canPing(ids[1], pubs[1]) {
		t.Errorf("cluster 1 broken after cluster 0 was removed")
	}
}

// TestBootTime: a node stays pending until boot_time has passed on the
// env clock; only then does WaitReady start the agent.
func TestBootTime(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	tc := newTestCluster(t, "boot", Settings{BootTime: time.Hour})
	tc.env.Clock = clock.Now
	ctx := tc.ctx()
	netA := tc.network("a", "10.235.1.0/24")
	req := tc.nodeReq("a", "n1", netA, false)
	resp, err := tc.p.Create(ctx, req)
	must(t, err)
	if resp.Attrs["state"] != StatePending {
		t.Fatalf("state after Create = %v, want pending", resp.Attrs["state"])
	}
	rec := tc.record(resp.ID)
	if !netnsExists(rec.Netns) {
		t.Fatalf("Create returned before the namespace existed")
	}
	done := make(chan error, 1)
	go func() {
		_, err := tc.p.WaitReady(ctx, &provision.ReadRequest{Kind: req.Kind, ID: resp.ID})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("WaitReady returned before boot_time: %v", err)
	default:
	}
	rr, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: req.Kind, ID: resp.ID})
	must(t, err)
	if rr.Attrs["state"] != StatePending || len(netnsPIDs(ctx, rec.Netns)) != 0 {
		t.Errorf("before boot_time: state %v, processes %v; want pending and none", rr.Attrs["state"], netnsPIDs(ctx, rec.Netns))
	}
	clock.Advance(time.Hour)
	must(t, <-done)
	rr, err = tc.p.Read(ctx, &provision.ReadRequest{Kind: req.Kind, ID: resp.ID})
	must(t, err)
	if rr.Attrs["state"] != StateRunning {
		t.Errorf("after boot_time: state %v, want running", rr.Attrs["state"])
	}
}

// TestRealBootTime: a short real boot_time on the real clock.
func TestRealBootTime(t *testing.T) {
	tc := newTestCluster(t, "rboot", Settings{BootTime: 300 * time.Millisecond})
	netA := tc.network("a", "10.236.1.0/24")
	start := time.Now()
	tc.node("a", "n1", netA, false)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("node running after %v, before boot_time", d)
	}
}

// TestAgentFailure: an agent that exits at once fails WaitReady with
// the end of its log; one killed later shows as failed.
func TestAgentFailure(t *testing.T) {
	tc := newTestCluster(t, "fail", Settings{AgentCommand: []string{"sh", "-c", "echo agent: cannot join the hub >&2; exit 3", "agent"}})
	ctx := tc.ctx()
	netA := tc.network("a", "10.237.1.0/24")
	req := tc.nodeReq("a", "n1", netA, false)
	resp, err := tc.p.Create(ctx, req)
	must(t, err)
	rr, err := tc.p.WaitReady(ctx, &provision.ReadRequest{Kind: req.Kind, ID: resp.ID})
	if err == nil || !strings.Contains(err.Error(), "cannot join the hub") {
		t.Fatalf("WaitReady of a dying agent: %v, want the log's last lines", err)
	}
	if rr == nil || rr.Attrs["state"] != StateFailed {
		t.Errorf("WaitReady response %+v, want state failed", rr)
	}
	got, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: req.Kind, ID: resp.ID})
	must(t, err)
	if got.Attrs["state"] != StateFailed {
		t.Errorf("Read state = %v, want failed", got.Attrs["state"])
	}

	// A healthy agent killed from outside: failed.
	tc.p.settings.AgentCommand = []string{tc.agent}
	id, _ := tc.node("a", "n2", netA, false)
	pr := tc.record(id).Proc
	must(t, syscall.Kill(-pr.PID, syscall.SIGKILL))
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: req.Kind, ID: id})
		must(t, err)
		if got.Attrs["state"] == StateFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("killed agent: state %v, want failed", got.Attrs["state"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGoneOutside: a node whose namespace was deleted outside hvctl does
// not exist, and what was left of it is removed.
func TestGoneOutside(t *testing.T) {
	tc := newTestCluster(t, "gone", Settings{})
	ctx := tc.ctx()
	netA := tc.network("a", "10.238.1.0/24")
	id, _ := tc.node("a", "n1", netA, true)
	rec := tc.record(id)
	_, err := run(ctx, nil, "ip", "netns", "del", rec.Netns)
	must(t, err)
	rr, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: id})
	must(t, err)
	if rr.Exists {
		t.Fatalf("node without a namespace exists: %+v", rr)
	}
	if rec.Proc.alive() || linkExists("", rec.Links[0]) {
		t.Errorf("leftovers of a vanished node: agent alive %v, link %v", rec.Proc.alive(), linkExists("", rec.Links[0]))
	}
	if _, err := os.Stat(rec.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("node directory left: %v", err)
	}
	// Its address is free again; the next node takes the next one anyway
	// (sequential), and the network can now go.
	must(t, tc.p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindNetwork, ID: netA}))
}

// TestUpdate rewrites labels and roles in agent.json, and refuses other
// changes.
func TestUpdate(t *testing.T) {
	tc := newTestCluster(t, "upd", Settings{})
	ctx := tc.ctx()
	netA := tc.network("a", "10.239.1.0/24")
	req := tc.nodeReq("a", "n1", netA, false)
	id, _ := tc.node("a", "n1", netA, false)
	after := provision.Attrs{}
	for k, v := range req.Attrs {
		after[k] = v
	}
	after["labels"] = map[string]string{"gpu": "yes"}
	after["roles"] = []string{"worker", "gateway"}
	if !tc.p.Updatable(provision.KindInstance, "labels") || tc.p.Updatable(provision.KindInstance, "cpus") {
		t.Errorf("Updatable: labels should be, cpus should not")
	}
	// Before is the state's attributes: computed ones included.
	before := provision.Attrs{"state": StateRunning, "private_ip": "10.239.1.2"}
	for k, v := range req.Attrs {
		before[k] = v
	}
	_, err := tc.p.Update(ctx, &provision.UpdateRequest{Kind: provision.KindInstance, ID: id, Before: before, After: after})
	must(t, err)
	cfg, err := ReadAgentConfig(filepath.Join(tc.record(id).Dir, "agent.json"))
	must(t, err)
	if cfg.Labels["gpu"] != "yes" || cfg.Labels["zone"] != "" || len(cfg.Roles) != 2 || cfg.Roles[1] != "gateway" {
		t.Errorf("after Update: labels %v roles %v", cfg.Labels, cfg.Roles)
	}
	if cfg.Attrs["join_token"] != "SECRET-n1" {
		t.Errorf("Update lost the other attributes: %v", cfg.Attrs)
	}
	after["cpus"] = int64(8)
	if _, err := tc.p.Update(ctx, &provision.UpdateRequest{Kind: provision.KindInstance, ID: id, Before: req.Attrs, After: after}); err == nil {
		t.Errorf("Update of cpus succeeded")
	}
}

// TestConcurrentCreates: nodes created at once (as apply does) get
// distinct addresses and all run.
func TestConcurrentCreates(t *testing.T) {
	tc := newTestCluster(t, "conc", Settings{})
	netA := tc.network("a", "10.240.1.0/24")
	const n = 8
	var wg sync.WaitGroup
	ips := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := tc.nodeReq("a", "w"+strconv.Itoa(i), netA, i%2 == 0)
			resp, err := tc.p.Create(tc.ctx(), req)
			if err != nil {
				t.Errorf("create %s: %v", req.Address, err)
				return
			}
			rr, err := tc.p.WaitReady(tc.ctx(), &provision.ReadRequest{Kind: req.Kind, ID: resp.ID})
			if err != nil {
				t.Errorf("wait %s: %v", req.Address, err)
				return
			}
			ips[i] = rr.Attrs["private_ip"].(string)
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, ip := range ips {
		if ip == "" || seen[ip] {
			t.Errorf("private addresses %v: want %d distinct", ips, n)
			break
		}
		seen[ip] = true
	}
}

// TestList: one read of the world lists the cluster's network and nodes
// with the attributes Read gives them; a node whose namespace vanished
// is left out (Read, which cleans it up, decides), and another cluster's
// resources are not listed.
func TestList(t *testing.T) {
	tc := newTestCluster(t, "list", Settings{})
	ctx := tc.ctx()
	netA := tc.network("a", "10.239.1.0/24")
	id1, _ := tc.node("a", "n1", netA, false)
	id2, _ := tc.node("a", "n2", netA, false)
	page, err := tc.p.List(ctx, &provision.ListRequest{Cluster: tc.name})
	must(t, err)
	if page.NextPageToken != "" || len(page.Items) != 3 {
		t.Fatalf("page = %+v, want the network and two nodes in one page", page)
	}
	for _, it := range page.Items {
		rr, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: it.Kind, ID: it.ID})
		must(t, err)
		if !rr.Exists || fmt.Sprint(rr.Attrs) != fmt.Sprint(it.Attrs) || it.ClientToken == "" {
			t.Errorf("%s: listed %v (token %q), read %+v", it.ID, it.Attrs, it.ClientToken, rr)
		}
	}
	other, err := tc.p.List(ctx, &provision.ListRequest{Cluster: tc.name + "-other"})
	must(t, err)
	if len(other.Items) != 0 {
		t.Errorf("another cluster lists %+v", other.Items)
	}
	_, err = run(ctx, nil, "ip", "netns", "del", tc.record(id2).Netns)
	must(t, err)
	page, err = tc.p.List(ctx, &provision.ListRequest{Cluster: tc.name})
	must(t, err)
	for _, it := range page.Items {
		if it.ID == id2 {
			t.Errorf("a node without its namespace is listed")
		}
	}
	if len(page.Items) != 2 {
		t.Errorf("%d items after a node vanished, want 2 (%s and the network)", len(page.Items), id1)
	}
	rr, err := tc.p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: id2})
	must(t, err)
	if rr.Exists {
		t.Errorf("vanished node reads as existing")
	}
}

// TestSwitchedFlowIsTranslated is the wedged-NAT bug's regression test:
// the site bridge keeps its MAC, and a packet switched on a site bridge between two nodes (here: node g sends
// from the hub's public address to node w, as a gateway forwarding
// overlay traffic onto its site does) must leave no conntrack entry in
// the router: otherwise, when w answers that address, its packet matches
// the entry in reply direction, which has no NAT binding, and leaves
// through the NAT untranslated, from w's private address.
func TestSwitchedFlowIsTranslated(t *testing.T) {
	tc := newTestCluster(t, "wedge", Settings{})
	netA := tc.network("a", "10.233.1.0/24")
	netB := tc.network("b", "10.233.2.0/24")
	mac := func() string {
		l, err := net.InterfaceByName(siteBridge)
		_ = err
		if l == nil {
			return ""
		}
		return l.HardwareAddr.String()
	}
	var before, after string
	must(t, inNetns(tc.record(netA).Netns, func() error { before = mac(); return nil }))
	w, wAttrs := tc.node("a", "w", netA, false)
	g, _ := tc.node("a", "g", netA, false)
	h, hAttrs := tc.node("b", "hub", netB, true)
	// The site bridge keeps its MAC as ports join (a bridge without
	// one of its own takes its lowest port's, and nodes that resolved
	// their gateway before would send to a MAC that is gone).
	must(t, inNetns(tc.record(netA).Netns, func() error { after = mac(); return nil }))
	if before == "" || before != after {
		t.Errorf("site bridge MAC %q before the nodes, %q after", before, after)
	}
	hubIP := net.ParseIP(hAttrs["public_address"].(string))
	wIP := net.ParseIP(wAttrs["private_ip"].(string))
	natIP := tc.record(netA).PublicAddress
	const hubPort, wPort = 40001, 40002

	var hub *net.UDPConn
	must(t, inNetns(tc.record(h).Netns, func() (err error) {
		hub, err = net.ListenUDP("udp4", &net.UDPAddr{Port: hubPort})
		return err
	}))
	defer hub.Close()
	send := func(ns string, from, to *net.UDPAddr, msg string) error {
		return inNetns(ns, func() error {
			c, err := net.DialUDP("udp4", from, to)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(msg))
			return err
		})
	}
	// g sends from the hub's address (on its loopback) to w, across the
	// site bridge; then w sends to the hub from the port g's packet went
	// to, routed out of the NAT.
	must(t, ip(tc.ctx(), tc.record(g).Netns, "addr", "add", hubIP.String()+"/32", "dev", "lo"))
	must(t, send(tc.record(g).Netns, &net.UDPAddr{IP: hubIP, Port: hubPort}, &net.UDPAddr{IP: wIP, Port: wPort}, "switched"))
	time.Sleep(200 * time.Millisecond)
	must(t, send(tc.record(w).Netns, &net.UDPAddr{Port: wPort}, &net.UDPAddr{IP: hubIP, Port: hubPort}, "routed"))
	hub.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, from, err := hub.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("the hub got nothing from w: %v", err)
	}
	if got := from.IP.String(); got != natIP || string(buf[:n]) != "routed" {
		t.Errorf("the hub got %q from %s, want %q from the NAT's address %s (%s is w's private address: the flow left untranslated)", buf[:n], from, "routed", natIP, wIP)
	}
	for _, ns := range []string{tc.record(netA).Netns, tc.record(netB).Netns} {
		if v, err := readSysctlIn(tc.ctx(), ns, "net/bridge/bridge-nf-call-iptables"); err == nil && v != "0" {
			t.Errorf("bridge-nf-call-iptables in router %s = %s, want 0", ns, v)
		}
	}
}

// inNetns runs f on a locked thread inside namespace ns; sockets f opens
// stay in ns.
func inNetns(ns string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			done <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		done <- ferr
	}()
	return <-done
}
