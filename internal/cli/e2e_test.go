package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/sim"
)

var hvctl string // path to the built binary

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hvctl-bin-")
	if err != nil {
		panic(err)
	}
	hvctl = filepath.Join(dir, "hvctl")
	// A test run again inside a namespace (TestPulumiAutomationSim)
	// is given the binary its parent built.
	out, err := []byte(nil), error(nil)
	if b := os.Getenv("HVCTL_TEST_BINARY"); b != "" {
		hvctl = b
	} else {
		out, err = exec.Command("go", "build", "-o", hvctl, "github.com/hvctl/hvctl/cmd/hvctl").CombinedOutput()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "build hvctl: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// hv runs the hvctl binary in dir with stdin from input.
func hv(t *testing.T, dir, input string, args ...string) result {
	t.Helper()
	cmd := exec.Command(hvctl, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.Stdin = strings.NewReader(input)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{o.String(), e.String(), code}
}

const simTemplate = `
provider "sim" "lab" {
  boot_time = "%s"
}

cluster "%s" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.sim.lab
    network { cidr = "192.168.10.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance {
        cpus   = 2
        memory = "4GiB"
      }
    }
    pool "wn" {
      count = %d
      instance {
        cpus   = 2
        memory = "4GiB"
      }
    }
  }
  site "cloud" {
    provider = provider.sim.lab
    tier     = 1
    network { cidr = "10.4.2.0/24" }
    pool "burst" {
      min = %d
      max = 4
      instance { cpus = 2 }
    }
  }
}
`

func writeTemplate(t *testing.T, dir, boot, name string, wn, burst int) {
	t.Helper()
	src := fmt.Sprintf(simTemplate, boot, name, wn, burst)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

type simItem struct {
	ID, Kind, Address, Cluster, State string
}

func simList(t *testing.T, dir string) []simItem {
	t.Helper()
	r := hv(t, dir, "", "sim", "list", "-json")
	if r.code != 0 {
		t.Fatalf("sim list: %s", r.stderr)
	}
	var items []simItem
	if err := json.Unmarshal([]byte(r.stdout), &items); err != nil {
		t.Fatalf("sim list output: %v\n%s", err, r.stdout)
	}
	return items
}

func loadState(t *testing.T, dir string) *provision.State {
	t.Helper()
	st, err := (&provision.Store{Path: filepath.Join(dir, ".hvctl", "state.json")}).Load()
	if err != nil {
		t.Fatalf("state does not parse: %v", err)
	}
	return st
}

// checkConverged asserts that the sim cloud holds exactly the state's
// resources: one live machine per address, none extra.
func checkConverged(t *testing.T, dir string, want int) {
	t.Helper()
	st := loadState(t, dir)
	live := map[string][]string{}
	for _, it := range simList(t, dir) {
		live[it.Address] = append(live[it.Address], it.ID)
	}
	for addr, ids := range live {
		if len(ids) > 1 {
			t.Errorf("duplicate machines for %s: %v", addr, ids)
		}
		r := st.Resource(addr)
		if r == nil {
			t.Errorf("orphan: %s (%v) exists in the sim cloud but not in the state", addr, ids)
		} else if r.ID != ids[0] {
			t.Errorf("%s: state has %s, cloud has %s", addr, r.ID, ids[0])
		}
	}
	for _, r := range st.Resources {
		if len(live[r.Address]) == 0 {
			t.Errorf("lost: %s is in the state but not in the sim cloud", r.Address)
		}
		if r.Status != provision.StatusReady {
			t.Errorf("%s status = %s after convergence", r.Address, r.Status)
		}
	}
	if len(st.Resources) != want {
		t.Errorf("state has %d resources, want %d", len(st.Resources), want)
	}
}

// startKilled starts hvctl and SIGKILLs it after d.
func startKilled(t *testing.T, dir string, d time.Duration, args ...string) {
	t.Helper()
	cmd := exec.Command(hvctl, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// TestKillConverges kills hvctl with SIGKILL at random moments during
// up and during down, then runs it again: every trial must converge with
// no duplicate and no orphan machine, and the state always parses.
func TestKillConverges(t *testing.T) {
	trials := 50
	if testing.Short() {
		trials = 5
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	writeTemplate(t, dir, "150ms", "killtest", 3, 2)
	const resources = 2 + 1 + 3 + 2 // networks, hub, wn, burst min

	// Time one clean run to pick kill moments inside it.
	start := time.Now()
	if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
		t.Fatalf("up: %s", r.stderr)
	}
	upTime := time.Since(start)
	start = time.Now()
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatalf("down: %s", r.stderr)
	}
	downTime := time.Since(start)

	for i := 0; i < trials; i++ {
		par := []string{"1", "3", "10"}[rng.IntN(3)]
		// Kill during up.
		startKilled(t, dir, time.Duration(rng.Int64N(int64(upTime))), "up", "-parallelism", par, "main.hcl")
		loadState(t, dir)
		if r := hv(t, dir, "", "up", "-parallelism", par, "main.hcl"); r.code != 0 {
			t.Fatalf("trial %d: up after kill: %s", i, r.stderr)
		}
		checkConverged(t, dir, resources)
		// Kill during down.
		startKilled(t, dir, time.Duration(rng.Int64N(int64(downTime)+int64(50*time.Millisecond))), "down", "-parallelism", par, "main.hcl")
		loadState(t, dir)
		if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
			t.Fatalf("trial %d: down after kill: %s", i, r.stderr)
		}
		checkConverged(t, dir, 0)
		if t.Failed() {
			t.Fatalf("trial %d did not converge (seed %d)", i, seed)
		}
	}
}

// TestKillConverges1000 is TestKillConverges at 1,000 nodes, with the
// default parallelism: SIGKILL at random moments of up and of down, then
// up (or down) again; every trial ends with no duplicate, no orphan, no
// lost machine, and the state parses after every kill. HVCTL_KILL_TRIALS
// sets the number of trials (default 10, 3 with -short).
func TestKillConverges1000(t *testing.T) {
	trials := 10
	if testing.Short() {
		trials = 3
	}
	if n, err := strconv.Atoi(os.Getenv("HVCTL_KILL_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	src := strings.Replace(fmt.Sprintf(simTemplate, "100ms", "kill1000", 1000, 2), "192.168.10.0/24", "192.168.8.0/21", 1)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	const resources = 2 + 1 + 1000 + 2

	start := time.Now()
	if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
		t.Fatalf("up: %s", r.stderr)
	}
	upTime := time.Since(start)
	checkConverged(t, dir, resources)
	start = time.Now()
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatalf("down: %s", r.stderr)
	}
	downTime := time.Since(start)
	t.Logf("clean up %v, down %v", upTime, downTime)

	for i := 0; i < trials; i++ {
		at := time.Duration(rng.Int64N(int64(upTime)))
		startKilled(t, dir, at, "up", "main.hcl")
		st := loadState(t, dir)
		t.Logf("trial %d: killed up after %v with %d resources in the state", i, at, len(st.Resources))
		if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
			t.Fatalf("trial %d: up after kill: %s", i, r.stderr)
		}
		checkConverged(t, dir, resources)
		at = time.Duration(rng.Int64N(int64(downTime) + int64(50*time.Millisecond)))
		startKilled(t, dir, at, "down", "main.hcl")
		loadState(t, dir)
		if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
			t.Fatalf("trial %d: down after kill: %s", i, r.stderr)
		}
		checkConverged(t, dir, 0)
		if t.Failed() {
			t.Fatalf("trial %d did not converge (seed %d)", i, seed)
		}
	}
}

// TestConcurrentApply: while one apply holds the lock, a second waits for
// -lock-timeout, then fails naming the holder; nothing is corrupted.
func TestConcurrentApply(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "3s", "locktest", 1, 0)
	first := exec.Command(hvctl, "apply", "-auto-approve", "main.hcl")
	first.Dir = dir
	first.Env = append(os.Environ(), "NO_COLOR=1")
	var out bytes.Buffer
	first.Stdout, first.Stderr = &out, &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the first apply holds the lock.
	info := filepath.Join(dir, ".hvctl", "state.json.lock.info")
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(info); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	r := hv(t, dir, "", "apply", "-auto-approve", "-lock-timeout=1s", "main.hcl")
	if r.code != 1 {
		t.Errorf("second apply exit = %d, want 1", r.code)
	}
	for _, want := range []string{"Error acquiring the state lock", "Lock Info:", fmt.Sprintf("PID:       %d", first.Process.Pid), "Operation: apply"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("second apply stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first apply: %v\n%s", err, out.String())
	}
	checkConverged(t, dir, 4)
	if r := hv(t, dir, "", "plan", "-detailed-exitcode", "main.hcl"); r.code != 0 {
		t.Errorf("plan after apply exit = %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
	}
	hv(t, dir, "", "down", "main.hcl")
}

// TestInvalidCorpus: every invalid template yields a located error and
// exit 1 from validate and plan, and nothing is planned or written.
func TestInvalidCorpus(t *testing.T) {
	corpus, err := filepath.Glob("../../templates/testdata/invalid/*")
	if err != nil || len(corpus) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, path := range corpus {
		if strings.HasSuffix(path, ".golden") {
			continue
		}
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			abs, _ := filepath.Abs(path)
			work := t.TempDir()
			for _, verb := range [][]string{{"validate"}, {"plan"}, {"apply", "-auto-approve"}, {"up"}} {
				r := hv(t, work, "", append(verb, abs)...)
				if r.code != 1 {
					t.Errorf("%s exit = %d, want 1", verb[0], r.code)
				}
				if !strings.Contains(r.stderr, "Error: ") || !strings.Contains(r.stderr, " line ") {
					t.Errorf("%s: error is not located:\n%s", verb[0], r.stderr)
				}
				if strings.Contains(r.stdout, "will be created") {
					t.Errorf("%s planned something:\n%s", verb[0], r.stdout)
				}
			}
			// Nothing was written next to the template or in the work dir.
			for _, d := range []string{filepath.Join(filepath.Dir(abs), ".hvctl"), filepath.Join(abs, ".hvctl"), filepath.Join(work, ".hvctl")} {
				if _, err := os.Stat(d); err == nil {
					t.Errorf("%s was created", d)
				}
			}
		})
	}
}

