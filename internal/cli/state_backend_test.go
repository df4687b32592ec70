package cli_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/pgstate"
	"github.com/hvctl/hvctl/provision/pgstate/pgtest"
	"github.com/hvctl/hvctl/provision/s3state"
	"github.com/hvctl/hvctl/provision/sim"
	"github.com/hvctl/hvctl/provision/statecrypt"
)

// appendState adds a state block to dir's main.hcl.
func appendState(t *testing.T, dir, block string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "main.hcl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + block + "\n"); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptedLocalState: with state { encryption { key_env } } the
// local state file is an envelope with no plaintext; plan reads it back
// (no changes), a wrong or missing passphrase is refused and changes
// nothing, and down works with the right one.
func TestEncryptedLocalState(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "enc-local", 2, 0)
	appendState(t, dir, `state {
  encryption {
    key_env = "HVCTL_TEST_STATE_KEY"
  }
}`)
	t.Setenv("HVCTL_TEST_STATE_KEY", "correct horse battery staple")
	if r := hv(t, dir, "", "apply", "-auto-approve", "main.hcl"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	path := filepath.Join(dir, ".hvctl", "state.json")
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !statecrypt.IsSealed(stored) {
		t.Fatalf("state file is not encrypted: %.80q", stored)
	}
	for _, leak := range []string{"enc-local", "site.onprem", "lineage", "client_token"} {
		if bytes.Contains(stored, []byte(leak)) {
			t.Errorf("encrypted state file contains %q", leak)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v", fi.Mode().Perm())
	}
	if r := hv(t, dir, "", "plan", "-detailed-exitcode", "main.hcl"); r.code != 0 {
		t.Fatalf("plan after apply: exit %d (want 0, no changes)\n%s%s", r.code, r.stdout, r.stderr)
	}
	tests := []struct {
		name, key, want string
	}{
		{"wrong passphrase", "correct horse battery stapler", "passphrase is wrong"},
		{"no passphrase", "", "HVCTL_TEST_STATE_KEY (key_env), which is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HVCTL_TEST_STATE_KEY", tt.key)
			r := hv(t, dir, "", "apply", "-auto-approve", "main.hcl")
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("apply: exit %d, want an error with %q:\n%s", r.code, tt.want, r.stderr)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, stored) {
				t.Error("the refused apply changed the state file")
			}
		})
	}
	// state rekey: the new passphrase opens the state, the old one
	// (in the file or its backup) does not.
	t.Setenv("HVCTL_TEST_STATE_KEY", "correct horse battery staple")
	t.Setenv("HVCTL_TEST_STATE_KEY_NEW", "a new passphrase")
	if r := hv(t, dir, "", "state", "rekey", "-new-key-env", "HVCTL_TEST_STATE_KEY_NEW"); r.code != 0 || !strings.Contains(r.stdout, "now encrypted with the passphrase in HVCTL_TEST_STATE_KEY_NEW") {
		t.Fatalf("state rekey: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, dir, "", "plan", "-input=false", "main.hcl"); r.code == 0 || !strings.Contains(r.stderr, "passphrase is wrong") {
		t.Errorf("plan with the old passphrase after rekey: exit %d\n%s", r.code, r.stderr)
	}
	for _, f := range []string{path, path + ".backup"} {
		b, _ := os.ReadFile(f)
		if _, err := statecrypt.NewWithParams("x", statecrypt.DefaultParams).Open(b); err == nil {
			t.Errorf("%s opened with a wrong passphrase", f)
		}
		if _, err := statecrypt.New("correct horse battery staple").Open(b); err == nil {
			t.Errorf("%s still opens with the old passphrase", f)
		}
		if _, err := statecrypt.New("a new passphrase").Open(b); err != nil {
			t.Errorf("%s does not open with the new passphrase: %v", f, err)
		}
	}
	t.Setenv("HVCTL_TEST_STATE_KEY", "a new passphrase")
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatalf("down: %s", r.stderr)
	}
	if items := simList(t, dir); len(items) != 0 {
		t.Errorf("down left %d sim resources", len(items))
	}
}

