package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/pgstate"
	"github.com/hvctl/hvctl/provision/pgstate/pgtest"
	"github.com/hvctl/hvctl/provision/s3state"
	"github.com/hvctl/hvctl/provision/sim"
	"github.com/hvctl/hvctl/provision/statecrypt"
)

// TestMigrateRemoteToRemote moves an encrypted state from a real
// PostgreSQL to the AWS fake's S3 and back with init -migrate-state
// -from-backend: refused while either side is locked (naming the side
// and the holder) and with a wrong source passphrase, changing nothing;
// then moved, read back, and planned without changes from the new
// backend; changed there and moved back under a new passphrase
// (-from-key-env names the old one).
func TestMigrateRemoteToRemote(t *testing.T) {
	srv := pgtest.Start(t)
	fake := s3Env(t, "migrate-state")
	t.Setenv(sim.WorldEnv, t.TempDir())
	t.Setenv("HVCTL_PG_CONN_STR", srv.ConnStr)
	t.Setenv("HVCTL_TEST_STATE_KEY", "first passphrase")
	name := fmt.Sprintf("state-r2r-%d", rand.IntN(1<<30))
	dir := t.TempDir()
	pgBlock := "state {\n  backend = \"pg\"\n  encryption {\n    key_env = \"HVCTL_TEST_STATE_KEY\"\n  }\n}"
	s3Block := "state {\n  backend        = \"s3\"\n  bucket         = \"migrate-state\"\n  use_path_style = true\n  encryption {\n    key_env = \"HVCTL_TEST_STATE_KEY\"\n  }\n}"
	use := func(block string, workers int) {
		writeTemplate(t, dir, "0s", name, workers, 0)
		appendState(t, dir, block)
	}
	ep := "-backend-config=endpoint=" + fake.URL
	fromEP := "-from-backend-config=endpoint=" + fake.URL
	objKey := "hvctl/" + name + "/default.state"
	ctx := context.Background()

	use(pgBlock, 2)
	if r := hv(t, dir, "", "apply", "-auto-approve", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("apply on pg: %s", r.stderr)
	}
	pgb, err := pgstate.New(map[string]string{"conn_str": srv.ConnStr}, name, "default")
	if err != nil {
		t.Fatal(err)
	}
	defer pgb.Close()
	s3b, err := s3state.New(ctx, map[string]string{"bucket": "migrate-state", "endpoint": fake.URL, "use_path_style": "true"}, name, "default")
	if err != nil {
		t.Fatal(err)
	}

	// pg → s3, refused first: each side locked by someone else, then a
	// wrong passphrase for the source.
	use(s3Block, 2)
	t.Setenv("HVCTL_TEST_WRONG_KEY", "not the passphrase")
	refusals := []struct {
		name  string
		lock  provision.Backend
		extra []string
		want  []string
	}{
		{"source locked", pgb, nil, []string{"locking the source", "holder-on-pg"}},
		{"destination locked", s3b, nil, []string{"locking the destination", "holder-on-s3"}},
		{"wrong source passphrase", nil, []string{"-from-key-env", "HVCTL_TEST_WRONG_KEY"}, []string{"reading the source", "passphrase is wrong"}},
	}
	for _, rf := range refusals {
		t.Run(rf.name, func(t *testing.T) {
			if rf.lock != nil {
				who := "holder-on-pg"
				if rf.lock == s3b {
					who = "holder-on-s3"
				}
				unlock, err := rf.lock.Lock(ctx, provision.LockInfo{ID: "lock-" + who, Who: who, PID: 4242, Operation: "apply"}, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unlock()
			}
			args := append([]string{"init", "-migrate-state", "-from-backend", "pg", "-lock-timeout=300ms", "-input=false", ep}, rf.extra...)
			r := hv(t, dir, "", append(args, "main.hcl")...)
			for _, w := range rf.want {
				if r.code == 0 || !strings.Contains(r.stderr, w) {
					t.Errorf("init -migrate-state: exit %d, want an error with %q:\n%s%s", r.code, w, r.stdout, r.stderr)
				}
			}
			if obj := fake.Object("migrate-state", objKey); obj != nil {
				t.Errorf("the refused migration wrote the S3 object (%d bytes)", len(obj))
			}
		})
	}
	r := hv(t, dir, "", "init", "-migrate-state", "-from-backend", "pg", "-input=false", ep, "main.hcl")
	if r.code != 0 || !strings.Contains(r.stdout, "Migrated the state (") || !strings.Contains(r.stdout, "read it back") || !strings.Contains(r.stdout, "s3://") {
		t.Fatalf("init -migrate-state pg → s3: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	obj := fake.Object("migrate-state", objKey)
	if !statecrypt.IsSealed(obj) {
		t.Fatalf("the migrated S3 object is not encrypted: %.60q", obj)
	}
	for _, leak := range []string{name, "site.onprem", "lineage"} {
		if bytes.Contains(obj, []byte(leak)) {
			t.Errorf("the migrated S3 object contains %q", leak)
		}
	}
	for _, b := range []provision.Backend{pgb, s3b} {
		if h, err := b.LockHolder(ctx); err != nil || h != nil {
			t.Errorf("%s still locked after the migration: %+v %v", b.Describe(), h, err)
		}
	}
	if r := hv(t, dir, "", "plan", "-detailed-exitcode", "-input=false", ep, "main.hcl"); r.code != 0 {
		t.Fatalf("plan on s3 after migrating: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A change on s3, then s3 → pg under a new passphrase.
	use(s3Block, 3)
	if r := hv(t, dir, "", "apply", "-auto-approve", "-input=false", ep, "main.hcl"); r.code != 0 {
		t.Fatalf("apply on s3: %s", r.stderr)
	}
	use(pgBlock, 3)
	t.Setenv("HVCTL_TEST_OLD_KEY", "first passphrase")
	t.Setenv("HVCTL_TEST_STATE_KEY", "second passphrase")
	r = hv(t, dir, "", "init", "-migrate-state", "-from-backend", "s3", "-from-backend-config=bucket=migrate-state", "-from-backend-config=use_path_style=true", fromEP, "-from-key-env", "HVCTL_TEST_OLD_KEY", "-input=false", "main.hcl")
	if r.code != 0 || !strings.Contains(r.stdout, "Migrated the state (") {
		t.Fatalf("init -migrate-state s3 → pg: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, dir, "", "plan", "-detailed-exitcode", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("plan on pg after migrating back: exit %d, want 0 (3 workers)\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Setenv("HVCTL_TEST_STATE_KEY", "first passphrase")
	if r := hv(t, dir, "", "plan", "-input=false", "main.hcl"); r.code == 0 || !strings.Contains(r.stderr, "passphrase is wrong") {
		t.Errorf("plan on pg with the old passphrase: exit %d\n%s", r.code, r.stderr)
	}
	t.Setenv("HVCTL_TEST_STATE_KEY", "second passphrase")
	if r := hv(t, dir, "", "destroy", "-auto-approve", "-input=false", "main.hcl"); r.code != 0 {
		t.Fatalf("destroy: %s", r.stderr)
	}
	if items := simList(t, dir); len(items) != 0 {
		t.Errorf("destroy left %d resources", len(items))
	}
}
