package openstack_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/openstack"
	"github.com/hvctl/hvctl/provision/openstack/osfake"
	"github.com/hvctl/hvctl/templates"
)

var fastTiming = openstack.Timing{Poll: 2 * time.Millisecond, MaxBackoff: 5 * time.Millisecond, Retries: 3, DeleteWait: 5 * time.Second}

// newCloud starts a fake cloud and points OS_CLIENT_CONFIG_FILE at a
// clouds.yaml whose entry "fake" logs in to it.
func newCloud(t *testing.T) *osfake.Server {
	t.Helper()
	f := osfake.New()
	t.Cleanup(f.Close)
	path := filepath.Join(t.TempDir(), "clouds.yaml")
	if err := os.WriteFile(path, []byte(f.CloudsYAML("fake")), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"OS_CLOUD", "OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME", "OS_REGION_NAME", "OS_INTERFACE"} {
		t.Setenv(k, "")
	}
	t.Setenv("OS_CLIENT_CONFIG_FILE", path)
	return f
}

// siteTemplate is a cluster on one OpenStack site: a public hub, a
// gateway, and a pool of workers.
const siteTemplate = `
provider "openstack" "cloud" {
  cloud = "fake"
  image = "debian-12-hvctl"
  %s
}

cluster "%s" {
  %s
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "hierarchical"
    hubs     = ["cloud.hub"]
  }
  site "cloud" {
    provider = provider.openstack.cloud
    gateway  = "gw"
    network { cidr = "10.4.2.0/24" }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance {
        cpus   = 2
        memory = "4GiB"
      }
    }
    node "gw" {
      roles = ["gateway"]
      instance { type = "m1.small" }
    }
    pool "burst" {
      count = %d
      instance {
        type = "%s"
      }
    }
  }
}
`

type cluster struct {
	t    *testing.T
	fake *osfake.Server
	e    *provision.Engine
	p    *openstack.Provider
}

// newCluster loads the template and makes an engine whose Prepare hook
// hands out secrets the way agent.Bootstrap does.
func newCluster(t *testing.T, fake *osfake.Server, name, extra, clusterExtra string, workers int, workerType string) *cluster {
	t.Helper()
	src := fmt.Sprintf(siteTemplate, extra, name, clusterExtra, workers, workerType)
	cfg, d := templates.LoadSource(map[string][]byte{"main.hcl": []byte(src)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatalf("load: %v", d)
	}
	e, d := provision.NewEngine(cfg, &provision.Store{Path: filepath.Join(t.TempDir(), "state.json")})
	if d.HasErrors() {
		t.Fatalf("engine: %v", d)
	}
	pp, _ := e.Provider("provider.openstack.cloud")
	p := pp.(*openstack.Provider)
	p.Timing = fastTiming
	e.Prepare = func(st *provision.State, c *provision.Change, _ provision.Provider) (provision.Attrs, error) {
		if c.Kind != provision.KindInstance {
			return nil, nil
		}
		a := provision.Attrs{"join_token": "SECRET-JOIN-" + c.Address, "overlay_port": int64(51820),
			"manager_url": "http://203.0.113.11:51821"}
		if strings.HasSuffix(c.Address, ".node.hub") {
			a["cluster_secret"] = "SECRET-CLUSTER"
			a["manager_url"] = "http://127.0.0.1:51821"
		}
		return a, nil
	}
	return &cluster{t: t, fake: fake, e: e, p: p}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// apply plans (with refresh) and applies; it returns the plan and the
// apply's error.
func (c *cluster) apply(destroy bool) (*provision.Plan, error) {
	c.t.Helper()
	st, err := c.e.Store.Load()
	if err != nil {
		c.t.Fatal(err)
	}
	plan, refreshed, err := c.e.Plan(ctx(c.t), st, provision.PlanOptions{Refresh: true, Destroy: destroy})
	if err != nil {
		return nil, err
	}
	return plan, c.e.Apply(ctx(c.t), refreshed, plan).Err()
}

func (c *cluster) mustApply(destroy bool) *provision.Plan {
	c.t.Helper()
	plan, err := c.apply(destroy)
	if err != nil {
		c.t.Fatalf("apply (destroy=%v): %v", destroy, err)
	}
	return plan
}

func (c *cluster) state() *provision.State {
	c.t.Helper()
	st, err := c.e.Store.Load()
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

func actions(p *provision.Plan) map[string]string {
	out := map[string]string{}
	for _, ch := range p.Changes {
		out[ch.Address] = string(ch.Action)
	}
	return out
}

func noSecrets(t *testing.T, what string, s string) {
	t.Helper()
	if strings.Contains(s, "SECRET") {
		t.Errorf("%s leaks a secret: %s", what, s)
	}
}
