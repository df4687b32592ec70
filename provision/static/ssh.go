package static

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError is a host whose key known_hosts does not accept.
type HostKeyError struct {
	Host        string // host:port
	Fingerprint string // of the key the host offered
	KnownHosts  string
	Changed     bool   // known_hosts has another key for the host
	Want        string // where the expected key is, when Changed
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("the host key of %s (%s) does not match the one in %s (%s): refusing to connect. "+
			"If the machine was reinstalled, check its new key and replace that line (ssh-keygen -R).", e.Host, e.Fingerprint, e.KnownHosts, e.Want)
	}
	return fmt.Sprintf("the host key of %s (%s) is not in %s: refusing to connect. "+
		"Add it after checking its fingerprint (ssh-keyscan), or set insecure_accept_new = true.", e.Host, e.Fingerprint, e.KnownHosts)
}

// hostKeys checks host keys against a known_hosts file, and with
// acceptNew appends the keys of hosts it does not list.
type hostKeys struct {
	path      string
	acceptNew bool
	mu        sync.Mutex
}

func (h *hostKeys) check(hostport string, remote net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	fp := ssh.FingerprintSHA256(key)
	cb, err := knownhosts.New(h.path)
	if err != nil {
		if !(h.acceptNew && errors.Is(err, os.ErrNotExist)) {
			return fmt.Errorf("known_hosts %s: %w", h.path, err)
		}
		cb = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
	}
	err = cb(hostport, remote, key)
	var ke *knownhosts.KeyError
	if err == nil || !errors.As(err, &ke) {
		return err
	}
	if len(ke.Want) > 0 {
		w := ke.Want[0]
		return &HostKeyError{Host: hostport, Fingerprint: fp, KnownHosts: h.path, Changed: true,
			Want: fmt.Sprintf("%s:%d, %s", w.Filename, w.Line, ssh.FingerprintSHA256(w.Key))}
	}
	if !h.acceptNew {
		return &HostKeyError{Host: hostport, Fingerprint: fp, KnownHosts: h.path}
	}
	f, err := os.OpenFile(h.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record the host key of %s in %s: %w", hostport, h.path, err)
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostport)}, key))
	return err
}

// conn is one SSH connection to a host.
type conn struct {
	c      *ssh.Client
	jump   *ssh.Client // the jump host's client, when there is one
	become string
}

// dial connects to host as the provider's user.
func (p *Provider) dial(ctx context.Context, host string) (*conn, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(p.settings.Port))
	var nc net.Conn
	var jump *ssh.Client
	if j := p.settings.JumpHost; j != "" {
		if _, _, e := net.SplitHostPort(j); e != nil {
			j = net.JoinHostPort(j, "22")
		}
		jc, err := p.handshake(ctx, j, nil)
		if err != nil {
			return nil, fmt.Errorf("jump host %s: %w", j, err)
		}
		jump = jc
		if nc, err = jc.DialContext(ctx, "tcp", addr); err != nil {
			jc.Close()
			return nil, fmt.Errorf("connect to %s through the jump host %s: %w", addr, j, err)
		}
	}
	c, err := p.handshake(ctx, addr, nc)
	if err != nil {
		if jump != nil {
			jump.Close()
		}
		return nil, err
	}
	return &conn{c: c, jump: jump, become: p.settings.Become}, nil
}

// handshake opens an SSH client to addr over nc (dialled when nil).
func (p *Provider) handshake(ctx context.Context, addr string, nc net.Conn) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User:            p.settings.User,
		Auth:            []ssh.AuthMethod{p.auth},
		HostKeyCallback: p.hostKeys.check,
		Timeout:         p.settings.ConnectTimeout,
	}
	if nc == nil {
		d := net.Dialer{Timeout: p.settings.ConnectTimeout}
		var err error
		if nc, err = d.DialContext(ctx, "tcp", addr); err != nil {
			return nil, fmt.Errorf("connect to %s: %w", addr, err)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		return nil, fmt.Errorf("ssh %s@%s: %w", p.settings.User, addr, err)
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

func (c *conn) Close() error {
	err := c.c.Close()
	if c.jump != nil {
		c.jump.Close()
	}
	return err
}

// exec runs the shell command line cmd on the host (under sudo -n with
// become) with the given streams; ctx ends it.
func (c *conn) exec(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	s, err := c.c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	if stdin != nil {
		s.Stdin = stdin
	}
	if sameWriter(stdout, stderr) {
		// The session copies each stream in its own goroutine; one
		// writer for both (hvctl check's buffer) is written by one at a
		// time, as os/exec does. Without this, two bytes.Buffer.ReadFrom
		// at once lose what one of them wrote.
		w := &lockedWriter{w: stdout}
		stdout, stderr = w, w
	}
	s.Stdout, s.Stderr = stdout, stderr
	if c.become == "sudo" {
		cmd = "sudo -n " + cmd
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
		return err
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		return ctx.Err()
	}
}

// sameWriter reports whether a and b are one writer (a type that cannot
// be compared is not).
func sameWriter(a, b io.Writer) (same bool) {
	if a == nil || b == nil {
		return false
	}
	defer func() { recover() }()
	return a == b
}

// lockedWriter serialises the writes to w, and hides any ReadFrom of w's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// run runs script with sh on the host, with args as $1, $2, ... and
// stdin as its standard input; secrets go in stdin, never in args. It
// returns standard output; a failure carries standard error.
func (c *conn) run(ctx context.Context, script string, stdin io.Reader, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := "sh -c " + shellQuote(script) + " hvctl"
	for _, a := range args {
		cmd += " " + shellQuote(a)
	}
	if err := c.exec(ctx, cmd, stdin, &out, &errb); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		if msg != "" {
			return out.String(), fmt.Errorf("%w: %s", err, msg)
		}
		return out.String(), err
	}
	return out.String(), nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
