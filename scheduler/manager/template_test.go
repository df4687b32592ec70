package manager

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// oneManagerTmpl is replicaTmpl before the cloud site had its hub and
// gateway: one manager node.
var oneManagerTmpl = strings.Replace(strings.Replace(strings.Replace(replicaTmpl, `    gateway  = "gw"
`, "", 1), `hubs = ["onprem.frontend", "cloud.hub2"]`, `hubs = ["onprem.frontend"]`, 1),
	`    node "hub2" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    node "gw" { roles = ["gateway"] }
`, "", 1)

// grownTmpl is replicaTmpl with a pool in the cloud site as well.
var grownTmpl = strings.Replace(replicaTmpl, `    node "gw" { roles = ["gateway"] }`, `    node "gw" { roles = ["gateway"] }
    pool "burst" { count = 1 }`, 1)

func loadTmpl(t *testing.T, src string) *templates.Config {
	t.Helper()
	cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(src)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	return cfg
}

func putTmpl(t *testing.T, m *Manager, s Secret, src string) *httptest.ResponseRecorder {
	t.Helper()
	b, _ := json.Marshal(&Template{Files: map[string]string{"m.hcl": src}})
	return do(t, m.Handler(), "PUT", "/v1/template", s.AdminToken(), nil, b)
}

