package static

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hvctl/hvctl/provision"
)

// States of an instance, as Read reports them.
const (
	StateRunning = "running"
	StateStopped = "stopped" // installed, the agent not running
)

// Provider joins existing machines over SSH. It is safe for concurrent
// use: each call has its own connection.
type Provider struct {
	settings Settings
	auth     ssh.AuthMethod
	hostKeys *hostKeys
}

// Open makes a provider with settings s and auth. It keeps nothing of
// its own where hvctl runs: a node's ID is its host and a directory
// named by its client token (HOST/n-HASH), so the engine's intent (the
// token and the attributes, the host among them, recorded before Create
// is called) is enough to find what an interrupted Create made.
func Open(env *provision.Env, s Settings, auth ssh.AuthMethod) *Provider {
	return &Provider{settings: s, auth: auth, hostKeys: &hostKeys{path: s.KnownHosts, acceptNew: s.InsecureAcceptNew}}
}

// Limits: each host is its own; the engine's parallelism bounds the
// connections.
func (p *Provider) Limits() provision.Limits { return provision.Limits{} }

// nodeDir is the directory name of the node made with token.
func nodeDir(token string) string {
	h := sha256.Sum256([]byte("hvctl-static\x00" + token))
	return "n-" + hex.EncodeToString(h[:8])
}

// splitID splits an ID "HOST/n-HASH".
func splitID(id string) (host, dir string, ok bool) {
	i := strings.LastIndexByte(id, '/')
	if i <= 0 || !strings.HasPrefix(id[i+1:], "n-") {
		return "", "", false
	}
	return id[:i], id[i+1:], true
}

func (p *Provider) remoteDir(dir string) string { return path.Join(p.settings.InstallDir, dir) }

// Create installs and starts the agent on the node's host.
func (p *Provider) Create(ctx context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	if req.Kind == provision.KindNetwork {
		// A static site's network exists already; nothing to make.
		return &provision.CreateResponse{ID: "static-net/" + nodeDir(req.ClientToken), Attrs: provision.Attrs{}}, nil
	}
	in := provision.InstanceOf(req.Attrs)
	if in.Host == "" {
		return nil, fmt.Errorf("static: %s has no host", req.Address)
	}
	dir := nodeDir(req.ClientToken)
	id := in.Host + "/" + dir
	fail := func(what string, err error) error {
		return fmt.Errorf("static: %s (host %s): %s: %w", req.Address, in.Host, what, err)
	}
	c, err := p.dial(ctx, in.Host)
	if err != nil {
		return nil, fail("connect", err)
	}
	defer c.Close()
	rdir := p.remoteDir(dir)
	probe, err := c.run(ctx, probeScript, nil, rdir)
	if err != nil {
		return nil, fail("probe", err)
	}
	lines := strings.Split(strings.TrimSpace(probe), "\n")
	if len(lines) < 3 {
		return nil, fail("probe", fmt.Errorf("unexpected answer %q", probe))
	}
	if lines[0] != "Linux" {
		return nil, fail("check the system", fmt.Errorf("the host runs %s; the hvctl agent needs Linux", lines[0]))
	}
	if err := p.checkArch(lines[1]); err != nil {
		return nil, fail("check the architecture", err)
	}
	attrs := p.attrs(in, StateRunning)
	if lines[2] == StateRunning+" "+req.ClientToken {
		return &provision.CreateResponse{ID: id, Attrs: attrs}, nil
	}
	if _, err := c.run(ctx, prepareScript, nil, p.settings.InstallDir, rdir, req.ClientToken); err != nil {
		return nil, fail("prepare "+rdir, err)
	}
	bin, err := os.Open(p.settings.AgentBinary)
	if err != nil {
		return nil, fail("read the agent binary", err)
	}
	defer bin.Close()
	if _, err := c.run(ctx, uploadScript, bin, path.Join(rdir, "hvctl"), "0755"); err != nil {
		return nil, fail("copy the agent binary", err)
	}
	cfg := provision.NewAgentConfig(req)
	public := ""
	if in.PublicIP {
		public = in.Host
	}
	cfg.SetAddresses(in.Host, public)
	cfg.Dir = rdir
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fail("agent configuration", err)
	}
	if _, err := c.run(ctx, uploadScript, bytes.NewReader(cj), path.Join(rdir, "agent.json"), "0600"); err != nil {
		return nil, fail("write the agent configuration", err)
	}
	unit := "hvctl-" + dir + ".service"
	text := agentUnit(rdir)
	if _, err := c.run(ctx, startScript, strings.NewReader(text), rdir, unit); err != nil {
		return nil, fail("start the agent", err)
	}
	return &provision.CreateResponse{ID: id, Attrs: attrs}, nil
}

// agentUnit is the systemd unit of the agent installed in rdir (a path
// without unitUnsafe characters: install_dir's check).
func agentUnit(rdir string) string {
	return provision.SystemdUnit(path.Join(rdir, "hvctl") + " agent -config " + path.Join(rdir, "agent.json"))
}

func (p *Provider) attrs(in provision.InstanceSpec, state string) provision.Attrs {
	a := provision.Attrs{"private_ip": in.Host, "state": state}
	if in.PublicIP {
		a["public_address"] = in.Host
	}
	return a
}

