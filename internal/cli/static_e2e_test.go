package cli_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hvctl/hvctl/provision/static/statictest"
	"github.com/hvctl/hvctl/scheduler"
)

const staticTemplate = `
provider "static" "lab" {
  user        = "root"
  private_key = "%s/id_ed25519" # a path: the hub loads the template too
  known_hosts = "known_hosts"
  install_dir = "%s"
}

cluster "%s" {
  overlay {
    cidr = "10.203.0.0/16"
    hubs = ["onprem.head"]
  }
  site "onprem" {
    provider = provider.static.lab
    network { cidr = "%s.0/24" }
    node "head" {
      roles     = ["hub", "manager"]
      public_ip = true
      host      = "%s.10"
    }
    pool "wn" {
      hosts = ["%s.11", "%s.12"]
      instance { cpus = 2 }
    }
  }
}
`

// staticLab makes the machines of a static site: network namespaces on
// a bridge (the site network, whose first address the host holds), each
// running its own sshd on port 22 with its own host key.
func staticLab(t *testing.T, dir string, n int) (prefix string, hosts []*statictest.Server) {
	t.Helper()
	requireRoot(t)
	sshd := statictest.Require(t)
	tag := fmt.Sprintf("%05d", rand.IntN(1e5))
	prefix = fmt.Sprintf("10.251.%d", 1+rand.IntN(250))
	run := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	br := "stbr" + tag
	run("ip", "link", "add", br, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", br).Run() })
	run("ip", "addr", "add", prefix+".1/24", "dev", br)
	run("ip", "link", "set", br, "up")
	signer, pemKey := statictest.NewKey(t)
	must(t, os.WriteFile(filepath.Join(dir, "id_ed25519"), pemKey, 0o600))
	auth := filepath.Join(dir, "authorized_keys")
	must(t, os.WriteFile(auth, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600))
	var known strings.Builder
	for i := 0; i < n; i++ {
		ns, veth := fmt.Sprintf("st%s-h%d", tag, i), fmt.Sprintf("st%s%d", tag, i)
		addr := fmt.Sprintf("%s.%d", prefix, 10+i)
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run("ip", "link", "add", veth, "type", "veth", "peer", "name", veth+"p")
		// Deleted here too: a namespace lingers while its TIME_WAIT sockets do.
		t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() })
		run("ip", "link", "set", veth, "master", br, "up")
		run("ip", "link", "set", veth+"p", "netns", ns)
		run("ip", "-n", ns, "link", "set", veth+"p", "name", "eth0")
		run("ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		run("ip", "-n", ns, "link", "set", "eth0", "up")
		run("ip", "-n", ns, "link", "set", "lo", "up")
		run("ip", "-n", ns, "route", "add", "default", "via", prefix+".1")
		s := statictest.Start(t, sshd, dir, ns, addr, 22, auth)
		hosts = append(hosts, s)
		known.WriteString(s.KnownHostsLine() + "\n")
	}
	must(t, os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(known.String()), 0o600))
	return prefix, hosts
}

// unredacted matches a join token shown in JSON.
var unredacted = regexp.MustCompile(`"join_token": "[^(]`)

// staticAgents lists the processes running from install_dir.
func staticAgents(installDir string) []string {
	out, _ := exec.Command("pgrep", "-f", installDir+"/n-").Output()
	return strings.Fields(string(out))
}

