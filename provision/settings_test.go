package provision

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/templates"
)

// block is a provider block with attrs, each on its own line.
func block(attrs map[string]cty.Value) *templates.Provider {
	cfg := &templates.Provider{Type: "t", Name: "x", Attrs: attrs, AttrRanges: map[string]hcl.Range{},
		DeclRange: hcl.Range{Filename: "t.hcl", Start: hcl.Pos{Line: 1, Column: 1}}}
	line := 2
	for _, n := range sortedKeys(attrs) {
		cfg.AttrRanges[n] = hcl.Range{Filename: "t.hcl", Start: hcl.Pos{Line: line, Column: 3}}
		line++
	}
	return cfg
}

type decoded struct {
	Name    string
	Port    int
	Rate    float64
	On      bool
	Wait    time.Duration
	Hosts   []string
	Tags    map[string]string
	Key     string
	Refused string
}

func testSchema(d *decoded) *Schema {
	return &Schema{Provider: "t", Settings: []Setting{
		{Name: "name", Into: &d.Name, Valid: NonEmpty, Must: "must be a non-empty string"},
		{Name: "port", Into: &d.Port, Valid: Between(1, 65535), Must: "must be a port number from 1 to 65535"},
		{Name: "rate", Into: &d.Rate, Must: "must be a number"},
		{Name: "on", Into: &d.On, Must: "must be true or false"},
		{Name: "wait", Into: &d.Wait, Must: `must be a duration like "2s"`},
		{Name: "hosts", Into: &d.Hosts, Must: "must be a list of strings"},
		{Name: "tags", Into: &d.Tags, Must: "must be a map of strings", Check: func(v any) string {
			if _, ok := v.(map[string]string)["bad"]; ok {
				return `tags: the key "bad" is reserved.`
			}
			return ""
		}},
		{Name: "key", Into: &d.Key, Secret: true, Valid: NonEmpty, Must: "must be a non-empty string"},
		{Name: "old", Into: &d.Refused, Refused: "old is gone; use name."},
	}, Hint: func(n string) string {
		if n == "network" {
			return "Networks are set on the site."
		}
		return ""
	}}
}

func TestSchemaDecode(t *testing.T) {
	list := cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")})
	var got decoded
	diags := testSchema(&got).Decode(block(map[string]cty.Value{
		"name": cty.StringVal("n"), "port": cty.StringVal("2222"), "rate": cty.NumberFloatVal(0.5), "on": cty.True,
		"wait": cty.StringVal("3s"), "hosts": list, "tags": cty.MapVal(map[string]cty.Value{"k": cty.StringVal("v")}),
		"key": cty.StringVal("K"), "nothing": cty.NullVal(cty.String),
	}))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := decoded{Name: "n", Port: 2222, Rate: 0.5, On: true, Wait: 3 * time.Second, Hosts: []string{"a", "b"}, Tags: map[string]string{"k": "v"}, Key: "K"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSchemaErrors(t *testing.T) {
	tests := []struct {
		name, attr string
		val        cty.Value
		summary    string
		detail     string
	}{
		{"empty string", "name", cty.StringVal(""), "Invalid name", `name = "": must be a non-empty string.`},
		{"port range", "port", cty.NumberIntVal(70000), "Invalid port", "port = 70000: must be a port number from 1 to 65535."},
		{"port fraction", "port", cty.NumberFloatVal(22.5), "Invalid port", "must be a port number"},
		{"port word", "port", cty.StringVal("ssh"), "Invalid port", `port = "ssh": must be a port number`},
		{"bool word", "on", cty.StringVal("maybe"), "Invalid on", "must be true or false"},
		{"duration", "wait", cty.StringVal("soon"), "Invalid wait", `must be a duration like "2s"`},
		{"negative duration", "wait", cty.StringVal("-1s"), "Invalid wait", "must not be negative"},
		{"list of a string", "hosts", cty.StringVal("a"), "Invalid hosts", `hosts = "a": must be a list of strings.`},
		{"string of a list", "name", cty.ListValEmpty(cty.String), "Invalid name", "name = a list of string"},
		{"check", "tags", cty.MapVal(map[string]cty.Value{"bad": cty.StringVal("v")}), "Invalid tags", `the key "bad" is reserved`},
		{"unknown", "name", cty.UnknownVal(cty.String), "Invalid name", "must be known when the provider is configured"},
		{"refused", "old", cty.StringVal("x"), "Unsupported argument", "old is gone"},
		{"misspelt", "prot", cty.NumberIntVal(1), "Unsupported argument", `The t provider has no argument "prot". Did you mean "port"?`},
		{"hint", "network", cty.StringVal("x"), "Unsupported argument", "Networks are set on the site."},
		{"secret not echoed", "key", cty.StringVal(""), "Invalid key", "key must be a non-empty string."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d decoded
			cfg := block(map[string]cty.Value{tt.attr: tt.val, "rate": cty.NumberIntVal(1)})
			diags := testSchema(&d).Decode(cfg)
			if len(diags) != 1 {
				t.Fatalf("got %d diagnostics, want 1: %v", len(diags), diags)
			}
			if diags[0].Summary != tt.summary || !strings.Contains(diags[0].Detail, tt.detail) {
				t.Errorf("got %q / %q, want %q / …%s…", diags[0].Summary, diags[0].Detail, tt.summary, tt.detail)
			}
			if want := cfg.AttrRanges[tt.attr]; diags[0].Subject == nil || *diags[0].Subject != want {
				t.Errorf("subject %v, want %v", diags[0].Subject, want)
			}
			if d.Rate != 1 {
				t.Errorf("the good neighbour was not decoded: rate = %v", d.Rate)
			}
		})
	}
}

func TestIsSecret(t *testing.T) {
	for name, want := range map[string]bool{
		"join_token": true, "cluster_secret": true, "tls_key": true, "user_data": true, "private_key": true,
		"secret_key": true, "password": true, "wg_private_key": true, "elastic_token": true, "passphrase": true,
		"private_ip": false, "public_address": false, "wg_public_key": false, "key_name": false, "name": false, "host": false,
	} {
		if got := IsSecret(name); got != want {
			t.Errorf("IsSecret(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzSchemaDecode: whatever a provider block holds, Decode does not
// panic, every diagnostic is located, and a secret setting's value is
// never in a diagnostic.
func FuzzSchemaDecode(f *testing.F) {
	f.Add("name", "n", 22.0, "3s", "K-SECRET", true)
	f.Add("prot", "", -1.5, "soon", "", false)
	f.Add("hosts", "a", 1e300, "-1s", "x\x00y", true)
	f.Fuzz(func(t *testing.T, name, str string, num float64, dur, secret string, b bool) {
		attrs := map[string]cty.Value{
			name: cty.StringVal(str), "port": cty.NumberFloatVal(num), "wait": cty.StringVal(dur),
			"key": cty.StringVal("K-" + secret), "on": cty.BoolVal(b),
		}
		if name == "" {
			delete(attrs, name)
		}
		if num != num || num > 1e308 || num < -1e308 { // NaN and infinities are not HCL numbers
			delete(attrs, "port")
		}
		var d decoded
		diags := testSchema(&d).Decode(block(attrs))
		for _, dg := range diags {
			if dg.Subject == nil {
				t.Errorf("diagnostic without a subject: %s: %s", dg.Summary, dg.Detail)
			}
			if len(secret) >= 4 && strings.Contains(dg.Detail, "K-"+secret) {
				t.Errorf("secret in a diagnostic: %s", dg.Detail)
			}
		}
	})
}
