package cli_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/provision/static/statictest"
	"github.com/hvctl/hvctl/scheduler"
)

// hybridTemplate: an on-prem data centre of existing machines in two
// static sites — "dc", a public head (hub and manager) reached directly
// as root, and "lab", two workers behind a NAT reached through the NAT
// box's sshd (the bastion) as a non-root user with sudo — bursting to a
// local-provider cloud site whose internet is routed to the lab's
// outside network (outside_interfaces). The key is read with file(), the
// spec's form, although the manager (the static head) loads the
// template too.
const hybridTemplate = `
provider "static" "dc" {
  user        = "root"
  private_key = file("keys/id_ed25519")
  known_hosts = "keys/known_hosts"
  install_dir = "%[1]s/hosts/dc"
}

provider "static" "lab" {
  user        = "%[2]s"
  private_key = file("keys/id_ed25519")
  known_hosts = "keys/known_hosts"
  become      = "sudo"
  jump_host   = "%[3]s.2:22"
  install_dir = "%[1]s/hosts/lab"
}

provider "local" "cloud" {
  outside_interfaces = ["%[4]s"]
}

cluster "%[5]s" {
  overlay {
    cidr = "10.206.0.0/16"
    hubs = ["dc.head"]
  }
  site "dc" {
    provider = provider.static.dc
    network { cidr = "%[3]s.0/24" }
    node "head" {
      roles     = ["hub", "manager"]
      public_ip = true
      host      = "%[3]s.10"
    }
  }
  site "lab" {
    provider = provider.static.lab
    network { cidr = "%[6]s.0/24" }
    pool "wn" {
      hosts = ["%[6]s.10", "%[6]s.11"]
      instance { cpus = 2 }
    }
  }
  site "cloud" {
    provider = provider.local.cloud
    network { cidr = "10.64.0.0/24" }
    node "edge" { public_ip = true }
    pool "burst" { count = 1 }
  }
}
`

// hybridLab is the on-prem side of the hybrid test: the outside network
// (a bridge, the machine holding .1 of wan), a public host on it, a NAT
// box (a router namespace masquerading the lab network out of its wan0,
// dropping unsolicited inbound packets but SSH to itself) and two hosts
// behind it. Each host and the NAT box runs its own sshd; the lab's
// accept only the user, who may sudo.
type hybridLab struct {
	bridge    string
	wan, lan  string // /24 prefixes, "10.248.N"
	user      string
	hostsNS   []string // the host namespaces (head, lab workers)
	installTo []string // install_dir of each static provider
}

