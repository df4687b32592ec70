package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
)

// requireRoot skips a test that needs root, or fails it when HVCTL_E2E=1
// (CI must not skip real-system tests).
func requireRoot(t *testing.T) {
	t.Helper()
	why := ""
	if err := checkPrivileges(); err != nil {
		why = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to make network namespaces: " + err.Error()
	}
	for _, bin := range []string{"ip", "nft", "ping"} {
		if why == "" {
			if _, err := exec.LookPath(bin); err != nil {
				why = "needs " + bin + " (Debian: iproute2, nftables, iputils-ping)"
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("HVCTL_E2E") == "1" {
		t.Fatalf("local provider test %s; HVCTL_E2E=1 forbids skipping it", why)
	}
	t.Skipf("local provider test %s (set HVCTL_E2E=1 to make this a failure)", why)
}

// testCluster is one uniquely named cluster with its own state directory
// and a stand-in agent, removed (and checked gone) at the end of the
// test even when it fails.
type testCluster struct {
	t       *testing.T
	name    string
	env     *provision.Env
	p       *Provider
	agent   string // the stand-in agent script
	counter int
}

// standInAgent is a shell script that logs its arguments and sleeps; its
// path (unique per test) identifies its processes.
const standInAgent = `#!/bin/sh
echo "stand-in agent $*"
trap 'echo stopping; exit 0' TERM
while :; do sleep 1; done
`

func newTestCluster(t *testing.T, short string, s Settings) *testCluster {
	t.Helper()
	requireRoot(t)
	var b [3]byte
	rand.Read(b[:])
	name := "t" + short + "-" + hex.EncodeToString(b[:])
	dir := t.TempDir()
	tc := &testCluster{t: t, name: name, env: &provision.Env{StateDir: filepath.Join(dir, ".hvctl"), Cluster: name}}
	tc.agent = filepath.Join(dir, "agent.sh")
	if err := os.WriteFile(tc.agent, []byte(standInAgent), 0o755); err != nil {
		t.Fatal(err)
	}
	if len(s.AgentCommand) == 0 {
		s.AgentCommand = []string{tc.agent}
	}
	tc.p = Open(tc.env, s)
	before := snapshot(t)
	t.Cleanup(func() {
		if err := Cleanup(tc.env.StateDir, ""); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
		tc.assertGone(before)
	})
	return tc
}

func (tc *testCluster) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tc.t.Cleanup(cancel)
	return ctx
}

func (tc *testCluster) token(addr string) string {
	return provision.ClientToken("lineage-"+tc.name, addr, 0)
}

// network creates site's network.
func (tc *testCluster) network(site, cidr string) string {
	tc.t.Helper()
	return tc.nestedNetwork(site, cidr, "")
}

// nestedNetwork creates site's network inside the network parentID of its
// parent site (a top-level one when parentID is "").
func (tc *testCluster) nestedNetwork(site, cidr, parentID string) string {
	tc.t.Helper()
	addr := "site." + site + ".network"
	var deps map[string]string
	if parentID != "" {
		deps = map[string]string{"site." + site[:strings.LastIndex(site, ".")] + ".network": parentID}
	}
	resp, err := tc.p.Create(tc.ctx(), &provision.CreateRequest{
		Address: addr, Kind: provision.KindNetwork, Cluster: tc.name, Lineage: "lineage-" + tc.name,
		ClientToken: tc.token(addr), Attrs: provision.Attrs{"site": site, "cidr": cidr}, Deps: deps,
	})
	if err != nil {
		tc.t.Fatalf("create %s: %v", addr, err)
	}
	return resp.ID
}

// nodeReq is the Create request of a node.
func (tc *testCluster) nodeReq(site, name, netID string, public bool) *provision.CreateRequest {
	addr := "site." + site + ".node." + name
	return &provision.CreateRequest{
		Address: addr, Kind: provision.KindInstance, Cluster: tc.name, Lineage: "lineage-" + tc.name,
		ClientToken: tc.token(addr),
		Attrs: provision.Attrs{"site": site, "name": name, "public_ip": public, "cpus": int64(2), "memory_mib": int64(512),
			"roles": []string{"worker"}, "labels": map[string]string{"zone": site}, "join_token": "SECRET-" + name},
		Deps: map[string]string{"site." + site + ".network": netID},
	}
}

// node creates and waits for a node; it returns the ID and final attrs.
func (tc *testCluster) node(site, name, netID string, public bool) (string, provision.Attrs) {
	tc.t.Helper()
	req := tc.nodeReq(site, name, netID, public)
	resp, err := tc.p.Create(tc.ctx(), req)
	if err != nil {
		tc.t.Fatalf("create %s: %v", req.Address, err)
	}
	rr, err := tc.p.WaitReady(tc.ctx(), &provision.ReadRequest{Address: req.Address, Kind: req.Kind, ID: resp.ID})
	if err != nil {
		tc.t.Fatalf("wait %s: %v", req.Address, err)
	}
	if s := rr.Attrs["state"]; s != StateRunning {
		tc.t.Fatalf("%s: state %v after WaitReady, want running", req.Address, s)
	}
	return resp.ID, rr.Attrs
}

func (tc *testCluster) record(id string) *record {
	tc.t.Helper()
	w, err := tc.p.store.load()
	if err != nil {
		tc.t.Fatal(err)
	}
	r := byID(w, id)
	if r == nil {
		tc.t.Fatalf("no record %s", id)
	}
	return r
}

// exec runs argv in node id and returns exit code and output.
func (tc *testCluster) exec(id string, argv ...string) (int, string) {
	tc.t.Helper()
	var out bytes.Buffer
	code, err := tc.p.Exec(tc.ctx(), id, argv, nil, &out, &out)
	if err != nil {
		tc.t.Fatalf("exec %v in %s: %v", argv, id, err)
	}
	return code, out.String()
}

// agents counts the stand-in agents running in namespace ns.
func (tc *testCluster) agents(ns string) int {
	named := map[int]bool{}
	for _, pid := range netnsPIDs(tc.ctx(), ns) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		argv0, _, _ := strings.Cut(string(b), "\x00")
		// The time-namespace wrapper (bootNow) names the agent too.
		if strings.Contains(string(b), tc.agent) && filepath.Base(argv0) != "unshare" {
			named[pid] = true
		}
	}
	n := 0
	for pid := range named {
		// A child the script forked, before it execs sleep, still has
		// the script's command line: not another agent.
		if !named[ParentPID(pid)] {
			n++
		}
	}
	return n
}

func (tc *testCluster) canPing(from, addr string) bool {
	tc.t.Helper()
	code, _ := tc.exec(from, "ping", "-c", "1", "-W", "1", addr)
	return code == 0
}

// machine is what exists on the machine: namespaces, root links, nft
// tables of the root namespace, processes (pid: cmdline).
type machine struct {
	netns, links, tables []string
	procs                map[string]string
}

var snapshotMu sync.Mutex

func snapshot(t *testing.T) machine {
	t.Helper()
	snapshotMu.Lock()
	defer snapshotMu.Unlock()
	var m machine
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			m.netns = append(m.netns, f[0])
		}
	}
	out, err = exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatalf("ip -o link: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			m.links = append(m.links, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	out, err = exec.Command("nft", "list", "tables").Output()
	if err != nil {
		t.Fatalf("nft list tables: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			m.tables = append(m.tables, l)
		}
	}
	m.procs = map[string]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && len(b) > 0 {
			m.procs[e.Name()] = strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " ")
		}
	}
	return m
}

