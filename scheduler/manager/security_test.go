package manager

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/templates"
)

// secCluster is a manager with a hub and two workers joined, its
// onprem site's local manager served in-process, and one job running on
// worker wn[0].
type secCluster struct {
	m       *Manager
	h       http.Handler
	secret  Secret
	clk     *clock
	local   *scheduler.Local
	lh      http.Handler
	creds   map[string]string // member ID -> node credential
	siteCrd map[string]string // member ID -> site credential
	job     *scheduler.Job
	work    scheduler.Work // wn[0]'s work for job
	dir     string
}

func newSecCluster(t *testing.T) *secCluster {
	t.Helper()
	cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(strings.Replace(tmpl, `pool "wn" { count = 2 }`,
		`pool "wn" {
      count = 2
      instance { cpus = 2 }
    }`, 1))}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	s := NewSecret()
	m, err := New(Config{Cluster: cfg.Cluster, Secret: s, StateFile: filepath.Join(dir, "m.json"), Datasets: filepath.Join(dir, "global"),
		Clock: clk.now, ResultQuota: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	c := &secCluster{m: m, h: m.Handler(), secret: s, clk: clk, creds: map[string]string{}, siteCrd: map[string]string{}, dir: dir}
	for _, n := range []struct {
		id, addr string
		roles    []templates.Role
		cpus     int
	}{
		{"onprem.frontend", "site.onprem.node.frontend", []templates.Role{"hub", "manager"}, 0},
		{"onprem.wn[0]", "site.onprem.pool.wn.node[0]", nil, 2},
		{"onprem.wn[1]", "site.onprem.pool.wn.node[1]", nil, 2},
	} {
		resp, err := m.Join(&JoinRequest{Token: s.JoinToken(n.id), Address: n.addr, Site: "onprem", Roles: n.roles, PublicKey: key(t),
			Caps: Capabilities{CPUs: n.cpus}}, "")
		if err != nil {
			t.Fatalf("join %s: %v", n.id, err)
		}
		c.creds[n.id], c.siteCrd[n.id] = resp.Credential, resp.SiteCredential
	}
	// The site's local manager, as its node would run it.
	c.local = scheduler.NewLocal("onprem", 0)
	ls := &LocalServer{Local: c.local, SiteSecret: s.Site("onprem"), CacheDir: filepath.Join(dir, "site-cache")}
	c.lh = ls.Handler()
	srv := httptest.NewServer(c.lh)
	t.Cleanup(srv.Close)
	m.global.SetLink("onprem", &SiteLink{C: NewClient(ClientConfig{Endpoints: []string{srv.URL}, Token: s.Site("onprem").AdminToken()})})
	// wn[0] polls (registers its capacity), the global manager learns it,
	// a job is submitted and routed there, and wn[0] is given it.
	c.poll(t, "onprem.wn[0]")
	if err := m.global.Sync(); err != nil {
		t.Fatal(err)
	}
	w, out := post(t, c.h, "/v1/jobs", s.AdminToken(), `{"command":["true"]}`)
	if w.Code != 200 {
		t.Fatalf("submit: %d %v", w.Code, out)
	}
	works := c.poll(t, "onprem.wn[0]")
	if len(works) != 1 || works[0].ResultGrant == "" {
		t.Fatalf("wn[0] got %+v, want one job with a result grant", works)
	}
	c.work = works[0]
	if err := m.global.Sync(); err != nil {
		t.Fatal(err)
	}
	j, _ := m.global.Get(c.work.Job.ID)
	c.job = j
	return c
}

func (c *secCluster) poll(t *testing.T, id string) []scheduler.Work {
	t.Helper()
	w, _ := post(t, c.lh, "/v1/work", c.siteCrd[id], scheduler.Node{CPUs: 2, MemoryMiB: 1024})
	if w.Code != 200 {
		t.Fatalf("poll as %s: %d %s", id, w.Code, w.Body)
	}
	var works []scheduler.Work
	if err := json.Unmarshal(w.Body.Bytes(), &works); err != nil {
		t.Fatal(err)
	}
	return works
}

// snapshot is what a forged request must not change: the registry, the
// credentials, the job table, the site's jobs and the stored results.
func (c *secCluster) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, n := range c.m.Nodes() {
		fmt.Fprintf(&b, "node %s %s %v %+v\n", n.ID, n.Site, n.Roles, n.Caps)
	}
	c.m.mu.Lock()
	fmt.Fprintf(&b, "creds %v used %d\n", c.m.creds, len(c.m.used))
	c.m.mu.Unlock()
	for _, j := range c.m.global.List("") {
		fmt.Fprintf(&b, "job %s %s %s %d\n", j.ID, j.State, j.Node, j.Attempt)
	}
	st := c.local.State(0)
	for _, j := range st.Jobs {
		fmt.Fprintf(&b, "site job %s %s %s %d\n", j.ID, j.State, j.Node, j.Attempt)
	}
	for _, n := range st.Nodes {
		fmt.Fprintf(&b, "site node %s %d %d %d %v\n", n.ID, n.CPUs, n.MemoryMiB, n.GPUs, n.Labels)
	}
	filepath.Walk(filepath.Join(c.dir, "global"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			fmt.Fprintf(&b, "file %s %d\n", p, info.Size())
		}
		return nil
	})
	return b.String()
}

