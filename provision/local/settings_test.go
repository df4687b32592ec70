package local

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

func providerBlock(attrs map[string]cty.Value) *templates.Provider {
	decl := hcl.Range{Filename: "main.hcl", Start: hcl.Pos{Line: 3, Column: 1}, End: hcl.Pos{Line: 3, Column: 20}}
	ranges := map[string]hcl.Range{}
	line := 4
	for name := range attrs {
		ranges[name] = hcl.Range{Filename: "main.hcl", Start: hcl.Pos{Line: line, Column: 3}, End: hcl.Pos{Line: line, Column: 20}}
		line++
	}
	return &templates.Provider{Type: "local", Name: "lab", Attrs: attrs, AttrRanges: ranges, DeclRange: decl}
}

func TestParseSettings(t *testing.T) {
	cases := []struct {
		name    string
		attrs   map[string]cty.Value
		want    time.Duration
		errPart string // "" = no error
		rate    float64
	}{
		{"empty", nil, 0, "", 0},
		{"boot_time", map[string]cty.Value{"boot_time": cty.StringVal("5s")}, 5 * time.Second, "", 0},
		{"null", map[string]cty.Value{"boot_time": cty.NullVal(cty.String)}, 0, "", 0},
		{"bad duration", map[string]cty.Value{"boot_time": cty.StringVal("soon")}, 0, `must be a duration`, 0},
		{"number", map[string]cty.Value{"boot_time": cty.NumberIntVal(5)}, 0, `must be a duration`, 0},
		{"negative", map[string]cty.Value{"boot_time": cty.StringVal("-1s")}, 0, "must not be negative", 0},
		{"unknown", map[string]cty.Value{"boot_time": cty.UnknownVal(cty.String)}, 0, "must be known", 0},
		{"typo", map[string]cty.Value{"boot_tme": cty.StringVal("1s")}, 0, `Did you mean "boot_time"?`, 0},
		{"boot_fail_rate", map[string]cty.Value{"boot_fail_rate": cty.NumberFloatVal(0.25)}, 0, "", 0.25},
		{"boot_fail_rate string", map[string]cty.Value{"boot_fail_rate": cty.StringVal("0.5")}, 0, "", 0.5},
		{"boot_fail_rate above 1", map[string]cty.Value{"boot_fail_rate": cty.NumberFloatVal(1.5)}, 0, "must be a probability", 0},
		{"boot_fail_rate negative", map[string]cty.Value{"boot_fail_rate": cty.NumberFloatVal(-0.1)}, 0, "must be a probability", 0},
		{"boot_fail_rate words", map[string]cty.Value{"boot_fail_rate": cty.StringVal("often")}, 0, "must be a probability", 0},
		{"sim setting", map[string]cty.Value{"api_rate": cty.NumberIntVal(1)}, 0, `no argument "api_rate"`, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := providerBlock(c.attrs)
			s, diags := ParseSettings(cfg)
			if c.errPart == "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected diagnostics: %v", diags)
				}
				if s.BootTime != c.want {
					t.Errorf("BootTime = %v, want %v", s.BootTime, c.want)
				}
				if s.BootFailRate != c.rate {
					t.Errorf("BootFailRate = %v, want %v", s.BootFailRate, c.rate)
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

// TestNonRoot: without privileges New refuses with a diagnostic on the
// provider block that names the sim provider.
func TestNonRoot(t *testing.T) {
	saved := checkPrivileges
	t.Cleanup(func() { checkPrivileges = saved })
	checkPrivileges = func() error { return errors.New("running as uid 1000 without CAP_NET_ADMIN and CAP_SYS_ADMIN") }
	cfg := providerBlock(map[string]cty.Value{"boot_time": cty.StringVal("1s")})
	p, diags := New(cfg, &provision.Env{StateDir: t.TempDir(), Cluster: "c"})
	if p != nil || !diags.HasErrors() {
		t.Fatalf("New without privileges = %v, %v; want an error", p, diags)
	}
	d := diags[0]
	for _, part := range []string{"root", "CAP_NET_ADMIN", `provider = "sim"`} {
		if !strings.Contains(d.Summary+" "+d.Detail, part) {
			t.Errorf("diagnostic %q / %q does not mention %s", d.Summary, d.Detail, part)
		}
	}
	if d.Subject == nil || *d.Subject != cfg.DeclRange {
		t.Errorf("Subject = %v, want the provider block %v", d.Subject, cfg.DeclRange)
	}
	// The registered factory is this one.
	f, ok := provision.Lookup("local")
	if !ok {
		t.Fatal(`provider "local" is not registered`)
	}
	if _, diags := f(cfg, &provision.Env{StateDir: t.TempDir()}); !diags.HasErrors() {
		t.Errorf("registered factory accepted an unprivileged process")
	}
}

func TestMissingTools(t *testing.T) {
	savedP, savedL := checkPrivileges, lookPath
	t.Cleanup(func() { checkPrivileges, lookPath = savedP, savedL })
	checkPrivileges = func() error { return nil }
	lookPath = func(bin string) (string, error) {
		if bin == "nft" {
			return "", errors.New("not found")
		}
		return "/usr/sbin/" + bin, nil
	}
	_, diags := New(providerBlock(nil), &provision.Env{StateDir: t.TempDir()})
	if len(diags) != 1 || !strings.Contains(diags[0].Detail, "apt-get install nftables") {
		t.Errorf("diagnostics = %v, want one naming the nftables package", diags)
	}
}

func TestNames(t *testing.T) {
	cases := []struct{ cluster, site, node, want string }{
		{"demo", "onprem", "w1", "hv-demo-onprem-w1"},
		{"demo", "cloud.zone-a", "burst-0", "hv-demo-cloud.zone-a-burst-0"},
		{"de mo/x", "a", "b", "hv-de_mo_x-a-b"},
	}
	for _, c := range cases {
		if got := netnsName(c.cluster, c.site, c.node); got != c.want {
			t.Errorf("netnsName(%q, %q, %q) = %q, want %q", c.cluster, c.site, c.node, got, c.want)
		}
	}
	long := netnsName(strings.Repeat("c", 300), "s", "n")
	if len(long) > maxNetnsName || netnsName(strings.Repeat("c", 300), "s", "m") == long {
		t.Errorf("long names: %d characters, or not distinct", len(long))
	}
	if l := linkName("0123abcd", sufPublic); len(l) > 15 {
		t.Errorf("link name %q is longer than 15", l)
	}
}

func TestAllocHost(t *testing.T) {
	p := netip.MustParsePrefix("10.0.0.0/29") // hosts .1-.6
	used := map[netip.Addr]bool{}
	next := 0
	var got []string
	for range 5 {
		a, ok := allocHost(p, 2, &next, used)
		if !ok {
			t.Fatal("ran out early")
		}
		used[a] = true
		got = append(got, a.String())
	}
	if want := "10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6"; strings.Join(got, " ") != want {
		t.Errorf("allocations = %v, want %s", got, want)
	}
	if _, ok := allocHost(p, 2, &next, used); ok {
		t.Errorf("allocated from a full network")
	}
	// Freed .3 is taken again only after wrapping: sequential, never a
	// live one.
	delete(used, netip.MustParseAddr("10.0.0.3"))
	if a, _ := allocHost(p, 2, &next, used); a.String() != "10.0.0.3" {
		t.Errorf("after wrap = %v, want 10.0.0.3", a)
	}
}

// outside_interfaces: names are checked at their argument, and at plan
// time each must be an interface of this machine.
func TestOutsideInterfaces(t *testing.T) {
	list := func(names ...string) cty.Value {
		var vs []cty.Value
		for _, n := range names {
			vs = append(vs, cty.StringVal(n))
		}
		if len(vs) == 0 {
			return cty.ListValEmpty(cty.String)
		}
		return cty.ListVal(vs)
	}
	cases := []struct {
		name    string
		value   cty.Value
		want    []string
		errPart string // at parse time
		missing string // at New: the interface it says is missing
	}{
		{name: "lo is not a network", value: list("lo"), errPart: "loopback"},
		{name: "empty list", value: list(), want: nil},
		{name: "not a name", value: list("br/lab"), errPart: `"br/lab" is not an interface name`},
		{name: "too long", value: list("a-very-long-bridge"), errPart: "1 to 15 characters"},
		{name: "empty name", value: list(""), errPart: "is not an interface name"},
		{name: "hvctl's own", value: list("hv0123abcdb"), errPart: "hvctl's own links"},
		{name: "twice", value: list("brx", "brx"), errPart: "listed twice"},
		{name: "a string", value: cty.StringVal("br-lab"), errPart: `must be a list of interface names`},
		{name: "a number", value: cty.NumberIntVal(3), errPart: `must be a list of interface names`},
		{name: "missing interface", value: list("nosuch-if0"), want: []string{"nosuch-if0"}, missing: "nosuch-if0"},
	}
	savedP := checkPrivileges
	t.Cleanup(func() { checkPrivileges = savedP })
	checkPrivileges = func() error { return nil }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := providerBlock(map[string]cty.Value{"outside_interfaces": c.value})
			s, diags := ParseSettings(cfg)
			if c.errPart != "" {
				if len(diags) != 1 || !strings.Contains(diags[0].Detail, c.errPart) {
					t.Fatalf("diagnostics = %v, want one containing %q", diags, c.errPart)
				}
				if *diags[0].Subject != cfg.AttrRanges["outside_interfaces"] {
					t.Errorf("Subject = %v, want the argument's range", diags[0].Subject)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if strings.Join(s.OutsideInterfaces, ",") != strings.Join(c.want, ",") {
				t.Errorf("OutsideInterfaces = %q, want %q", s.OutsideInterfaces, c.want)
			}
			_, diags = New(cfg, &provision.Env{StateDir: t.TempDir()})
			if c.missing == "" {
				if diags.HasErrors() {
					t.Errorf("New: %v", diags)
				}
				return
			}
			if len(diags) != 1 || !strings.Contains(diags[0].Detail, `"`+c.missing+`"`) || *diags[0].Subject != cfg.AttrRanges["outside_interfaces"] {
				t.Errorf("New: diagnostics = %v, want one at outside_interfaces naming %s", diags, c.missing)
			}
		})
	}
	// An interface that exists (lo is refused by name; every machine
	// has it, so the existence check is tested with its check alone).
	if d := checkOutsideExist(providerBlock(nil), Settings{OutsideInterfaces: []string{"lo"}}); d.HasErrors() {
		t.Errorf("lo exists, yet: %v", d)
	}
}

// An outside interface is recorded once per internet with its
// forwarding as it was, refused for a second cluster of the world, and
// the internet's table passes it (and keeps a forwarding hvctl turned
// on to the internet bridge alone).
func TestOutsideRecord(t *testing.T) {
	a := &internet{Cluster: "a", Bridge: "hv0000000ab", Table: "hvctl_a"}
	b := &internet{Cluster: "b", Bridge: "hv0000000bb", Table: "hvctl_b"}
	w := &world{Header: header{Internets: []*internet{a, b}}}
	if err := addOutside(w, a, []string{"lo"}); err != nil {
		t.Fatal(err)
	}
	if err := addOutside(w, a, []string{"lo"}); err != nil || len(a.Outside) != 1 {
		t.Fatalf("again: %v, %d outside", err, len(a.Outside))
	}
	fwd, err := readForwarding("lo")
	if err != nil || a.Outside[0].Forwarding != fwd {
		t.Errorf("recorded forwarding %q, the interface has %q (%v)", a.Outside[0].Forwarding, fwd, err)
	}
	if err := addOutside(w, b, []string{"lo"}); err == nil || !strings.Contains(err.Error(), "cluster a") {
		t.Errorf("a second cluster on lo: %v, want an error naming cluster a", err)
	}
	if err := addOutside(w, b, []string{"nosuch-if0"}); err == nil || !strings.Contains(err.Error(), "no interface nosuch-if0") {
		t.Errorf("a missing interface: %v", err)
	}
	cases := []struct {
		forwarding string
		want       []string
		wantNone   string
	}{
		{"0", []string{`iifname "hv0000000ab" oifname != { "hv0000000ab", "lo" } counter drop`,
			`oifname "hv0000000ab" iifname != { "hv0000000ab", "lo" } counter drop`,
			`iifname "lo" oifname != { "lo", "hv0000000ab" } counter drop`}, ""},
		{"1", []string{`iifname "hv0000000ab" oifname != { "hv0000000ab", "lo" } counter drop`}, `iifname "lo"`},
	}
	for _, c := range cases {
		a.Outside[0].Forwarding = c.forwarding
		script := isolateScript(a)
		for _, w := range c.want {
			if !strings.Contains(script, w) {
				t.Errorf("forwarding %s: the table lacks %q:\n%s", c.forwarding, w, script)
			}
		}
		if c.wantNone != "" && strings.Contains(script, c.wantNone) {
			t.Errorf("forwarding %s: the table limits an interface that forwarded already:\n%s", c.forwarding, script)
		}
		// nft accepts it (check mode: nothing is changed).
		if os.Geteuid() == 0 {
			cmd := exec.Command("nft", "-c", "-f", "-")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("forwarding %s: nft -c refuses the table: %v\n%s\n%s", c.forwarding, err, out, script)
			}
		}
	}
}

