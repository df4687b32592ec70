package static

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
)

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id")
	os.WriteFile(keyFile, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600)
	s, diags := ParseSettings(providerBlock(map[string]cty.Value{"private_key": cty.StringVal(keyFile), "port": cty.StringVal("2222"),
		"become": cty.StringVal("sudo"), "install_dir": cty.StringVal("/opt/hvctl/"), "user": cty.StringVal("hv")}))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if s.Port != 2222 || s.Become != "sudo" || s.InstallDir != "/opt/hvctl" || s.User != "hv" || !strings.HasPrefix(string(s.PrivateKey), "-----BEGIN") {
		t.Errorf("settings %+v", s)
	}
	d, diags := ParseSettings(providerBlock(nil))
	if diags.HasErrors() || d.User != "root" || d.Port != 22 || d.InstallDir != DefaultInstallDir || !strings.HasSuffix(d.KnownHosts, ".ssh/known_hosts") {
		t.Errorf("defaults %+v, %v", d, diags)
	}
}

func TestSettingsErrors(t *testing.T) {
	const secretish = "not-a-key-MUST-NOT-ECHO"
	cases := []struct {
		name, attr string
		val        cty.Value
		summary    string
		detail     string
	}{
		{"port", "port", cty.NumberIntVal(0), "Invalid port", "must be a TCP port from 1 to 65535"},
		{"become", "become", cty.StringVal("doas"), "Invalid become", `must be "sudo"`},
		{"install_dir relative", "install_dir", cty.StringVal("hvctl"), "Invalid install_dir", "absolute"},
		{"install_dir root", "install_dir", cty.StringVal("/"), "Invalid install_dir", "absolute"},
		{"install_dir with a space", "install_dir", cty.StringVal("/opt/hv ctl"), "Invalid install_dir", "systemd unit"},
		{"install_dir with a specifier", "install_dir", cty.StringVal("/opt/hv%h"), "Invalid install_dir", "without spaces"},
		{"private_key neither", "private_key", cty.StringVal(secretish), "Cannot read private_key", "neither a key"},
		{"misspelt", "knwon_hosts", cty.StringVal("x"), "Unsupported argument", `Did you mean "known_hosts"?`},
		{"old name", "ssh_key", cty.StringVal("x"), "Unsupported argument", `no argument "ssh_key"`},
		{"jump_host with a user", "jump_host", cty.StringVal("me@bastion"), "Invalid jump_host", "host or host:port"},
		{"timeout", "connect_timeout", cty.StringVal("0s"), "Invalid connect_timeout", "positive duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := providerBlock(map[string]cty.Value{c.attr: c.val})
			_, diags := ParseSettings(cfg)
			if len(diags) != 1 || diags[0].Summary != c.summary || !strings.Contains(diags[0].Detail, c.detail) {
				t.Fatalf("diagnostics %v, want one %q containing %q", diags, c.summary, c.detail)
			}
			if *diags[0].Subject != cfg.AttrRanges[c.attr] {
				t.Errorf("subject %v, want %v", diags[0].Subject, cfg.AttrRanges[c.attr])
			}
			if strings.Contains(diags.Error(), secretish) {
				t.Errorf("the private_key value is echoed: %v", diags)
			}
		})
	}
}

// TestFactoryChecks: without known_hosts (and no insecure_accept_new),
// or without a key or an agent, New refuses before connecting anywhere.
func TestFactoryChecks(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	bin := filepath.Join(dir, "agent")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	cases := []struct {
		name    string
		attrs   map[string]cty.Value
		summary string
	}{
		{"no known_hosts", map[string]cty.Value{"known_hosts": cty.StringVal(kh), "agent_binary": cty.StringVal(bin)}, "No known_hosts file"},
		{"no key, no agent", map[string]cty.Value{"known_hosts": cty.StringVal(kh), "insecure_accept_new": cty.True, "agent_binary": cty.StringVal(bin)}, "No SSH key"},
		{"missing binary", map[string]cty.Value{"known_hosts": cty.StringVal(kh), "insecure_accept_new": cty.True, "agent_binary": cty.StringVal(kh + ".nope")}, "Invalid agent_binary"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, diags := New(providerBlock(c.attrs), &provision.Env{StateDir: dir})
			found := false
			for _, d := range diags {
				found = found || d.Summary == c.summary
			}
			if !found {
				t.Errorf("diagnostics %v lack %q", diags, c.summary)
			}
		})
	}
}

var update = flag.Bool("update", false, "rewrite the golden files")

// TestAgentUnit: the systemd unit Create installs where systemd runs
// (the path the sandbox cannot run: no systemd here), for the default
// install_dir and another one (golden: testdata/unit/).
func TestAgentUnit(t *testing.T) {
	cases := []struct{ name, installDir string }{
		{"default", DefaultInstallDir},
		{"opt", "/opt/hvctl-static"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, diags := ParseSettings(providerBlock(map[string]cty.Value{"install_dir": cty.StringVal(c.installDir)}))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			p := &Provider{settings: s}
			dir := nodeDir(provision.ClientToken("L-c", "site.onprem.node.head", 0))
			out := fmt.Sprintf("# hvctl-%s.service\n%s", dir, agentUnit(p.remoteDir(dir)))
			golden := filepath.Join("testdata", "unit", c.name+".golden")
			if *update {
				must(t, os.MkdirAll(filepath.Dir(golden), 0o755))
				must(t, os.WriteFile(golden, []byte(out), 0o644))
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if out != string(want) {
				t.Errorf("unit:\n%s\nwant (%s):\n%s", out, golden, want)
			}
		})
	}
}
