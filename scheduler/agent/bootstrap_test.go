package agent

import (
	"testing"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/templates"
)

// agentHost is a provider whose machines run agents (Prepare asks
// nothing else of it).
type agentHost struct{ provision.Provider }

func (agentHost) RunsAgents() bool { return true }

const twoHubs = `
cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.frontend", "cloud.hub2"]
  }
  site "onprem" {
    provider = "sim"
    network { cidr = "192.168.10.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
  }
  site "cloud" {
    provider = "sim"
    gateway  = "gw"
    network { cidr = "10.4.2.0/24" }
    node "hub2" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    node "gw" { roles = ["gateway"] }
  }
}
`

// Which node bootstraps the control log, gets replica certificates and
// learns the replicas: the primary bootstraps only a new cluster; a
// primary created again while the other replicas exist (a replaced hub)
// must not start a second log.
func TestBootstrapReplicaAttrs(t *testing.T) {
	cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(twoHubs)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	ca, err := manager.NewCA("c")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBootstrap(cfg, manager.NewSecret(), ca)
	if err != nil {
		t.Fatal(err)
	}
	res := func(addr, ip string) *provision.ResourceState {
		return &provision.ResourceState{Address: addr, Kind: provision.KindInstance, Attrs: provision.Attrs{"public_address": ip}}
	}
	primary, hub2, gw := "site.onprem.node.frontend", "site.cloud.node.hub2", "site.cloud.node.gw"
	cases := []struct {
		name      string
		existing  []*provision.ResourceState // sorted by address
		node      string
		bootstrap bool
		witness   bool
		urls      string
	}{
		{name: "primary of a new cluster", node: primary, bootstrap: true},
		{name: "primary replaced while hub2 lives", existing: []*provision.ResourceState{res(hub2, "198.18.0.5")}, node: primary,
			urls: `["https://198.18.0.5:51821"]`},
		{name: "hub2", existing: []*provision.ResourceState{res(primary, "198.18.0.3")}, node: hub2, urls: `["https://198.18.0.3:51821"]`},
		{name: "the witness", existing: []*provision.ResourceState{res(hub2, "198.18.0.5"), res(primary, "198.18.0.3")}, node: gw, witness: true,
			urls: `["https://198.18.0.3:51821","https://198.18.0.5:51821"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := provision.NewState()
			st.Resources = tc.existing
			a, err := b.Prepare(st, &provision.Change{Address: tc.node, Kind: provision.KindInstance}, agentHost{})
			if err != nil {
				t.Fatal(err)
			}
			if got := a["raft_bootstrap"] == "true"; got != tc.bootstrap {
				t.Errorf("raft_bootstrap = %v, want %v", got, tc.bootstrap)
			}
			if got := a["raft_witness"] == "true"; got != tc.witness {
				t.Errorf("raft_witness = %v, want %v", got, tc.witness)
			}
			if a["replica_cert"] == nil || a["replica_key"] == nil {
				t.Errorf("no replica certificate")
			}
			if got, _ := a["manager_urls"].(string); got != tc.urls {
				t.Errorf("manager_urls = %s, want %s", got, tc.urls)
			}
			if _, ok := a["cluster_secret"]; ok == tc.witness {
				t.Errorf("cluster secret given: %v, want %v (only managers hold it)", ok, !tc.witness)
			}
		})
	}
}
