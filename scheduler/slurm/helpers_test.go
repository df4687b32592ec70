package slurm

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hvctl/hvctl/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// labTemplate has a hub that is no worker, a named worker without roles,
// a fixed pool with a label, an elastic pool, and a sub-site with a
// partly elastic GPU pool.
const labTemplate = `
cluster "lab" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.frontend"]
  }

  site "onprem" {
    provider = "local"
    network {
      cidr = "192.168.10.0/24"
    }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance {
        cpus   = 2
        memory = "2GiB"
      }
    }
    node "login" {
      instance {
        cpus   = 4
        memory = "8GiB"
      }
    }
    pool "wn" {
      count = 2
      instance {
        cpus   = 2
        memory = "2GiB"
      }
      labels = { arch = "x86_64" }
    }
  }

  site "cloud" {
    provider = "local"
    gateway  = "router"
    network {
      cidr = "10.4.2.0/24"
    }
    node "router" {
      roles = ["gateway"]
    }
    pool "burst" {
      min = 0
      max = 3
      instance {
        cpus   = 2
        memory = "4GiB"
      }
    }
    site "zone-a" {
      network {
        cidr = "10.4.3.0/24"
      }
      pool "gpu" {
        min = 1
        max = 2
        instance {
          cpus   = 8
          memory = "16GiB"
          gpus     = 1
          gpu_type = "a100"
        }
        labels = { gpu = "a100" }
      }
    }
  }

  elastic {
    idle_time    = "2m"
    boot_timeout = "10m"
  }

  scheduler {
    type = "slurm"
  }
}
`

// load evaluates an in-memory template.
func load(t testing.TB, src string) *templates.Cluster {
	t.Helper()
	cfg, diags := templates.LoadSource(map[string][]byte{"t.hcl": []byte(src)}, ".", templates.LoadOptions{})
	if diags.HasErrors() {
		var b strings.Builder
		wr := hcl.NewDiagnosticTextWriter(&b, cfg.Files, 100, false)
		_ = wr.WriteDiagnostics(diags)
		t.Fatalf("template:\n%s", b.String())
	}
	return cfg.Cluster
}

// overlayAddrs gives the controller 10.200.0.1 and the compute nodes
// 10.200.0.10 on, in Nodes order.
func overlayAddrs(t testing.TB, c *templates.Cluster, controller string) map[string]netip.Addr {
	t.Helper()
	nodes, err := Nodes(c)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]netip.Addr{controller: netip.MustParseAddr("10.200.0.1")}
	a := netip.MustParseAddr("10.200.0.10")
	for _, n := range nodes {
		m[n.MemberID] = a
		a = a.Next()
	}
	return m
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
