package static

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/providertest"
	"github.com/hvctl/hvctl/provision/static/statictest"
)

// TestUpDown: Create installs the agent on each host over SSH and starts
// it (config 0600, as the agent's argument); Delete stops it and leaves
// the host as it was: no process, no file, not even install_dir.
func TestUpDown(t *testing.T) {
	l := newLab(t, 2)
	p := l.provider(nil)
	before := l.files()
	var ids []string
	for i, h := range l.hosts {
		req := nodeReq("c"+randHex(), fmt.Sprintf("w%d", i), h.addr, 0)
		resp, err := p.Create(ctx(t), req)
		if err != nil {
			t.Fatalf("create on %s: %v", h.addr, err)
		}
		if resp.Attrs["private_ip"] != h.addr || resp.Attrs["state"] != StateRunning {
			t.Errorf("attrs %v", resp.Attrs)
		}
		ids = append(ids, resp.ID)
		dir := filepath.Join(l.installDir, nodeDir(req.ClientToken))
		fi, err := os.Stat(filepath.Join(dir, "agent.json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("agent.json: %v, mode %v; want 0600", err, fi.Mode().Perm())
		}
		cfg, _ := os.ReadFile(filepath.Join(dir, "agent.json"))
		if !strings.Contains(string(cfg), "SECRET-JOIN-w") || !strings.Contains(string(cfg), `"private_ip": "`+h.addr+`"`) {
			t.Errorf("agent.json lacks the join token or the address:\n%s", cfg)
		}
	}
	if n := len(l.agents()); n != 2 {
		t.Fatalf("%d agents running, want 2", n)
	}
	// The agents got their config; secrets are in no command line.
	procs := l.waitAgents(2)
	if len(procs) != 2 {
		t.Fatalf("%d agent processes, want 2", len(procs))
	}
	for _, pid := range procs {
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		if strings.Contains(string(cmdline), "SECRET") {
			t.Errorf("a secret is on the command line of %s: %q", pid, cmdline)
		}
		if !strings.Contains(string(cmdline), "agent.json") {
			t.Errorf("agent %s runs without its config: %q", pid, cmdline)
		}
	}
	for _, id := range ids {
		if err := p.Delete(ctx(t), &provision.DeleteRequest{Kind: provision.KindInstance, ID: id}); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if a := l.agents(); len(a) != 0 {
		t.Errorf("agents left running: %v", a)
	}
	if after := l.files(); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("files before %v, after %v", before, after)
	}
	// Nothing of the provider's own where hvctl runs: the engine's
	// intent (token and host) is what finds an interrupted Create.
	if _, err := os.Stat(filepath.Join(l.dir, ".hvctl", "static")); !os.IsNotExist(err) {
		t.Errorf("the provider wrote %s (%v)", filepath.Join(l.dir, ".hvctl", "static"), err)
	}
}

// TestContract runs the provider contract suite on a real sshd host.
// Machines are the running agents.
func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) *providertest.Target {
		l := newLab(t, 1)
		p := l.provider(nil)
		cluster := "c" + randHex()
		t.Cleanup(func() {
			if a := l.agents(); len(a) != 0 {
				t.Errorf("agents left running after the subtest: %v", a)
				for _, pid := range a {
					n, _ := strconv.Atoi(pid)
					syscall.Kill(n, syscall.SIGKILL)
				}
			}
		})
		return &providertest.Target{
			Provider: p,
			Instance: func(t *testing.T, n int) *provision.CreateRequest {
				req := nodeReq(cluster, fmt.Sprintf("n%d", n), l.hosts[0].addr, 0)
				t.Cleanup(func() { // the suite leaves some machines for the cleanup
					p.Delete(ctx(t), &provision.DeleteRequest{Kind: provision.KindInstance, ID: l.hosts[0].addr + "/" + nodeDir(req.ClientToken)})
				})
				return req
			},
			Machines: func(t *testing.T) int { return len(l.agents()) },
		}
	})
}

