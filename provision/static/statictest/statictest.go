// Package statictest runs real sshd servers for the static provider's
// tests and the end-to-end tests: Debian's openssh-server, started by the
// test in a scratch directory with a host key the test made, key
// authentication only, on an address and port of the test's choosing,
// optionally inside a network namespace.
package statictest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Require returns the sshd binary, or skips t (fails it with
// HVCTL_E2E=1) when sshd or root is missing: sshd checks its files'
// owners and switches users.
func Require(t testing.TB) string {
	t.Helper()
	why := ""
	bin, err := exec.LookPath("sshd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/sshd"); err2 == nil {
			bin, err = "/usr/sbin/sshd", nil
		}
	}
	switch {
	case err != nil:
		why = "needs sshd (Debian: apt-get install openssh-server)"
	case os.Geteuid() != 0:
		why = "needs root to run sshd"
	}
	if why == "" {
		return bin
	}
	if os.Getenv("HVCTL_E2E") == "1" {
		t.Fatalf("static provider test %s; HVCTL_E2E=1 forbids skipping it", why)
	}
	t.Skipf("static provider test %s (set HVCTL_E2E=1 to make this a failure)", why)
	return ""
}

// NewKey makes an ed25519 key: its signer and its OpenSSH PEM.
func NewKey(t testing.TB) (ssh.Signer, []byte) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, pem.EncodeToMemory(b)
}

// Server is one running sshd.
type Server struct {
	Addr    string
	Port    int
	HostKey ssh.Signer
	Log     string // its log file

	netns  string
	argv   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs `sshd -D -e -f CONFIG` on addr:port (inside network
// namespace netns unless it is ""), with a new host key, accepting the
// keys in authorizedKeys; it is stopped when t ends. It returns once sshd
// accepts connections.
func Start(t testing.TB, bin, dir, netns, addr string, port int, authorizedKeys string) *Server {
	t.Helper()
	return StartWith(t, bin, dir, netns, addr, port, authorizedKeys, nil)
}

// SudoUser is a user account that exists only for the sshd servers
// started with it: a non-root user with passwordless sudo, as a
// machine's admin account is. The machine's own user database is left
// alone: such an sshd runs in a mount namespace of its own, where
// /etc/passwd, /etc/group, /etc/shadow and /etc/sudoers.d are copies
// with the user added, so it and every session it starts (sudo, the
// agent) see the user; the rest of the file system is shared.
type SudoUser struct {
	Name string
	UID  int
	Home string // its home, holding authorized_keys (sshd reads it as the user)

	files map[string]string // /etc path -> the copy bound over it
}

// NewSudoUser makes the files of user name (UID uid, which the machine
// must not use) who may run anything with sudo -n and logs in with
// the keys in authorizedKeys.
func NewSudoUser(t testing.TB, name string, uid int, authorizedKeys string) *SudoUser {
	t.Helper()
	if _, err := exec.LookPath("sudo"); err != nil {
		if os.Getenv("HVCTL_E2E") == "1" {
			t.Fatalf("the sudo test needs sudo (scripts/deps.sh test installs it); HVCTL_E2E=1 forbids skipping it")
		}
		t.Skip("needs sudo (apt-get install sudo; scripts/deps.sh test)")
	}
	// sshd reads authorized_keys as the user: its home must be
	// reachable by it, so it lives outside the test's private
	// directory.
	home, err := os.MkdirTemp("", "hvctl-sudo-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	etc, err := os.MkdirTemp("", "hvctl-sudo-etc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	u := &SudoUser{Name: name, UID: uid, Home: home, files: map[string]string{}}
	keys, err := os.ReadFile(authorizedKeys)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path string, data []byte, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(home, "authorized_keys"), keys, 0o644)
	for _, f := range []struct{ etc, line string }{
		{"/etc/passwd", fmt.Sprintf("%s:x:%d:%d:hvctl test user:%s:/bin/sh\n", name, uid, uid, home)},
		{"/etc/group", fmt.Sprintf("%s:x:%d:\n", name, uid)},
		{"/etc/shadow", fmt.Sprintf("%s:*:19000:0:99999:7:::\n", name)},
	} {
		b, err := os.ReadFile(f.etc)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(f.etc)
		if err != nil {
			t.Fatal(err)
		}
		cp := filepath.Join(etc, filepath.Base(f.etc))
		write(cp, append(b, f.line...), st.Mode().Perm())
		u.files[f.etc] = cp
	}
	sudoers := filepath.Join(etc, "sudoers.d")
	if err := os.Mkdir(sudoers, 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(sudoers, "hvctl-test"), []byte(name+" ALL=(ALL:ALL) NOPASSWD: ALL\n"), 0o440)
	u.files["/etc/sudoers.d"] = sudoers
	for _, p := range []string{home, etc} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(home, uid, uid); err != nil {
		t.Fatal(err)
	}
	return u
}

// wrap is argv run in a mount namespace where u exists.
func (u *SudoUser) wrap(argv []string) []string {
	script := ""
	var args []string
	for _, dst := range []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/sudoers.d"} {
		args = append(args, u.files[dst], dst)
		script += fmt.Sprintf(`mount --bind "$%d" "$%d" && `, len(args)-1, len(args))
	}
	script += fmt.Sprintf(`shift %d && exec "$@"`, len(args))
	return append(append([]string{"unshare", "-m", "--propagation", "slave", "sh", "-c", script, "sh"}, args...), argv...)
}

// StartWith is Start with, when u is not nil, u's account known to
// sshd (AuthorizedKeysFile is then u's own authorized_keys).
func StartWith(t testing.TB, bin, dir, netns, addr string, port int, authorizedKeys string, u *SudoUser) *Server {
	t.Helper()
	hk, hkPEM := NewKey(t)
	s := &Server{Addr: addr, Port: port, HostKey: hk, netns: netns}
	hdir := filepath.Join(dir, fmt.Sprintf("sshd-%s-%s-%d", netns, addr, port))
	if u != nil {
		authorizedKeys = filepath.Join(u.Home, "authorized_keys")
	}
	if err := os.MkdirAll(hdir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(hdir, "host_ed25519_key")
	cfg := fmt.Sprintf(`Port %d
ListenAddress %s
HostKey %s
PidFile %s/sshd.pid
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
LogLevel INFO
`, port, addr, keyPath, hdir, authorizedKeys)
	cfgPath := filepath.Join(hdir, "sshd_config")
	for _, f := range []struct {
		path string
		data []byte
	}{{keyPath, hkPEM}, {cfgPath, []byte(cfg)}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		t.Fatal(err)
	}
	s.Log = filepath.Join(hdir, "sshd.log")
	s.argv = []string{bin, "-D", "-e", "-f", cfgPath}
	if u != nil {
		s.argv = u.wrap(s.argv)
	}
	if netns != "" {
		s.argv = append([]string{"ip", "netns", "exec", netns}, s.argv...)
	}
	s.start(t)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(s.Log)
			t.Logf("sshd %s log:\n%s", addr, b)
		}
	})
	return s
}

