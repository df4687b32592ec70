package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/manager"
)

const runtimeTemplate = `
provider "local" "lab" {}

cluster "%s" {
  overlay {
    cidr = "10.202.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.70.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" {
      count = 2
      instance { cpus = 2 }
    }
  }
  site "cloud" {
    provider = provider.local.lab
    tier     = 1
    gateway  = "gw"
    network { cidr = "10.62.0.0/24" }
    node "gw" { roles = ["gateway"] }
    pool "w" {
      count = 2
      instance { cpus = 2 }
    }
    %s
  }
  cache {
    global = "onprem.frontend:%s"
    %s
  }
}
`

// upRuntime brings up a two-site cluster with two 2-CPU workers per site.
func upRuntime(t *testing.T, caches bool) (dir string, api *apiClient) {
	t.Helper()
	requireRoot(t)
	dir = t.TempDir()
	name := fmt.Sprintf("rt%d", rand.IntN(1e6))
	siteCache, nodeCache := "", ""
	if caches {
		siteCache, nodeCache = `cache { size = "64MiB" }`, `node = "16MiB"`
	}
	src := fmt.Sprintf(runtimeTemplate, name, siteCache, filepath.Join(dir, "datasets"), nodeCache)
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644)
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, agentLogs(dir))
	}
	return dir, newAPI(t, dir)
}

// apiClient calls the manager API directly, as a script would.
type apiClient struct {
	url, token string
	hc         *http.Client
}

func newAPI(t *testing.T, dir string) *apiClient {
	st := loadState(t, dir)
	var cd struct {
		Secret string
		CACert string `json:"ca_cert"`
	}
	json.Unmarshal(st.Data["cluster"], &cd)
	secret, err := manager.ParseSecret(cd.Secret)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := manager.ClientTLS([]byte(cd.CACert))
	if err != nil {
		t.Fatal(err)
	}
	hub := st.Resource("site.onprem.node.frontend")
	return &apiClient{url: "https://" + hub.Attrs["public_address"].(string) + ":51821", token: secret.AdminToken(),
		hc: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}}
}

