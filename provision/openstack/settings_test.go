package openstack_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/openstack"
	"github.com/hvctl/hvctl/templates"
)

func providerBlock(attrs map[string]cty.Value) *templates.Provider {
	decl := hcl.Range{Filename: "main.hcl", Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 30}}
	ranges := map[string]hcl.Range{}
	line := 2
	for name := range attrs {
		ranges[name] = hcl.Range{Filename: "main.hcl", Start: hcl.Pos{Line: line, Column: 3}, End: hcl.Pos{Line: line, Column: 20}}
		line++
	}
	return &templates.Provider{Type: "openstack", Name: "cloud", Attrs: attrs, AttrRanges: ranges, DeclRange: decl}
}

func TestParseSettings(t *testing.T) {
	cases := []struct {
		name    string
		attrs   map[string]cty.Value
		check   func(openstack.Settings) bool
		errPart string // "" = no error; the diagnostic's subject is the (only) attribute
	}{
		{"empty", nil, func(s openstack.Settings) bool { return s == openstack.Settings{} }, ""},
		{"cloud and region", map[string]cty.Value{"cloud": cty.StringVal("c"), "region": cty.StringVal("r")},
			func(s openstack.Settings) bool { return s.Cloud == "c" && s.Region == "r" }, ""},
		{"floating_ip_pool is external_network", map[string]cty.Value{"floating_ip_pool": cty.StringVal("public")},
			func(s openstack.Settings) bool { return s.ExternalNetwork == "public" }, ""},
		{"insecure", map[string]cty.Value{"insecure": cty.True}, func(s openstack.Settings) bool { return s.Insecure }, ""},
		{"bad auth_url", map[string]cty.Value{"auth_url": cty.StringVal("keystone:5000")}, nil, "must be an http:// or https:// URL"},
		{"bad insecure", map[string]cty.Value{"insecure": cty.StringVal("maybe")}, nil, "true or false"},
		{"list image", map[string]cty.Value{"image": cty.ListValEmpty(cty.String)}, nil, "must be a string"},
		{"unknown", map[string]cty.Value{"flavor": cty.UnknownVal(cty.String)}, nil, "must be known"},
		{"typo", map[string]cty.Value{"clod": cty.StringVal("x")}, nil, `Did you mean "cloud"?`},
		{"network_id", map[string]cty.Value{"network_id": cty.StringVal("x")}, nil, "existing_id"},
		{"stop_idle and stopped_price default off and free", nil,
			func(s openstack.Settings) bool { return !s.StopIdle && s.StoppedPrice == 0 }, ""},
		{"stop_idle", map[string]cty.Value{"stop_idle": cty.True}, func(s openstack.Settings) bool { return s.StopIdle }, ""},
		{"stopped_price", map[string]cty.Value{"stopped_price": cty.NumberFloatVal(0.012)},
			func(s openstack.Settings) bool { return s.StoppedPrice == 0.012 }, ""},
		{"stopped_price whole", map[string]cty.Value{"stopped_price": cty.NumberIntVal(2)},
			func(s openstack.Settings) bool { return s.StoppedPrice == 2 }, ""},
		{"stopped_price zero", map[string]cty.Value{"stopped_price": cty.Zero},
			func(s openstack.Settings) bool { return s.StoppedPrice == 0 }, ""},
		{"bad stop_idle", map[string]cty.Value{"stop_idle": cty.StringVal("sometimes")}, nil, `stop_idle = "sometimes": must be true or false`},
		{"list stop_idle", map[string]cty.Value{"stop_idle": cty.ListValEmpty(cty.Bool)}, nil, "stop_idle = a list of bool: must be true or false"},
		{"negative stopped_price", map[string]cty.Value{"stopped_price": cty.NumberFloatVal(-0.5)}, nil, "stopped_price = -0.5: must be the $ per hour"},
		{"string stopped_price", map[string]cty.Value{"stopped_price": cty.StringVal("cheap")}, nil, `stopped_price = "cheap": must be the $ per hour`},
		{"unknown stopped_price", map[string]cty.Value{"stopped_price": cty.UnknownVal(cty.Number)}, nil, "stopped_price must be known"},
		{"typo stop_idle", map[string]cty.Value{"stop_idel": cty.True}, nil, `Did you mean "stop_idle"?`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := providerBlock(c.attrs)
			s, diags := openstack.ParseSettings(cfg)
			if c.errPart == "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected diagnostics: %v", diags)
				}
				if !c.check(s) {
					t.Errorf("settings = %+v", s)
				}
				return
			}
			if len(diags) != 1 || !strings.Contains(diags[0].Detail, c.errPart) {
				t.Fatalf("diagnostics = %v, want one containing %q", diags, c.errPart)
			}
			for name := range c.attrs {
				if want := cfg.AttrRanges[name]; *diags[0].Subject != want {
					t.Errorf("Subject = %v, want the argument's range %v", diags[0].Subject, want)
				}
			}
		})
	}
}

