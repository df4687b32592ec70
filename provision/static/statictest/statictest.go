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
}

// Start runs `sshd -D -e -f CONFIG` on addr:port (inside network
// namespace netns unless it is ""), with a new host key, accepting the
// keys in authorizedKeys; it is stopped when t ends. It returns once sshd
// accepts connections.
func Start(t testing.TB, bin, dir, netns, addr string, port int, authorizedKeys string) *Server {
	t.Helper()
	hk, hkPEM := NewKey(t)
	s := &Server{Addr: addr, Port: port, HostKey: hk}
	hdir := filepath.Join(dir, "sshd-"+addr)
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
	log, err := os.Create(s.Log)
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{bin, "-D", "-e", "-f", cfgPath}
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(s.Log)
			t.Logf("sshd %s log:\n%s", addr, b)
		}
	})
	// addr must be reachable from here (in netns, through a link the
	// test made).
	dial := func() error {
		c, err := net.Dial("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
		if err == nil {
			c.Close()
		}
		return err
	}
	for i := 0; dial() != nil; i++ {
		select {
		case <-exited:
			b, _ := os.ReadFile(s.Log)
			t.Fatalf("sshd for %s exited:\n%s", addr, b)
		case <-time.After(20 * time.Millisecond):
		}
		if i > 1500 {
			t.Fatalf("sshd for %s does not accept connections", addr)
		}
	}
	return s
}

// KnownHostsLine is s's known_hosts line.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(s.Addr, fmt.Sprint(s.Port)))}, s.HostKey.PublicKey())
}