func (c *apiClient) do(t *testing.T, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, c.url+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func listJobs(t *testing.T, dir string) []scheduler.Job {
	t.Helper()
	r := hv(t, dir, "", "jobs", "-json", "main.hcl")
	var jobs []scheduler.Job
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil {
		t.Fatalf("jobs -json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	return jobs
}

// waitJobs waits (bounded) until every job has ended.
func waitJobs(t *testing.T, dir string, want int, limit time.Duration) []scheduler.Job {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		jobs := listJobs(t, dir)
		ended := 0
		for _, j := range jobs {
			if j.State.Final() {
				ended++
			}
		}
		if len(jobs) == want && ended == want {
			return jobs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs ended after %s\n%s", ended, want, limit, agentLogs(dir))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestRuntime200Jobs(t *testing.T) {
	dir, _ := upRuntime(t, false)
	r := hv(t, dir, "", "submit", "-n", "200", "main.hcl", "--", "sh", "-c", "sleep 0.3; echo out-$HVCTL_ARRAY_INDEX")
	if r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	jobs := waitJobs(t, dir, 200, 3*time.Minute)
	sites := map[string]int{}
	for _, j := range jobs {
		if j.State != scheduler.Done || j.ExitCode == nil || *j.ExitCode != 0 {
			t.Errorf("job %s: %s exit %v %s", j.ID, j.State, j.ExitCode, j.Error)
		}
		sites[j.Site]++
	}
	if sites["onprem"] == 0 || sites["cloud"] == 0 {
		t.Errorf("jobs by site = %v, want both", sites)
	}
	for _, j := range jobs {
		if j.Index%20 != 0 {
			continue // every 20th: the CLI round trip is the slow part
		}
		if out := hv(t, dir, "", "logs", "main.hcl", j.ID); out.stdout != fmt.Sprintf("out-%d\n", j.Index) {
			t.Errorf("logs %s = %q", j.ID, out.stdout)
		}
	}
}

func TestRuntimeNodeLossExactlyOnce(t *testing.T) {
	dir, _ := upRuntime(t, false)
	r := hv(t, dir, "", "submit", "-site", "onprem", "-json", "main.hcl", "--", "sh", "-c", "sleep 4; echo once")
	var sub []scheduler.Job
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil || len(sub) != 1 {
		t.Fatalf("submit: %v %s %s", err, r.stdout, r.stderr)
	}
	id := sub[0].ID
	var victim string
	deadline := time.Now().Add(30 * time.Second)
	for victim == "" {
		for _, j := range listJobs(t, dir) {
			if j.ID == id && j.State == scheduler.Running {
				victim = j.Node
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the job never started")
		}
		time.Sleep(200 * time.Millisecond)
	}
	items, _ := local.List(filepath.Join(dir, ".hvctl"))
	killed := false
	for _, it := range items {
		if it.Kind == provision.KindInstance && manager.MemberID(it.Address) == victim && it.PID > 0 {
			syscall.Kill(it.PID, syscall.SIGKILL)
			killed = true
		}
	}
	if !killed {
		t.Fatalf("no agent process for %s", victim)
	}
	jobs := waitJobs(t, dir, 1, 90*time.Second)
	j := jobs[0]
	if j.State != scheduler.Done || j.Node == victim || j.Attempt != 2 {
		t.Errorf("job after its node was killed: %s on %s, attempt %d (victim %s)", j.State, j.Node, j.Attempt, victim)
	}
	if out := hv(t, dir, "", "logs", "main.hcl", id).stdout; out != "once\n" {
		t.Errorf("output = %q, want exactly one run's", out)
	}
}

func TestRuntimeRejectsBadRequests(t *testing.T) {
	dir, api := upRuntime(t, false)
	before := len(listJobs(t, dir))
	cases := []struct {
		name, token, body string
		code              int
	}{
		{"no token", "", `{"command":["true"]}`, 401},
		{"wrong token", "hva1.nope", `{"command":["true"]}`, 401},
		{"node credential is not the cluster token", manager.NewSecret().NodeCredential("onprem.wn[0]", "g"), `{"command":["true"]}`, 401},
		{"not json", api.token, `{`, 400},
		{"unknown field", api.token, `{"command":["true"],"cpu":1}`, 400},
		{"no command", api.token, `{"resources":{"cpus":1}}`, 400},
		{"impossible", api.token, `{"command":["true"],"resources":{"cpus":512}}`, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := api.do(t, "POST", "/v1/jobs", c.token, []byte(c.body))
			if code != c.code {
				t.Errorf("code %d, want %d: %s", code, c.code, body)
			}
		})
	}
	if code, _ := api.do(t, "GET", "/v1/jobs", "", nil); code != 401 {
		t.Errorf("list without token: %d", code)
	}
	if code, _ := api.do(t, "GET", "/metrics", "", nil); code != 401 {
		t.Errorf("metrics without token: %d", code)
	}
	// The API speaks only TLS, with the cluster CA's certificate.
	if resp, err := http.Get(strings.Replace(api.url, "https:", "http:", 1) + "/v1/healthz"); err == nil && resp.StatusCode == 200 {
		t.Errorf("the manager answered plain HTTP")
	}
	if _, err := (&http.Client{}).Get(api.url + "/v1/healthz"); err == nil {
		t.Errorf("a client without the cluster CA trusted the manager's certificate")
	}
	if after := len(listJobs(t, dir)); after != before {
		t.Errorf("rejected requests changed the jobs: %d -> %d", before, after)
	}
}

// TestRuntimeResults: files a job leaves in $HVCTL_OUTPUT_DIR are on the
// global tier, listed and served by the API, when the job is done.
func TestRuntimeResults(t *testing.T) {
	dir, api := upRuntime(t, false)
	r := hv(t, dir, "", "submit", "-json", "main.hcl", "--", "sh", "-c", "printf 'result %s' $HVCTL_ARRAY_INDEX > $HVCTL_OUTPUT_DIR/out.txt")
	var sub []scheduler.Job
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil || len(sub) != 1 {
		t.Fatalf("submit: %v %s %s", err, r.stdout, r.stderr)
	}
	jobs := waitJobs(t, dir, 1, time.Minute)
	if jobs[0].State != scheduler.Done {
		t.Fatalf("job: %+v", jobs[0])
	}
	code, b := api.do(t, "GET", "/v1/jobs/"+sub[0].ID+"/results", api.token, nil)
	if code != 200 || !strings.Contains(string(b), `"name":"out.txt"`) || !strings.Contains(string(b), `"bytes":8`) {
		t.Fatalf("results: %d %s", code, b)
	}
	code, b = api.do(t, "GET", "/v1/jobs/"+sub[0].ID+"/results/out.txt", api.token, nil)
	if code != 200 || string(b) != "result 0" {
		t.Errorf("result file: %d %q", code, b)
	}
	// Only nodes may upload, and only to jobs that exist.
	if code, _ := api.do(t, "PUT", "/v1/jobs/"+sub[0].ID+"/results/x", api.token, []byte("x")); code != 401 {
		t.Errorf("upload with the cluster token: %d, want 401", code)
	}
	t.Run("cancel kills the job's processes", func(t *testing.T) { cancelKills(t, dir) })
	t.Run("a revoked node stays out", func(t *testing.T) { revokedStaysOut(t, dir, api) })
}

// revokedStaysOut: hvctl node revoke removes a node, and its agent, which
// tries to rejoin with its credential and then its spent join token, is
// refused both times and stays out.
func revokedStaysOut(t *testing.T, dir string, api *apiClient) {
	const id = "onprem.wn[1]"
	var logPath string
	logs, _ := filepath.Glob(filepath.Join(dir, ".hvctl", "local", "nodes", "*", "agent.log"))
	for _, l := range logs {
		if b, _ := os.ReadFile(l); strings.Contains(string(b), "joined as "+id) {
			logPath = l
		}
	}
	if logPath == "" {
		t.Fatalf("no agent log says it joined as %s\n%s", id, agentLogs(dir))
	}
	if r := hv(t, dir, "", "node", "revoke", "main.hcl", id); r.code != 0 || !strings.Contains(r.stdout, "credential revoked") {
		t.Fatalf("node revoke: %d %s %s", r.code, r.stdout, r.stderr)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "was revoked") && strings.Contains(string(b), "already used") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked agent did not try (and fail) to rejoin with its credential and its token:\n%s", b)
		}
		time.Sleep(500 * time.Millisecond)
	}
	code, b := api.do(t, "GET", "/v1/nodes", api.token, nil)
	if code != 200 || strings.Contains(string(b), `"id":"`+id+`"`) {
		t.Errorf("after the revoked agent tried to rejoin, /v1/nodes: %d %s", code, b)
	}
}

// jobProcesses lists the processes (on any node: they are all on this
// host) whose environment says they belong to job id.
func jobProcesses(id string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, []byte("\x00HVCTL_JOB_ID="+id+"\x00")) {
			out = append(out, e.Name())
		}
	}
	return out
}

