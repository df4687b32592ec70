package aws

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/aws/awsfake"
	"github.com/hvctl/hvctl/templates"
)

const (
	testAccessKey = "AKIDHVCTLTEST0000001"
	testSecretKey = "hvctl-test-secret-key"
	testRegion    = "us-east-1"
	testImage     = "ami-0123456789abcdef0"
	// Secrets the engine hands nodes: they may appear only in user data.
	testJoinToken     = "jt-SECRET-7f3a9c"
	testClusterSecret = "cs-SECRET-42b1e0"
)

func TestMain(m *testing.M) {
	maxBackoff = 5 * time.Millisecond
	attemptCost = 0
	limits = provision.Limits{}
	defaultPollInterval = 2 * time.Millisecond
	os.Exit(m.Run())
}

// credentialsEnv makes the SDK's default chain find static test
// credentials in the environment, and nothing else (no shared files, no
// instance metadata).
func credentialsEnv(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_EC2", "")
}

// newFake starts a fake EC2 endpoint that accepts only the test key,
// verifying every request's signature with its secret.
func newFake(t *testing.T) *awsfake.Server {
	t.Helper()
	credentialsEnv(t)
	f := awsfake.New()
	f.AccessKeyID = testAccessKey
	f.Credentials = map[string]string{testAccessKey: testSecretKey}
	f.Region = testRegion
	t.Cleanup(f.Close)
	return f
}

// providerConfig is an aws provider block with attrs, each on its own
// line of aws.hcl, so tests can check diagnostic subjects.
func providerConfig(attrs map[string]cty.Value) *templates.Provider {
	cfg := &templates.Provider{
		Type: "aws", Name: "test",
		Attrs:      attrs,
		AttrRanges: map[string]hcl.Range{},
		DeclRange:  hcl.Range{Filename: "aws.hcl", Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 20}},
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		cfg.AttrRanges[n] = hcl.Range{Filename: "aws.hcl", Start: hcl.Pos{Line: i + 2, Column: 3}, End: hcl.Pos{Line: i + 2, Column: 30}}
	}
	return cfg
}

