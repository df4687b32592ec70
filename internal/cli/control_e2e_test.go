package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/manager"
)

// agentProcess is a node's agent as the local provider started it: the
// wrapper it recorded (nsenter, then unshare for the node's time
// namespace) and the hvctl agent process under it.
type agentProcess struct {
	wrapper, agent int
	argv, env      []string
	cwd            string
	netns          string // the node's network namespace
}

func findAgent(t *testing.T, dir, member string) agentProcess {
	t.Helper()
	items, err := local.List(filepath.Join(dir, ".hvctl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Kind != provision.KindInstance || manager.MemberID(it.Address) != member || it.PID <= 0 {
			continue
		}
		p := agentProcess{wrapper: it.PID, agent: it.PID, netns: it.Netns}
		// The agent is the deepest process under the wrapper.
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.agent, p.agent))
			if err != nil || len(bytes.Fields(b)) == 0 {
				break
			}
			p.agent, _ = strconv.Atoi(string(bytes.Fields(b)[0]))
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.wrapper))
		if err != nil {
			t.Fatalf("agent of %s: %v", member, err)
		}
		p.argv = strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.wrapper))
		p.env = strings.Split(strings.TrimRight(string(env), "\x00"), "\x00")
		p.cwd, _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", p.wrapper))
		return p
	}
	t.Fatalf("no running agent for %s", member)
	return agentProcess{}
}

