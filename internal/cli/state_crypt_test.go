package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/statecrypt"
)

// TestEncryptedSavedPlan: under the state block's encryption, plan -out
// writes a sealed plan (format 2: only the template in the clear), with
// the passphrase from key_env or from a variable. show and apply open it
// with the passphrase; a wrong or missing one is refused, and the
// refused apply creates nothing and writes no state. The plan applied,
// a new plan has no changes.
func TestEncryptedSavedPlan(t *testing.T) {
	srv := s3Env(t, "plan-state")
	tests := []struct {
		name, block string
		// env sets the passphrase for apply; plan gets planArgs.
		env, wrongEnv map[string]string
		planArgs      []string
		secret        string
		// object is the state's S3 key when the block's backend is s3.
		object string
	}{
		{
			name:     "key_env",
			block:    "state {\n  encryption {\n    key_env = \"HVCTL_TEST_PLAN_KEY\"\n  }\n}",
			env:      map[string]string{"HVCTL_TEST_PLAN_KEY": "plan passphrase one"},
			wrongEnv: map[string]string{"HVCTL_TEST_PLAN_KEY": "plan passphrase two"},
			secret:   "plan passphrase one",
		},
		{
			name:     "variable",
			block:    "variable \"state_passphrase\" {\n  type = string\n}\nstate {\n  encryption {\n    passphrase = var.state_passphrase\n  }\n}",
			planArgs: []string{"-var", "state_passphrase=the variable passphrase"},
			env:      map[string]string{"HVCTL_VAR_state_passphrase": "the variable passphrase"},
			wrongEnv: map[string]string{"HVCTL_VAR_state_passphrase": "another passphrase"},
			secret:   "the variable passphrase",
		},
		{
			// The plan remembers its workspace; apply of it needs no
			// -workspace and reaches the remote state.
			name:     "s3 backend and workspace",
			block:    "state {\n  backend        = \"s3\"\n  bucket         = \"plan-state\"\n  endpoint       = \"" + srv.URL + "\"\n  use_path_style = true\n  encryption {\n    key_env = \"HVCTL_TEST_PLAN_KEY\"\n  }\n}",
			planArgs: []string{"-workspace", "ci-7"},
			env:      map[string]string{"HVCTL_TEST_PLAN_KEY": "s3 plan passphrase"},
			wrongEnv: map[string]string{"HVCTL_TEST_PLAN_KEY": "not the s3 one"},
			secret:   "s3 plan passphrase",
			object:   "hvctl/state-plan-s3/ci-7.state",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("HVCTL_SIM_WORLD", t.TempDir())
			name := "state-plan-" + strings.Fields(tt.name)[0]
			writeTemplate(t, dir, "0s", name, 2, 0)
			appendState(t, dir, tt.block)
			setEnv := func(m map[string]string) {
				for k, v := range m {
					t.Setenv(k, v)
				}
			}
			setEnv(tt.env)
			args := append([]string{"plan", "-input=false", "-out", "p.hvplan"}, tt.planArgs...)
			if r := hv(t, dir, "", append(args, "main.hcl")...); r.code != 0 {
				t.Fatalf("plan -out: %s", r.stderr)
			}
			planPath := filepath.Join(dir, "p.hvplan")
			planFile, err := os.ReadFile(planPath)
			if err != nil {
				t.Fatal(err)
			}
			var clear map[string]any
			if err := json.Unmarshal(planFile, &clear); err != nil || clear["hvctl_plan_format"] != 2.0 {
				t.Fatalf("saved plan is not a sealed plan (format 2): %v %.100q", err, planFile)
			}
			for _, leak := range []string{name, "site.onprem", "lineage", "192.168.10.0", "changes", "ci-7", tt.secret} {
				if bytes.Contains(planFile, []byte(leak)) {
					t.Errorf("the sealed plan contains %q", leak)
				}
			}
			if fi, _ := os.Stat(planPath); fi.Mode().Perm() != 0o600 {
				t.Errorf("plan file mode %v", fi.Mode().Perm())
			}
			statePath := filepath.Join(dir, ".hvctl", "state.json")
			stored := func() []byte {
				if tt.object != "" {
					return srv.Object("plan-state", tt.object)
				}
				b, _ := os.ReadFile(statePath)
				return b
			}

			refusals := []struct {
				name string
				env  map[string]string
				want string
			}{
				{"wrong passphrase", tt.wrongEnv, "passphrase is wrong"},
				{"no passphrase", func() map[string]string {
					m := map[string]string{}
					for k := range tt.env {
						m[k] = ""
					}
					return m
				}(), "encrypted plan"},
			}
			for _, rf := range refusals {
				t.Run(rf.name, func(t *testing.T) {
					setEnv(rf.env)
					defer setEnv(tt.env)
					for _, verb := range [][]string{{"show", "p.hvplan"}, {"apply", "-input=false", "p.hvplan"}} {
						r := hv(t, dir, "", verb...)
						if r.code == 0 || !strings.Contains(r.stderr, rf.want) || !strings.Contains(r.stderr, "p.hvplan") {
							t.Errorf("%s: exit %d, want an error naming p.hvplan with %q:\n%s", verb[0], r.code, rf.want, r.stderr)
						}
					}
					if stored() != nil {
						t.Error("the refused apply wrote a state")
					}
					if items := simList(t, dir); len(items) != 0 {
						t.Errorf("the refused apply made %d resources", len(items))
					}
				})
			}

			if r := hv(t, dir, "", "show", "p.hvplan"); r.code != 0 || !strings.Contains(r.stdout, "site.onprem.node.frontend") {
				t.Errorf("show p.hvplan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := hv(t, dir, "", "apply", "-input=false", "p.hvplan"); r.code != 0 {
				t.Fatalf("apply p.hvplan: %s", r.stderr)
			}
			if b := stored(); !statecrypt.IsSealed(b) {
				t.Errorf("state after applying the plan is not encrypted: %.40q", b)
			}
			if r := hv(t, dir, "", append([]string{"plan", "-detailed-exitcode", "-input=false"}, append(tt.planArgs, "main.hcl")...)...); r.code != 0 {
				t.Errorf("plan after applying the saved plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := hv(t, dir, "", append([]string{"down"}, append(tt.planArgs, "main.hcl")...)...); r.code != 0 {
				t.Fatalf("down: %s", r.stderr)
			}
		})
	}
}

// TestEncryptedElasticHistory: hvctl report opens a history sealed
// with the state's passphrase (what elastic run writes under an
// encrypted state block) and refuses it with a wrong one, naming the
// file and line.
func TestEncryptedElasticHistory(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "state-history", 1, 0)
	appendState(t, dir, "state {\n  encryption {\n    key_env = \"HVCTL_TEST_HISTORY_KEY\"\n  }\n}")
	os.MkdirAll(filepath.Join(dir, ".hvctl"), 0o700)
	path := filepath.Join(dir, ".hvctl", elastic.HistoryFile)
	h := &elastic.FileHistory{Path: path, Sealer: statecrypt.New("history passphrase")}
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if err := h.Start(elastic.HistoryRun{Cluster: "state-history", Start: start}, true); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := h.Step(elastic.HistoryStep{T: start.Add(time.Duration(i) * time.Minute), Nodes: []elastic.HistoryNode{{Name: "cloud-burst-1", Pool: "cloud.burst", State: elastic.Idle}}}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	for _, leak := range []string{"state-history", "cloud-burst-1", "cloud.burst"} {
		if bytes.Contains(b, []byte(leak)) {
			t.Errorf("the sealed history contains %q", leak)
		}
	}
	tests := []struct {
		name, key string
		code      int
		want      string
	}{
		{"right passphrase", "history passphrase", 0, `"cloud.burst"`},
		{"wrong passphrase", "not the passphrase", 1, elastic.HistoryFile + ":1: the passphrase is wrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HVCTL_TEST_HISTORY_KEY", tt.key)
			r := hv(t, dir, "", "report", "-json", "main.hcl")
			if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.want) {
				t.Errorf("report: exit %d, want %d with %q\n%s%s", r.code, tt.code, tt.want, r.stdout, r.stderr)
			}
		})
	}

	// state rekey reseals the journal and the history with the state:
	// refused while the daemon holds its lock, then done.
	jpath := filepath.Join(dir, ".hvctl", "elastic-journal.json")
	if err := (elastic.FileJournal{Path: jpath, Sealer: statecrypt.New("history passphrase")}).Save(elastic.JournalState{Started: start}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HVCTL_TEST_HISTORY_KEY", "history passphrase")
	t.Setenv("HVCTL_TEST_HISTORY_NEW", "rekeyed history passphrase")
	before := map[string][]byte{}
	for _, p := range []string{path, jpath} {
		before[p], _ = os.ReadFile(p)
	}
	l, err := (&provision.Store{Path: filepath.Join(dir, ".hvctl", "elastic")}).Lock(context.Background(), "elastic run", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := hv(t, dir, "", "state", "rekey", "-new-key-env", "HVCTL_TEST_HISTORY_NEW")
	l.Unlock()
	if r.code == 0 || !strings.Contains(r.stderr, "elastic daemon runs") {
		t.Errorf("rekey while the daemon runs: exit %d\n%s", r.code, r.stderr)
	}
	for p, b := range before {
		if after, _ := os.ReadFile(p); !bytes.Equal(after, b) {
			t.Errorf("the refused rekey changed %s", filepath.Base(p))
		}
	}
	if r := hv(t, dir, "", "state", "rekey", "-new-key-env", "HVCTL_TEST_HISTORY_NEW"); r.code != 0 {
		t.Fatalf("state rekey: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Setenv("HVCTL_TEST_HISTORY_KEY", "rekeyed history passphrase")
	if r := hv(t, dir, "", "report", "-json", "main.hcl"); r.code != 0 || !strings.Contains(r.stdout, `"cloud.burst"`) {
		t.Errorf("report after rekey: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := (elastic.FileJournal{Path: jpath, Sealer: statecrypt.New("rekeyed history passphrase")}).Load(); err != nil {
		t.Errorf("the journal after rekey: %v", err)
	}
	if _, err := (elastic.FileJournal{Path: jpath, Sealer: statecrypt.New("history passphrase")}).Load(); err == nil {
		t.Error("the journal still opens with the old passphrase after rekey")
	}
}
