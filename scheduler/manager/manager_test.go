package manager

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hvctl/hvctl/templates"
)

const tmpl = `
cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = "sim"
    network { cidr = "192.168.10.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" { count = 2 }
  }
  site "cloud" {
    provider = "sim"
    network { cidr = "10.4.2.0/24" }
    pool "burst" {
      min = 0
      max = 3
    }
  }
}
`

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newManager(t *testing.T) (*Manager, *clock, Secret) {
	return newManagerTB(t)
}

func newManagerTB(t testing.TB) (*Manager, *clock, Secret) {
	t.Helper()
	cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(tmpl)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	clk := &clock{t: time.Unix(1e9, 0)}
	s := NewSecret()
	m, err := New(Config{Cluster: cfg.Cluster, Secret: s, StateFile: t.TempDir() + "/m.json", Clock: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return m, clk, s
}

func key(t testing.TB) string {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().String()
}

func post(t *testing.T, h http.Handler, path, bearer string, body any) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	req := httptest.NewRequest("POST", path, bytes.NewReader(b))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var out map[string]any
	json.Unmarshal(w.Body.Bytes(), &out)
	return w, out
}

func TestMemberID(t *testing.T) {
	for in, want := range map[string]string{
		"site.onprem.node.frontend":               "onprem.frontend",
		"site.cloud.pool.burst.node[2]":           "cloud.burst[2]",
		"site.cloud.site.zone-a.pool.gpu.node[0]": "cloud.zone-a.gpu[0]",
		"site.cloud.site.zone-a.node.gw":          "cloud.zone-a.gw",
	} {
		if got := MemberID(in); got != want {
			t.Errorf("MemberID(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestJoinFlow(t *testing.T) {
	m, _, s := newManager(t)
	h := m.Handler()
	hubTok := s.JoinToken("onprem.frontend")
	hub := JoinRequest{Token: hubTok, Address: "site.onprem.node.frontend", Site: "onprem",
		Roles: []templates.Role{"hub"}, PublicKey: key(t)}
	w, out := post(t, h, "/v1/join", "", hub)
	if w.Code != 200 {
		t.Fatalf("hub join: %d %v", w.Code, out)
	}
	// The token is single-use.
	if w, _ := post(t, h, "/v1/join", "", hub); w.Code != 401 {
		t.Errorf("second use of a join token: %d, want 401", w.Code)
	}
	// A token for another node does not admit this one.
	wn := JoinRequest{Token: s.JoinToken("onprem.wn[1]"), Address: "site.onprem.pool.wn.node[0]", Site: "onprem", PublicKey: key(t)}
	if w, _ := post(t, h, "/v1/join", "", wn); w.Code != 401 {
		t.Errorf("token for another node: %d, want 401", w.Code)
	}
	// A token from another cluster is refused.
	wn.Token = NewSecret().JoinToken("onprem.wn[0]")
	if w, _ := post(t, h, "/v1/join", "", wn); w.Code != 401 {
		t.Errorf("foreign token: %d, want 401", w.Code)
	}
	// The hub's peer set grows as a worker joins: its poll returns.
	hubCred := out["credential"].(string)
	v0 := uint64(out["version"].(float64))
	got := make(chan int, 1)
	go func() {
		_, ps, err := m.Peers("onprem.frontend", v0, 5*time.Second)
		if err != nil {
			got <- -1
			return
		}
		got <- len(ps.Peers)
	}()
	wn.Token = s.JoinToken("onprem.wn[0]")
	w, out = post(t, h, "/v1/join", "", wn)
	if w.Code != 200 {
		t.Fatalf("worker join: %d %v", w.Code, out)
	}
	if n := <-got; n != 1 {
		t.Errorf("hub peers after a worker joined = %d, want 1", n)
	}
	ps := out["peer_set"].(map[string]any)
	if peers := ps["Peers"].([]any); len(peers) != 1 {
		t.Errorf("worker peers = %d, want the hub only", len(peers))
	}
	// Rejoin with the credential (agent restart) works without a token.
	cred := out["credential"].(string)
	wn.Token = ""
	if w, _ := post(t, h, "/v1/join", cred, wn); w.Code != 200 {
		t.Errorf("rejoin with credential: %d", w.Code)
	}
	// Heartbeats need a credential.
	if w, _ := post(t, h, "/v1/heartbeat", "", Heartbeat{ProbeOK: true}); w.Code != 401 {
		t.Errorf("heartbeat without credential: %d", w.Code)
	}
	if w, _ := post(t, h, "/v1/heartbeat", hubCred, Heartbeat{ProbeOK: true}); w.Code != 200 {
		t.Errorf("heartbeat: %d", w.Code)
	}
}

// TestJoinBeforeTheHub: a worker whose join arrives before the hub has
// joined cannot be planned yet (a star needs its hub) and is refused
// with 503; its token is not spent and no node is recorded, so its retry
// with the same token joins once the hub is in. (Spending it left the
// agent with a refused token and no credential: it never joined.)
func TestJoinBeforeTheHub(t *testing.T) {
	m, _, s := newManager(t)
	h := m.Handler()
	wn := JoinRequest{Token: s.JoinToken("onprem.wn[0]"), Address: "site.onprem.pool.wn.node[0]", Site: "onprem", PublicKey: key(t)}
	if w, out := post(t, h, "/v1/join", "", wn); w.Code != 503 {
		t.Fatalf("worker join before the hub: %d %v, want 503", w.Code, out)
	}
	if ns := m.Nodes(); len(ns) != 0 {
		t.Errorf("a refused join left nodes: %v", ns)
	}
	hub := JoinRequest{Token: s.JoinToken("onprem.frontend"), Address: "site.onprem.node.frontend", Site: "onprem", PublicKey: key(t)}
	if w, out := post(t, h, "/v1/join", "", hub); w.Code != 200 {
		t.Fatalf("hub join: %d %v", w.Code, out)
	}
	if w, out := post(t, h, "/v1/join", "", wn); w.Code != 200 {
		t.Fatalf("the worker's retry with its token: %d %v, want 200", w.Code, out)
	}
}

func TestFailureDetection(t *testing.T) {
	m, clk, s := newManager(t)
	for _, n := range []struct{ id, addr string }{{"onprem.frontend", "site.onprem.node.frontend"}, {"onprem.wn[0]", "site.onprem.pool.wn.node[0]"}} {
		if _, err := m.Join(&JoinRequest{Token: s.JoinToken(n.id), Address: n.addr, Site: "onprem", PublicKey: key(t)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		clk.add(DefaultHeartbeat)
		m.Beat("onprem.frontend", &Heartbeat{ProbeOK: true})
	}
	states := map[string]string{}
	for _, n := range m.Nodes() {
		states[n.ID] = n.State
	}
	if states["onprem.frontend"] != StateJoined || states["onprem.wn[0]"] != StateFailed {
		t.Errorf("states = %v, want the silent worker failed", states)
	}
}

func TestBadRequests(t *testing.T) {
	m, _, s := newManager(t)
	h := m.Handler()
	cases := []struct {
		name, path, bearer string
		body               any
		code               int
		field              string
	}{
		{"not json", "/v1/join", "", "{", 400, "body"},
		{"unknown field", "/v1/join", "", `{"address":"x","bogus":1}`, 400, "bogus"},
		{"wrong type", "/v1/join", "", `{"address":5}`, 400, "address"},
		{"no key", "/v1/join", "", `{"address":"site.onprem.node.frontend","site":"onprem"}`, 400, "public_key"},
		{"bad key", "/v1/join", "", `{"address":"site.onprem.node.frontend","site":"onprem","public_key":"nope"}`, 400, "public_key"},
		{"negative cpus", "/v1/join", "", map[string]any{"address": "site.onprem.node.frontend", "site": "onprem", "public_key": key(t), "capabilities": map[string]any{"cpus": -1}}, 400, "capabilities"},
		{"trailing", "/v1/join", "", `{"address":"a","site":"b","public_key":"` + key(t) + `"} {}`, 400, "body"},
		{"no token", "/v1/join", "", map[string]any{"address": "site.onprem.node.frontend", "site": "onprem", "public_key": key(t)}, 401, ""},
		{"admin without token", "/v1/nodes", "", nil, 401, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := m.Nodes()
			var w *httptest.ResponseRecorder
			var out map[string]any
			if c.path == "/v1/nodes" {
				req := httptest.NewRequest("GET", c.path, nil)
				w = httptest.NewRecorder()
				h.ServeHTTP(w, req)
			} else {
				w, out = post(t, h, c.path, c.bearer, c.body)
			}
			if w.Code != c.code {
				t.Errorf("code = %d, want %d: %s", w.Code, c.code, w.Body.String())
			}
			if c.field != "" && out["field"] != c.field {
				t.Errorf("field = %v, want %s", out["field"], c.field)
			}
			if after := m.Nodes(); len(after) != len(before) {
				t.Errorf("a rejected request changed the registry")
			}
		})
	}
	req := httptest.NewRequest("GET", "/v1/nodes", nil)
	req.Header.Set("Authorization", "Bearer "+s.AdminToken())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Errorf("admin with token: %d", w.Code)
	}
}

func TestRestartKeepsRegistry(t *testing.T) {
	m, clk, s := newManager(t)
	tok := s.JoinToken("onprem.frontend")
	if _, err := m.Join(&JoinRequest{Token: tok, Address: "site.onprem.node.frontend", Site: "onprem", PublicKey: key(t)}, ""); err != nil {
		t.Fatal(err)
	}
	m2, err := New(Config{Cluster: m.cfg.Cluster, Secret: s, StateFile: m.cfg.StateFile, Clock: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Nodes()) != 1 {
		t.Errorf("restarted manager lost its nodes")
	}
	if _, err := m2.Join(&JoinRequest{Token: tok, Address: "site.onprem.node.frontend", Site: "onprem", PublicKey: key(t)}, ""); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("a spent token works after a restart: %v", err)
	}
}

func FuzzDecodeJoin(f *testing.F) {
	f.Add([]byte(`{"token":"hvj1.a.b.c","address":"site.a.node.b","site":"a","public_key":"uDzVQoNqCZQ7p1HAYNOdVIL1p25lNNRkCsaVVC05Lj0=","capabilities":{"cpus":2,"memory_mib":1024,"labels":{"a":"b"}},"endpoint":"1.2.3.4:51820","site_addr":"10.0.0.2","nat":true}`))
	f.Add([]byte(`{"address":5}`))
	f.Add([]byte(`{"endpoint":"nope"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeJoin(bytes.NewReader(b))
		if err != nil {
			return
		}
		if req.Address == "" || req.Site == "" || req.PublicKey == "" {
			t.Fatalf("accepted an incomplete join: %+v", req)
		}
	})
}
