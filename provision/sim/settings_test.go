package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
)

func TestRegistered(t *testing.T) {
	f, ok := provision.Lookup("sim")
	if !ok {
		t.Fatal(`provision.Lookup("sim") found nothing`)
	}
	p, diags := f(simConfig(map[string]cty.Value{"api_rate": cty.NumberIntVal(7)}), &provision.Env{StateDir: t.TempDir()})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := p.Limits(); got != (provision.Limits{APIRate: 7, Burst: 7}) {
		t.Errorf("Limits() = %+v, want {7 7}", got)
	}
}

func TestSettings(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		want  Settings // Seed is not compared unless wantSeed
		seed  bool
	}{
		{"defaults", nil, Settings{Capacity: Unlimited}, false},
		{"all", map[string]cty.Value{
			"boot_time": cty.StringVal("2s"), "api_rate": cty.NumberFloatVal(2.5),
			"fail_rate": cty.NumberFloatVal(0.1), "capacity": cty.NumberIntVal(3),
			"boot_fail_rate": cty.NumberFloatVal(0.25), "seed": cty.NumberIntVal(42),
		}, Settings{BootTime: 2 * time.Second, APIRate: 2.5, FailRate: 0.1, Capacity: 3, BootFailRate: 0.25, Seed: 42}, true},
		{"stopping", map[string]cty.Value{"start_time": cty.StringVal("1m"), "stopped_price": cty.NumberFloatVal(0.00088)},
			Settings{Capacity: Unlimited, StartTime: time.Minute, StoppedPrice: 0.00088}, false},
		{"capacity zero", map[string]cty.Value{"capacity": cty.NumberIntVal(0)}, Settings{Capacity: 0}, false},
		{"numbers as strings", map[string]cty.Value{"api_rate": cty.StringVal("10"), "fail_rate": cty.StringVal("0.5")},
			Settings{APIRate: 10, FailRate: 0.5, Capacity: Unlimited}, false},
		{"null is default", map[string]cty.Value{"boot_time": cty.NullVal(cty.String)}, Settings{Capacity: Unlimited}, false},
		{"world absolute", map[string]cty.Value{"world": cty.StringVal("/srv/sim-world")}, Settings{Capacity: Unlimited, World: "/srv/sim-world"}, false},
		{"world relative to the file", map[string]cty.Value{"world": cty.StringVal("../shared")}, Settings{Capacity: Unlimited, World: "/t/shared"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := simConfig(tt.attrs)
			cfg.DeclRange.Filename = "/t/a/main.hcl"
			got, diags := ParseSettings(cfg, &provision.Env{Cluster: "c"})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if !tt.seed {
				got.Seed = 0
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDefaultSeedIsStable(t *testing.T) {
	a, _ := ParseSettings(simConfig(nil), &provision.Env{Cluster: "c1"})
	b, _ := ParseSettings(simConfig(nil), &provision.Env{Cluster: "c1"})
	c, _ := ParseSettings(simConfig(nil), &provision.Env{Cluster: "c2"})
	if a.Seed != b.Seed || a.Seed == c.Seed {
		t.Errorf("seeds c1=%d c1=%d c2=%d: want equal for the same cluster, different otherwise", a.Seed, b.Seed, c.Seed)
	}
}

func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		name    string
		attr    string
		val     cty.Value
		summary string
		detail  string
	}{
		{"boot_time words", "boot_time", cty.StringVal("2 seconds"), "Invalid boot_time", `must be a duration like "2s"`},
		{"boot_time number", "boot_time", cty.NumberIntVal(2), "Invalid boot_time", `must be a duration like "2s"`},
		{"boot_time negative", "boot_time", cty.StringVal("-1s"), "Invalid boot_time", "must not be negative"},
		{"boot_time list", "boot_time", cty.ListVal([]cty.Value{cty.StringVal("1s")}), "Invalid boot_time", "a list of string"},
		{"start_time words", "start_time", cty.StringVal("a minute"), "Invalid start_time", `must be a duration like "1m"`},
		{"start_time negative", "start_time", cty.StringVal("-1m"), "Invalid start_time", "must not be negative"},
		{"stopped_price negative", "stopped_price", cty.NumberFloatVal(-0.1), "Invalid stopped_price", "price per hour"},
		{"stopped_price word", "stopped_price", cty.StringVal("cheap"), "Invalid stopped_price", "price per hour"},
		{"api_rate negative", "api_rate", cty.NumberIntVal(-1), "Invalid api_rate", "calls per second"},
		{"api_rate word", "api_rate", cty.StringVal("fast"), "Invalid api_rate", "calls per second"},
		{"fail_rate above 1", "fail_rate", cty.NumberFloatVal(1.5), "Invalid fail_rate", "between 0 and 1"},
		{"boot_fail_rate negative", "boot_fail_rate", cty.NumberFloatVal(-0.1), "Invalid boot_fail_rate", "between 0 and 1"},
		{"capacity fraction", "capacity", cty.NumberFloatVal(2.5), "Invalid capacity", "whole number"},
		{"capacity negative", "capacity", cty.NumberIntVal(-2), "Invalid capacity", "whole number"},
		{"seed fraction", "seed", cty.NumberFloatVal(0.5), "Invalid seed", "whole number"},
		{"seed unknown", "seed", cty.UnknownVal(cty.Number), "Invalid seed", "must be known"},
		{"world empty", "world", cty.StringVal(" "), "Invalid world", "directory for the sim world"},
		{"world number", "world", cty.ListVal([]cty.Value{cty.StringVal("a")}), "Invalid world", "directory for the sim world"},
		{"misspelt", "boot_tme", cty.StringVal("1s"), "Unsupported argument", `Did you mean "boot_time"?`},
		{"unknown", "region", cty.StringVal("x"), "Unsupported argument", `no argument "region"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid neighbour checks that only the bad one is reported.
			attrs := map[string]cty.Value{tt.attr: tt.val, "zz_ok": cty.NullVal(cty.String)}
			cfg := simConfig(attrs)
			_, diags := ParseSettings(cfg, &provision.Env{})
			if len(diags) != 1 {
				t.Fatalf("got %d diagnostics, want 1: %v", len(diags), diags)
			}
			d := diags[0]
			if d.Severity != hcl.DiagError || d.Summary != tt.summary || !strings.Contains(d.Detail, tt.detail) {
				t.Errorf("got %q / %q, want %q containing %q", d.Summary, d.Detail, tt.summary, tt.detail)
			}
			if d.Subject == nil || *d.Subject != cfg.AttrRanges[tt.attr] {
				t.Errorf("Subject = %v, want %v", d.Subject, cfg.AttrRanges[tt.attr])
			}
			if _, diags := New(cfg, &provision.Env{}); !diags.HasErrors() {
				t.Error("New accepted the bad setting")
			}
		})
	}
}