// cancelKills: cancelling a running job kills every process it started,
// background ones included, on its node.
func cancelKills(t *testing.T, dir string) {
	r := hv(t, dir, "", "submit", "-json", "main.hcl", "--", "sh", "-c", "sleep 300 & (sleep 300 &); sleep 300")
	var sub []scheduler.Job
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil || len(sub) != 1 {
		t.Fatalf("submit: %v %s %s", err, r.stdout, r.stderr)
	}
	id := sub[0].ID
	deadline := time.Now().Add(time.Minute)
	for len(jobProcesses(id)) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not start its 4 processes: %v\n%s", id, jobProcesses(id), agentLogs(dir))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := hv(t, dir, "", "cancel", "main.hcl", id); r.code != 0 || !strings.Contains(r.stdout, "cancelled") {
		t.Fatalf("cancel: %d %s %s", r.code, r.stdout, r.stderr)
	}
	deadline = time.Now().Add(time.Minute)
	for len(jobProcesses(id)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes of cancelled job %s still run a minute later: %v\n%s", id, jobProcesses(id), agentLogs(dir))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, j := range listJobs(t, dir) {
		if j.ID == id && j.State != scheduler.Cancelled {
			t.Errorf("job %s is %s after cancel", id, j.State)
		}
	}
}

// TestRuntimeCaches: a workload that reuses its inputs moves fewer bytes
// between sites with caches than the same workload with caches off.
func TestRuntimeCaches(t *testing.T) {
	moved := map[bool]int64{}
	for _, caches := range []bool{false, true} {
		t.Run(fmt.Sprintf("caches=%v", caches), func(t *testing.T) {
			dir, api := upRuntime(t, caches)
			data := bytes.Repeat([]byte("x"), 1<<20)
			for i := 0; i < 3; i++ {
				if code, b := api.do(t, "PUT", fmt.Sprintf("/v1/datasets/d%d", i), api.token, data); code != 200 {
					t.Fatalf("put dataset: %d %s", code, b)
				}
			}
			for i := 0; i < 12; i++ {
				r := hv(t, dir, "", "submit", "-site", "cloud", "-input", fmt.Sprintf("d%d", i%3), "main.hcl", "--",
					"sh", "-c", fmt.Sprintf("wc -c < d%d", i%3))
				if r.code != 0 {
					t.Fatalf("submit: %s", r.stderr)
				}
			}
			jobs := waitJobs(t, dir, 12, 2*time.Minute)
			for _, j := range jobs {
				if j.State != scheduler.Done {
					t.Fatalf("job %s: %s %s", j.ID, j.State, j.Error)
				}
				if out := hv(t, dir, "", "logs", "main.hcl", j.ID).stdout; strings.TrimSpace(out) != "1048576" {
					t.Errorf("job %s read %q bytes of its input", j.ID, out)
				}
			}
			_, b := api.do(t, "GET", "/v1/queue", api.token, nil)
			var sig scheduler.Signals
			json.Unmarshal(b, &sig)
			moved[caches] = sig.Cache.BytesMovedBetweenSites
			if caches && sig.Cache.FetchesByTier[scheduler.TierNode]+sig.Cache.FetchesByTier[scheduler.TierSite] == 0 {
				t.Errorf("no cache hits with caches on: %+v", sig.Cache)
			}
		})
	}
	if moved[true] >= moved[false] {
		t.Errorf("bytes moved between sites: caches on %d, off %d", moved[true], moved[false])
	}
	t.Logf("bytes moved between sites: caches off %d, on %d", moved[false], moved[true])
}