// assertGone checks that the machine holds no namespace, link, nft table
// or stand-in agent that was not there before this test's cluster.
// Other tests (other packages) may be making their own namespaces
// concurrently, so only names this provider would make count.
func (tc *testCluster) assertGone(before machine) {
	t := tc.t
	t.Helper()
	after := snapshot(t)
	ours := func(name string) bool {
		return strings.HasPrefix(name, "hv-"+tc.name) || (len(name) == 11 && strings.HasPrefix(name, "hv") && isHex(name[2:10]))
	}
	for _, d := range diff(before.netns, after.netns) {
		if ours(d) {
			t.Errorf("namespace %s left behind", d)
		}
	}
	for _, d := range diff(before.links, after.links) {
		if ours(d) {
			t.Errorf("link %s left behind", d)
		}
	}
	for _, d := range diff(before.tables, after.tables) {
		if strings.Contains(d, nftTable) {
			t.Errorf("nft %s left behind", d)
		}
	}
	for pid, cmd := range after.procs {
		if strings.Contains(cmd, tc.agent) {
			t.Errorf("process %s (%s) left behind", pid, cmd)
		}
	}
	if _, err := os.Stat(filepath.Join(tc.env.StateDir, "local", "nodes")); err == nil {
		if ents, _ := os.ReadDir(filepath.Join(tc.env.StateDir, "local", "nodes")); len(ents) > 0 {
			t.Errorf("node files left behind: %d directories in local/nodes", len(ents))
		}
	}
	if _, err := os.Stat(filepath.Join(tc.env.StateDir, "local", "world.json")); err == nil {
		t.Errorf("world.json left behind after everything was deleted")
	}
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// diff returns what b has and a has not, sorted.
func diff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range a {
		in[x] = true
	}
	var out []string
	for _, x := range b {
		if !in[x] {
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

// fakeClock is a settable env clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
