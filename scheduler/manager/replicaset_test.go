package manager

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/templates"
)

const replicaTmpl = `
cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.frontend", "cloud.hub2"]
  }
  site "onprem" {
    provider = "sim"
    network { cidr = "192.168.10.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" { count = 1 }
  }
  site "cloud" {
    provider = "sim"
    gateway  = "gw"
    network { cidr = "10.4.2.0/24" }
    node "hub2" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    node "gw" { roles = ["gateway"] }
  }
}
`

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t testing.TB, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicaSet is two manager replicas (onprem.frontend bootstrapping)
// and a witness (cloud.gw) over mutual TLS on loopback.
type replicaSet struct {
	cfg    *templates.Config
	ca     *CA
	s      Secret
	addrs  map[string]string
	m1, m2 *Manager
	tokens map[string]string
	tune   func(*ReplicaConfig)
}

func newReplicaSet(t *testing.T, tune func(*ReplicaConfig)) *replicaSet {
	cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(replicaTmpl)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	ca, err := NewCA("c")
	if err != nil {
		t.Fatal(err)
	}
	rs := &replicaSet{cfg: cfg, ca: ca, s: NewSecret(), tokens: map[string]string{}, tune: tune,
		addrs: map[string]string{"onprem.frontend": freeAddr(t), "cloud.hub2": freeAddr(t), "cloud.gw": freeAddr(t)}}
	rs.m1 = rs.start(t, "onprem.frontend", true, "")
	rs.m2 = rs.start(t, "cloud.hub2", false, "")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go RunWitness(ctx, rs.rcfg(t, "cloud.gw", ""), t.Logf)
	return rs
}

func (rs *replicaSet) rcfg(t *testing.T, id, dir string) ReplicaConfig {
	cert, key, err := rs.ca.IssueReplica()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := ReplicaTLS(rs.ca.CertPEM, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		dir = filepath.Join(t.TempDir(), id)
	}
	resolve := func(id string) (string, error) {
		if a, ok := rs.addrs[id]; ok {
			return a, nil
		}
		return "", fmt.Errorf("unknown replica %s", id)
	}
	rc := ReplicaConfig{Dir: dir, ID: id, Listen: rs.addrs[id], TLS: tc, Resolve: resolve,
		Witnesses: []string{"cloud.gw"}, HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond}
	if rs.tune != nil {
		rs.tune(&rc)
	}
	return rc
}