// stop_idle: a bool, off by default; a bad value is an error at the
// argument that names it.
func TestParseStopIdle(t *testing.T) {
	cases := []struct {
		name    string
		attrs   map[string]cty.Value
		want    bool
		errPart string // "" = no error
	}{
		{"default", nil, false, ""},
		{"true", map[string]cty.Value{"stop_idle": cty.True}, true, ""},
		{"false", map[string]cty.Value{"stop_idle": cty.False}, false, ""},
		{"null", map[string]cty.Value{"stop_idle": cty.NullVal(cty.Bool)}, false, ""},
		{"string true", map[string]cty.Value{"stop_idle": cty.StringVal("true")}, true, ""},
		{"word", map[string]cty.Value{"stop_idle": cty.StringVal("yes")}, false, `stop_idle = "yes": must be true or false`},
		{"number", map[string]cty.Value{"stop_idle": cty.NumberIntVal(1)}, false, "stop_idle = 1: must be true or false"},
		{"list", map[string]cty.Value{"stop_idle": cty.ListVal([]cty.Value{cty.True})}, false, "stop_idle = a list of bool: must be true or false"},
		{"unknown", map[string]cty.Value{"stop_idle": cty.UnknownVal(cty.Bool)}, false, "stop_idle must be known"},
		{"typo", map[string]cty.Value{"stop_idel": cty.True}, false, `Did you mean "stop_idle"?`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := providerBlock(c.attrs)
			s, diags := ParseSettings(cfg)
			if c.errPart == "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected diagnostics: %v", diags)
				}
				if s.StopIdle != c.want {
					t.Errorf("StopIdle = %v, want %v", s.StopIdle, c.want)
				}
				return
			}
			if len(diags) != 1 || !strings.Contains(diags[0].Detail, c.errPart) {
				t.Fatalf("diagnostics = %v, want one containing %q", diags, c.errPart)
			}
			for name := range c.attrs {
				if want := cfg.AttrRanges[name]; diags[0].Subject == nil || *diags[0].Subject != want {
					t.Errorf("Subject = %v, want the argument's range %v", diags[0].Subject, want)
				}
			}
		})
	}
}