// A template sent to the manager is checked, kept in the control log
// and used: nodes only it has may join, also after a restart of the
// manager on its log (which was started with the old template).
// Templates that do not load, of another cluster or another overlay
// range are refused and change nothing.
func TestTemplateKeptInLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	s := NewSecret()
	old := loadTmpl(t, oneManagerTmpl)
	open := func() *Manager {
		m, err := New(Config{Cluster: old.Cluster, Secret: s, Template: &Template{Files: map[string]string{"m.hcl": oneManagerTmpl}},
			Replica: &ReplicaConfig{Dir: dir, ID: "onprem.frontend", Bootstrap: SingleVoter("onprem.frontend")}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	m := open()
	hub := &JoinRequest{Token: s.JoinToken("onprem.frontend"), Address: "site.onprem.node.frontend", Site: "onprem", PublicKey: key(t),
		Endpoint: netip.MustParseAddrPort("198.51.100.1:51820")}
	if _, err := m.Join(hub, ""); err != nil {
		t.Fatal(err)
	}
	burst := func(m *Manager) error {
		_, err := m.Join(&JoinRequest{Token: s.JoinToken("cloud.burst[0]"), Address: "site.cloud.pool.burst.node[0]", Site: "cloud", PublicKey: key(t)}, "")
		return err
	}
	if err := burst(m); err == nil || !strings.Contains(err.Error(), "has no node") {
		t.Fatalf("a node the template does not have joined: %v", err)
	}
	before := m.replica.raft.LastIndex()
	for _, c := range []struct{ name, src, want string }{
		{"does not load", `cluster "c" {`, "load the cluster template"},
		{"another cluster", strings.Replace(grownTmpl, `cluster "c"`, `cluster "d"`, 1), "is of cluster"},
		{"another overlay range", strings.Replace(grownTmpl, `10.200.0.0/16`, `10.201.0.0/16`, 1), "overlay.cidr changed"},
	} {
		if w := putTmpl(t, m, s, c.src); w.Code != 400 || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want 400 with %q", c.name, w.Code, w.Body, c.want)
		}
	}
	if m.replica.raft.LastIndex() != before || len(m.Cluster().AllSites()[1].Pools) != 0 {
		t.Errorf("a refused template changed something")
	}
	if w := do(t, m.Handler(), "PUT", "/v1/template", "", nil, []byte(`{}`)); w.Code != 401 {
		t.Errorf("a template without the cluster token: %d, want 401", w.Code)
	}
	if w := putTmpl(t, m, s, oneManagerTmpl); w.Code != 200 || m.replica.raft.LastIndex() != before {
		t.Errorf("the same template again: %d, %d log entries; want 200 and none", w.Code, m.replica.raft.LastIndex()-before)
	}
	if w := putTmpl(t, m, s, grownTmpl); w.Code != 200 {
		t.Fatalf("put the grown template: %d %s", w.Code, w.Body)
	}
	m.Close()
	m = open()
	if err := burst(m); err != nil {
		t.Errorf("after a restart, a node of the template sent later cannot join: %v", err)
	}
}

// A cluster made with one manager node gains a second (and a witness)
// with a new template: its one-voter log grows into a replica set of
// three voters; the new hub is in every member's peer set and in the
// managers list; the primary killed, the new manager leads with the new
// template.
func TestTemplateGrowsReplicaSet(t *testing.T) {
	rs := &replicaSet{cfg: loadTmpl(t, oneManagerTmpl), s: NewSecret(), tokens: map[string]string{},
		addrs: map[string]string{"onprem.frontend": freeAddr(t), "cloud.hub2": freeAddr(t), "cloud.gw": freeAddr(t)}}
	var err error
	if rs.ca, err = NewCA("c"); err != nil {
		t.Fatal(err)
	}
	rs.m1 = rs.start(t, "onprem.frontend", true, "")
	if _, err := rs.join(t, rs.m1, "onprem.frontend", "site.onprem.node.frontend", "onprem", netip.MustParseAddr("198.51.100.1")); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.join(t, rs.m1, "onprem.wn[0]", "site.onprem.pool.wn.node[0]", "onprem", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if w := putTmpl(t, rs.m1, rs.s, grownTmpl); w.Code != 200 {
		t.Fatalf("put the grown template: %d %s", w.Code, w.Body)
	}
	// up makes the new machines with the new template.
	rs.cfg = loadTmpl(t, grownTmpl)
	rs.m2 = rs.start(t, "cloud.hub2", false, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go RunWitness(ctx, rs.rcfg(t, "cloud.gw", ""), t.Logf)
	for _, n := range []struct {
		id, addr string
		pub      netip.Addr
	}{{"cloud.hub2", "site.cloud.node.hub2", netip.MustParseAddr("198.51.100.2")}, {"cloud.gw", "site.cloud.node.gw", netip.Addr{}}} {
		if _, err := rs.join(t, rs.m1, n.id, n.addr, "cloud", n.pub); err != nil {
			t.Fatalf("join %s after the template grew: %v", n.id, err)
		}
		if err := rs.m1.Beat(n.id, &Heartbeat{ProbeOK: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three voters", 20*time.Second, func() bool {
		f := rs.m1.replica.raft.GetConfiguration()
		return f.Error() == nil && len(f.Configuration().Servers) == 3
	})
	if got := strings.Join(rs.m1.Managers(), " "); got != "https://198.51.100.1:51821 https://198.51.100.2:51821" {
		t.Errorf("managers = %s, want both hubs", got)
	}
	_, ps, err := rs.m1.Peers("onprem.wn[0]", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var hub2 bool
	for _, p := range ps.Peers {
		hub2 = hub2 || p.Node == "cloud.hub2"
	}
	if !hub2 {
		t.Errorf("the worker's peer set has no cloud.hub2 (the new hub): %+v", ps.Peers)
	}
	// Raft elects only a voter whose log is as long as the others': the
	// primary goes once the new manager has caught up (under load its
	// replication can lag the configuration change).
	waitFor(t, "the new manager has the log", 20*time.Second, func() bool {
		return rs.m2.replica.raft.LastIndex() >= rs.m1.replica.raft.CommitIndex()
	})
	rs.m1.Close()
	waitFor(t, "the new manager leads", 30*time.Second, rs.m2.Leading)
	if _, err := rs.join(t, rs.m2, "cloud.burst[0]", "site.cloud.pool.burst.node[0]", "cloud", netip.Addr{}); err != nil {
		t.Errorf("a node of the new template cannot join through the new leader: %v", err)
	}
}
