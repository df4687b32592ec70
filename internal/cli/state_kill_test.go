package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision/aws/awsfake"
	"github.com/hvctl/hvctl/provision/s3state"
	"github.com/hvctl/hvctl/provision/sim"
	"github.com/hvctl/hvctl/provision/statecrypt"
)

// killTrials kills hvctl apply and destroy (alternately) with SIGKILL
// while they change the cluster, in dir, extra added to each command
// (afterKill, when set, runs after each operation ends):
// each is killed a random 0–400 ms after it prints its first
// "Creating..." or "Destroying..." line. Trials go on until
// killWant operations were killed mid-way (at most killMaxTrials; an
// operation that finishes before its kill moment does not count). After
// each kill, the next plan must load the state (its -lock-timeout lets a
// lock the killed process left go: a lease running out); at the end one
// apply finishes, the plan has no changes, and the world holds each of
// the cluster's resources once.
func killTrials(t *testing.T, dir, name string, workers int, afterKill func(trial int), extra ...string) {
	t.Helper()
	const killWant, killMaxTrials = 12, 60
	killed, trials := 0, 0
	for ; killed < killWant && trials < killMaxTrials; trials++ {
		verb := "apply"
		if trials%2 == 1 {
			verb = "destroy"
		}
		cmd := exec.Command(hvctl, append(append([]string{verb, "-auto-approve", "-input=false"}, extra...), "main.hcl")...)
		cmd.Dir = dir
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		// The output is read to its end; changing is closed at the
		// first line that says a resource is being changed.
		var out bytes.Buffer
		changing, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(pr)
			seen := false
			for sc.Scan() {
				out.Write(sc.Bytes())
				out.WriteByte('\n')
				if l := sc.Text(); !seen && (strings.HasSuffix(l, ": Creating...") || strings.HasSuffix(l, ": Destroying...")) {
					seen = true
					close(changing)
				}
			}
			pr.Close()
		}()
		select {
		case <-changing:
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
			cmd.Process.Kill()
		case <-done:
		}
		err = cmd.Wait()
		<-done
		if err != nil && strings.Contains(err.Error(), "killed") {
			killed++
		} else if err != nil {
			t.Fatalf("trial %d: %s failed before the kill: %v\n%s", trials, verb, err, out.String())
		}
		if afterKill != nil {
			afterKill(trials)
		}
		if r := hv(t, dir, "", append(append([]string{"plan", "-input=false", "-lock-timeout=60s"}, extra...), "main.hcl")...); r.code != 0 {
			t.Fatalf("trial %d: plan after the kill: %s", trials, r.stderr)
		}
	}
	t.Logf("%d of %d operations were killed while they changed the cluster", killed, trials)
	if killed < killWant {
		t.Errorf("only %d of %d operations were killed mid-way (want %d): the test did not test kills", killed, trials, killWant)
	}
	if r := hv(t, dir, "", append(append([]string{"apply", "-auto-approve", "-input=false", "-lock-timeout=60s"}, extra...), "main.hcl")...); r.code != 0 {
		t.Fatalf("final apply: %s", r.stderr)
	}
	if r := hv(t, dir, "", append(append([]string{"plan", "-detailed-exitcode", "-input=false"}, extra...), "main.hcl")...); r.code != 0 {
		t.Fatalf("plan after the final apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	seen := map[string]int{}
	instances := 0
	for _, it := range simList(t, dir) {
		if it.Cluster != name {
			continue
		}
		seen[it.Address]++
		if it.Kind == "instance" {
			instances++
		}
	}
	for addr, n := range seen {
		if n != 1 {
			t.Errorf("%s exists %d times", addr, n)
		}
	}
	if instances != 1+workers {
		t.Errorf("%d instances in the world, want %d", instances, 1+workers)
	}
	if r := hv(t, dir, "", append(append([]string{"destroy", "-auto-approve", "-input=false"}, extra...), "main.hcl")...); r.code != 0 {
		t.Fatalf("destroy: %s", r.stderr)
	}
}

// s3Env starts the AWS fake with bucket, closed when t ends, and points
// the SDK's credential chain at its one key pair and nothing else.
func s3Env(t *testing.T, bucket string) *awsfake.Server {
	t.Helper()
	srv := awsfake.New()
	srv.Credentials = map[string]string{"AKIDTEST": "secret"}
	t.Cleanup(srv.Close)
	srv.CreateBucket(bucket)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	return srv
}

// TestS3KillAndLock: against the AWS fake's S3, encrypted: two
// concurrent applies, the second waiting -lock-timeout and failing with
// the first's PID; then, with a 1 s lock lease, SIGKILLs during apply and
// destroy (killTrials): the state object stays whole and decrypts, the dead holder's
// lock is replaced once its lease runs out, and no machine is made
// twice; at the end no lock object is left.
func TestS3KillAndLock(t *testing.T) {
	srv := s3Env(t, "kill-state")
	t.Setenv(sim.WorldEnv, t.TempDir())
	t.Setenv("HVCTL_TEST_STATE_KEY", "s3 kill passphrase")
	name := fmt.Sprintf("state-s3kill-%d", rand.IntN(1<<30))
	dir, other := t.TempDir(), t.TempDir()
	// The lease: the default while two applies race (a renewal late by
	// more than a 1 s lease on a loaded machine would let B take over),
	// 1 s for the kills, so each dead holder's lock is free soon.
	lease := "1m"
	write := func(d, boot string, workers int) {
		writeTemplate(t, d, boot, name, workers, 0)
		appendState(t, d, "state {\n  backend        = \"s3\"\n  bucket         = \"kill-state\"\n  use_path_style = true\n  lock_lease     = \""+lease+"\"\n  encryption {\n    key_env = \"HVCTL_TEST_STATE_KEY\"\n  }\n}")
	}
	ep := "-backend-config=endpoint=" + srv.URL
	ctx := context.Background()
	watcher, err := s3state.New(ctx, map[string]string{"bucket": "kill-state", "endpoint": srv.URL, "use_path_style": "true"}, name, "default")
	if err != nil {
		t.Fatal(err)
	}

	// Two applies at once: A's holds the lock (renewing its lease) while
	// its new node boots; B's waits -lock-timeout and names A's process.
	write(dir, "0s", 1)
	if r := hv(t, dir, "", "apply", "-auto-approve", "-input=false", ep, "main.hcl"); r.code != 0 {
		t.Fatalf("first apply: %s", r.stderr)
	}
	write(dir, "3s", 2)
	write(other, "3s", 2)
	cmd := exec.Command(hvctl, "apply", "-auto-approve", "-input=false", ep, "main.hcl")
	cmd.Dir = dir
	var aout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &aout, &aout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if h, _ := watcher.LockHolder(ctx); h != nil && h.PID == cmd.Process.Pid {
			break
		}
		if i == 3000 {
			t.Fatalf("A's apply never held the lock:\n%s", aout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	r := hv(t, other, "", "apply", "-auto-approve", "-input=false", "-lock-timeout=1500ms", ep, "main.hcl")
	waited := time.Since(start)
	if r.code == 0 || !strings.Contains(r.stderr, "Error acquiring the state lock") || !strings.Contains(r.stderr, fmt.Sprintf("PID:       %d", cmd.Process.Pid)) {
		t.Errorf("concurrent apply from B: exit %d, want a lock error naming PID %d:\n%s", r.code, cmd.Process.Pid, r.stderr)
	}
	if waited < 1500*time.Millisecond {
		t.Errorf("B gave up after %v, before its -lock-timeout", waited)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("A's apply: %v\n%s", err, aout.String())
	}

	const workers = 6
	lease = "1s"
	// A 1 s boot keeps each apply changing the cluster past its kill
	// moment (at most 400 ms after its first "Creating...").
	write(dir, "1s", workers)
	killTrials(t, dir, name, workers, nil, ep)
	obj := srv.Object("kill-state", "hvctl/"+name+"/default.state")
	if !statecrypt.IsSealed(obj) {
		t.Errorf("the state object is not encrypted: %.60q", obj)
	}
	if h, err := watcher.LockHolder(ctx); err != nil || h != nil {
		t.Errorf("a lock is left after the last destroy: %+v %v", h, err)
	}
}

// TestEncryptedLocalKill: the same SIGKILLs with encrypted local
// state: the kernel drops the killed process's flock, the sealed
// snapshot and journal load after each kill, no machine is made twice.
func TestEncryptedLocalKill(t *testing.T) {
	t.Setenv(sim.WorldEnv, "")
	t.Setenv("HVCTL_TEST_STATE_KEY", "local kill passphrase")
	name := fmt.Sprintf("state-localkill-%d", rand.IntN(1<<30))
	dir := t.TempDir()
	const workers = 6
	// A 1 s boot keeps each apply changing the cluster past its kill
	// moment (at most 400 ms after its first "Creating...").
	writeTemplate(t, dir, "1s", name, workers, 0)
	appendState(t, dir, "state {\n  encryption {\n    key_env = \"HVCTL_TEST_STATE_KEY\"\n  }\n}")
	killTrials(t, dir, name, workers, nil)
	files, _ := filepath.Glob(filepath.Join(dir, ".hvctl", "state.json*"))
	if len(files) == 0 {
		t.Fatal("no state files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && (!statecrypt.IsSealed(b) && !strings.HasSuffix(f, ".lock") || bytes.Contains(b, []byte(name))) {
			t.Errorf("%s is not sealed: %.60q", filepath.Base(f), b)
		}
	}
}