// killAgent SIGKILLs a node's agent process (not its wrapper: the
// wrapper would stop the agent gracefully) and waits until the wrapper
// is gone.
func killAgent(t *testing.T, p agentProcess) {
	t.Helper()
	if err := syscall.Kill(p.agent, syscall.SIGKILL); err != nil {
		t.Fatalf("kill agent %d: %v", p.agent, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(p.wrapper, 0) == nil {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.wrapper)); err == nil && strings.Contains(string(st), ") Z ") {
			break // a zombie: gone, not yet reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("the wrapper of agent %d is still there 30 s after the agent was killed", p.agent)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restartAgent starts the same command again, as systemd's
// Restart=always would: same command line, environment and directory,
// in the node's network namespace (nsenter execs, so the recorded
// command line is what runs inside it), output appended to its log. It
// is stopped when owner (the test that owns the cluster) ends; down
// removes the namespace.
func restartAgent(t, owner *testing.T, p agentProcess) {
	t.Helper()
	if p.netns == "" {
		t.Fatalf("agent %d: no network namespace recorded", p.agent)
	}
	logf, err := os.OpenFile(filepath.Join(p.cwd, "agent.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	argv := append([]string{"--net=" + filepath.Join("/run/netns", p.netns), "--"}, p.argv...)
	cmd := exec.Command("nsenter", argv...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = p.env, p.cwd, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("restart agent: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	owner.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
}

// markerJob writes one line per run into MARKS/JOBID.
func markerJob(marks string, sleep int) []string {
	return []string{"sh", "-c", fmt.Sprintf("sleep %d; echo $HVCTL_ATTEMPT >> %s/$HVCTL_JOB_ID", sleep, marks)}
}

// checkOnce asserts that every job of jobs ran exactly once (one marker
// line) and ended done.
func checkOnce(t *testing.T, marks string, jobs []scheduler.Job) {
	t.Helper()
	for _, j := range jobs {
		b, err := os.ReadFile(filepath.Join(marks, j.ID))
		runs := len(bytes.Fields(b))
		if err != nil || runs != 1 {
			t.Errorf("job %s (%s on %s, attempt %d) ran %d times, want once", j.ID, j.State, j.Node, j.Attempt, runs)
		}
		if j.State != scheduler.Done {
			t.Errorf("job %s: %s (%s), want done", j.ID, j.State, j.Error)
		}
	}
}

// jobsOrLogs is hvctl jobs -json; on failure it shows the agents' logs.
func jobsOrLogs(t *testing.T, dir string) []scheduler.Job {
	t.Helper()
	r := hv(t, dir, "", "jobs", "-json", "main.hcl")
	var jobs []scheduler.Job
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil {
		t.Fatalf("jobs -json: %v\n%s%s\n%s", err, r.stdout, r.stderr, agentLogs(dir))
	}
	return jobs
}

// waitEnded waits until want jobs have ended, through a manager that
// may be restarting (errors are retried until the deadline).
func waitEnded(t *testing.T, dir string, want int, limit time.Duration) []scheduler.Job {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for {
		r := hv(t, dir, "", "jobs", "-json", "main.hcl")
		var jobs []scheduler.Job
		if err := json.Unmarshal([]byte(r.stdout), &jobs); err == nil {
			ended := 0
			for _, j := range jobs {
				if j.State.Final() {
					ended++
				}
			}
			if len(jobs) == want && ended == want {
				return jobs
			}
			last = fmt.Sprintf("%d jobs listed, %d ended", len(jobs), ended)
		} else {
			last = r.stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s, want %d ended\n%s", limit, last, want, agentLogs(dir))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitMidRun waits until at least ended jobs have ended.
func waitMidRun(t *testing.T, dir string, ended int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		done := 0
		for _, j := range jobsOrLogs(t, dir) {
			if j.State.Final() {
				done++
			}
		}
		if done >= ended {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d jobs ended in 2 min\n%s", done, agentLogs(dir))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// The control plane survives its processes dying: the hub's agent (the
// global manager and onprem's local manager) SIGKILLed mid-run and
// restarted as systemd would loses nothing; a site's local-manager node
// killed mid-run has its jobs finish once on the rest of the site.
func TestControlPlaneSurvivesKills(t *testing.T) {
	dir, _ := upRuntime(t, false)
	top := t
	marks := filepath.Join(dir, "marks")
	os.MkdirAll(marks, 0o777)

	t.Run("hub agent restarted", func(t *testing.T) {
		if r := hv(t, dir, "", append([]string{"submit", "-n", "20", "main.hcl", "--"}, markerJob(marks, 2)...)...); r.code != 0 {
			t.Fatalf("submit: %s", r.stderr)
		}
		waitMidRun(t, dir, 4)
		hub := findAgent(t, dir, "onprem.frontend")
		killAgent(t, hub)
		restartAgent(t, top, hub)
		jobs := waitEnded(t, dir, 20, 3*time.Minute)
		checkOnce(t, marks, jobs)
	})

	t.Run("local manager node killed", func(t *testing.T) {
		r := hv(t, dir, "", append([]string{"submit", "-n", "8", "-site", "cloud", "main.hcl", "--"}, markerJob(marks, 3)...)...)
		if r.code != 0 {
			t.Fatalf("submit: %s", r.stderr)
		}
		deadline := time.Now().Add(time.Minute)
		for running := 0; running == 0; {
			for _, j := range jobsOrLogs(t, dir) {
				if j.Site == "cloud" && j.State == scheduler.Running {
					running++
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no cloud job started\n%s", agentLogs(dir))
			}
			time.Sleep(200 * time.Millisecond)
		}
		killAgent(t, findAgent(t, dir, "cloud.gw"))
		jobs := waitEnded(t, dir, 28, 3*time.Minute)
		checkOnce(t, marks, jobs)
	})
}

const twoHubTemplate = `
provider "local" "lab" {}

cluster "%s" {
  overlay {
    cidr = "10.203.0.0/16"
    hubs = ["onprem.frontend", "cloud.hub2"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.71.0/24" }
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
    gateway  = "gw"
    network { cidr = "10.63.0.0/24" }
    node "hub2" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    node "gw" { roles = ["gateway"] }
    pool "w" {
      count = 2
      instance { cpus = 2 }
    }
  }
}
`

// A two-hub star: both hubs run manager replicas, the cloud gateway is
// the witness. 40 jobs of sleep 4 run; the primary hub's node is killed
// mid-run (agent SIGKILLed, namespace removed): the survivor leads and
// serves (hvctl status and jobs go through it), every job is done
// exactly once, and each one's result is served by the survivor; up
// replaces the dead primary, which rejoins the replica set as a
// follower, and every overlay path (to the replaced hub too) answers; a
// new node joins through hub2.
func TestControlPlaneFailover(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	name := fmt.Sprintf("fo%d", rand.IntN(1e6))
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(twoHubTemplate, name)), 0o644)
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, agentLogs(dir))
	}
	primary := newAPI(t, dir)
	st := loadState(t, dir)
	survivor := *primary
	survivor.url = "https://" + st.Resource("site.cloud.node.hub2").Attrs["public_address"].(string) + ":51821"

	// The follower redirects to the leader (the contract of the typed
	// client), once hub2 and the witness are voters.
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := survivor.do(t, "GET", "/v1/jobs", survivor.token, nil)
		if code == http.StatusMisdirectedRequest && strings.Contains(string(body), primary.url) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub2 answers %d %s, want 421 naming %s\n%s", code, body, primary.url, agentLogs(dir))
		}
		time.Sleep(300 * time.Millisecond)
	}

	marks := filepath.Join(dir, "marks")
	os.MkdirAll(marks, 0o777)
	// Each job also leaves a result file naming itself.
	job := markerJob(marks, 4)
	job[2] += "; echo $HVCTL_JOB_ID > $HVCTL_OUTPUT_DIR/id"
	if r := hv(t, dir, "", append([]string{"submit", "-n", "40", "main.hcl", "--"}, job...)...); r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	waitMidRun(t, dir, 8)
	hub := findAgent(t, dir, "onprem.frontend")
	killAgent(t, hub)
	if out, err := exec.Command("ip", "netns", "del", hub.netns).CombinedOutput(); err != nil {
		t.Fatalf("remove the primary hub's namespace %s: %v %s", hub.netns, err, out)
	}
	killed := time.Now()

	// A new leader serves.
	for {
		code, _ := survivor.do(t, "GET", "/v1/nodes", survivor.token, nil)
		if code == 200 {
			t.Logf("hub2 serves %.1f s after the primary hub was killed", time.Since(killed).Seconds())
			break
		}
		if time.Since(killed) > time.Minute {
			t.Fatalf("no new leader a minute after the primary hub was killed (hub2 answers %d)\n%s", code, agentLogs(dir))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// hvctl (its endpoint list from the state: the dead primary first)
	// reaches the survivor.
	jobs := waitEnded(t, dir, 40, 3*time.Minute)
	checkOnce(t, marks, jobs)
	if r := hv(t, dir, "", "status", "main.hcl"); r.code != 0 || !strings.Contains(r.stdout, "cloud.hub2") {
		t.Errorf("status through the survivor: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Every job's result is served by the survivor, those stored
	// through the dead primary too (results are in the control log).
	for _, j := range jobs {
		if code, body := survivor.do(t, "GET", "/v1/jobs/"+j.ID+"/results/id", survivor.token, nil); code != 200 || strings.TrimSpace(string(body)) != j.ID {
			t.Errorf("job %s's result through the survivor: %d %q, want %q", j.ID, code, body, j.ID)
		}
	}

	// The primary hub comes back: up replaces the dead machine, and the
	// new one joins hub2's replica set as a follower (it answers 421
	// naming hub2) instead of starting a log of its own.
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up after the primary hub died: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, agentLogs(dir))
	}
	primary = newAPI(t, dir)
	deadline = time.Now().Add(time.Minute)
	for {
		code, body := primary.do(t, "GET", "/v1/jobs", primary.token, nil)
		if code == http.StatusMisdirectedRequest && strings.Contains(string(body), survivor.url) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replaced primary answers %d %s, want 421 naming %s\n%s", code, body, survivor.url, agentLogs(dir))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if n := len(waitEnded(t, dir, 40, time.Minute)); n != 40 {
		t.Errorf("%d jobs after the primary came back, want 40", n)
	}
	// The data plane follows the replaced hub too: its new key and
	// address reach every peer set, so every path every node needs (the
	// replaced hub's among them) answers ping and TCP.
	deadline = time.Now().Add(time.Minute)
	for {
		r := hv(t, dir, "", "check", "main.hcl")
		if r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check after the primary hub was replaced: exit %d\n%s%s\n%s", r.code, r.stdout, r.stderr, agentLogs(dir))
		}
		time.Sleep(2 * time.Second)
	}

	// A new node joins through hub2, the leader, with a fresh join
	// token for its slot (what the engine gives a new machine; here for
	// slot cloud.w[1], with a new key). TestControlPlaneGrows covers
	// nodes a new template adds.
	st = loadState(t, dir)
	var cd struct{ Secret string }
	json.Unmarshal(st.Data["cluster"], &cd)
	secret, _ := manager.ParseSecret(cd.Secret)
	k, _ := wgtypes.GeneratePrivateKey()
	join, _ := json.Marshal(manager.JoinRequest{Token: secret.JoinToken("cloud.w[1]"), Address: "site.cloud.pool.w.node[1]", Site: "cloud",
		PublicKey: k.PublicKey().String()})
	if code, body := survivor.do(t, "POST", "/v1/join", "", join); code != 200 {
		t.Errorf("a new node's join through the survivor: %d %s", code, body)
	}
}

// TestControlPlaneGrows: a cluster made with one manager node (the
// onprem hub) runs jobs; up with a template that adds a hub+manager node
// in the cloud site sends the managers the new template first, so the
// new node joins, gives the cloud gateway (the witness now, made before
// it was) its replica certificate through the leader, and the one-voter
// log grows into a replica set (hub2 answers 421 naming the primary);
// every overlay path the new template needs answers (hvctl check, the
// new hub included); the primary hub's agent killed, hub2 leads (with
// the witness's vote: two of three) with the jobs and results made
// before it existed.
func TestControlPlaneGrows(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	name := fmt.Sprintf("ctlgrow%d", rand.IntN(1e5))
	full := strings.NewReplacer("10.203.0.0/16", "10.207.0.0/16", "192.168.71.0/24", "192.168.77.0/24", "10.63.0.0/24", "10.67.0.0/24").
		Replace(fmt.Sprintf(twoHubTemplate, name))
	// The cloud site's gateway exists from the start: when hub2 is added
	// it becomes the witness, a node made before it was one.
	one := strings.NewReplacer(`hubs = ["onprem.frontend", "cloud.hub2"]`, `hubs = ["onprem.frontend"]`, `    node "hub2" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
`, "").Replace(full)
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(one), 0o644)
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up with one manager: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, agentLogs(dir))
	}
	if r := hv(t, dir, "", "submit", "-n", "4", "main.hcl", "--", "sh", "-c", "echo $HVCTL_JOB_ID > $HVCTL_OUTPUT_DIR/id"); r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	before := waitEnded(t, dir, 4, 2*time.Minute)

	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(full), 0o644)
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 || strings.Contains(r.stdout, "Warning:") {
		t.Fatalf("up with the second manager: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, agentLogs(dir))
	}
	primary := newAPI(t, dir)
	survivor := *primary
	survivor.url = "https://" + loadState(t, dir).Resource("site.cloud.node.hub2").Attrs["public_address"].(string) + ":51821"
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := survivor.do(t, "GET", "/v1/jobs", survivor.token, nil)
		if code == http.StatusMisdirectedRequest && strings.Contains(string(body), primary.url) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub2 answers %d %s, want 421 naming %s (a follower of the grown log)\n%s", code, body, primary.url, agentLogs(dir))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if r := hv(t, dir, "", "check", "main.hcl"); r.code != 0 {
		t.Errorf("check after the cluster grew: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Only the gateway can log this (no other node is the witness).
	if logs := agentLogs(dir); !strings.Contains(logs, "this node is the witness now") {
		t.Errorf("the gateway did not become the witness:\n%s", logs)
	}

	killAgent(t, findAgent(t, dir, "onprem.frontend"))
	deadline = time.Now().Add(time.Minute)
	for {
		code, _ := survivor.do(t, "GET", "/v1/nodes", survivor.token, nil)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub2 does not lead a minute after the primary's agent was killed (answers %d)\n%s", code, agentLogs(dir))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, j := range before {
		if code, body := survivor.do(t, "GET", "/v1/jobs/"+j.ID, survivor.token, nil); code != 200 || !strings.Contains(string(body), `"done"`) {
			t.Errorf("job %s through hub2: %d %s, want it done", j.ID, code, body)
		}
		if code, body := survivor.do(t, "GET", "/v1/jobs/"+j.ID+"/results/id", survivor.token, nil); code != 200 || strings.TrimSpace(string(body)) != j.ID {
			t.Errorf("job %s's result through hub2: %d %q", j.ID, code, body)
		}
	}
}

const elasticTwoHubTemplate = `
provider "local" "lab" {}

cluster "%s" {
  overlay {
    cidr = "10.204.0.0/16"
    hubs = ["onprem.frontend", "cloud.hub2"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.72.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
  }
  site "cloud" {
    provider = provider.local.lab
    gateway  = "gw"
    network { cidr = "10.64.0.0/24" }
    node "hub2" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    node "gw" { roles = ["gateway"] }
    pool "burst" {
      min = 0
      max = 1
      instance { cpus = 2 }
    }
  }
  elastic {
    interval  = "2s"
    idle_time = "30s"
  }
}
`

// waitUntil polls cond every half second until it holds (true) or limit
// has passed (false).
func waitUntil(limit time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// descends reports whether process pid runs under process anc.
func descends(pid, anc int) bool {
	for ; pid > 1; pid = local.ParentPID(pid) {
		if pid == anc {
			return true
		}
	}
	return false
}

// TestElasticFailover: both hubs of a two-hub star run the elastic
// daemon, one holding its lock and the other standing by. The hub whose
// daemon leads (handed over to hub2 and back, so both standbys are
// tried) is killed with its namespace: hub2's daemon takes over, and jobs pinned to the cloud site
// (which has no node to run them) make it start a burst node that joins
// through hub2 and runs each job once.
func TestElasticFailover(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	name := fmt.Sprintf("ef%d", rand.IntN(1e6))
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(elasticTwoHubTemplate, name)), 0o644)
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, agentLogs(dir))
	}
	primary, hub2 := findAgent(t, dir, "onprem.frontend"), findAgent(t, dir, "cloud.hub2")
	holder := func() int {
		if _, err := os.Stat(filepath.Join(dir, ".hvctl", "elastic.lock.info")); err != nil {
			return 0
		}
		pid := daemonPID(t, dir)
		if syscall.Kill(pid, 0) != nil {
			return 0
		}
		return pid
	}
	waitFor(t, "a hub's elastic daemon holds the lock", time.Minute, func() bool { return holder() != 0 })
	elasticLog := func(a agentProcess) string {
		b, _ := os.ReadFile(filepath.Join(a.cwd, "elastic.log"))
		return string(b)
	}
	// standsBy: a's daemon waits for the lock (it stood by more often
	// than it took over).
	standsBy := func(a agentProcess) bool {
		l := elasticLog(a)
		return strings.Count(l, "elastic daemon stands by") > strings.Count(l, "elastic daemon takes over")
	}
	logs := func() string {
		return fmt.Sprintf("primary's elastic.log:\n%s\nhub2's elastic.log:\n%s", elasticLog(primary), elasticLog(hub2))
	}
	// handOver stops the leading daemon on from's node and waits for the
	// standby on to's to take the lock. from's agent is paused meanwhile:
	// it restarts its daemon after 1 s, which could win the lock again
	// before the standby's next try; resumed, it starts one that stands by.
	handOver := func(from, to agentProcess, names string) {
		if !waitUntil(time.Minute, func() bool { return standsBy(to) }) {
			t.Fatalf("%s: no daemon stands by\n%s", names, logs())
		}
		pid := holder()
		syscall.Kill(from.agent, syscall.SIGSTOP)
		defer syscall.Kill(from.agent, syscall.SIGCONT)
		syscall.Kill(pid, syscall.SIGTERM)
		if !waitUntil(time.Minute, func() bool { return descends(holder(), to.agent) }) {
			t.Fatalf("%s: the standby did not take over within 1m\n%s", names, logs())
		}
		t.Logf("%s: pid %d stopped, pid %d took over", names, pid, holder())
	}
	// The standby path runs at least once, whichever took the lock first,
	// and the primary's daemon leads before its hub is killed.
	if descends(holder(), primary.agent) {
		handOver(primary, hub2, "primary to hub2")
	}
	handOver(hub2, primary, "hub2 to primary")
	if !waitUntil(time.Minute, func() bool { return standsBy(hub2) }) {
		t.Fatalf("hub2's daemon does not stand by\n%s", logs())
	}

	killed := time.Now()
	killAgent(t, primary)
	if out, err := exec.Command("ip", "netns", "del", primary.netns).CombinedOutput(); err != nil {
		t.Fatalf("remove the primary hub's namespace %s: %v %s", primary.netns, err, out)
	}
	waitFor(t, "hub2's elastic daemon takes over", 2*time.Minute, func() bool { return descends(holder(), hub2.agent) })
	t.Logf("hub2's daemon (pid %d) holds the lock %.1f s after the primary hub was killed", holder(), time.Since(killed).Seconds())

	marks := filepath.Join(dir, "marks")
	os.MkdirAll(marks, 0o777)
	if r := hv(t, dir, "", append([]string{"submit", "-n", "3", "-site", "cloud", "main.hcl", "--"}, markerJob(marks, 1)...)...); r.code != 0 {
		t.Fatalf("submit through hub2: %s", r.stderr)
	}
	jobs := waitEnded(t, dir, 3, 4*time.Minute)
	checkOnce(t, marks, jobs)
	for _, j := range jobs {
		if !strings.HasPrefix(j.Node, "cloud.burst[") {
			t.Errorf("job %s ran on %q, want a burst node", j.ID, j.Node)
		}
	}
	if inState, _ := burstNodes(t, dir); len(inState) != 1 {
		t.Errorf("burst nodes in the state: %v, want one", inState)
	}
	if t.Failed() {
		t.Log(agentLogs(dir))
	}
}