// TestTemplateAcceptsSettings: a template's local provider block takes
// every setting ParseSettings knows (the template loader has its own
// list of each provider type's arguments).
func TestTemplateAcceptsSettings(t *testing.T) {
	src := `
provider "local" "lab" {
  boot_time          = "2s"
  boot_fail_rate     = 0.5
  outside_interfaces = ["lo0x"]
  stop_idle          = true
}

cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["a.n"]
  }
  site "a" {
    provider = provider.local.lab
    network { cidr = "192.168.10.0/24" }
    node "n" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
  }
}
`
	cfg, diags := templates.LoadSource(map[string][]byte{"main.hcl": []byte(src)}, t.TempDir(), templates.LoadOptions{})
	if diags.HasErrors() {
		t.Fatalf("template: %v", diags)
	}
	var pc *templates.Provider
	for _, p := range cfg.Providers {
		if p.Type == "local" && p.Name == "lab" {
			pc = p
		}
	}
	if pc == nil {
		t.Fatalf("no provider local.lab in %+v", cfg.Providers)
	}
	s, diags := ParseSettings(pc)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if s.BootTime != 2*time.Second || s.BootFailRate != 0.5 || len(s.OutsideInterfaces) != 1 || !s.StopIdle {
		t.Errorf("settings = %+v, want every one set", s)
	}
}