// TestStaticUpDown: up joins three existing machines (network
// namespaces with their own sshd) to a cluster over SSH; every pair
// reaches the other over the overlay, jobs run on them, and down leaves
// each as it was: no agent, no file.
func TestStaticUpDown(t *testing.T) {
	dir := t.TempDir()
	prefix, _ := staticLab(t, dir, 3)
	install := writeStaticTemplate(t, dir, prefix)
	logs := func() string {
		var b strings.Builder
		files, _ := filepath.Glob(filepath.Join(install, "n-*", "agent.log"))
		for _, f := range files {
			c, _ := os.ReadFile(f)
			fmt.Fprintf(&b, "== %s\n%s\n", f, c)
		}
		return b.String()
	}
	r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl")
	if r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, logs())
	}
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, "PRIVATE KEY") {
			t.Errorf("up printed the private key")
		}
	}
	doc := localStatus(t, dir)
	if len(doc.Nodes) != 3 {
		t.Fatalf("status shows %d nodes, want 3", len(doc.Nodes))
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, from := range doc.Nodes {
		for _, to := range doc.Nodes {
			if from.Address == to.Address {
				continue
			}
			for {
				r := hv(t, dir, "", "exec", from.Address, "main.hcl", "--", "ping", "-c", "1", "-W", "2", to.OverlayIP)
				if r.code == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s cannot reach %s (%s):\n%s%s", from.Address, to.Address, to.OverlayIP, r.stdout, r.stderr)
					break
				}
			}
		}
	}
	if r := hv(t, dir, "", "submit", "-n", "4", "main.hcl", "--", "sh", "-c", "echo $HVCTL_NODE"); r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	for _, j := range waitJobs(t, dir, 4, time.Minute) {
		if j.State != scheduler.Done {
			t.Errorf("job %s: %s on %s", j.ID, j.State, j.Node)
		}
	}
	for _, f := range []string{"show", "state"} {
		r := hv(t, dir, "", f, "-json", "main.hcl")
		if strings.Contains(r.stdout, "PRIVATE KEY") || unredacted.MatchString(r.stdout) {
			t.Errorf("%s -json holds a secret:\n%s", f, r.stdout)
		}
	}
	if t.Failed() {
		t.Log(logs())
	}
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatalf("down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if a := staticAgents(install); len(a) != 0 {
		t.Errorf("agents left after down: %v", a)
	}
	if _, err := os.Stat(install); !os.IsNotExist(err) {
		t.Errorf("install_dir %s left after down (%v)", install, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// staticUpTemplate writes the static cluster's template into dir.
func writeStaticTemplate(t *testing.T, dir, prefix string) (install string) {
	install = filepath.Join(dir, "hosts", "hvctl")
	name := fmt.Sprintf("st%d", rand.IntN(1e6))
	src := fmt.Sprintf(staticTemplate, dir, install, name, prefix, prefix, prefix, prefix)
	must(t, os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644))
	t.Cleanup(func() { hv(t, dir, "", "down", "main.hcl") })
	return install
}

// supervisors counts the agent supervisors (one per started agent) of
// each node directory under install.
func supervisors(t *testing.T, install string) map[string]int {
	out, _ := exec.Command("pgrep", "-a", "-f", "pid.new.* "+install+"/n-").Output()
	n := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			n[f[len(f)-1]]++
		}
	}
	return n
}

// TestStaticBadHosts: a host whose key is not the one in known_hosts is
// refused with an error naming the node and the host, a host that is
// down with one naming it, and the rest of the apply goes on; once both
// are fixed, up completes.
func TestStaticBadHosts(t *testing.T) {
	dir := t.TempDir()
	prefix, hosts := staticLab(t, dir, 3)
	install := writeStaticTemplate(t, dir, prefix)
	// wn[0]'s key in known_hosts is another one; wn[1]'s sshd is stopped.
	other, _ := statictest.NewKey(t)
	known, _ := os.ReadFile(filepath.Join(dir, "known_hosts"))
	good := string(known)
	bad := strings.Replace(good, hosts[1].KnownHostsLine(), strings.Fields(hosts[1].KnownHostsLine())[0]+" "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other.PublicKey()))), 1)
	must(t, os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(bad), 0o600))
	hosts[2].Stop()

	r := hv(t, dir, "", "up", "-join-timeout=60s", "main.hcl")
	if r.code == 0 {
		t.Fatalf("up succeeded with a wrong host key and a host down:\n%s", r.stdout)
	}
	for _, want := range []string{"site.onprem.pool.wn.node[0]", hosts[1].Addr, "does not match", "site.onprem.pool.wn.node[1]", hosts[2].Addr, "connection refused"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("up's errors lack %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "site.onprem.node.head: Creation complete") {
		t.Errorf("the good host was not joined:\n%s", r.stdout)
	}
	if s := supervisors(t, install); len(s) != 1 {
		t.Errorf("agents on %d hosts, want 1 (the head): %v", len(s), s)
	}
	// Fixed: the key is right again and the host is back.
	must(t, os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(good), 0o600))
	hosts[2].Restart(t)
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up after the fix: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for d, n := range supervisors(t, install) {
		if n != 1 {
			t.Errorf("%s runs %d agents", d, n)
		}
	}
	if s := supervisors(t, install); len(s) != 3 {
		t.Errorf("agents on %d hosts, want 3", len(s))
	}
}

