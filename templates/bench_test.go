package templates

import (
	"fmt"
	"strings"
	"testing"
)

// bigTemplate is a cluster of sites sites with nodes nodes in all: one
// hub, and in every site a gateway and pools that hold the rest.
func bigTemplate(sites, nodes int) []byte {
	var b strings.Builder
	b.WriteString("cluster \"big\" {\n  overlay {\n    cidr = \"10.128.0.0/9\"\n    topology = \"hierarchical\"\n    hubs = [\"s0.hub\"]\n  }\n")
	per := nodes / sites
	for s := 0; s < sites; s++ {
		fmt.Fprintf(&b, "  site \"s%d\" {\n    provider = \"sim\"\n    tier = %d\n    gateway = \"gw\"\n    network { cidr = \"10.%d.0.0/16\" }\n", s, s%3, s)
		fmt.Fprintf(&b, "    node \"gw\" {\n      roles = [\"gateway\"]\n    }\n")
		left := per - 1
		if s == 0 {
			b.WriteString("    node \"hub\" {\n      roles = [\"hub\", \"manager\"]\n      public_ip = true\n    }\n")
			left--
		}
		for p := 0; left > 0; p++ {
			n := min(left, 50)
			fmt.Fprintf(&b, "    pool \"p%d\" {\n      count = %d\n      instance {\n        cpus = 2\n        memory = \"4GiB\"\n      }\n    }\n", p, n)
			left -= n
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// TestLoadLarge loads a 10,000-node, 50-site template; BenchmarkLoadLarge
// measures it.
func TestLoadLarge(t *testing.T) {
	cfg, diags := LoadSource(map[string][]byte{"big.hcl": bigTemplate(50, 10000)}, ".", LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(renderDiags(t, cfg.Files, diags))
	}
	total := 0
	for _, s := range cfg.Cluster.AllSites() {
		total += len(s.Nodes)
		for _, p := range s.Pools {
			total += p.Max
		}
	}
	if total != 10000 {
		t.Errorf("nodes = %d, want 10000", total)
	}
}

func BenchmarkLoadLarge(b *testing.B) {
	src := bigTemplate(50, 10000)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, diags := LoadSource(map[string][]byte{"big.hcl": src}, ".", LoadOptions{}); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}

func BenchmarkLoadSpecExample(b *testing.B) {
	for b.Loop() {
		if _, diags := Load("testdata/valid/spec-example.hcl", LoadOptions{}); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
