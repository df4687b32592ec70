package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// injectSecrets puts bootstrap secrets into a resource of the state,
// as apply's Prepare hook does for nodes that run agents, and returns
// them with the cluster secret.
func injectSecrets(t *testing.T, statePath string) []string {
	t.Helper()
	b, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	secrets := []string{"hvj2.SECRET-JOIN-TOKEN", "-----BEGIN EC PRIVATE KEY----- SECRET-TLS-KEY", "SECRET-CLUSTER-ATTR"}
	for _, r := range st["resources"].([]any) {
		r := r.(map[string]any)
		if r["address"] == "site.onprem.node.frontend" {
			a := r["attrs"].(map[string]any)
			a["join_token"], a["tls_key"], a["cluster_secret"] = secrets[0], secrets[1], secrets[2]
		}
	}
	var cd struct {
		Secret string `json:"secret"`
		CAKey  string `json:"ca_key"`
	}
	raw, _ := json.Marshal(st["data"].(map[string]any)["cluster"])
	json.Unmarshal(raw, &cd)
	if cd.Secret == "" || cd.CAKey == "" {
		t.Fatalf("the state has no cluster secret or CA key to look for: %s", raw)
	}
	b, _ = json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(statePath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return append(secrets, cd.Secret, cd.CAKey)
}

// TestSavedPlanHoldsNoSecret: plan -out writes references for the hub's
// TLS key, the cluster secret and join tokens; apply of that plan reads
// them from the state.
func TestSavedPlanHoldsNoSecret(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "sec", 2, 0)
	if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	statePath := filepath.Join(dir, ".hvctl", "state.json")
	secrets := injectSecrets(t, statePath)
	for _, args := range [][]string{{"plan", "-out", "p.plan", "main.hcl"}, {"plan", "-destroy", "-out", "d.plan", "main.hcl"}} {
		r := hv(t, dir, "", args...)
		if r.code != 0 {
			t.Fatalf("%v: %s", args, r.stderr)
		}
		b, err := os.ReadFile(filepath.Join(dir, args[len(args)-2]))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) || strings.Contains(r.stdout, s) {
				t.Errorf("%v: the saved plan or its output holds the secret %q", args, s)
			}
		}
		if !strings.Contains(string(b), "hvctl-state-ref:site.onprem.node.frontend#tls_key") {
			t.Errorf("%v: the saved plan has no reference where the TLS key was", args)
		}
	}
	// The destroy plan applies: its references resolve from the state.
	if r := hv(t, dir, "", "apply", "d.plan"); r.code != 0 || !strings.Contains(r.stdout, "destroyed") {
		t.Fatalf("apply the saved destroy plan: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestLostClusterSecretRefused: a state that holds nodes but lost
// data.cluster is refused with what happened and what to do, and is
// not re-keyed.
func TestLostClusterSecretRefused(t *testing.T) {
	for _, c := range []struct{ name, drop, want string }{
		{"secret", "secret", "lost the cluster's secret"},
		{"ca", "ca_key", "lost the cluster's certificate authority"},
		{"all cluster data", "", "lost the cluster's secret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTemplate(t, dir, "0s", "lost", 1, 0)
			if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
				t.Fatal(r.stderr)
			}
			defer hv(t, dir, "", "down", "main.hcl")
			statePath := filepath.Join(dir, ".hvctl", "state.json")
			b, _ := os.ReadFile(statePath)
			var st map[string]any
			json.Unmarshal(b, &st)
			data := st["data"].(map[string]any)
			if c.drop == "" {
				delete(data, "cluster")
			} else {
				delete(data["cluster"].(map[string]any), c.drop)
			}
			b, _ = json.MarshalIndent(st, "", "  ")
			os.WriteFile(statePath, b, 0o600)
			r := hv(t, dir, "", "up", "main.hcl")
			if r.code == 0 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "Nothing was changed") {
				t.Fatalf("up with a state that lost its %s: %d\n%s", c.name, r.code, r.stderr)
			}
			after, _ := os.ReadFile(statePath)
			if string(after) != string(b) {
				t.Errorf("the refused up changed the state")
			}
		})
	}
}