// TestPGState runs hvctl against a real PostgreSQL (started by the test)
// with the state encrypted: apply from directory A; plan (no changes)
// from directory B with the same template; two concurrent applies, the
// second waiting -lock-timeout and failing with the first's PID; the
// stored rows hold no plaintext; a wrong passphrase is refused; destroy
// from B leaves nothing in the shared sim world.
func TestPGState(t *testing.T) {
	srv := pgtest.Start(t)
	t.Setenv(sim.WorldEnv, t.TempDir())
	t.Setenv("HVCTL_PG_CONN_STR", srv.ConnStr)
	t.Setenv("HVCTL_TEST_STATE_KEY", "pg passphrase")
	name := fmt.Sprintf("pg-%d", rand.IntN(1<<30))
	block := `state {
  backend = "pg"
  encryption {
    key_env = "HVCTL_TEST_STATE_KEY"
  }
}`
	a, b := t.TempDir(), t.TempDir()
	write := func(wn int) {
		for _, d := range []string{a, b} {
			writeTemplate(t, d, "1s", name, wn, 0)
			appendState(t, d, block)
		}
	}
	write(2)
	if r := hv(t, a, "", "apply", "-auto-approve", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("apply from A: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(a, ".hvctl", "state.json")); err == nil {
		t.Error("apply with the pg backend wrote a local state file")
	}
	if r := hv(t, b, "", "plan", "-detailed-exitcode", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("plan from B: exit %d, want 0 (no changes)\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Two applies of one more worker at once: A's holds the lock while
	// the node boots; B's waits -lock-timeout and names A's process.
	write(3)
	cmd := exec.Command(hvctl, "apply", "-auto-approve", "-input=false", "main.hcl")
	cmd.Dir = a
	var aout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &aout, &aout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watcher, err := pgstate.New(map[string]string{"conn_str": srv.ConnStr}, name, "default")
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	for i := 0; ; i++ {
		if h, _ := watcher.LockHolder(context.Background()); h != nil && h.PID == cmd.Process.Pid {
			break
		}
		if i == 600 {
			t.Fatalf("A's apply never held the lock:\n%s", aout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	r := hv(t, b, "", "apply", "-auto-approve", "-input=false", "-lock-timeout=700ms", "main.hcl")
	waited := time.Since(start)
	if r.code == 0 || !strings.Contains(r.stderr, "Error acquiring the state lock") || !strings.Contains(r.stderr, fmt.Sprintf("PID:       %d", cmd.Process.Pid)) {
		t.Errorf("concurrent apply from B: exit %d, want a lock error naming PID %d:\n%s", r.code, cmd.Process.Pid, r.stderr)
	}
	if waited < 700*time.Millisecond {
		t.Errorf("B gave up after %v, before its -lock-timeout", waited)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("A's apply: %v\n%s", err, aout.String())
	}
	if r := hv(t, b, "", "plan", "-detailed-exitcode", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("plan from B after A's second apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// What PostgreSQL stores is ciphertext.
	c, err := pgx.Connect(context.Background(), srv.ConnStr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var stored []byte
	rows, err := c.Query(context.Background(), `SELECT data FROM hvctl.states WHERE cluster=$1 UNION ALL SELECT data FROM hvctl.journal WHERE cluster=$1`, name)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var d []byte
		rows.Scan(&d)
		stored = append(stored, d...)
		n++
	}
	rows.Close()
	if n == 0 {
		t.Fatal("no state rows in PostgreSQL")
	}
	for _, leak := range []string{name, "site.onprem", "lineage", "client_token", "sim-i-"} {
		if bytes.Contains(stored, []byte(leak)) {
			t.Errorf("the stored state contains %q", leak)
		}
	}
	// A pg_dump (a backup of the server) holds none of the state's
	// lineage, addresses, machine IDs or client tokens, neither as text
	// nor in bytea's hex.
	r = hv(t, b, "", "state", "pull")
	var pulled provision.State
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &pulled) != nil || pulled.Lineage == "" {
		t.Fatalf("state pull: exit %d\n%.200s%s", r.code, r.stdout, r.stderr)
	}
	leaks := []string{pulled.Lineage}
	for _, res := range pulled.Resources {
		leaks = append(leaks, res.Address, res.ID)
		if tok, ok := res.Attrs["client_token"].(string); ok && tok != "" {
			leaks = append(leaks, tok)
		}
	}
	dump := srv.Dump(t)
	if !bytes.Contains(dump, []byte("hvctl.states")) {
		t.Fatalf("pg_dump has no states table:\n%.300s", dump)
	}
	for _, leak := range leaks {
		if bytes.Contains(dump, []byte(leak)) || bytes.Contains(dump, []byte(hex.EncodeToString([]byte(leak)))) {
			t.Errorf("pg_dump contains %q", leak)
		}
	}

	t.Setenv("HVCTL_TEST_STATE_KEY", "not the passphrase")
	if r := hv(t, b, "", "destroy", "-auto-approve", "-input=false", "main.hcl"); r.code == 0 || !strings.Contains(r.stderr, "passphrase is wrong") {
		t.Errorf("destroy with a wrong passphrase: exit %d\n%s", r.code, r.stderr)
	}
	t.Setenv("HVCTL_TEST_STATE_KEY", "pg passphrase")
	if r := hv(t, b, "", "destroy", "-auto-approve", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("destroy from B: %s", r.stderr)
	}
	if items := simList(t, b); len(items) != 0 {
		t.Errorf("destroy from B left %d resources in the shared world", len(items))
	}
}

// TestPGKill kills hvctl apply and destroy with SIGKILL (killTrials)
// against the pg backend: each time the server drops the lock with the
// connection, the state loads, and the next apply goes on; at the end one
// apply finishes, the plan has no changes, and the shared sim world holds
// each machine once.
func TestPGKill(t *testing.T) {
	srv := pgtest.Start(t)
	t.Setenv(sim.WorldEnv, t.TempDir())
	t.Setenv("HVCTL_PG_CONN_STR", srv.ConnStr)
	t.Setenv("HVCTL_TEST_STATE_KEY", "kill passphrase")
	name := fmt.Sprintf("pgkill-%d", rand.IntN(1<<30))
	dir := t.TempDir()
	const workers = 6
	// A 1 s boot keeps each apply changing the cluster past its kill
	// moment (at most 400 ms after its first "Creating...").
	writeTemplate(t, dir, "1s", name, workers, 0)
	appendState(t, dir, `state {
  backend = "pg"
  encryption {
    key_env = "HVCTL_TEST_STATE_KEY"
  }
}`)
	watcher, err := pgstate.New(map[string]string{"conn_str": srv.ConnStr}, name, "default")
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	ctx := context.Background()
	// The server notices the closed connection and drops the lock; each
	// kill waits for it (no deadline assertion: a slow machine only waits).
	killTrials(t, dir, name, workers, func(trial int) {
		for i := 0; ; i++ {
			h, err := watcher.LockHolder(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if h == nil {
				return
			}
			if i == 3000 {
				t.Fatalf("trial %d: the lock of the killed operation was never released: %+v", trial, h)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestS3State: the same team flow against the AWS fake's S3: apply from
// A, plan without changes and destroy from B; the object holds no
// plaintext; a stale lock object left behind is reported with its
// holder and removed by force-unlock.
func TestS3State(t *testing.T) {
	srv := s3Env(t, "team-state")
	t.Setenv(sim.WorldEnv, t.TempDir())
	t.Setenv("HVCTL_TEST_STATE_KEY", "s3 passphrase")
	name := fmt.Sprintf("s3-%d", rand.IntN(1<<30))
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		writeTemplate(t, d, "0s", name, 2, 0)
		appendState(t, d, `state {
  backend        = "s3"
  bucket         = "team-state"
  use_path_style = true
  encryption {
    key_env = "HVCTL_TEST_STATE_KEY"
  }
}`)
	}
	ep := "-backend-config=endpoint=" + srv.URL
	if r := hv(t, a, "", "apply", "-auto-approve", "-input=false", ep, "main.hcl"); r.code != 0 {
		t.Fatalf("apply from A: %s", r.stderr)
	}
	if r := hv(t, b, "", "plan", "-detailed-exitcode", "-input=false", ep, "main.hcl"); r.code != 0 {
		t.Fatalf("plan from B: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The verbs that read the state without a session find it too.
	if r := hv(t, b, "", "state", "list", ep); r.code != 0 || !strings.Contains(r.stdout, "site.onprem.node.frontend") {
		t.Errorf("state list from B: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, b, "", "show", ep, "main.hcl"); r.code != 0 || !strings.Contains(r.stdout, "site.onprem.pool.wn.node[1]") {
		t.Errorf("show from B: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	obj := srv.Object("team-state", "hvctl/"+name+"/default.state")
	// A wrong AWS secret key is refused by the fake as by AWS, and the
	// state is not touched.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	if r := hv(t, b, "", "apply", "-auto-approve", "-input=false", ep, "main.hcl"); r.code == 0 || !strings.Contains(r.stderr, "SignatureDoesNotMatch") || strings.Contains(r.stderr, "not-the-secret") {
		t.Errorf("apply with a wrong AWS secret key: exit %d\n%s", r.code, r.stderr)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	if !bytes.Equal(srv.Object("team-state", "hvctl/"+name+"/default.state"), obj) {
		t.Error("the refused apply changed the state object")
	}
	if !statecrypt.IsSealed(obj) {
		t.Fatalf("state object is not encrypted: %.60q", obj)
	}
	for _, leak := range []string{name, "site.onprem", "lineage", "client_token"} {
		if bytes.Contains(obj, []byte(leak)) {
			t.Errorf("the state object contains %q", leak)
		}
	}
	// A lock left by a holder that died.
	lb, err := s3state.New(context.Background(), map[string]string{"bucket": "team-state", "endpoint": srv.URL, "use_path_style": "true"}, name, "default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Lock(context.Background(), provision.LockInfo{ID: "dead-holder", Who: "ci@job-1", PID: 1234, Operation: "apply"}, 0); err != nil {
		t.Fatal(err)
	}
	r := hv(t, b, "", "destroy", "-auto-approve", "-input=false", "-lock-timeout=300ms", ep, "main.hcl")
	if r.code == 0 || !strings.Contains(r.stderr, "ci@job-1") || !strings.Contains(r.stderr, "dead-holder") {
		t.Fatalf("destroy while locked: exit %d\n%s", r.code, r.stderr)
	}
	if r := hv(t, b, "", "force-unlock", ep, "dead-holder", "main.hcl"); r.code != 0 {
		t.Fatalf("force-unlock: %s", r.stderr)
	}
	if r := hv(t, b, "", "destroy", "-auto-approve", "-input=false", ep, "main.hcl"); r.code != 0 {
		t.Fatalf("destroy from B: %s", r.stderr)
	}
	if items := simList(t, b); len(items) != 0 {
		t.Errorf("destroy from B left %d resources", len(items))
	}
}

// TestMigrateLocalToPG: a cluster made with local state moves into
// PostgreSQL with init -migrate-state, encrypted on the way; plan then
// reads it from there (no changes) and destroy works. A destination
// holding another cluster's state is not overwritten.
func TestMigrateLocalToPG(t *testing.T) {
	srv := pgtest.Start(t)
	t.Setenv("HVCTL_PG_CONN_STR", srv.ConnStr)
	t.Setenv("HVCTL_TEST_STATE_KEY", "migrate passphrase")
	dir := t.TempDir()
	name := fmt.Sprintf("mig-%d", rand.IntN(1<<30))
	writeTemplate(t, dir, "0s", name, 2, 0)
	if r := hv(t, dir, "", "apply", "-auto-approve", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("apply with local state: %s", r.stderr)
	}
	appendState(t, dir, `state {
  backend = "pg"
  encryption {
    key_env = "HVCTL_TEST_STATE_KEY"
  }
}`)
	if r := hv(t, dir, "", "plan", "-detailed-exitcode", "-input=false", "main.hcl"); r.code != 2 {
		t.Fatalf("plan before migrating: exit %d, want 2 (the empty pg state has nothing)\n%s", r.code, r.stderr)
	}
	r := hv(t, dir, "", "init", "-migrate-state", "-input=false", "main.hcl")
	if r.code != 0 || !strings.Contains(r.stdout, "Migrated the state (") || !strings.Contains(r.stdout, "read it back") {
		t.Fatalf("init -migrate-state: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, dir, "", "plan", "-detailed-exitcode", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("plan after migrating: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Another local state (another lineage) is not copied over it.
	other := filepath.Join(t.TempDir(), "other.json")
	os.WriteFile(other, []byte(`{"version":1,"serial":3,"lineage":"0000-other","resources":[]}`), 0o600)
	if r := hv(t, dir, "", "init", "-migrate-state", "-state", other, "-input=false", "main.hcl"); r.code == 0 || !strings.Contains(r.stderr, "already holds another state") {
		t.Errorf("migrating another lineage over it: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, dir, "", "destroy", "-auto-approve", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("destroy: %s", r.stderr)
	}
	if items := simList(t, dir); len(items) != 0 {
		t.Errorf("destroy left %d resources", len(items))
	}
}