func newHybridLab(t *testing.T, dir string) *hybridLab {
	t.Helper()
	requireRoot(t)
	sshd := statictest.Require(t)
	tag := fmt.Sprintf("%05d", rand.IntN(1e5))
	n := 1 + rand.IntN(250)
	l := &hybridLab{bridge: "hy" + tag + "w", wan: fmt.Sprintf("10.248.%d", n), lan: fmt.Sprintf("10.247.%d", n), user: "hy" + tag,
		installTo: []string{filepath.Join(dir, "hosts", "dc"), filepath.Join(dir, "hosts", "lab")}}
	run := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	netns := func(name string) string {
		ns := "hy" + tag + "-" + name
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run("ip", "-n", ns, "link", "set", "lo", "up")
		return ns
	}
	// in runs ip in namespace ns ("" = this one).
	in := func(ns string, args ...string) {
		t.Helper()
		if ns != "" {
			args = append([]string{"-n", ns}, args...)
		}
		run(append([]string{"ip"}, args...)...)
	}
	// veth makes a pair: a in namespace aNS ("" = this one) on bridge
	// aBr there, its peer bName in bNS with address addr and a default
	// route via via.
	veth := func(a, aNS, aBr, bNS, bName, addr, via string) {
		t.Helper()
		run("ip", "link", "add", a, "type", "veth", "peer", "name", a+"p")
		// Deleted here too: a namespace lingers while its TIME_WAIT sockets do.
		t.Cleanup(func() { exec.Command("ip", "link", "del", a).Run() })
		if aNS != "" {
			run("ip", "link", "set", a, "netns", aNS)
		}
		in(aNS, "link", "set", a, "master", aBr, "up")
		run("ip", "link", "set", a+"p", "netns", bNS)
		in(bNS, "link", "set", a+"p", "name", bName)
		in(bNS, "addr", "add", addr+"/24", "dev", bName)
		in(bNS, "link", "set", bName, "up")
		in(bNS, "route", "add", "default", "via", via)
	}
	run("ip", "link", "add", l.bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", l.bridge).Run() })
	run("ip", "addr", "add", l.wan+".1/24", "dev", l.bridge)
	run("ip", "link", "set", l.bridge, "up")

	head := netns("dc")
	veth("hy"+tag+"d", "", l.bridge, head, "eth0", l.wan+".10", l.wan+".1")
	gw := netns("gw")
	veth("hy"+tag+"g", "", l.bridge, gw, "wan0", l.wan+".2", l.wan+".1")
	run("ip", "-n", gw, "link", "add", "br0", "type", "bridge")
	run("ip", "-n", gw, "addr", "add", l.lan+".1/24", "dev", "br0")
	run("ip", "-n", gw, "link", "set", "br0", "up")
	l.hostsNS = []string{head}
	for i := 0; i < 2; i++ {
		ns := netns(fmt.Sprintf("n%d", i))
		veth(fmt.Sprintf("hy%sl%d", tag, i), gw, "br0", ns, "eth0", fmt.Sprintf("%s.%d", l.lan, 10+i), l.lan+".1")
		l.hostsNS = append(l.hostsNS, ns)
	}
	// The NAT box: forwards, masquerades the lab out of wan0, and lets
	// nothing in but replies and SSH to itself (the bastion); the
	// bridge's frames are not seen by its nftables (br_netfilter off), as
	// the local provider's routers do.
	run("ip", "netns", "exec", gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	exec.Command("ip", "netns", "exec", gw, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-arptables=0").Run()
	nat := exec.Command("ip", "netns", "exec", gw, "nft", "-f", "-")
	nat.Stdin = strings.NewReader(fmt.Sprintf(`table ip hylab {
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		oifname "wan0" ip saddr %[1]s.0/24 masquerade
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "wan0" ct state established,related accept
		iifname "wan0" drop
	}
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "wan0" tcp dport 22 accept
		iifname "wan0" ct state new drop
	}
}
`, l.lan))
	if out, err := nat.CombinedOutput(); err != nil {
		t.Fatalf("the lab's NAT: %v\n%s", err, out)
	}

	// One client key; the head lets root in, the lab (and its bastion)
	// only the user, who has passwordless sudo there.
	keys := filepath.Join(dir, "keys")
	must(t, os.MkdirAll(keys, 0o700))
	signer, pemKey := statictest.NewKey(t)
	must(t, os.WriteFile(filepath.Join(keys, "id_ed25519"), pemKey, 0o600))
	auth := filepath.Join(keys, "authorized_keys")
	must(t, os.WriteFile(auth, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600))
	user := statictest.NewSudoUser(t, l.user, 62000+rand.IntN(1000), auth)
	var known strings.Builder
	for _, s := range []*statictest.Server{
		statictest.Start(t, sshd, dir, head, l.wan+".10", 22, auth),
		statictest.StartWith(t, sshd, dir, gw, l.wan+".2", 22, auth, user),
	} {
		known.WriteString(s.KnownHostsLine() + "\n")
	}
	for i, ns := range l.hostsNS[1:] {
		s := statictest.StartWith(t, sshd, dir, ns, fmt.Sprintf("%s.%d", l.lan, 10+i), 22, auth, user)
		known.WriteString(s.KnownHostsLine() + "\n")
	}
	must(t, os.WriteFile(filepath.Join(keys, "known_hosts"), []byte(known.String()), 0o600))
	return l
}

// hostState lists the processes (command lines, but sshd's) and links
// of each host namespace: what "as it was" compares.
func hostState(t *testing.T, l *hybridLab) string {
	t.Helper()
	var b strings.Builder
	for _, ns := range l.hostsNS {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		var cmds []string
		for _, pid := range strings.Fields(string(out)) {
			c, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			if cmd := strings.ReplaceAll(string(c), "\x00", " "); cmd != "" && !strings.Contains(cmd, "sshd") {
				// (sshd itself, and its short-lived children for
				// connections, are the host's)
				cmds = append(cmds, cmd)
			}
		}
		sort.Strings(cmds)
		links, _ := exec.Command("ip", "-n", ns, "-o", "link").Output()
		var names []string
		for _, line := range strings.Split(strings.TrimSpace(string(links)), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				names = append(names, f[1])
			}
		}
		fmt.Fprintf(&b, "%s: procs %q links %q\n", ns, cmds, names)
	}
	return b.String()
}

func readSysctl(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestHybridStaticCloud: static hosts in a public site and in a site
// behind NAT (reached through a bastion, as a non-root user with sudo)
// and a local-provider cloud site, joined into one cluster: up joins
// all five, every pair of nodes reaches the other (check -all-pairs),
// jobs run on the static hosts, and down leaves each host as it was (the
// same processes and links, no file) and the machine's outside network
// as it was (its forwarding off again, no nft table).
func TestHybridStaticCloud(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := newHybridLab(t, dir)
	cluster := "hy" + l.user[2:]
	must(t, os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(hybridTemplate, dir, l.user, l.wan, l.bridge, cluster, l.lan)), 0o644))
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	forwarding := "/proc/sys/net/ipv4/conf/" + l.bridge + "/forwarding"
	if v := readSysctl(t, forwarding); v != "0" {
		t.Fatalf("%s is %s before up, want 0", forwarding, v)
	}
	before := hostState(t, l)
	logs := func() string {
		var b strings.Builder
		for _, d := range l.installTo {
			files, _ := filepath.Glob(filepath.Join(d, "n-*", "agent.log"))
			for _, f := range files {
				c, _ := os.ReadFile(f)
				fmt.Fprintf(&b, "== %s\n%s\n", f, c)
			}
		}
		return b.String() + agentLogs(dir)
	}
	start := time.Now()
	r := hv(t, dir, "", "up", "-join-timeout=120s", "main.hcl")
	if r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, logs())
	}
	t.Logf("up: %s", time.Since(start).Round(time.Second))
	if v := readSysctl(t, forwarding); v != "1" {
		t.Errorf("%s is %s after up, want 1 (routed to the cloud's internet)", forwarding, v)
	}
	doc := localStatus(t, dir)
	sites := map[string]int{}
	for _, n := range doc.Nodes {
		sites[n.Site]++
	}
	if sites["dc"] != 1 || sites["lab"] != 2 || sites["cloud"] != 2 {
		t.Fatalf("status shows nodes per site %v, want dc 1, lab 2, cloud 2", sites)
	}

	// Every pair, with a few tries while the mesh learns its endpoints.
	var cj struct {
		Pairs []struct {
			From, To  string
			Ping, TCP bool
			Error     string
		}
		Broken int
	}
	for try := 0; ; try++ {
		r = hv(t, dir, "", "check", "-all-pairs", "-json", "main.hcl")
		if err := json.Unmarshal([]byte(r.stdout), &cj); err != nil {
			t.Fatalf("check -all-pairs -json: %v\n%s%s", err, r.stdout, r.stderr)
		}
		if (r.code == 0 && cj.Broken == 0) || try == 5 {
			t.Logf("check -all-pairs: %d broken at try %d", cj.Broken, try+1)
			break
		}
		time.Sleep(3 * time.Second)
	}
	if len(cj.Pairs) != 20 || cj.Broken != 0 || r.code != 0 {
		t.Errorf("check -all-pairs: exit %d, %d pairs, %d broken; want 20 pairs, none broken:\n%s%s", r.code, len(cj.Pairs), cj.Broken, r.stdout, r.stderr)
	}

	// Jobs on the static hosts behind the NAT.
	if r := hv(t, dir, "", "submit", "-n", "4", "-site", "lab", "main.hcl", "--", "sh", "-c", "id -u; echo $HVCTL_NODE"); r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	for _, j := range waitJobs(t, dir, 4, 2*time.Minute) {
		if j.State != scheduler.Done {
			t.Errorf("job %s: %s on %s", j.ID, j.State, j.Node)
		}
		if !strings.HasPrefix(j.Node, "lab.wn[") {
			t.Errorf("job %s ran on %q (site %q), want a static host of its site", j.ID, j.Node, j.Site)
		}
	}
	if t.Failed() {
		t.Log(logs())
	}

	start = time.Now()
	if r := hv(t, dir, "", "down", "main.hcl"); r.code != 0 {
		t.Fatalf("down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("down: %s", time.Since(start).Round(time.Second))
	if after := hostState(t, l); after != before {
		t.Errorf("the hosts are not as they were:\nbefore %s\nafter  %s", before, after)
	}
	for _, d := range l.installTo {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("install_dir %s left after down (%v)", d, err)
		}
	}
	if v := readSysctl(t, forwarding); v != "0" {
		t.Errorf("%s is %s after down, want 0 again", forwarding, v)
	}
	if out, _ := exec.Command("nft", "list", "ruleset").Output(); strings.Contains(string(out), l.bridge) {
		t.Errorf("an nft rule naming %s is left after down", l.bridge)
	}
}