func do(t *testing.T, h http.Handler, method, path, bearer string, hdr map[string]string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestForgedRequests is the security table: each forged request is
// refused with its status and changes nothing.
func TestForgedRequests(t *testing.T) {
	c := newSecCluster(t)
	s := c.secret
	jobID := c.job.ID
	wn0, wn1 := "site.onprem.pool.wn.node[0]", "site.onprem.pool.wn.node[1]"
	// wn[1] leaves and joins again with a new token (a node hvctl made
	// again): its first credential is replaced, the token is spent.
	// Then it is revoked.
	oldCred := c.creds["onprem.wn[1]"]
	spent := s.JoinToken("onprem.wn[1]")
	c.m.Leave("onprem.wn[1]")
	resp, err := c.m.Join(&JoinRequest{Token: spent, Address: wn1, Site: "onprem", PublicKey: key(t)}, "")
	if err != nil {
		t.Fatal(err)
	}
	revoked := resp.Credential
	if w := do(t, c.h, "DELETE", "/v1/nodes/onprem.wn[1]", s.AdminToken(), nil, nil); w.Code != 200 {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	expired := s.JoinTokenUntil("onprem.wn[1]", c.clk.now().Add(-time.Second))
	fresh := s.JoinToken("onprem.wn[1]")
	parts := strings.Split(fresh, ".")
	parts[3] = fmt.Sprint(c.clk.now().Add(1000 * time.Hour).Unix())
	extended := strings.Join(parts, ".")
	grant := c.work.ResultGrant

	type req struct {
		method, path, bearer string
		hdr                  map[string]string
		body                 []byte
	}
	cases := []struct {
		name string
		req  req
		code int
		want string // in the error message
	}{
		{"worker credential rejoins claiming hub and manager",
			req{"POST", "/v1/join", c.creds["onprem.wn[0]"], nil, jsonBody(JoinRequest{Address: wn0, Site: "onprem",
				Roles: []templates.Role{"hub", "manager"}, PublicKey: key(t)})}, 403, "does not have role hub"},
		{"join token claims another site",
			req{"POST", "/v1/join", "", nil, jsonBody(JoinRequest{Token: s.JoinToken("onprem.wn[1]"), Address: wn1, Site: "cloud", PublicKey: key(t)})}, 403, "not cloud"},
		{"join claims more CPUs than the template gives",
			req{"POST", "/v1/join", c.creds["onprem.wn[0]"], nil, jsonBody(JoinRequest{Address: wn0, Site: "onprem",
				PublicKey: key(t), Caps: Capabilities{CPUs: 64}})}, 403, "claims 64 CPUs"},
		{"join token for a node the template does not have",
			req{"POST", "/v1/join", "", nil, jsonBody(JoinRequest{Token: s.JoinToken("onprem.wn[7]"), Address: "site.onprem.pool.wn.node[7]", Site: "onprem", PublicKey: key(t)})}, 403, "has no node"},
		{"results for another node's job, with no grant",
			req{"PUT", "/v1/jobs/" + jobID + "/results/out.txt", c.creds["onprem.frontend"], nil, []byte("forged")}, 403, "was not given job"},
		{"results for another node's job, with that node's grant",
			req{"PUT", "/v1/jobs/" + jobID + "/results/out.txt", c.creds["onprem.frontend"], map[string]string{ResultGrantHeader: grant}, []byte("forged")}, 403, "was not given job"},
		{"results over the job's quota",
			req{"PUT", "/v1/jobs/" + jobID + "/results/big", c.creds["onprem.wn[0]"], map[string]string{ResultGrantHeader: grant}, bytes.Repeat([]byte("x"), 2<<10)}, 413, "quota"},
		{"report on another node's job at the site",
			req{"POST", "/v1/report", "site:onprem.frontend", nil, jsonBody(scheduler.Report{JobID: jobID, Attempt: c.work.Attempt, State: scheduler.Done})}, 200, ""},
		{"hub polls its site for work (it has no worker role)",
			req{"POST", "/v1/work", "site:onprem.frontend", nil, jsonBody(scheduler.Node{CPUs: 8})}, 403, "no worker role"},
		{"work poll claims more CPUs and a label (the claim is ignored)",
			req{"POST", "/v1/work", "site:onprem.wn[0]", nil, jsonBody(scheduler.Node{CPUs: 64, GPUs: 8, Labels: map[string]string{"gpu": "a100"}})}, 200, ""},
		{"revoked credential heartbeats", req{"POST", "/v1/heartbeat", revoked, nil, []byte(`{"probe_ok":true}`)}, 401, "revoked"},
		{"revoked credential rejoins", req{"POST", "/v1/join", revoked, nil, jsonBody(JoinRequest{Address: wn1, Site: "onprem", PublicKey: key(t)})}, 401, "revoked"},
		{"revoked credential reads a dataset", req{"GET", "/v1/datasets/x", revoked, nil, nil}, 401, ""},
		{"credential from before a rejoin", req{"POST", "/v1/heartbeat", oldCred, nil, []byte(`{}`)}, 401, ""},
		{"replayed join token", req{"POST", "/v1/join", "", nil, jsonBody(JoinRequest{Token: spent, Address: wn1, Site: "onprem", PublicKey: key(t)})}, 401, "already used"},
		{"expired join token", req{"POST", "/v1/join", "", nil, jsonBody(JoinRequest{Token: expired, Address: wn1, Site: "onprem", PublicKey: key(t)})}, 401, "expired"},
		{"join token with its expiry moved", req{"POST", "/v1/join", "", nil, jsonBody(JoinRequest{Token: extended, Address: wn1, Site: "onprem", PublicKey: key(t)})}, 401, "not valid"},
		{"oversized job spec", req{"POST", "/v1/jobs", s.AdminToken(), nil,
			[]byte(`{"command":["echo","` + strings.Repeat("a", scheduler.MaxSpecBytes) + `"]}`)}, 413, "KiB"},
		{"array too large in total", req{"POST", "/v1/jobs", s.AdminToken(), nil,
			[]byte(`{"command":["echo","` + strings.Repeat("a", 10<<10) + `"],"count":100000}`)}, 413, "at most"},
		{"oversized join body", req{"POST", "/v1/join", "", nil, []byte(`{"address":"` + strings.Repeat("a", 2<<20) + `"}`)}, 413, "limit"},
		{"oversized heartbeat", req{"POST", "/v1/heartbeat", c.creds["onprem.wn[0]"], nil, []byte(`{"peers":{"` + strings.Repeat("a", 2<<20) + `":{}}}`)}, 413, "limit"},
		{"oversized work poll at the site", req{"POST", "/v1/work", "site:onprem.wn[0]", nil, []byte(`{"labels":{"` + strings.Repeat("a", 2<<20) + `":"b"}}`)}, 413, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := c.snapshot(t)
			h, bearer := c.h, tc.req.bearer
			if id, ok := strings.CutPrefix(bearer, "site:"); ok {
				h, bearer = c.lh, c.siteCrd[id]
			}
			w := do(t, h, tc.req.method, tc.req.path, bearer, tc.req.hdr, tc.req.body)
			if w.Code != tc.code {
				t.Errorf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("answer %s does not say %q", w.Body, tc.want)
			}
			if after := c.snapshot(t); after != before {
				t.Errorf("a refused request changed the cluster:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	// The real node may store its results; the revoked one stays out
	// after a restart of the manager.
	if w := do(t, c.h, "PUT", "/v1/jobs/"+jobID+"/results/out.txt", c.creds["onprem.wn[0]"], map[string]string{ResultGrantHeader: grant}, []byte("ok")); w.Code != 200 {
		t.Errorf("the job's own node storing its result: %d %s", w.Code, w.Body)
	}
	m2, err := New(Config{Cluster: c.m.cfg.Cluster, Secret: s, StateFile: c.m.cfg.StateFile, Clock: c.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Join(&JoinRequest{Address: wn1, Site: "onprem", PublicKey: key(t)}, revoked); err == nil {
		t.Errorf("a revoked credential rejoined after a restart")
	}
	if _, err := m2.Join(&JoinRequest{Token: spent, Address: wn1, Site: "onprem", PublicKey: key(t)}, ""); err == nil {
		t.Errorf("a spent token joined after a restart")
	}
	// A node the engine creates again (a new token) joins, with the
	// roles and capacity of the template whatever it leaves out.
	resp, err = m2.Join(&JoinRequest{Token: fresh, Address: wn1, Site: "onprem", PublicKey: key(t)}, "")
	if err != nil {
		t.Fatalf("a new node at a revoked address: %v", err)
	}
	for _, n := range m2.Nodes() {
		if n.ID == "onprem.wn[1]" && (!reflect.DeepEqual(n.Roles, []templates.Role{"worker"}) || n.Caps.CPUs != 2 || n.Pool != "onprem.wn") {
			t.Errorf("rejoined node = roles %v caps %+v pool %q, want the template's", n.Roles, n.Caps, n.Pool)
		}
	}
	if resp.Credential == revoked {
		t.Errorf("the new node got the revoked credential back")
	}
}

// TestSlowBody: a client that sends headers and one byte of its body is
// cut off (ReadTimeout), and changes nothing.
func TestSlowBody(t *testing.T) {
	m, _, s := newManager(t)
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = NewServer(m.Handler(), Timeouts{Read: 300 * time.Millisecond})
	srv.Start()
	defer srv.Close()
	for _, path := range []string{"/v1/join", "/v1/jobs"} {
		t.Run(path, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{", path, s.AdminToken())
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := io.ReadAll(bufio.NewReader(conn))
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server kept a connection with one body byte open for 20s (read so far: %q)", resp)
			}
			if bytes.Contains(resp, []byte("200 OK")) {
				t.Errorf("a truncated body was accepted: %q", resp)
			}
		})
	}
	if len(m.Nodes()) != 0 || len(m.global.List("")) != 0 {
		t.Errorf("a slow request changed the cluster")
	}
}
