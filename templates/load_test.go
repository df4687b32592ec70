package templates

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

func mustLoad(t *testing.T, path string, opts LoadOptions) *Config {
	t.Helper()
	cfg, diags := Load(path, opts)
	if len(diags) > 0 {
		t.Fatalf("Load(%s):\n%s", path, renderDiags(t, cfg.Files, diags))
	}
	return cfg
}

func site(t *testing.T, c *Cluster, path string) *Site {
	t.Helper()
	for _, s := range c.AllSites() {
		if s.Path == path {
			return s
		}
	}
	t.Fatalf("no site %q", path)
	return nil
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if gv, ok := any(got).(cty.Value); ok {
		if !gv.RawEquals(any(want).(cty.Value)) {
			t.Errorf("%s = %#v, want %#v", what, gv, want)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		check func(t *testing.T, cfg *Config)
	}{
		{"spec example", "testdata/valid/spec-example.hcl", func(t *testing.T, cfg *Config) {
			c := cfg.Cluster
			eq(t, "name", c.Name, "hybrid")
			eq(t, "ttl", c.TTL, 6*time.Hour)
			eq(t, "tags", c.Tags, map[string]string{"project": "audio"})
			eq(t, "overlay", c.Overlay.CIDR, netip.MustParsePrefix("10.200.0.0/16"))
			eq(t, "topology", c.Overlay.Topology, Star)
			eq(t, "hubs", c.Overlay.Hubs, []string{"onprem.frontend"})
			eq(t, "port", c.Overlay.Port, 51820)
			eq(t, "mtu", c.Overlay.MTU, 0)
			eq(t, "keepalive", c.Overlay.Keepalive, 25*time.Second)
			var paths []string
			for _, s := range c.AllSites() {
				paths = append(paths, s.Path)
			}
			eq(t, "sites", paths, []string{"onprem", "aws", "cloud", "cloud.zone-a"})

			on := site(t, c, "onprem")
			eq(t, "onprem provider", on.Provider.Ref(), "provider.local.lab")
			eq(t, "onprem cache", on.Cache, &SiteCache{Size: 20 << 30})
			fe := on.Nodes[0]
			eq(t, "frontend path", fe.Path(), "onprem.frontend")
			eq(t, "frontend roles", fe.Roles, []Role{RoleHub, RoleManager})
			eq(t, "frontend public", fe.PublicIP, true)
			eq(t, "frontend instance", fe.Instance, Instance{CPUs: 2, Memory: 4 << 30})
			wn := on.Pools[0]
			eq(t, "wn bounds", [2]int{wn.Min, wn.Max}, [2]int{2, 2})
			eq(t, "wn elastic", wn.Elastic(), false)
			eq(t, "wn instance", wn.Instance, Instance{CPUs: 2, Memory: 4 << 30})
			eq(t, "wn labels", wn.Labels, map[string]string{"arch": "x86_64"})

			aws := site(t, c, "aws")
			eq(t, "aws provider", aws.Provider.Ref(), "provider.aws.ohio")
			eq(t, "aws tier", aws.Tier, 1)
			eq(t, "aws gateway", aws.Gateway, "router")
			burst := aws.Pools[0]
			eq(t, "burst bounds", [2]int{burst.Min, burst.Max}, [2]int{0, 3})
			eq(t, "burst elastic", burst.Elastic(), true)
			eq(t, "burst instance", burst.Instance, Instance{Type: "t3.medium", CPUs: 2, Memory: 4 << 30, Image: "ami-0123456789abcdef0", Price: 0.0416})
			eq(t, "router roles", aws.Nodes[0].Roles, []Role{RoleGateway})

			za := site(t, c, "cloud.zone-a")
			eq(t, "zone-a provider (inherited)", za.Provider.Ref(), "provider.openstack.cesnet")
			eq(t, "zone-a tier (inherited)", za.Tier, 1)
			eq(t, "zone-a parent", za.Parent, site(t, c, "cloud"))
			eq(t, "gpu instance", za.Pools[0].Instance, Instance{Type: "g1.large", GPUs: 1, GPUType: "a100"})
			eq(t, "gpu path", za.Pools[0].Path(), "cloud.zone-a.gpu")

			explicit := DefaultElastic
			explicit.IdleAuto = false // the example sets idle_time = "5m"
			eq(t, "elastic", c.Elastic, explicit)
			eq(t, "scheduler", c.Scheduler.Type, "builtin")
			eq(t, "cache", c.Cache, ClusterCache{Node: 10 << 30, Global: "onprem.frontend:/srv/hvctl/data"})

			eq(t, "providers", len(cfg.Providers), 3)
			eq(t, "profile", cfg.Providers[1].Attrs["profile"], cty.StringVal("research"))
			eq(t, "profile range line", cfg.Providers[1].AttrRanges["profile"].Start.Line, 21)
			eq(t, "boot_time", cfg.Providers[0].Attrs["boot_time"], cty.StringVal("2s"))
			eq(t, "variables", cfg.Variables[0].Value, cty.NumberIntVal(3))
			eq(t, "variable description", cfg.Variables[0].Description, "Most cloud workers the cluster may burst to.")
			eq(t, "outputs", len(cfg.Outputs), 1)
		}},
		{"sim hybrid example", "../examples/sim-hybrid.hcl", func(t *testing.T, cfg *Config) {
			c := cfg.Cluster
			eq(t, "provider onprem", site(t, c, "onprem").Provider.Ref(), "provider.sim.lab")
			eq(t, "provider cloud", site(t, c, "cloud").Provider.Ref(), "provider.sim.cloud")
			eq(t, "burst", [2]int{site(t, c, "cloud").Pools[0].Min, site(t, c, "cloud").Pools[0].Max}, [2]int{0, 4})
			eq(t, "hubs", c.Overlay.Hubs, []string{"onprem.frontend"})
		}},
		{"directory", "testdata/valid/multi", func(t *testing.T, cfg *Config) {
			eq(t, "files", len(cfg.Files), 3)
			eq(t, "region", cfg.Providers[0].Attrs["region"], cty.StringVal("us-east-2"))
			s := cfg.Cluster.Sites[0]
			eq(t, "pool", s.Pools[0].Max, 3)
			eq(t, "provider", s.Provider, cfg.Providers[0])
			eq(t, "mesh needs no hub", cfg.Cluster.Overlay.Hubs, []string(nil))
		}},
		{"nested", "testdata/valid/nested.hcl", func(t *testing.T, cfg *Config) {
			c := cfg.Cluster
			eq(t, "ttl", c.TTL, 36*time.Hour)
			r := site(t, c, "cloud.zone-a.rack-1")
			eq(t, "rack provider", r.Provider.Ref(), "provider.openstack.region")
			eq(t, "rack tier", r.Tier, 3)
			eq(t, "leaf path", r.Nodes[0].Path(), "cloud.zone-a.rack-1.leaf")
			eq(t, "leaf default roles", r.Nodes[0].Roles, []Role{RoleWorker})
			eq(t, "zone-a tier", site(t, c, "cloud.zone-a").Tier, 2)
			zb := site(t, c, "cloud.zone-b")
			eq(t, "zone-b provider", zb.Provider.Ref(), "provider.sim.default")
			eq(t, "zone-b implicit", zb.Provider.Implicit, true)
			eq(t, "hq provider", site(t, c, "hq").Provider.Ref(), "provider.local.default")
			eq(t, "gateway picked from role", site(t, c, "cloud").Gateway, "gw")
			var refs []string
			for _, p := range cfg.Providers {
				refs = append(refs, p.Ref())
			}
			eq(t, "providers", refs, []string{"provider.openstack.region", "provider.local.default", "provider.sim.default"})
			want := DefaultElastic
			want.Interval, want.KeepIdle = 10*time.Second, 2
			eq(t, "elastic", c.Elastic, want)
			eq(t, "scheduler", c.Scheduler.Type, "slurm")
		}},
		{"functions", "testdata/valid/functions.hcl", func(t *testing.T, cfg *Config) {
			c := cfg.Cluster
			eq(t, "overlay", c.Overlay.CIDR, netip.MustParsePrefix("10.200.0.0/16"))
			eq(t, "mtu", c.Overlay.MTU, 1380)
			eq(t, "port", c.Overlay.Port, 51821)
			eq(t, "tags", c.Tags, map[string]string{"project": "audio", "owner": "me"})
			a, b := site(t, c, "zone-a"), site(t, c, "zone-b")
			eq(t, "zone-a cidr", a.Network.CIDR, netip.MustParsePrefix("10.8.1.0/24"))
			eq(t, "zone-b cidr", b.Network.CIDR, netip.MustParsePrefix("10.8.2.0/24"))
			in := a.Nodes[0].Instance
			eq(t, "user_data", in.UserData, "#!/bin/sh\necho hello\n")
			eq(t, "memory", in.Memory, int64(1<<30))
			eq(t, "disk", in.Disk, int64(1<<30))
			eq(t, "image", in.Image, "A-B")
			eq(t, "gateway from role", a.Gateway, "head")
			eq(t, "labels", b.Pools[0].Labels, map[string]string{"host": "10.8.2.10"})
			eq(t, "max", b.Pools[0].Max, 2)
			eq(t, "locals", cfg.Locals["names"], cty.TupleVal([]cty.Value{cty.StringVal("A"), cty.StringVal("B")}))
			v, diags := EvalOutput(cfg, cfg.Outputs[0], nil)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			eq(t, "output", v, cty.StringVal("10.8.1.0/24"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustLoad(t, tt.path, LoadOptions{}))
		})
	}
}

// TestExamples loads every template under examples/.
func TestExamples(t *testing.T) {
	paths, _ := filepath.Glob("../examples/*.hcl")
	dirs, _ := filepath.Glob("../examples/*/")
	for _, p := range append(paths, dirs...) {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() && !hasHCL(p) {
			continue
		}
		t.Run(filepath.Base(p), func(t *testing.T) { mustLoad(t, p, LoadOptions{}) })
	}
}

func hasHCL(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
	return len(m) > 0
}

func TestVariablePrecedence(t *testing.T) {
	const path = "testdata/valid/vars.hcl"
	varFile := "testdata/valid/vars.hclvars"
	tests := []struct {
		name       string
		opts       LoadOptions
		count      int
		tagName    string
		labels     map[string]string
		memory     int64
		wantSecret bool
	}{
		{"defaults", LoadOptions{}, 1, "from-default", map[string]string{}, 1 << 30, false},
		{"env", LoadOptions{Environ: []string{"HVCTL_VAR_count=2", "HVCTL_VAR_name=env", "PATH=/bin", "HVCTL_VAR_undeclared=1"}}, 2, "env", map[string]string{}, 1 << 30, false},
		{"env upper case", LoadOptions{Environ: []string{"HVCTL_VAR_COUNT=4"}}, 4, "from-default", map[string]string{}, 1 << 30, false},
		{"var file over env", LoadOptions{
			Environ: []string{"HVCTL_VAR_count=2", "HVCTL_VAR_name=env"},
			Args:    []VarArg{{File: varFile}},
		}, 5, "from-file", map[string]string{}, 1 << 30, false},
		{"JSON var file", LoadOptions{Args: []VarArg{{File: "testdata/valid/vars.json"}}}, 6, "from-json", map[string]string{"arch": "x86_64"}, 1 << 30, false},
		{"later -var wins", LoadOptions{
			Environ: []string{"HVCTL_VAR_count=2"},
			Args:    []VarArg{{Name: "count", Value: "7"}, {File: varFile}, {Name: "name", Value: "cli"}},
		}, 5, "cli", map[string]string{}, 1 << 30, false},
		{"-var primitives are literal, others HCL (as Terraform)", LoadOptions{Args: []VarArg{
			{Name: "name", Value: `a "quoted" {x}`},
			{Name: "labels", Value: `{ arch = "arm64" }`},
			{Name: "opt", Value: `{ size = "2GiB" }`},
			{Name: "count", Value: " 3"},
		}}, 3, `a "quoted" {x}`, map[string]string{"arch": "arm64"}, 2 << 30, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustLoad(t, path, tt.opts)
			p := cfg.Cluster.Sites[0].Pools[0]
			eq(t, "count", p.Max, tt.count)
			eq(t, "name", cfg.Cluster.Tags["name"], tt.tagName)
			eq(t, "labels", p.Labels, tt.labels)
			eq(t, "memory", p.Instance.Memory, tt.memory)
			for _, v := range cfg.Variables {
				if v.Name == "secret" && !v.Sensitive {
					t.Error("secret is not sensitive")
				}
			}
		})
	}
}

func TestVariableErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    LoadOptions
		summary string
		detail  string
	}{
		{"undeclared -var", LoadOptions{Args: []VarArg{{Name: "cont", Value: "1"}}}, "Value for undeclared variable", `Did you mean "count"?`},
		{"bad -var type", LoadOptions{Args: []VarArg{{Name: "count", Value: "lots"}}}, "Invalid value for variable", "-var count=... is not valid for variable \"count\": a number is required"},
		{"bad -var syntax", LoadOptions{Args: []VarArg{{Name: "labels", Value: "{"}}}, "Invalid value for variable", "not a valid expression"},
		{"bad env type", LoadOptions{Environ: []string{"HVCTL_VAR_count=true"}}, "Invalid value for variable", "HVCTL_VAR_count"},
		{"missing var file", LoadOptions{Args: []VarArg{{File: "testdata/nonexistent.hclvars"}}}, "Failed to read file", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Load("testdata/valid/vars.hcl", tt.opts)
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Summary == tt.summary && strings.Contains(d.Detail, tt.detail) {
					return
				}
			}
			t.Errorf("no error %q with %q in %v", tt.summary, tt.detail, diags)
		})
	}
}

