package agent

import (
	"io"
	"log"
	"reflect"
	"testing"

	"github.com/hvctl/hvctl/provision"
)

// TestManagerListSurvivesRestart: the managers an agent learnt are in
// its directory, so the next agent starts with them (then its config's
// manager_url).
func TestManagerListSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{AgentConfig: provision.AgentConfig{Dir: dir, Attrs: map[string]any{"manager_url": "https://198.18.0.2:51821/"}}}
	cases := []struct {
		name  string
		saved []string
		want  []string
	}{
		{"nothing learnt yet", nil, []string{"https://198.18.0.2:51821"}},
		{"learnt two replicas", []string{"https://198.18.0.3:51821", "https://198.18.0.4:51821"},
			[]string{"https://198.18.0.3:51821", "https://198.18.0.4:51821", "https://198.18.0.2:51821"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := &Agent{cfg: cfg, log: log.New(io.Discard, "", 0)}
			if tc.saved != nil {
				a.saveManagers(tc.saved)
			}
			if got := managerEndpoints(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("endpoints %v, want %v", got, tc.want)
			}
			// A new agent's client starts with the same list (duplicates dropped).
			b := New(cfg, io.Discard)
			if got := b.mc.Endpoints(); !reflect.DeepEqual(got, normalizeForTest(tc.want)) {
				t.Fatalf("client endpoints %v, want %v", got, tc.want)
			}
		})
	}
}

func normalizeForTest(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range l {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// TestManagerURLsFromConfig: a node created while several replicas
// exist starts with all of them (manager_urls), after its manager_url.
func TestManagerURLsFromConfig(t *testing.T) {
	cases := []struct {
		name string
		urls string
		want []string
	}{
		{"none", "", []string{"https://198.18.0.2:51821"}},
		{"two replicas", `["https://198.18.0.2:51821","https://198.18.0.9:51821"]`, []string{"https://198.18.0.2:51821", "https://198.18.0.2:51821", "https://198.18.0.9:51821"}},
		{"malformed is ignored", `not json`, []string{"https://198.18.0.2:51821"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			attrs := map[string]any{"manager_url": "https://198.18.0.2:51821"}
			if tc.urls != "" {
				attrs["manager_urls"] = tc.urls
			}
			cfg := &Config{AgentConfig: provision.AgentConfig{Dir: t.TempDir(), Attrs: attrs}}
			if got := managerEndpoints(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("endpoints %v, want %v", got, tc.want)
			}
		})
	}
}