// TestStaticUpKilled: hvctl up killed (SIGKILL) at random moments, then
// run to the end: each host runs exactly one agent, all joined.
func TestStaticUpKilled(t *testing.T) {
	dir := t.TempDir()
	prefix, _ := staticLab(t, dir, 3)
	install := writeStaticTemplate(t, dir, prefix)
	for i := 0; i < 4; i++ {
		cmd := exec.Command(hvctl, "up", "-join-timeout=60s", "main.hcl")
		cmd.Dir = dir
		must(t, cmd.Start())
		time.Sleep(time.Duration(rand.IntN(2500)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up after kills: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s := supervisors(t, install)
	if len(s) != 3 {
		t.Errorf("agents on %d hosts, want 3: %v", len(s), s)
	}
	for d, n := range s {
		if n != 1 {
			t.Errorf("%s runs %d agents, want 1", d, n)
		}
	}
	if doc := localStatus(t, dir); len(doc.Nodes) != 3 {
		t.Errorf("status shows %d nodes, want 3", len(doc.Nodes))
	}
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatalf("down: %s", r.stderr)
	}
	if a := staticAgents(install); len(a) != 0 {
		t.Errorf("agents left after down: %v", a)
	}
}

// TestStaticJumpHost: a machine reachable only from a bastion (its sshd
// listens on the bastion's loopback, inside the bastion's namespace) is
// joined through jump_host; without it, it cannot be reached.
func TestStaticJumpHost(t *testing.T) {
	dir := t.TempDir()
	prefix, hosts := staticLab(t, dir, 1)
	inner := statictest.Start(t, statictest.Require(t), dir, hosts[0].Netns(), "127.0.0.1", 2222, filepath.Join(dir, "authorized_keys"))
	f, err := os.OpenFile(filepath.Join(dir, "known_hosts"), os.O_APPEND|os.O_WRONLY, 0o600)
	must(t, err)
	fmt.Fprintln(f, inner.KnownHostsLine())
	f.Close()
	cluster := fmt.Sprintf("sj%d", rand.IntN(1e6))
	tmpl := func(jump string) {
		src := fmt.Sprintf(`
provider "static" "lab" {
  user        = "root"
  private_key = "%s/id_ed25519"
  known_hosts = "known_hosts"
  install_dir = "%s/hosts/hvctl"
  port        = 2222
  %s
}
cluster "%s" {
  overlay {
    cidr = "10.204.0.0/16"
    hubs = ["onprem.head"]
  }
  site "onprem" {
    provider = provider.static.lab
    network { cidr = "%s.0/24" }
    node "head" {
      roles     = ["hub", "manager"]
      public_ip = true
      host      = "127.0.0.1"
    }
  }
}
`, dir, dir, jump, cluster, prefix)
		must(t, os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644))
	}
	tmpl("")
	t.Cleanup(func() { hv(t, dir, "", "down", "main.hcl") })
	if r := hv(t, dir, "", "apply", "-auto-approve", "main.hcl"); r.code == 0 || !strings.Contains(r.stderr, "127.0.0.1:2222") {
		t.Fatalf("without the jump host: exit %d\n%s", r.code, r.stderr)
	}
	tmpl(fmt.Sprintf(`jump_host = "%s:22"`, hosts[0].Addr))
	if r := hv(t, dir, "", "apply", "-auto-approve", "main.hcl"); r.code != 0 {
		t.Fatalf("through the jump host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, dir, "", "exec", "onprem.head", "main.hcl", "--", "sh", "-c", "ip -o addr show eth0"); r.code != 0 || !strings.Contains(r.stdout, hosts[0].Addr) {
		t.Errorf("exec through the jump host ran elsewhere: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatalf("down: %s", r.stderr)
	}
	if a := staticAgents(filepath.Join(dir, "hosts", "hvctl")); len(a) != 0 {
		t.Errorf("agents left: %v", a)
	}
}