// TestHostKeys: a host whose key is not the one in known_hosts is
// refused with an error naming the node and the host, and nothing is
// installed; an unknown host is refused unless insecure_accept_new,
// which records its key, after which a changed key is refused again.
func TestHostKeys(t *testing.T) {
	l := newLab(t, 1)
	h := l.hosts[0]
	hostport := fmt.Sprintf("[%s]:%d", h.addr, h.port)

	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)
	cases := []struct {
		name      string
		known     func()
		acceptNew bool
		want      string // "" = success
	}{
		{"wrong key", func() { os.Remove(l.knownHosts); l.trust(h, otherSigner.PublicKey()) }, false, "does not match"},
		{"wrong key with accept-new", func() { os.Remove(l.knownHosts); l.trust(h, otherSigner.PublicKey()) }, true, "does not match"},
		{"unknown host", func() { os.WriteFile(l.knownHosts, nil, 0o600) }, false, "is not in"},
		{"unknown host, accept-new", func() { os.WriteFile(l.knownHosts, nil, 0o600) }, true, ""},
		{"right key", func() { os.Remove(l.knownHosts); l.trust(h, h.hostKey.PublicKey()) }, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.known()
			p := l.provider(map[string]cty.Value{"insecure_accept_new": cty.BoolVal(c.acceptNew)})
			before := l.files()
			req := nodeReq("hk"+randHex(), "head", h.addr, 0)
			resp, err := p.Create(ctx(t), req)
			if c.want == "" {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				if known, _ := os.ReadFile(l.knownHosts); !strings.Contains(string(known), hostport) {
					t.Errorf("known_hosts lacks %s:\n%s", hostport, known)
				}
				must(t, p.Delete(ctx(t), &provision.DeleteRequest{Kind: provision.KindInstance, ID: resp.ID}))
				return
			}
			if err == nil {
				t.Fatal("create succeeded")
			}
			for _, part := range []string{c.want, "site.onprem.node.head", h.addr, l.knownHosts} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q lacks %q", err, part)
				}
			}
			var hk *HostKeyError
			if !errors.As(err, &hk) {
				t.Errorf("error %T is not a *HostKeyError", err)
			}
			if after := l.files(); strings.Join(after, " ") != strings.Join(before, " ") {
				t.Errorf("a refused host was changed: files %v, then %v", before, after)
			}
		})
	}
}

// TestHostDown: a host with no sshd is an error naming the node and the
// host, quickly (connection refused), and Read and Delete of its node say
// so too instead of calling it gone.
func TestHostDown(t *testing.T) {
	l := newLab(t, 0)
	p := l.provider(nil)
	down := "127.0.0.9"
	req := nodeReq("down"+randHex(), "w0", down, 0)
	_, err := p.Create(ctx(t), req)
	if err == nil || !strings.Contains(err.Error(), "site.onprem.node.w0") || !strings.Contains(err.Error(), down) {
		t.Fatalf("create on a host that is down: %v, want an error naming the node and %s", err, down)
	}
	if _, err := p.Read(ctx(t), &provision.ReadRequest{Kind: provision.KindInstance, ClientToken: req.ClientToken, Attrs: req.Attrs}); err == nil {
		t.Error("read of a node whose host is down: no error, want one (it is not known to be gone)")
	}
	if err := p.Delete(ctx(t), &provision.DeleteRequest{Kind: provision.KindInstance, ID: down + "/" + nodeDir(req.ClientToken)}); err == nil {
		t.Error("delete on a host that is down: no error")
	}
}

