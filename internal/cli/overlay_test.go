package cli_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestOverlayVerbsOnSim covers overlay show, overlay config and both
// graph types on a sim cluster (planned overlay: sim nodes run no agent).
func TestOverlayVerbsOnSim(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "ovl", 2, 1)
	if r := hv(t, dir, "", "up", "main.hcl"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	defer hv(t, dir, "", "down", "main.hcl")
	r := hv(t, dir, "", "overlay", "show", "-json", "main.hcl")
	var doc struct {
		Source   string
		PeerSets []struct {
			Node  string
			Peers []struct{ Node, Role string }
		} `json:"peer_sets"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("overlay show -json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if doc.Source != "plan" || len(doc.PeerSets) != 4 {
		t.Fatalf("overlay show -json: source %q, %d peer sets", doc.Source, len(doc.PeerSets))
	}
	for _, ps := range doc.PeerSets {
		if ps.Node == "onprem.frontend" {
			if len(ps.Peers) != 3 {
				t.Errorf("hub has %d peers, want 3", len(ps.Peers))
			}
			continue
		}
		if len(ps.Peers) != 1 || ps.Peers[0].Node != "onprem.frontend" {
			t.Errorf("star: %s peers = %+v, want the hub only", ps.Node, ps.Peers)
		}
	}
	r = hv(t, dir, "", "overlay", "config", "onprem.wn[1]", "main.hcl")
	if r.code != 0 || !strings.Contains(r.stdout, "# PrivateKey = (sensitive)") || !strings.Contains(r.stdout, "[Peer]") {
		t.Errorf("overlay config:\n%s%s", r.stdout, r.stderr)
	}
	r = hv(t, dir, "", "overlay", "config", "onprem.wn[7]", "main.hcl")
	if r.code != 1 || !strings.Contains(r.stderr, "No node onprem.wn[7]") {
		t.Errorf("overlay config of an unknown node: %d %s", r.code, r.stderr)
	}
	for _, typ := range []string{"plan", "overlay"} {
		r = hv(t, dir, "", "graph", "-type", typ, "main.hcl")
		if r.code != 0 {
			t.Fatalf("graph -type %s: %s", typ, r.stderr)
		}
		dot := exec.Command("dot", "-Tsvg")
		dot.Stdin = strings.NewReader(r.stdout)
		if out, err := dot.CombinedOutput(); err != nil {
			t.Errorf("dot rejects graph -type %s: %v\n%s\n%s", typ, err, out, r.stdout)
		}
	}
}
