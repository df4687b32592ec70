package manager

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/templates"
)

const nestedTmpl = `
cluster "c" {
  overlay {
    cidr     = "10.200.0.0/16"
    hubs     = ["core.hub", "edge.pub"]
    topology = "hierarchical"
  }
  site "core" {
    provider = "sim"
    network { cidr = "10.1.0.0/24" }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
  }
  site "edge" {
    provider = "sim"
    gateway  = "gw"
    network { cidr = "10.2.0.0/24" }
    node "gw" { roles = ["gateway"] }
    node "pub" {
      roles     = ["hub"]
      public_ip = true
    }
    site "far" {
      gateway = "gw2"
      network { cidr = "10.3.0.0/24" }
      node "gw2" { roles = ["gateway"] }
    }
  }
}
`

// TestLearntEndpoints checks which endpoints a public node's heartbeat
// teaches the manager: only what a node outside the peer's private
// network sees is its NAT mapping.
func TestLearntEndpoints(t *testing.T) {
	tests := []struct {
		name     string
		reporter string
		peer     string
		seen     string
		learnt   bool
	}{
		{"hub in another network sees the NAT mapping", "core.hub", "edge.far.gw2", "198.18.0.2:40001", true},
		{"public node in the peer's parent site sees a routed address", "edge.pub", "edge.far.gw2", "10.2.0.77:51820", false},
		{"public node of the peer's own network sees its site address", "edge.pub", "edge.gw", "10.2.0.10:51820", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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
			nodes := []struct {
				id, addr, site, siteAddr, public string
			}{
				{"core.hub", "site.core.node.hub", "core", "10.1.0.10", "203.0.113.5"},
				{"edge.pub", "site.edge.node.pub", "edge", "10.2.0.11", "203.0.113.6"},
				{"edge.gw", "site.edge.node.gw", "edge", "10.2.0.10", ""},
				{"edge.far.gw2", "site.edge.site.far.node.gw2", "edge.far", "10.3.0.10", ""},
			}
			for _, n := range nodes {
				req := &JoinRequest{Token: s.JoinToken(n.id), Address: n.addr, Site: n.site, PublicKey: key(t),
					SiteAddr: netip.MustParseAddr(n.siteAddr), NAT: n.public == ""}
				if n.public != "" {
					req.Endpoint = netip.AddrPortFrom(netip.MustParseAddr(n.public), 51820)
				}
				if _, err := m.Join(req, ""); err != nil {
					t.Fatalf("join %s: %v", n.id, err)
				}
			}
			seen := netip.MustParseAddrPort(tt.seen)
			if err := m.Beat(tt.reporter, &Heartbeat{ProbeOK: true, Peers: map[string]PeerStatus{tt.peer: {Endpoint: seen}}}); err != nil {
				t.Fatal(err)
			}
			var got netip.AddrPort
			for _, n := range m.Nodes() {
				if n.ID == tt.peer {
					got = n.Endpoint
				}
			}
			if (got == seen) != tt.learnt {
				t.Errorf("%s's endpoint after %s saw it at %s: %v; want learnt=%v", tt.peer, tt.reporter, seen, got, tt.learnt)
			}
			// The NAT'd gateways share one private network, hence one NAT:
			// their WireGuard ports differ.
			ports := map[int]string{}
			for _, n := range m.Nodes() {
				if n.NAT {
					if o, dup := ports[n.ListenPort]; dup {
						t.Errorf("%s and %s behind one NAT share port %d", o, n.ID, n.ListenPort)
					}
					ports[n.ListenPort] = n.ID
				}
			}
		})
	}
}

// TestMovedPort: a NAT'd node's heartbeat that reports the WireGuard
// port its agent moved to (out of a wedged NAT flow) moves the endpoint
// the manager predicted from its old port, and peers in other private
// networks are sent there; a learnt mapping, a public node's report, a
// port out of range and the port on record change nothing.
func TestMovedPort(t *testing.T) {
	tests := []struct {
		name   string
		node   string
		learnt string // endpoint a hub in another network saw first ("": the prediction stands)
		port   int
		record int    // the node's port on record afterwards
		want   string // its endpoint afterwards, as core.hub's peer set has it
		bump   bool   // peer sets change
	}{
		{"predicted endpoint moves with the port", "edge.far.gw2", "", 41305, 41305, "198.18.0.2:41305", true},
		{"a learnt mapping stays until seen anew", "edge.far.gw2", "198.18.0.2:40001", 41305, 41305, "198.18.0.2:40001", true},
		{"the port on record changes nothing", "edge.far.gw2", "", 51821, 51821, "198.18.0.2:51821", false},
		{"a port out of range is ignored", "edge.far.gw2", "", 70000, 51821, "198.18.0.2:51821", false},
		{"a public node's port is its own affair", "edge.pub", "", 41305, 51820, "203.0.113.6:51820", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(strings.Replace(nestedTmpl, `"hierarchical"`, `"mesh"`, 1))}, ".", templates.LoadOptions{})
			if d.HasErrors() {
				t.Fatal(d)
			}
			s := NewSecret()
			clk := &clock{t: time.Unix(1e9, 0)}
			m, err := New(Config{Cluster: cfg.Cluster, Secret: s, Clock: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []struct {
				id, addr, site, siteAddr, public string
			}{
				{"core.hub", "site.core.node.hub", "core", "10.1.0.10", "203.0.113.5"},
				{"edge.pub", "site.edge.node.pub", "edge", "10.2.0.11", "203.0.113.6"},
				{"edge.gw", "site.edge.node.gw", "edge", "10.2.0.10", ""},
				{"edge.far.gw2", "site.edge.site.far.node.gw2", "edge.far", "10.3.0.10", ""},
			} {
				req := &JoinRequest{Token: s.JoinToken(n.id), Address: n.addr, Site: n.site, PublicKey: key(t),
					SiteAddr: netip.MustParseAddr(n.siteAddr), NAT: n.public == ""}
				from := netip.MustParseAddr("198.18.0.2") // edge's NAT
				if n.public != "" {
					req.Endpoint = netip.AddrPortFrom(netip.MustParseAddr(n.public), 51820)
					from = netip.MustParseAddr(n.public)
				}
				if _, err := m.JoinFrom(req, "", from); err != nil {
					t.Fatalf("join %s: %v", n.id, err)
				}
			}
			if tt.learnt != "" {
				if err := m.Beat("core.hub", &Heartbeat{ProbeOK: true, Peers: map[string]PeerStatus{tt.node: {Endpoint: netip.MustParseAddrPort(tt.learnt)}}}); err != nil {
					t.Fatal(err)
				}
			}
			v0, _, err := m.Peers("core.hub", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Beat(tt.node, &Heartbeat{ProbeOK: true, ListenPort: tt.port}); err != nil {
				t.Fatal(err)
			}
			v1, ps, err := m.Peers("core.hub", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if (v1 != v0) != tt.bump {
				t.Errorf("peer set version %d -> %d; want a change: %v", v0, v1, tt.bump)
			}
			var port int
			for _, n := range m.Nodes() {
				if n.ID == tt.node {
					port = n.ListenPort
				}
			}
			if port != tt.record {
				t.Errorf("%s's port on record %d after it reported %d, want %d", tt.node, port, tt.port, tt.record)
			}
			var got string
			for _, p := range ps.Peers {
				if p.Node == tt.node && p.Endpoint.IsValid() {
					got = p.Endpoint.String()
				}
			}
			if got != tt.want {
				t.Errorf("core.hub sends to %s at %q, want %q", tt.node, got, tt.want)
			}
		})
	}
}
