package cli_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/local"
)

// blockTemplate: a public hub in core, and edge behind NAT with one
// worker, in a star.
const blockTemplate = `
provider "local" "lab" {}

cluster "%s" {
  overlay {
    cidr     = "10.205.0.0/16"
    topology = "star"
    hubs     = ["core.hub"]
  }
  site "core" {
    provider = provider.local.lab
    network { cidr = "192.168.83.0/24" }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "w" { count = 1 }
  }
  site "edge" {
    provider = provider.local.lab
    network { cidr = "10.76.0.0/24" }
    pool "w" { count = 1 }
  }
}
`

type pathDoc struct {
	Nodes []struct {
		Address string
		Paths   []struct {
			To       string
			OK       bool
			Reported bool
		}
	}
}

// TestBlockedPath: with the overlay UDP of edge's worker dropped in its
// site router (nft), status shows its path to the hub dead, check prints
// it in the matrix and exits 1, and up fails naming it.
func TestBlockedPath(t *testing.T) {
	t.Parallel()
	dir, _ := upTemplate(t, "tbp", blockTemplate)
	const victim, path = "site.edge.pool.w.node[0]", "edge.w[0] -> core.hub"

	// Everything answers after up.
	if r := hv(t, dir, "", "check", "main.hcl"); r.code != 0 || !strings.Contains(r.stdout, "paths answer ping and TCP") {
		t.Fatalf("check after up: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	items, err := local.List(filepath.Join(dir, ".hvctl"))
	if err != nil {
		t.Fatal(err)
	}
	router, workerIP := "", ""
	for _, it := range items {
		if it.Kind == provision.KindNetwork && it.Site == "edge" {
			router = it.Netns
		}
		if it.Address == victim {
			workerIP = it.PrivateIP
		}
	}
	if router == "" || workerIP == "" {
		t.Fatalf("no router namespace for edge (%q) or address for %s (%q)", router, victim, workerIP)
	}
	rules := `table ip hvtest_block {
	chain forward {
		type filter hook forward priority -10; policy accept;
		ip saddr ` + workerIP + ` meta l4proto udp drop
	}
}
`
	cmd := exec.Command("ip", "netns", "exec", router, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", router, err, out)
	}
	t.Logf("dropping UDP from %s (%s) in %s", victim, workerIP, router)

	// status -json shows the path dead (agents report every heartbeat).
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := hv(t, dir, "", "status", "-json", "main.hcl")
		var doc pathDoc
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("status -json: %v\n%s", err, r.stdout)
		}
		dead := false
		for _, n := range doc.Nodes {
			for _, p := range n.Paths {
				if n.Address == victim && p.To == "core.hub" && p.Reported && !p.OK {
					dead = true
				}
			}
		}
		if dead {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status -json does not show %s dead 60 s after the drop:\n%s", path, r.stdout)
		}
		time.Sleep(time.Second)
	}
	if r := hv(t, dir, "", "status", "main.hcl"); !strings.Contains(r.stdout, "Overlay paths") ||
		!containsLine(r.stdout, "edge.w[0]", "0/1", "core.hub") {
		t.Errorf("status does not show the dead path:\n%s", r.stdout)
	}

	// check: the matrix marks it, the list names it, exit 1.
	r := hv(t, dir, "", "check", "main.hcl")
	if r.code == 0 || !strings.Contains(r.stdout, "DEAD") || !strings.Contains(r.stdout, path) {
		t.Errorf("check with a blocked path: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hv(t, dir, "", "check", "-all-pairs", "-json", "main.hcl")
	var cj struct {
		Pairs []struct {
			From, To  string
			Ping, TCP bool
		}
		Broken int
	}
	if err := json.Unmarshal([]byte(r.stdout), &cj); err != nil {
		t.Fatalf("check -all-pairs -json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if len(cj.Pairs) != 6 || cj.Broken == 0 {
		t.Errorf("check -all-pairs -json: %d pairs, %d broken; want 6 pairs, some broken:\n%s", len(cj.Pairs), cj.Broken, r.stdout)
	}
	for _, p := range cj.Pairs {
		if p.From == "edge.w[0]" && p.To == "core.hub" && (p.Ping || p.TCP) {
			t.Errorf("check -all-pairs says %s -> %s answers: %+v", p.From, p.To, p)
		}
		if !strings.HasPrefix(p.From, "edge.") && !strings.HasPrefix(p.To, "edge.") && !(p.Ping && p.TCP) {
			t.Errorf("check -all-pairs says %s -> %s (not through the block) is broken: %+v", p.From, p.To, p)
		}
	}

	// up fails after -join-timeout, naming the path.
	r = hv(t, dir, "", "up", "-join-timeout=20s", "main.hcl")
	if r.code == 0 || !strings.Contains(r.stderr, path) {
		t.Errorf("up with a blocked path: exit %d, want a failure naming %q:\n%s%s", r.code, path, r.stdout, r.stderr)
	}
}

// containsLine reports whether one line of text holds every part.
func containsLine(text string, parts ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}