func TestVarFileErrors(t *testing.T) {
	dir := t.TempDir()
	vf := filepath.Join(dir, "bad.hclvars")
	if err := os.WriteFile(vf, []byte("count = 1\ncont = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load("testdata/valid/vars.hcl", LoadOptions{Args: []VarArg{{File: vf}}})
	if !diags.HasErrors() {
		t.Fatal("no error")
	}
	d := diags[0]
	if d.Subject == nil || d.Subject.Filename != vf || d.Subject.Start.Line != 2 || !strings.Contains(d.Detail, `Did you mean "count"?`) {
		t.Errorf("got %s", renderDiags(t, cfg.Files, diags))
	}
	// The var file is among the files, so its snippet is printed.
	if !strings.Contains(renderDiags(t, cfg.Files, diags), "2: cont = 2") {
		t.Errorf("no snippet: %s", renderDiags(t, cfg.Files, diags))
	}
}

func TestEvalOutput(t *testing.T) {
	cfg := mustLoad(t, "testdata/valid/spec-example.hcl", LoadOptions{})
	o := cfg.Outputs[0]
	v, diags := EvalOutput(cfg, o, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if v.IsKnown() {
		t.Errorf("without known values the endpoint is %#v, want unknown", v)
	}
	eq(t, "unknown rendering", OutputString(v), "(known after apply)")
	v, diags = EvalOutput(cfg, o, map[string]cty.Value{"cluster.hybrid.overlay.endpoint": cty.StringVal("198.51.100.7:51820")})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eq(t, "known", v, cty.StringVal("198.51.100.7:51820"))
	v, _ = EvalOutput(cfg, o, map[string]cty.Value{"cluster.hybrid.overlay": cty.ObjectVal(map[string]cty.Value{"endpoint": cty.StringVal("x")})})
	eq(t, "known object", v, cty.StringVal("x"))
}

func TestLoadErrorsWithoutSource(t *testing.T) {
	_, diags := Load("testdata/does-not-exist.hcl", LoadOptions{})
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, "does-not-exist.hcl") {
		t.Errorf("got %v", diags)
	}
	_, diags = Load(t.TempDir(), LoadOptions{})
	if !diags.HasErrors() || diags[0].Summary != "No template files" {
		t.Errorf("got %v", diags)
	}
}

// TestAutoVarFiles: hvctl.hvars, then *.auto.hvars (and .json forms) in
// lexical order load by themselves, over the environment and under the
// command line; NoAutoVarFiles skips them.
func TestAutoVarFiles(t *testing.T) {
	src, err := os.ReadFile("testdata/valid/vars.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"main.hcl":            string(src),
		"hvctl.hvars":         "count = 2\nname = \"from-hvctl-hvars\"\n",
		"a.auto.hvars":        "count = 3\n",
		"b.auto.hvars.json":   `{"count": 4}`,
		"ignored.hvars":       "count = 99\n",
		"sub/deep.auto.hvars": "count = 98\n",
	}
	for n, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
		os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
	}
	tmpl := filepath.Join(dir, "main.hcl")
	eq(t, "files", AutoVarFiles(dir), []string{filepath.Join(dir, "hvctl.hvars"), filepath.Join(dir, "a.auto.hvars"), filepath.Join(dir, "b.auto.hvars.json")})
	cases := []struct {
		name  string
		opts  LoadOptions
		count int
		tag   string
	}{
		{"auto files in order", LoadOptions{Environ: []string{"HVCTL_VAR_count=7"}}, 4, "from-hvctl-hvars"},
		{"-var wins", LoadOptions{Args: []VarArg{{Name: "count", Value: "5"}}}, 5, "from-hvctl-hvars"},
		{"skipped", LoadOptions{NoAutoVarFiles: true}, 1, "from-default"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := mustLoad(t, tmpl, c.opts)
			eq(t, "count", cfg.Cluster.Sites[0].Pools[0].Max, c.count)
			eq(t, "name", cfg.Cluster.Tags["name"], c.tag)
		})
	}
}