// TestCredentials: the clouds.yaml entry must exist at plan time; a
// missing one is a diagnostic at `cloud` that says where clouds.yaml was
// looked for and which entries it has.
func TestCredentials(t *testing.T) {
	fake := newCloud(t)
	cloudsPath := os.Getenv("OS_CLIENT_CONFIG_FILE")
	env := &provision.Env{StateDir: t.TempDir(), Cluster: "c"}
	cases := []struct {
		name    string
		attrs   map[string]cty.Value
		env     map[string]string
		summary string
		parts   []string
		atCloud bool
	}{
		{name: "entry found", attrs: map[string]cty.Value{"cloud": cty.StringVal("fake")}},
		{name: "OS_CLOUD", env: map[string]string{"OS_CLOUD": "fake"}},
		{name: "missing entry", attrs: map[string]cty.Value{"cloud": cty.StringVal("prod")},
			summary: "OpenStack cloud not found", parts: []string{`cloud = "prod"`, cloudsPath, "Entries: fake"}, atCloud: true},
		{name: "no clouds.yaml", attrs: map[string]cty.Value{"cloud": cty.StringVal("fake")},
			env:     map[string]string{"OS_CLIENT_CONFIG_FILE": filepath.Join(t.TempDir(), "nowhere.yaml")},
			summary: "No clouds.yaml found", parts: []string{"nowhere.yaml", "OS_CLIENT_CONFIG_FILE"}, atCloud: true},
		{name: "OS_* variables", env: map[string]string{"OS_AUTH_URL": fake.AuthURL(), "OS_USERNAME": "u", "OS_PASSWORD": "SECRET-PW",
			"OS_PROJECT_NAME": "p", "OS_USER_DOMAIN_NAME": "Default"}},
		{name: "nothing", summary: "No OpenStack credentials", parts: []string{"clouds.yaml", "OS_AUTH_URL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg := providerBlock(c.attrs)
			f, ok := provision.Lookup("openstack")
			if !ok {
				t.Fatal("openstack is not registered")
			}
			p, diags := f(cfg, env)
			if c.summary == "" {
				if diags.HasErrors() || p == nil {
					t.Fatalf("diagnostics: %v", diags)
				}
				return
			}
			if len(diags) != 1 || diags[0].Summary != c.summary {
				t.Fatalf("diagnostics = %v, want %q", diags, c.summary)
			}
			for _, part := range c.parts {
				if !strings.Contains(diags[0].Detail, part) {
					t.Errorf("detail %q lacks %q", diags[0].Detail, part)
				}
			}
			want := cfg.DeclRange
			if c.atCloud {
				if r, ok := cfg.AttrRanges["cloud"]; ok {
					want = r
				}
			}
			if *diags[0].Subject != want {
				t.Errorf("subject = %v, want %v", diags[0].Subject, want)
			}
			noSecrets(t, "diagnostic", diags[0].Detail)
		})
	}
}