// start runs sshd and waits until it accepts connections (addr must be
// reachable from here: in a namespace, through a link the test made).
func (s *Server) start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(s.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(s.exited)
	for i := 0; ; i++ {
		if s.reachable() {
			return
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(s.Log)
			t.Fatalf("sshd for %s exited:\n%s", s.Addr, b)
		case <-time.After(20 * time.Millisecond):
		}
		if i > 1500 {
			t.Fatalf("sshd for %s does not accept connections", s.Addr)
		}
	}
}

// reachable reports whether sshd accepts connections: from here, or in
// a namespace from inside it (bash's /dev/tcp), as its address may be
// loopback or behind a NAT.
func (s *Server) reachable() bool {
	if s.netns != "" {
		return exec.Command("ip", "netns", "exec", s.netns, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", s.Addr, s.Port)).Run() == nil
	}
	c, err := net.Dial("tcp", net.JoinHostPort(s.Addr, fmt.Sprint(s.Port)))
	if err == nil {
		c.Close()
	}
	return err == nil
}

// Netns is the namespace sshd runs in ("" = this one).
func (s *Server) Netns() string { return s.netns }

// Stop stops sshd (the host is down).
func (s *Server) Stop() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		<-s.exited
		s.cmd = nil
	}
}

// Restart starts a stopped sshd again, with the same host key.
func (s *Server) Restart(t testing.TB) { s.start(t) }

// KnownHostsLine is s's known_hosts line.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(s.Addr, fmt.Sprint(s.Port)))}, s.HostKey.PublicKey())
}