// start runs replica id's manager with its log in dir ("" = a new
// directory); boot bootstraps a new log.
func (rs *replicaSet) start(t *testing.T, id string, boot bool, dir string) *Manager {
	rc := rs.rcfg(t, id, dir)
	if boot {
		rc.Bootstrap = SingleVoter(id)
	}
	m, err := New(Config{Cluster: rs.cfg.Cluster, Secret: rs.s, Replica: &rc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func (rs *replicaSet) join(t *testing.T, m *Manager, id, addr, site string, public netip.Addr) (*JoinResponse, error) {
	if rs.tokens[id] == "" {
		rs.tokens[id] = rs.s.JoinToken(id)
	}
	req := &JoinRequest{Token: rs.tokens[id], Address: addr, Site: site, PublicKey: key(t)}
	if public.IsValid() {
		req.Endpoint = netip.AddrPortFrom(public, 51820)
	}
	return m.Join(req, "")
}

// joinAll joins the two managers and the witness through m1 and waits
// for the three voters.
func (rs *replicaSet) joinAll(t *testing.T) {
	for _, n := range []struct {
		id, addr, site string
		pub            netip.Addr
	}{
		{"onprem.frontend", "site.onprem.node.frontend", "onprem", netip.MustParseAddr("198.51.100.1")},
		{"cloud.hub2", "site.cloud.node.hub2", "cloud", netip.MustParseAddr("198.51.100.2")},
		{"cloud.gw", "site.cloud.node.gw", "cloud", netip.Addr{}},
	} {
		if _, err := rs.join(t, rs.m1, n.id, n.addr, n.site, n.pub); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"cloud.hub2", "cloud.gw"} {
		if err := rs.m1.Beat(id, &Heartbeat{ProbeOK: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three voters", 20*time.Second, func() bool {
		f := rs.m1.replica.raft.GetConfiguration()
		return f.Error() == nil && len(f.Configuration().Servers) == 3
	})
}

// Two manager replicas and a witness over mutual TLS: the followers
// answer 421 naming the leader; the leader killed, the survivor leads
// within raft's election time with every job and spent token, and a new
// node joins through it.
func TestReplicaSetFailover(t *testing.T) {
	rs := newReplicaSet(t, nil)
	if w := Witness(rs.cfg.Cluster); w == nil || w.Path() != "cloud.gw" {
		t.Fatalf("witness = %v, want cloud.gw (the gateway)", w)
	}
	m1, m2, ca, addrs := rs.m1, rs.m2, rs.ca, rs.addrs
	join := func(m *Manager, id, addr, site string, public netip.Addr) (*JoinResponse, error) {
		return rs.join(t, m, id, addr, site, public)
	}
	if _, err := join(m1, "onprem.frontend", "site.onprem.node.frontend", "onprem", netip.MustParseAddr("198.51.100.1")); err != nil {
		t.Fatal(err)
	}
	jr, err := join(m1, "cloud.hub2", "site.cloud.node.hub2", "cloud", netip.MustParseAddr("198.51.100.2"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://198.51.100.1:51821", "https://198.51.100.2:51821"}
	if strings.Join(jr.Managers, " ") != strings.Join(want, " ") {
		t.Errorf("join response managers = %v, want %v", jr.Managers, want)
	}
	if _, err := join(m1, "cloud.gw", "site.cloud.node.gw", "cloud", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	// Voters are added together, once every replica's probe through
	// the overlay answers.
	for _, id := range []string{"cloud.hub2"} {
		if err := m1.Beat(id, &Heartbeat{ProbeOK: true}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if f := m1.replica.raft.GetConfiguration(); f.Error() != nil || len(f.Configuration().Servers) != 1 {
		t.Fatalf("voters added before the witness was ready: %v", f.Configuration().Servers)
	}
	if err := m1.Beat("cloud.gw", &Heartbeat{ProbeOK: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three voters", 20*time.Second, func() bool {
		f := m1.replica.raft.GetConfiguration()
		return f.Error() == nil && len(f.Configuration().Servers) == 3
	})
	spec := &scheduler.Spec{Command: []string{"true"}, Count: 10}
	jobs, _, err := m1.Global().SubmitKey(spec, "cli-retry")
	if err != nil {
		t.Fatal(err)
	}

	// The follower redirects, by status, body and header.
	waitFor(t, "the follower knows the leader", 10*time.Second, func() bool { return m2.LeaderURL() != "" })
	rec := httptest.NewRecorder()
	m2.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/jobs", nil))
	var body struct{ Error, Leader string }
	json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusMisdirectedRequest || body.Error != "not the leader" || body.Leader != want[0] || rec.Header().Get("X-Hvctl-Leader") != want[0] {
		t.Errorf("follower answered %d %s (header %q), want 421 naming %s", rec.Code, rec.Body, rec.Header().Get("X-Hvctl-Leader"), want[0])
	}

	// Raft refuses a peer without a replica certificate: a manager's
	// server certificate, or none.
	srvCert, srvKey, _ := ca.IssueServer()
	pair, _ := tls.X509KeyPair(srvCert, srvKey)
	for name, certs := range map[string][]tls.Certificate{"manager certificate": {pair}, "no certificate": nil} {
		tc, _ := ClientTLS(ca.CertPEM)
		tc.ServerName, tc.Certificates = ReplicaName, certs
		c, err := tls.Dial("tcp", addrs["cloud.hub2"], tc)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Errorf("%s: raft accepted the connection", name)
		}
	}

	// The leader dies.
	m1.Close()
	waitFor(t, "the survivor leads", 30*time.Second, m2.Leading)
	got := m2.Global().List("")
	if len(got) != len(jobs) {
		t.Fatalf("the new leader has %d jobs, want %d", len(got), len(jobs))
	}
	// The CLI retries a submit whose answer the failover lost, with its
	// key, on the new leader: the same jobs, none added.
	if again, replayed, err := m2.Global().SubmitKey(spec, "cli-retry"); err != nil || !replayed || len(again) != len(jobs) {
		t.Errorf("keyed submit retried on the new leader: replayed=%v, %d jobs, err %v", replayed, len(again), err)
	}
	if n := len(m2.Global().List("")); n != len(jobs) {
		t.Errorf("%d jobs after the retried submit, want %d", n, len(jobs))
	}
	if _, err := join(m2, "onprem.frontend", "site.onprem.node.frontend", "onprem", netip.MustParseAddr("198.51.100.1")); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("a token spent on the old leader works on the new one: %v", err)
	}
	if _, err := join(m2, "onprem.wn[0]", "site.onprem.pool.wn.node[0]", "onprem", netip.Addr{}); err != nil {
		t.Errorf("a new node cannot join through the survivor: %v", err)
	}
}

// Job results are in the control log: stored through the leader, they
// are served by the survivor once the leader is killed, and a replica
// made again from nothing (a replaced hub) gets them with the log's
// snapshot.
func TestResultsSurviveFailover(t *testing.T) {
	rs := newReplicaSet(t, func(rc *ReplicaConfig) { rc.TrailingLogs = 1 })
	rs.joinAll(t)
	jobs, err := rs.m1.Global().Submit(&scheduler.Spec{Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	id := jobs[0].ID
	big := make([]byte, 2*ResultChunkBytes+12345)
	for i := range big {
		big[i] = byte(i * 7)
	}
	files := map[string][]byte{"big.bin": big, "out.txt": []byte("hello\n"), "empty": nil}
	for name, b := range files {
		rec := httptest.NewRecorder()
		rs.m1.putResultLog(rec, id, name, 0, bytes.NewReader(b))
		if rec.Code != 200 {
			t.Fatalf("store %s: %d %s", name, rec.Code, rec.Body)
		}
	}
	check := func(what string, m *Manager) {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/v1/jobs/"+id+"/results", nil)
		req.Header.Set("Authorization", "Bearer "+rs.s.AdminToken())
		m.Handler().ServeHTTP(rec, req)
		var list struct {
			Files []struct {
				Name  string
				Bytes int64
			}
		}
		json.Unmarshal(rec.Body.Bytes(), &list)
		if rec.Code != 200 || len(list.Files) != len(files) {
			t.Fatalf("%s: results list %d %s, want %d files", what, rec.Code, rec.Body, len(files))
		}
		for _, f := range list.Files {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/v1/jobs/"+id+"/results/"+f.Name, nil)
			req.Header.Set("Authorization", "Bearer "+rs.s.AdminToken())
			m.Handler().ServeHTTP(rec, req)
			if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), files[f.Name]) || f.Bytes != int64(len(files[f.Name])) {
				t.Errorf("%s: result %s: %d, %d bytes (listed %d), want %d bytes as stored", what, f.Name, rec.Code, rec.Body.Len(), f.Bytes, len(files[f.Name]))
			}
		}
	}
	check("the leader", rs.m1)

	rs.m1.Close()
	waitFor(t, "the survivor leads", 30*time.Second, rs.m2.Leading)
	check("the survivor", rs.m2)

	// The log is cut to a snapshot; the primary comes back from an
	// empty directory and gets the results with it.
	if err := rs.m2.replica.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	m1 := rs.start(t, "onprem.frontend", false, "")
	waitFor(t, "the new replica has the results", 30*time.Second, func() bool { return len(m1.replica.fsm.Results(id)) == len(files) })
	for name, b := range files {
		got, err := os.ReadFile(m1.resultPath(id, name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("the new replica's %s: %d bytes, %v; want %d bytes as stored", name, len(got), err, len(b))
		}
	}
	if n := m1.replica.raft.Stats()["last_snapshot_index"]; n == "0" {
		t.Errorf("the new replica took the log, not a snapshot; the test does not cover snapshots")
	}
}