// checkArch checks that the agent binary runs on a host whose uname -m
// is machine. A script (#!) runs anywhere.
func (p *Provider) checkArch(machine string) error {
	f, err := os.Open(p.settings.AgentBinary)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 2)
	if _, err := f.ReadAt(head, 0); err == nil && string(head) == "#!" {
		return nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("the agent binary %s is not a Linux executable: %w", p.settings.AgentBinary, err)
	}
	want := map[elf.Machine][]string{
		elf.EM_X86_64: {"x86_64", "amd64"}, elf.EM_AARCH64: {"aarch64", "arm64"}, elf.EM_386: {"i386", "i686"},
		elf.EM_ARM: {"armv7l", "armv6l"}, elf.EM_RISCV: {"riscv64"}, elf.EM_PPC64: {"ppc64le", "ppc64"}, elf.EM_S390: {"s390x"},
	}[ef.Machine]
	for _, m := range want {
		if m == machine {
			return nil
		}
	}
	return fmt.Errorf("the host is %s but the agent binary %s is built for %s: set agent_binary to an hvctl built for %s (GOARCH)", machine, p.settings.AgentBinary, ef.Machine, machine)
}

// Read reports whether the node's agent is installed (with its token)
// and running.
func (p *Provider) Read(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	if req.Kind == provision.KindNetwork || strings.HasPrefix(req.ID, "static-net/") {
		id := req.ID
		if id == "" {
			id = "static-net/" + nodeDir(req.ClientToken)
		}
		return &provision.ReadResponse{Exists: true, ID: id, Attrs: provision.Attrs{}}, nil
	}
	id, token := req.ID, req.ClientToken
	if id == "" {
		// A pending intent: its host and token name the directory.
		host := provision.InstanceOf(req.Attrs).Host
		if host == "" || token == "" {
			// Create makes nothing for a node without a host.
			return &provision.ReadResponse{}, nil
		}
		id = host + "/" + nodeDir(token)
	}
	host, dir, ok := splitID(id)
	if !ok {
		return nil, fmt.Errorf("static: %s: %q is not a static provider ID", req.Address, id)
	}
	c, err := p.dial(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("static: read %s (host %s): %w", req.Address, host, err)
	}
	defer c.Close()
	out, err := c.run(ctx, probeScript, nil, p.remoteDir(dir))
	if err != nil {
		return nil, fmt.Errorf("static: read %s (host %s): %w", req.Address, host, err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	state, got, _ := strings.Cut(lines[len(lines)-1], " ")
	if state == "absent" || (token != "" && got != token) {
		return &provision.ReadResponse{}, nil
	}
	a := provision.Attrs{"private_ip": host, "state": state}
	return &provision.ReadResponse{Exists: true, ID: id, Attrs: a}, nil
}

// Delete stops the node's agent and removes what Create installed.
func (p *Provider) Delete(ctx context.Context, req *provision.DeleteRequest) error {
	if req.Kind == provision.KindNetwork || strings.HasPrefix(req.ID, "static-net/") {
		return nil
	}
	host, dir, ok := splitID(req.ID)
	if !ok {
		return fmt.Errorf("static: %s: %q is not a static provider ID", req.Address, req.ID)
	}
	c, err := p.dial(ctx, host)
	if err != nil {
		return fmt.Errorf("static: delete %s (host %s): %w", req.Address, host, err)
	}
	defer c.Close()
	if _, err := c.run(ctx, removeScript, nil, p.remoteDir(dir), p.settings.InstallDir); err != nil {
		return fmt.Errorf("static: delete %s (host %s): %w", req.Address, host, err)
	}
	return nil
}

// Exec runs argv on the machine of node id over SSH (under sudo -n with
// become = "sudo"), with the given standard streams, and returns its
// exit status. It is what `hvctl exec` uses on static nodes.
func (p *Provider) Exec(ctx context.Context, id string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	host, _, ok := splitID(id)
	if !ok {
		return 0, fmt.Errorf("static: %q is not a static provider ID", id)
	}
	c, err := p.dial(ctx, host)
	if err != nil {
		return 0, fmt.Errorf("static: exec on %s: %w", host, err)
	}
	defer c.Close()
	words := make([]string, len(argv))
	for i, w := range argv {
		words[i] = shellQuote(w)
	}
	err = c.exec(ctx, strings.Join(words, " "), stdin, stdout, stderr)
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// RunsAgents is true: every node runs hvctl agent (provision.AgentHost).
func (p *Provider) RunsAgents() bool { return true }

// WaitReady reports the node once its agent runs (provision.Waiter).
// Being a Waiter also makes apply finish a node whose Create was
// interrupted (hvctl killed) by calling Create again with the full
// request, which completes the install and starts the agent.
func (p *Provider) WaitReady(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	for i := 0; ; i++ {
		rr, err := p.Read(ctx, req)
		if err != nil {
			return nil, err
		}
		if !rr.Exists {
			return nil, fmt.Errorf("static: %s: the agent's directory is gone from its host", req.Address)
		}
		if req.Kind == provision.KindNetwork || rr.Attrs["state"] == StateRunning {
			return rr, nil
		}
		if i == 20 {
			_, dir, _ := splitID(rr.ID)
			return nil, fmt.Errorf("static: %s: the agent is installed but not running on %s (its log: %s on the host)", req.Address, rr.Attrs["private_ip"], path.Join(p.remoteDir(dir), "agent.log"))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
