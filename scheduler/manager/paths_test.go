package manager

import (
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// TestPathHealth checks that Nodes lists every path a node needs, with
// unreported ones dead, that DeadPaths names them, and that /metrics
// counts the broken ones.
func TestPathHealth(t *testing.T) {
	cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(nestedTmpl)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	s := NewSecret()
	clk := &clock{t: time.Unix(1e9, 0)}
	m, err := New(Config{Cluster: cfg.Cluster, Secret: s, Clock: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct{ id, addr, site string }{
		{"core.hub", "site.core.node.hub", "core"},
		{"edge.gw", "site.edge.node.gw", "edge"},
		{"edge.far.gw2", "site.edge.site.far.node.gw2", "edge.far"},
	} {
		if _, err := m.Join(&JoinRequest{Token: s.JoinToken(n.id), Address: n.addr, Site: n.site, PublicKey: key(t)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	rt := m.RuntimeFor("edge.far.gw2")
	var targets []string
	for _, p := range rt.Probe {
		targets = append(targets, p.Node)
	}
	if strings.Join(targets, " ") != "core.hub edge.gw" {
		t.Fatalf("probe targets of edge.far.gw2 = %v, want core.hub edge.gw", targets)
	}
	hub, gw := rt.Probe[0], rt.Probe[1]
	tests := []struct {
		name     string
		reported []PathHealth
		dead     []string // substrings of DeadPaths, in order
		broken   string   // hvctl_overlay_paths_broken value
	}{
		{"nothing reported yet", nil,
			[]string{"edge.far.gw2 -> core.hub (" + hub.Address.String() + "): not probed yet", "edge.far.gw2 -> edge.gw"}, "2"},
		{"all answer", []PathHealth{{To: hub.Node, Address: hub.Address, OK: true, Sent: 3}, {To: gw.Node, Address: gw.Address, OK: true, Sent: 3}},
			nil, "0"},
		{"one never answered", []PathHealth{{To: hub.Node, Address: hub.Address, OK: true, Sent: 3}, {To: gw.Node, Address: gw.Address, Sent: 3, Lost: 3}},
			[]string{"edge.far.gw2 -> edge.gw (" + gw.Address.String() + "): never answered"}, "1"},
		{"a stale address counts as unreported", []PathHealth{{To: hub.Node, Address: netip.MustParseAddr("10.200.9.9"), OK: true},
			{To: gw.Node, Address: gw.Address, OK: true}}, []string{"core.hub", "not probed yet"}, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Beat("edge.far.gw2", &Heartbeat{ProbeOK: true, Paths: tt.reported}); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"core.hub", "edge.gw"} {
				m.Beat(id, &Heartbeat{ProbeOK: true, Paths: allOK(m, id)})
			}
			var dead []string
			for _, n := range m.Nodes() {
				if n.ID == "edge.far.gw2" {
					if len(n.Paths) != 2 {
						t.Errorf("paths = %+v, want both targets", n.Paths)
					}
					dead = n.DeadPaths()
				}
			}
			text := strings.Join(dead, "\n")
			if len(tt.dead) == 0 && len(dead) != 0 {
				t.Errorf("DeadPaths = %q, want none", dead)
			}
			for _, want := range tt.dead {
				if !strings.Contains(text, want) {
					t.Errorf("DeadPaths = %q, want it to contain %q", dead, want)
				}
			}
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Authorization", "Bearer "+s.AdminToken())
			w := httptest.NewRecorder()
			m.Handler().ServeHTTP(w, req)
			body, _ := io.ReadAll(w.Body)
			if want := "hvctl_overlay_paths_broken " + tt.broken + "\n"; !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %q:\n%s", want, grepLines(string(body), "overlay"))
			}
		})
	}
}

func allOK(m *Manager, id string) []PathHealth {
	var out []PathHealth
	for _, p := range m.RuntimeFor(id).Probe {
		out = append(out, PathHealth{To: p.Node, Address: p.Address, OK: true, Sent: 1})
	}
	return out
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