// TestRerunAfterCrash: whatever a crashed Create left (the directory
// alone, the agent killed, the pid file gone with the agent still
// running), Create again completes it with exactly one agent.
func TestRerunAfterCrash(t *testing.T) {
	l := newLab(t, 1)
	p := l.provider(nil)
	h := l.hosts[0]
	cases := []struct {
		name  string
		crash func(dir string)
	}{
		{"only the directory", func(dir string) {
			killGroup(t, dir)
			os.Remove(filepath.Join(dir, "agent.json"))
			os.Remove(filepath.Join(dir, "hvctl"))
		}},
		{"agent killed", func(dir string) { killGroup(t, dir) }},
		{"config half written", func(dir string) {
			killGroup(t, dir)
			os.WriteFile(filepath.Join(dir, "agent.json.new"), []byte(`{"clus`), 0o600)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := nodeReq("cr"+randHex(), "w0", h.addr, 0)
			first, err := p.Create(ctx(t), req)
			must(t, err)
			dir := filepath.Join(l.installDir, nodeDir(req.ClientToken))
			c.crash(dir)
			waitGone(t, l)
			// The refresh of the engine's pending intent (no ID yet)
			// finds the machine by the token and the host it records.
			pending := &provision.ReadRequest{Address: req.Address, Kind: req.Kind, ClientToken: req.ClientToken, Attrs: req.Attrs}
			if rr, err := p.Read(ctx(t), pending); err != nil || !rr.Exists || rr.ID != first.ID || rr.Attrs["state"] != StateStopped {
				t.Errorf("read of the pending intent = %+v, %v; want %s, stopped", rr, err, first.ID)
			}
			if rr, err := p.Read(ctx(t), &provision.ReadRequest{Address: req.Address, Kind: req.Kind, ClientToken: "another-token", Attrs: req.Attrs}); err != nil || rr.Exists {
				t.Errorf("read of another token = %+v, %v; want gone", rr, err)
			}
			second, err := p.Create(ctx(t), req)
			must(t, err)
			if second.ID != first.ID {
				t.Errorf("rerun made %s, first %s", second.ID, first.ID)
			}
			if a := l.agents(); len(a) != 1 {
				t.Errorf("%d agents after the rerun, want 1", len(a))
			}
			if a := l.waitAgents(1); len(a) != 1 {
				t.Errorf("%d agent processes after the rerun, want 1", len(a))
			}
			if _, err := p.Create(ctx(t), req); err != nil || len(l.agents()) != 1 {
				t.Errorf("a third create: %v, %d agents", err, len(l.agents()))
			}
			must(t, p.Delete(ctx(t), &provision.DeleteRequest{Kind: provision.KindInstance, ID: first.ID}))
		})
	}
}

