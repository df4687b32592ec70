package manager

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

// A witness made before the template named it gets its replica
// certificate through the leader: only that node, only in its own
// runtime, kept across a restart; never in /v1/nodes. Other nodes and
// malformed certificates are refused.
func TestWitnessGrant(t *testing.T) {
	cfg := loadTmpl(t, replicaTmpl)
	s := NewSecret()
	state := filepath.Join(t.TempDir(), "m.json")
	open := func() *Manager {
		m, err := New(Config{Cluster: cfg.Cluster, Secret: s, StateFile: state})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open()
	for _, n := range []struct{ id, addr, site, pub string }{
		{"onprem.frontend", "site.onprem.node.frontend", "onprem", "198.51.100.1"},
		{"cloud.gw", "site.cloud.node.gw", "cloud", ""},
	} {
		req := &JoinRequest{Token: s.JoinToken(n.id), Address: n.addr, Site: n.site, PublicKey: key(t)}
		if n.pub != "" {
			req.Endpoint = netip.AddrPortFrom(netip.MustParseAddr(n.pub), 51820)
		}
		if _, err := m.Join(req, ""); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := NewCA("c")
	if err != nil {
		t.Fatal(err)
	}
	cert, k, err := ca.IssueReplica()
	if err != nil {
		t.Fatal(err)
	}
	grant := jsonBody(ReplicaGrant{Cert: string(cert), Key: string(k)})
	for _, c := range []struct {
		name, path string
		body       []byte
		code       int
	}{
		{"not the witness", "/v1/nodes/cloud.hub2/replica", grant, 403},
		{"not a certificate", "/v1/nodes/cloud.gw/replica", jsonBody(ReplicaGrant{Cert: "x", Key: "y"}), 400},
		{"unknown field", "/v1/nodes/cloud.gw/replica", []byte(`{"cert":"x","key":"y","ca":"z"}`), 400},
	} {
		if w := do(t, m.Handler(), "PUT", c.path, s.AdminToken(), nil, c.body); w.Code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.code)
		}
	}
	if w := do(t, m.Handler(), "PUT", "/v1/nodes/cloud.gw/replica", "", nil, grant); w.Code != 401 {
		t.Errorf("without the cluster token: %d, want 401", w.Code)
	}
	if m.RuntimeFor("cloud.gw").Witness != nil {
		t.Fatalf("a refused grant reached the node")
	}
	if w := do(t, m.Handler(), "PUT", "/v1/nodes/cloud.gw/replica", s.AdminToken(), nil, grant); w.Code != 200 {
		t.Fatalf("grant the witness: %d %s", w.Code, w.Body)
	}
	m = open()
	if g := m.RuntimeFor("cloud.gw").Witness; g == nil || g.Cert != string(cert) {
		t.Errorf("after a restart the witness's runtime has %+v, want its certificate", g)
	}
	if g := m.RuntimeFor("onprem.frontend").Witness; g != nil {
		t.Errorf("another node's runtime carries the witness's certificate")
	}
	if w := do(t, m.Handler(), "GET", "/v1/nodes", s.AdminToken(), nil, nil); strings.Contains(w.Body.String(), "PRIVATE KEY") || strings.Contains(w.Body.String(), "CERTIFICATE") {
		t.Errorf("/v1/nodes shows the replica certificate or key")
	}
}
