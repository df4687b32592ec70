package static

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/static/statictest"
	"github.com/hvctl/hvctl/templates"
)

// sshHost is one real sshd, listening on a loopback address of its own
// (127.0.0.0/8 is all local on Linux), with a host key the test made.
type sshHost struct {
	addr    string // 127.x.y.z
	port    int
	hostKey ssh.Signer
}

// lab is a set of hosts sharing one client key and known_hosts, and a
// scratch install_dir per test.
type lab struct {
	t          *testing.T
	dir        string
	port       int
	clientKey  []byte // PEM
	authorized string
	knownHosts string
	installDir string
	agent      string // the stand-in agent
	hosts      []*sshHost
}

// standInAgent logs its arguments and the mode of its config, and
// sleeps: the real agent needs a manager; the provider's part (install,
// start, supervise, stop, remove) is the same.
const standInAgent = `#!/bin/sh
echo "stand-in agent $* config-mode=$(stat -c %a "$2")"
trap 'echo stopping; exit 0' TERM
while :; do sleep 1; done
`

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newLab(t *testing.T, nHosts int) *lab {
	t.Helper()
	sshd := statictest.Require(t)
	dir := t.TempDir()
	cs, ck := statictest.NewKey(t)
	l := &lab{t: t, dir: dir, port: freePort(t), clientKey: ck,
		authorized: filepath.Join(dir, "authorized_keys"), knownHosts: filepath.Join(dir, "known_hosts"),
		installDir: filepath.Join(dir, "install", "hvctl"), agent: filepath.Join(dir, "agent.sh")}
	must(t, os.WriteFile(l.authorized, ssh.MarshalAuthorizedKey(cs.PublicKey()), 0o600))
	must(t, os.WriteFile(l.agent, []byte(standInAgent), 0o755))
	must(t, os.WriteFile(l.knownHosts, nil, 0o600))
	var b [2]byte
	rand.Read(b[:])
	for i := 0; i < nHosts; i++ {
		addr := fmt.Sprintf("127.%d.%d.%d", 100+int(b[0])%100, b[1], i+2)
		srv := statictest.Start(t, sshd, dir, "", addr, l.port, l.authorized)
		h := &sshHost{addr: addr, port: l.port, hostKey: srv.HostKey}
		l.hosts = append(l.hosts, h)
		l.trust(h, h.hostKey.PublicKey())
	}
	return l
}

// trust puts key for h into known_hosts.
func (l *lab) trust(h *sshHost, key ssh.PublicKey) {
	f, err := os.OpenFile(l.knownHosts, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	must(l.t, err)
	defer f.Close()
	fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(h.addr, fmt.Sprint(h.port)))}, key))
}

// block is the provider block of the lab, with extra settings.
func (l *lab) block(extra map[string]cty.Value) *templates.Provider {
	attrs := map[string]cty.Value{
		"user": cty.StringVal("root"), "private_key": cty.StringVal(string(l.clientKey)),
		"known_hosts": cty.StringVal(l.knownHosts), "port": cty.NumberIntVal(int64(l.port)),
		"agent_binary": cty.StringVal(l.agent), "install_dir": cty.StringVal(l.installDir),
	}
	for k, v := range extra {
		if v == cty.NilVal {
			delete(attrs, k)
		} else {
			attrs[k] = v
		}
	}
	return providerBlock(attrs)
}

func providerBlock(attrs map[string]cty.Value) *templates.Provider {
	cfg := &templates.Provider{Type: "static", Name: "lab", Attrs: attrs, AttrRanges: map[string]hcl.Range{},
		DeclRange: hcl.Range{Filename: "static.hcl", Start: hcl.Pos{Line: 1, Column: 1}}}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		cfg.AttrRanges[n] = hcl.Range{Filename: "static.hcl", Start: hcl.Pos{Line: i + 2, Column: 3}}
	}
	return cfg
}

// provider opens the lab's provider through the registered factory.
func (l *lab) provider(extra map[string]cty.Value) *Provider {
	l.t.Helper()
	f, ok := provision.Lookup("static")
	if !ok {
		l.t.Fatal("static is not registered")
	}
	p, diags := f(l.block(extra), &provision.Env{StateDir: filepath.Join(l.dir, ".hvctl"), Cluster: "lab"})
	if diags.HasErrors() {
		l.t.Fatal(diags)
	}
	return p.(*Provider)
}

func nodeReq(cluster, name, host string, n int) *provision.CreateRequest {
	addr := "site.onprem.node." + name
	return &provision.CreateRequest{Address: addr, Kind: provision.KindInstance, Cluster: cluster, Lineage: "L-" + cluster,
		ClientToken: provision.ClientToken("L-"+cluster, addr, n),
		Attrs: provision.Attrs{"site": "onprem", "name": name, "host": host, "roles": []string{"worker"}, "cpus": int64(2),
			"memory_mib": int64(1024), "join_token": "SECRET-JOIN-" + name, "manager_url": "https://192.0.2.1:51821/"}}
}

// agents lists the pids of the agent supervisors of this lab's nodes:
// one per agent the provider started (each runs one agent at a time).
func (l *lab) agents() []string {
	out, _ := exec.Command("pgrep", "-f", "agent -config .* "+l.installDir+"/n-").Output()
	return strings.Fields(string(out))
}

// agentProcs lists the pids of the agent processes themselves.
func (l *lab) agentProcs() []string {
	out, _ := exec.Command("pgrep", "-f", "^/bin/sh "+l.installDir+"/n-[0-9a-f]+/hvctl agent").Output()
	return strings.Fields(string(out))
}

// waitAgents waits (a bounded readiness wait) until n agent processes
// run: the supervisor starts its agent just after Create returns.
func (l *lab) waitAgents(n int) []string {
	for i := 0; ; i++ {
		a := l.agentProcs()
		if len(a) == n || i > 1000 {
			return a
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// files lists every path under the lab's install_dir's parent.
func (l *lab) files() []string {
	var out []string
	filepath.Walk(filepath.Dir(l.installDir), func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			out = append(out, strings.TrimPrefix(p, filepath.Dir(l.installDir)))
		}
		return nil
	})
	return out
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func randHex() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