// killGroup kills the agent of dir and its supervisor, as a crash or an
// OOM kill would.
func killGroup(t *testing.T, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	must(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	must(t, err)
	must(t, syscall.Kill(-pid, syscall.SIGKILL))
}

// waitGone waits until killed agents have been reaped.
func waitGone(t *testing.T, l *lab) {
	for i := 0; len(l.agents()) > 0; i++ {
		if i > 500 {
			t.Fatalf("agents still running: %v", l.agents())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSecretsStayOut: the private key is in no diagnostic, error, intent
// or record, and the join token goes only into the host's agent.json.
func TestSecretsStayOut(t *testing.T) {
	l := newLab(t, 1)
	key := strings.TrimSpace(string(l.clientKey))
	keyBody := strings.Split(key, "\n")[1]
	// A diagnostic about a broken key does not echo it.
	broken := strings.Replace(key, keyBody, keyBody[:10]+"AAAA"+keyBody[14:], 1)
	_, diags := New(l.block(map[string]cty.Value{"private_key": cty.StringVal(broken)}), &provision.Env{StateDir: t.TempDir()})
	if !diags.HasErrors() {
		t.Fatal("a broken key was accepted")
	}
	if strings.Contains(diags.Error(), keyBody[20:40]) {
		t.Errorf("diagnostic echoes the key: %v", diags)
	}
	p := l.provider(nil)
	req := nodeReq("sec"+randHex(), "w0", l.hosts[0].addr, 0)
	resp, err := p.Create(ctx(t), req)
	must(t, err)
	rr, err := p.Read(ctx(t), &provision.ReadRequest{Kind: provision.KindInstance, ID: resp.ID})
	must(t, err)
	all := fmt.Sprint(resp.Attrs, rr.Attrs)
	filepath.Walk(filepath.Join(l.dir, ".hvctl"), func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(path)
			all += string(b)
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
			}
		}
		return nil
	})
	for _, secret := range []string{keyBody[20:40], "SECRET-JOIN"} {
		if strings.Contains(all, secret) {
			t.Errorf("a secret (%s...) is in the provider's attributes or records", secret[:6])
		}
	}
	must(t, p.Delete(ctx(t), &provision.DeleteRequest{Kind: provision.KindInstance, ID: resp.ID}))
}

// TestExec: hvctl exec on a static node runs the command over SSH with
// its standard streams and exit status.
func TestExec(t *testing.T) {
	l := newLab(t, 1)
	p := l.provider(nil)
	resp, err := p.Create(ctx(t), nodeReq("ex"+randHex(), "w0", l.hosts[0].addr, 0))
	must(t, err)
	defer p.Delete(ctx(t), &provision.DeleteRequest{Kind: provision.KindInstance, ID: resp.ID})
	var out, errb strings.Builder
	rc, err := p.Exec(ctx(t), resp.ID, []string{"sh", "-c", "echo \"it's $1\"; cat; echo oops >&2; exit 3", "x", "me"}, strings.NewReader("input\n"), &out, &errb)
	if err != nil || rc != 3 || out.String() != "it's me\ninput\n" || errb.String() != "oops\n" {
		t.Errorf("exec = %d, %v; stdout %q, stderr %q", rc, err, out.String(), errb.String())
	}
	// One buffer for both streams (hvctl check's): nothing is lost, as
	// it was when the session's two copies both called its ReadFrom.
	for i := 0; i < 10; i++ {
		var both bytes.Buffer
		rc, err := p.Exec(ctx(t), resp.ID, []string{"sh", "-c", "echo refused >&2; exit 1"}, strings.NewReader(""), &both, &both)
		if err != nil || rc != 1 || both.String() != "refused\n" {
			t.Fatalf("exec with one buffer = %d, %v; output %q, want \"refused\\n\"", rc, err, both.String())
		}
	}
}

// TestBecomeSudo: a non-root SSH user with passwordless sudo and
// become = "sudo": every step runs under sudo -n, so the agent is
// installed and runs as root, exec runs as root, and Delete leaves the
// host as it was; without become the same user cannot install (a
// located error naming the host) and nothing is left behind.
func TestBecomeSudo(t *testing.T) {
	l := newLab(t, 0)
	name := "hv" + randHex()
	u := statictest.NewSudoUser(t, name, 61000+int(time.Now().UnixNano()%1000), l.authorized)
	addr := fmt.Sprintf("127.%d.%d.%d", 100+time.Now().Nanosecond()%100, time.Now().Nanosecond()%250, 2)
	srv := statictest.StartWith(t, statictest.Require(t), l.dir, "", addr, l.port, l.authorized, u)
	h := &sshHost{addr: addr, port: l.port, hostKey: srv.HostKey}
	l.trust(h, h.hostKey.PublicKey())
	before := l.files()
	cases := []struct {
		name   string
		become cty.Value
		err    string // "" = installs
	}{
		{name: "without become", become: cty.NilVal, err: "Permission denied"},
		{name: "become sudo", become: cty.StringVal("sudo")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := l.provider(map[string]cty.Value{"user": cty.StringVal(name), "become": c.become})
			req := nodeReq("sudo"+randHex(), "w0", addr, 0)
			resp, err := p.Create(ctx(t), req)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), addr) {
					t.Fatalf("create as %s without sudo: %v; want an error naming %s and %q", name, err, addr, c.err)
				}
				if a := l.agents(); len(a) != 0 {
					t.Errorf("agents running after the refused create: %v", a)
				}
				return
			}
			if err != nil {
				t.Fatalf("create as %s with sudo: %v", name, err)
			}
			procs := l.waitAgents(1)
			if len(procs) != 1 {
				t.Fatalf("%d agent processes, want 1", len(procs))
			}
			status, _ := os.ReadFile("/proc/" + procs[0] + "/status")
			if !strings.Contains(string(status), "\nUid:\t0\t") {
				t.Errorf("the agent does not run as root:\n%s", status)
			}
			dir := filepath.Join(l.installDir, nodeDir(req.ClientToken))
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(dir, "agent.json"), &st); err != nil || st.Uid != 0 || st.Mode&0o777 != 0o600 {
				t.Errorf("agent.json: %v, uid %d, mode %o; want root's, 0600", err, st.Uid, st.Mode&0o777)
			}
			var out strings.Builder
			if rc, err := p.Exec(ctx(t), resp.ID, []string{"id", "-u"}, nil, &out, &out); err != nil || rc != 0 || out.String() != "0\n" {
				t.Errorf("exec id -u = %d, %v, %q; want 0 (root, through sudo)", rc, err, out.String())
			}
			if err := p.Delete(ctx(t), &provision.DeleteRequest{Kind: provision.KindInstance, ID: resp.ID}); err != nil {
				t.Fatal(err)
			}
			if a := l.agents(); len(a) != 0 {
				t.Errorf("agents left running: %v", a)
			}
		})
	}
	if after := l.files(); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("files before %v, after %v", before, after)
	}
	// Every session logged in as the user, not as root.
	log, _ := os.ReadFile(srv.Log)
	if !strings.Contains(string(log), "Accepted publickey for "+name+" ") || strings.Contains(string(log), "for root") {
		t.Errorf("sshd log does not show logins as %s only:\n%s", name, log)
	}
}
