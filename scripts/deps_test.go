package scripts

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// lookupDir makes a directory holding a stub of each command.
func lookupDir(t *testing.T, cmds ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, c := range cmds {
		if err := os.WriteFile(filepath.Join(dir, c), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDepsPlan: deps.sh finds what a target lacks from scripts/deps.txt
// and plans the one apt-get command, or tells a user without root or
// apt what to run, and stops.
func TestDepsPlan(t *testing.T) {
	demoCmds := []string{"ip", "nft", "nsenter", "ping", "wg"}
	all := append(append([]string{}, demoCmds...), "wg", "iperf3", "openvpn", "dot", "slurmctld", "munged", "chromium", "sshd",
		"mariadbd", "mariadb", "slurmdbd", "podman", "runc", "busybox", "pg_ctlcluster", "sudo")
	without := func(list []string, drop ...string) []string {
		var out []string
		for _, c := range list {
			keep := true
			for _, d := range drop {
				keep = keep && c != d
			}
			if keep {
				out = append(out, c)
			}
		}
		return out
	}
	cases := []struct {
		name     string
		args     []string
		cmds     []string
		uid      string
		code     int
		want     []string
		wantNone []string
	}{
		{"demo has all", []string{"-n", "demo"}, append(demoCmds, "apt-get"), "0", 0, nil, []string{"missing"}},
		{"demo ignores test-only tools", []string{"-n", "demo"}, append(without(all, "dot", "slurmctld"), "apt-get"), "0", 0, nil, []string{"missing"}},
		{"root with apt installs what is missing", []string{"-n", "demo"}, append(without(all, "nft"), "apt-get"), "0", 3,
			[]string{"missing for demo: nftables\n", "would run: apt-get update -qq && apt-get install -y -qq --no-install-recommends nftables\n"}, []string{"sudo"}},
		{"test lists every missing package", []string{"-n", "test"}, append(without(all, "nft", "wg", "munged"), "apt-get"), "0", 3,
			[]string{"missing for test: nftables wireguard-tools munge\n"}, nil},
		{"no root: the command to run", []string{"-n", "demo"}, append(without(all, "nft"), "apt-get"), "1000", 3,
			[]string{"would ask to run: sudo apt-get update && sudo apt-get install -y -qq --no-install-recommends nftables\n"}, nil},
		{"no root stops", []string{"demo"}, append(without(all, "nft", "ping"), "apt-get"), "1000", 1,
			[]string{"make demo needs nftables iputils-ping", "(not root)", "sudo apt-get update && sudo apt-get install -y -qq --no-install-recommends nftables iputils-ping"}, nil},
		{"no apt stops and names the commands", []string{"demo"}, without(all, "nft"), "0", 1,
			[]string{"no apt-get on this machine", "  nft  (Debian: nftables)"}, []string{"nsenter  (Debian"}},
		{"bad target", []string{"-n", "everything"}, all, "0", 2, []string{"usage: scripts/deps.sh [-n] demo|test"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("./deps.sh", c.args...)
			cmd.Env = append(os.Environ(), "DEPS_LOOKUP_PATH="+lookupDir(t, c.cmds...), "DEPS_UID="+c.uid)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s", code, c.code, out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range c.wantNone {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}