// TestSavedPlan: a saved plan applies exactly; a stale one is refused.
func TestSavedPlan(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "savedplan", 1, 0)
	if r := hv(t, dir, "", "plan", "-out=p1", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := hv(t, dir, "", "plan", "-out=p2", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(dir, "p1")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("plan file mode: %v %v", fi, err)
	}
	r := hv(t, dir, "", "apply", "p1")
	if r.code != 0 || !strings.Contains(r.stdout, "Apply complete! Resources: 4 added") {
		t.Fatalf("apply p1: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	before := loadState(t, dir)
	r = hv(t, dir, "", "apply", "p2")
	if r.code != 1 || !strings.Contains(r.stderr, "Saved plan is stale") {
		t.Errorf("apply of a stale plan: exit %d\n%s", r.code, r.stderr)
	}
	after := loadState(t, dir)
	if after.Serial != before.Serial {
		t.Errorf("stale apply changed the state: serial %d -> %d", before.Serial, after.Serial)
	}
	checkConverged(t, dir, 4)
	// show reads the saved plan; -json too.
	if r := hv(t, dir, "", "show", "p1"); !strings.Contains(r.stdout, "Plan: 4 to add") {
		t.Errorf("show p1:\n%s", r.stdout)
	}
	hv(t, dir, "", "down", "main.hcl")
}

// TestPrompt: apply asks, and only "yes" approves.
func TestPrompt(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "prompt", 1, 0)
	for _, answer := range []string{"no\n", "y\n", "YES\n", ""} {
		r := hv(t, dir, answer, "apply", "main.hcl")
		if r.code != 1 || !strings.Contains(r.stderr, "Apply cancelled") {
			t.Errorf("answer %q: exit %d\n%s", answer, r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "Do you want to perform these actions?") {
			t.Errorf("answer %q: no prompt:\n%s", answer, r.stdout)
		}
	}
	if items := simList(t, dir); len(items) != 0 {
		t.Fatalf("cancelled applies created %v", items)
	}
	r := hv(t, dir, "yes\n", "apply", "main.hcl")
	if r.code != 0 {
		t.Fatalf("yes: %s", r.stderr)
	}
	checkConverged(t, dir, 4)
	r = hv(t, dir, "nope\n", "destroy", "main.hcl")
	if r.code != 1 || !strings.Contains(r.stdout, "Do you really want to destroy all resources?") {
		t.Errorf("destroy prompt: %d\n%s", r.code, r.stdout)
	}
	checkConverged(t, dir, 4)
	if r := hv(t, dir, "yes\n", "destroy", "main.hcl"); r.code != 0 || !strings.Contains(r.stdout, "Destroy complete! Resources: 4 destroyed.") {
		t.Errorf("destroy yes: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	checkConverged(t, dir, 0)
}

// TestPlanExitCodesAndJSON covers -detailed-exitcode, -json and colour.
func TestPlanExitCodesAndJSON(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "exitcodes", 2, 1)
	r := hv(t, dir, "", "plan", "-detailed-exitcode", "main.hcl")
	if r.code != 2 {
		t.Errorf("plan with changes: exit %d, want 2", r.code)
	}
	if strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("colour with NO_COLOR set")
	}
	r = hv(t, dir, "", "plan", "-json", "main.hcl")
	var doc struct {
		FormatVersion   string `json:"format_version"`
		ResourceChanges []struct {
			Address string
			Change  struct{ Actions []string }
		} `json:"resource_changes"`
		Summary map[string]int
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("plan -json is not one JSON document: %v\n%s", err, r.stdout)
	}
	if doc.FormatVersion == "" || len(doc.ResourceChanges) != 6 || doc.Summary["add"] != 6 {
		t.Errorf("plan -json = %+v", doc)
	}
	if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r = hv(t, dir, "", "plan", "-detailed-exitcode", "main.hcl")
	if r.code != 0 || !strings.Contains(r.stdout, "No changes. Your infrastructure matches the configuration.") {
		t.Errorf("plan without changes: exit %d\n%s", r.code, r.stdout)
	}
	// --long flags work like -flags.
	if r := hv(t, dir, "", "plan", "--detailed-exitcode", "--refresh=false", "main.hcl"); r.code != 0 {
		t.Errorf("--long flags: exit %d\n%s", r.code, r.stderr)
	}
	hv(t, dir, "", "down", "main.hcl")
}

// TestDeletedOutside: a machine deleted behind hvctl's back shows in the
// next plan and is created again.
func TestDeletedOutside(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "drift", 1, 0)
	if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	st := loadState(t, dir)
	w := st.Resource("site.onprem.pool.wn.node[0]")
	deleteSimMachine(t, dir, w.ID)
	r := hv(t, dir, "", "plan", "main.hcl")
	if !strings.Contains(r.stdout, "site.onprem.pool.wn.node[0] has been deleted outside hvctl") ||
		!strings.Contains(r.stdout, "Plan: 1 to add, 0 to change, 0 to destroy.") {
		t.Errorf("plan after outside delete:\n%s", r.stdout)
	}
	if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	checkConverged(t, dir, 4)
	hv(t, dir, "", "down", "main.hcl")
}

// TestStateCommands covers state list/show/rm and show -json redaction.
func TestStateCommands(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "statecmds", 1, 0)
	if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r := hv(t, dir, "", "state", "list")
	if !strings.Contains(r.stdout, "site.onprem.node.frontend\n") || strings.Count(r.stdout, "\n") != 4 {
		t.Errorf("state list:\n%s", r.stdout)
	}
	r = hv(t, dir, "", "state", "show", "site.onprem.node.frontend")
	if !strings.Contains(r.stdout, `public_ip      = true`) {
		t.Errorf("state show:\n%s", r.stdout)
	}
	r = hv(t, dir, "", "state", "show", "site.onprem.node.frontnd")
	if r.code != 1 || !strings.Contains(r.stderr, `Did you mean "site.onprem.node.frontend"?`) {
		t.Errorf("state show typo: %d %s", r.code, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(dir, ".hvctl", "state.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state mode = %v", fi.Mode())
	}
	r = hv(t, dir, "", "state", "rm", "site.onprem.pool.wn.node[0]")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if st := loadState(t, dir); st.Resource("site.onprem.pool.wn.node[0]") != nil {
		t.Errorf("state rm did not remove")
	}
	// The forgotten machine still exists; it is the user's to handle.
	found := false
	for _, it := range simList(t, dir) {
		if it.Address == "site.onprem.pool.wn.node[0]" {
			found = true
			deleteSimMachine(t, dir, it.ID)
		}
	}
	if !found {
		t.Errorf("state rm destroyed the machine")
	}
	hv(t, dir, "", "down", "main.hcl")
	checkConverged(t, dir, 0)
}

// deleteSimMachine deletes a machine through the sim cloud's own API, as
// someone at the cloud console would: behind hvctl's back.
func deleteSimMachine(t *testing.T, dir, id string) {
	t.Helper()
	p := sim.Open(&provision.Env{StateDir: filepath.Join(dir, ".hvctl")}, sim.DefaultSettings(), nil)
	if err := p.Delete(context.Background(), &provision.DeleteRequest{Kind: provision.KindInstance, ID: id}); err != nil {
		t.Fatal(err)
	}
}