// newProvider configures a provider against fake through the registered
// factory, exactly as a template with endpoint = fake.URL does.
func newProvider(t *testing.T, fake *awsfake.Server, extra map[string]cty.Value) *Provider {
	t.Helper()
	attrs := map[string]cty.Value{"region": cty.StringVal(testRegion), "endpoint": cty.StringVal(fake.URL)}
	for k, v := range extra {
		attrs[k] = v
	}
	f, ok := provision.Lookup("aws")
	if !ok {
		t.Fatal(`provision.Lookup("aws") found nothing`)
	}
	p, diags := f(providerConfig(attrs), &provision.Env{StateDir: t.TempDir(), Cluster: "test"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p.(*Provider)
}

func networkReq(cluster, site, cidr string, extra provision.Attrs) *provision.CreateRequest {
	addr := "site." + site + ".network"
	a := provision.Attrs{"site": site, "cidr": cidr}
	for k, v := range extra {
		a[k] = v
	}
	return &provision.CreateRequest{Address: addr, Kind: provision.KindNetwork, Cluster: cluster, Lineage: "lin-" + cluster,
		ClientToken: provision.ClientToken("lin-"+cluster, addr, 0), Attrs: a}
}

func instanceReq(cluster, site, name string, netID string, extra provision.Attrs) *provision.CreateRequest {
	addr := "site." + site + ".node." + name
	a := provision.Attrs{
		"site": site, "name": name, "public_ip": false, "cpus": int64(2), "memory_mib": int64(4096),
		"roles": []string{"worker"}, "image": testImage, "instance_type": "t3.medium",
		"join_token": testJoinToken, "manager_url": "http://203.0.113.1:51821", "overlay_port": int64(51820),
	}
	for k, v := range extra {
		if v == nil {
			delete(a, k)
		} else {
			a[k] = v
		}
	}
	return &provision.CreateRequest{Address: addr, Kind: provision.KindInstance, Cluster: cluster, Lineage: "lin-" + cluster,
		ClientToken: provision.ClientToken("lin-"+cluster, addr, 0), Attrs: a,
		Deps: map[string]string{"site." + site + ".network": netID}}
}

func mustCreate(t *testing.T, p *Provider, req *provision.CreateRequest) *provision.CreateResponse {
	t.Helper()
	resp, err := p.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("create %s: %v", req.Address, err)
	}
	return resp
}

func mustWait(t *testing.T, p *Provider, id string) *provision.ReadResponse {
	t.Helper()
	rr, err := p.WaitReady(context.Background(), &provision.ReadRequest{Kind: provision.KindInstance, ID: id})
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	return rr
}

// checkNoSecrets fails if an error message holds a secret.
func checkNoSecrets(t *testing.T, what string, s string) {
	t.Helper()
	for _, secret := range []string{testJoinToken, testClusterSecret, testSecretKey} {
		if strings.Contains(s, secret) {
			t.Errorf("%s leaks a secret: %s", what, s)
		}
	}
}

// agentConfigOf extracts the agent configuration from cloud-init user
// data: the gz+b64 content of /etc/hvctl/agent.json.
func agentConfigOf(t *testing.T, userData string) []byte {
	t.Helper()
	i := strings.Index(userData, "path: "+AgentConfigPath)
	if i < 0 {
		t.Fatalf("user data writes no %s:\n%s", AgentConfigPath, userData)
	}
	rest := userData[i:]
	j := strings.Index(rest, "content: ")
	if j < 0 {
		t.Fatal("no content for the agent configuration")
	}
	line := rest[j+len("content: "):]
	line, _, _ = strings.Cut(line, "\n")
	gz, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// --- engine helpers ---

const siteTemplate = `
provider "aws" "cloud" {
  region   = "us-east-1"
  endpoint = %q
}

cluster "%s" {
  ttl = "2h"
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "star"
    hubs     = ["cloud.hub"]
  }

  site "cloud" {
    provider = provider.aws.cloud
    network {
      cidr = "10.4.0.0/16"
    }

    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance {
        type  = "t3.small"
        image = "ami-0123456789abcdef0"
      }
    }

    pool "wn" {
      count = %d
      instance {
        cpus   = 2
        memory = "4GiB"
        image  = "ami-0123456789abcdef0"
      }
    }

    site "zone-b" {
      gateway = "router"
      network {
        cidr = "10.5.7.0/24"
      }
      node "router" {
        roles = ["gateway"]
        instance {
          type  = "t3.micro"
          image = "ami-0123456789abcdef0"
        }
      }
    }
  }
}
`

func loadSite(t *testing.T, fake *awsfake.Server, cluster string, workers int) *templates.Config {
	t.Helper()
	src := fmt.Sprintf(siteTemplate, fake.URL, cluster, workers)
	cfg, d := templates.LoadSource(map[string][]byte{"main.hcl": []byte(src)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatalf("load: %v", d)
	}
	return cfg
}

// newEngine configures the template's providers through the registered
// factories and hands each node join secrets, as agent.Bootstrap does.
func newEngine(t *testing.T, cfg *templates.Config, dir string) *provision.Engine {
	t.Helper()
	e, d := provision.NewEngine(cfg, &provision.Store{Path: filepath.Join(dir, "state.json")})
	if d.HasErrors() {
		t.Fatal(d)
	}
	e.Prepare = prepare(cfg)
	return e
}

// prepare is an Engine.Prepare hook that gives nodes what
// agent.Bootstrap gives them: a join token and the manager's URL, and on
// the manager node the cluster secret.
func prepare(cfg *templates.Config) func(st *provision.State, c *provision.Change, p provision.Provider) (provision.Attrs, error) {
	hubAddr := provision.NodeAddress(provision.ManagerNode(cfg.Cluster))
	return func(st *provision.State, c *provision.Change, p provision.Provider) (provision.Attrs, error) {
		if c.Kind != provision.KindInstance {
			return nil, nil
		}
		a := provision.Attrs{"join_token": testJoinToken + "-" + c.Address, "overlay_port": int64(51820)}
		if c.Address == hubAddr {
			a["cluster_secret"] = testClusterSecret
			a["manager_url"] = "http://127.0.0.1:51821"
			return a, nil
		}
		hub := st.Resource(hubAddr)
		if hub == nil {
			return nil, fmt.Errorf("no hub yet")
		}
		a["manager_url"] = "http://" + hub.Attrs["public_address"].(string) + ":51821"
		return a, nil
	}
}

func plan(t *testing.T, e *provision.Engine, destroy bool) (*provision.Plan, *provision.State) {
	t.Helper()
	st, err := e.Store.Load()
	if err != nil {
		t.Fatal(err)
	}
	p, refreshed, err := e.Plan(context.Background(), st, provision.PlanOptions{Refresh: true, Destroy: destroy})
	if err != nil {
		t.Fatal(err)
	}
	return p, refreshed
}

func apply(t *testing.T, e *provision.Engine, destroy bool) *provision.Plan {
	t.Helper()
	p, st := plan(t, e, destroy)
	if res := e.Apply(context.Background(), st, p); res.Err() != nil {
		t.Fatal(res.Err())
	}
	return p
}

func actions(p *provision.Plan) map[string]provision.Action {
	out := map[string]provision.Action{}
	for _, c := range p.Changes {
		out[c.Address] = c.Action
	}
	return out
}
