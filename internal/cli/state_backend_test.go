package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatalf("down: %s", r.stderr)
	}
	if items := simList(t, dir); len(items) != 0 {
		t.Errorf("down left %d sim resources", len(items))
	}
}
