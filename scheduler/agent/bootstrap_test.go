package agent

import (
	"os"
	"path/filepath"
	"strings"
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

// The manager node loads the template it is sent, where neither the
// provider's key files nor the variable files exist: the packed
// template has no provider settings and no state block (so no key, no
// passphrase), no variable file, and loads in an empty directory.
func TestBootstrapManagerCopy(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"main.hcl": `
variable "workers" { type = number }
variable "aws_secret" {
  type      = string
  sensitive = true
  validation {
    condition     = length(var.aws_secret) > 3
    error_message = "Too short."
  }
}
variable "prefix" { default = "192.168.10" }
locals {
  creds  = { secret = var.aws_secret }
  first  = 11
  hostip = "${var.prefix}.2"
}
provider "static" "lab" {
  user        = "hvctl"
  private_key = file("keys/id_ed25519")
  known_hosts = "keys/known_hosts"
  become      = "sudo"
}
output "secret" {
  value     = local.creds.secret
  sensitive = true
}
provider "aws" "ohio" {
  region     = "us-east-2"
  secret_key = local.creds.secret
}
state {
  backend = "local"
  encryption { passphrase = "STATE-PASSPHRASE" }
}
cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.head"]
  }
  site "onprem" {
    provider = provider.static.lab
    network { cidr = "192.168.10.0/24" }
    node "head" {
      roles     = ["hub", "manager"]
      public_ip = true
      host      = local.hostip
    }
    pool "wn" { hosts = [for i in range(var.workers) : "192.168.10.${local.first + i}"] }
  }
}
`,
		"hvctl.hvars":      "workers = 2\n",
		"keys/id_ed25519":  "-----BEGIN OPENSSH PRIVATE KEY-----\nKEY-MATERIAL\n-----END OPENSSH PRIVATE KEY-----\n",
		"keys/known_hosts": "",
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, d := templates.Load(dir, templates.LoadOptions{Args: []templates.VarArg{{Name: "aws_secret", Value: "AWS-SECRET-VALUE"}}})
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
	if len(b.Template.Files) != 1 || b.Template.Files["main.hcl"] == "" {
		t.Fatalf("packed files %v, want main.hcl only", keys(b.Template.Files))
	}
	packed := b.Template.Files["main.hcl"]
	for _, secret := range []string{"KEY-MATERIAL", "private_key", "keys/", "AWS-SECRET-VALUE", "aws_secret", "creds", "STATE-PASSPHRASE", "become", "output"} {
		if strings.Contains(packed, secret) {
			t.Errorf("the manager's copy holds %q:\n%s", secret, packed)
		}
	}
	var sent []string
	for _, v := range b.Template.Vars {
		sent = append(sent, v.Name+"="+v.Value)
	}
	if got := strings.Join(sent, " "); got != "workers=2 prefix=192.168.10" {
		t.Errorf("variables sent: %s; want workers=2 prefix=192.168.10 (aws_secret is only the provider's)", got)
	}
	// As the agent loads it: in its own (empty) directory.
	src := map[string][]byte{}
	for k, v := range b.Template.Files {
		src[k] = []byte(v)
	}
	var args []templates.VarArg
	for _, v := range b.Template.Vars {
		args = append(args, templates.VarArg{Name: v.Name, Value: v.Value})
	}
	mcfg, d := templates.LoadSource(src, t.TempDir(), templates.LoadOptions{Args: args})
	if d.HasErrors() {
		t.Fatalf("the manager cannot load its copy: %s\n%s", d.Error(), packed)
	}
	if h := mcfg.Cluster.Sites[0].Pools[0].Hosts; strings.Join(h, " ") != "192.168.10.11 192.168.10.12" {
		t.Errorf("the manager's copy has the pool's hosts %v, want 192.168.10.11 and .12", h)
	}
	if h := mcfg.Cluster.Sites[0].Nodes[0].Host; h != "192.168.10.2" {
		t.Errorf("the manager's copy has the head at %q, want 192.168.10.2", h)
	}
	if s := mcfg.Cluster.Sites[0].Provider; s == nil || s.Type != "static" || s.Name != "lab" {
		t.Errorf("the manager's copy lost the site's provider: %+v", s)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A sole manager node gets a replica certificate too (its log can grow
// into a replica set later); a witness made before the template named it
// has none, and StaleWitness names it; one made as the witness has one.
func TestStaleWitness(t *testing.T) {
	one := strings.Replace(strings.Replace(strings.Replace(twoHubs, `hubs = ["onprem.frontend", "cloud.hub2"]`, `hubs = ["onprem.frontend"]`, 1),
		`    node "hub2" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
`, "", 1), `    gateway  = "gw"
`, "", 1)
	ca, err := manager.NewCA("c")
	if err != nil {
		t.Fatal(err)
	}
	s := manager.NewSecret()
	boot := func(src string) *Bootstrap {
		cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(src)}, ".", templates.LoadOptions{})
		if d.HasErrors() {
			t.Fatal(d)
		}
		b, err := NewBootstrap(cfg, s, ca)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1, b2 := boot(one), boot(twoHubs)
	st := provision.NewState()
	var made []*provision.ResourceState
	for _, addr := range []string{"site.onprem.node.frontend", "site.cloud.node.gw"} {
		a, err := b1.Prepare(st, &provision.Change{Address: addr, Kind: provision.KindInstance}, agentHost{})
		if err != nil {
			t.Fatal(err)
		}
		a["public_address"] = "198.18.0.3"
		// Resources are kept sorted by address.
		made = append([]*provision.ResourceState{{Address: addr, Kind: provision.KindInstance, Attrs: a}}, made...)
		st.Resources = made
	}
	if c, _ := st.Resource("site.onprem.node.frontend").Attrs["replica_cert"].(string); c == "" {
		t.Errorf("the sole manager node has no replica certificate")
	}
	if got := b1.StaleWitness(st); got != "" {
		t.Errorf("one manager: StaleWitness = %q, want none", got)
	}
	if got := b2.StaleWitness(st); got != "site.cloud.node.gw" {
		t.Errorf("grown to two managers: StaleWitness = %q, want site.cloud.node.gw (made before it was the witness)", got)
	}
	a, err := b2.Prepare(st, &provision.Change{Address: "site.cloud.node.gw", Kind: provision.KindInstance}, agentHost{})
	if err != nil {
		t.Fatal(err)
	}
	st.Resource("site.cloud.node.gw").Attrs = a
	if got := b2.StaleWitness(st); got != "" {
		t.Errorf("the witness made again: StaleWitness = %q, want none", got)
	}
}
