// Package lab builds throw-away multi-site networks out of network
// namespaces for the overlay's real tests and benchmarks: an "internet"
// bridge, one router per site that masquerades its private site network
// behind a public address (nftables), and one namespace per node on its
// site network. Public nodes also get an address on the internet bridge.
// Everything is named with a random prefix and removed by Close.
package lab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// Site describes a site to build.
type Site struct {
	Name  string
	Nodes []Node
}

// Node is a node of a site.
type Node struct {
	Name   string
	Public bool
}

// Lab is a built network.
type Lab struct {
	Prefix string // unique prefix of every namespace and device name
	Inet   string // namespace holding the internet bridge
	Sites  []*LabSite
	Nodes  []*LabNode

	namespaces []string
}

// LabSite is a built site.
type LabSite struct {
	Name   string
	Router string       // namespace of the site's NAT router
	CIDR   netip.Prefix // the private site network
	NAT    netip.Addr   // the router's public address
}

// LabNode is a built node.
type LabNode struct {
	ID     string // SITE.NODE
	Site   *LabSite
	NS     string     // namespace name
	Addr   netip.Addr // on the site network
	Public netip.Addr // on the internet bridge, or zero
}

// Check reports what the host lacks to build a lab: root and the ip and
// nft commands.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces")
	}
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("needs the %s command (Debian: iproute2, nftables)", bin)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("needs /dev/net/tun: %w", err)
	}
	return nil
}

// New builds sites. Site k (from 1) gets 192.168.k.0/24 behind public
// address 203.0.113.k; the n-th public node gets 203.0.113.(100+n).
func New(sites []Site) (l *Lab, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	b := make([]byte, 3)
	rand.Read(b)
	l = &Lab{Prefix: "hv" + hex.EncodeToString(b)[:5]}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	l.Inet = l.Prefix + "-inet"
	if err := l.addNS(l.Inet); err != nil {
		return nil, err
	}
	if err := l.run(l.Inet, "ip link add br0 type bridge", "ip link set br0 up"); err != nil {
		return nil, err
	}
	public := 0
	for k, s := range sites {
		k++
		site := &LabSite{
			Name:   s.Name,
			Router: fmt.Sprintf("%s-r%d", l.Prefix, k),
			CIDR:   netip.MustParsePrefix(fmt.Sprintf("192.168.%d.0/24", k)),
			NAT:    netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", k)),
		}
		l.Sites = append(l.Sites, site)
		if err := l.addNS(site.Router); err != nil {
			return nil, err
		}
		err := l.run(l.Inet,
			fmt.Sprintf("ip link add r%d type veth peer name pub netns %s", k, site.Router),
			fmt.Sprintf("ip link set r%d master br0 up", k))
		if err != nil {
			return nil, err
		}
		err = l.run(site.Router,
			fmt.Sprintf("ip addr add %s/24 dev pub", site.NAT),
			"ip link set pub up",
			"ip link add lan type bridge",
			fmt.Sprintf("ip addr add 192.168.%d.1/24 dev lan", k),
			"ip link set lan up")
		if err != nil {
			return nil, err
		}
		if err := l.sysctl(site.Router, "net/ipv4/ip_forward", "1"); err != nil {
			return nil, err
		}
		// A home-router NAT: masquerade out, and drop unsolicited
		// packets to the router itself (so they leave no conntrack entry
		// that would clash with a later outgoing mapping).
		nft := `table ip nat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "pub" masquerade
	}
}
table ip filter {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "pub" ct state new drop
	}
}
`
		if out, err := l.cmd(site.Router, strings.NewReader(nft), "nft", "-f", "-"); err != nil {
			return nil, fmt.Errorf("nft in %s: %v: %s", site.Router, err, out)
		}
		for j, n := range s.Nodes {
			j++
			node := &LabNode{
				ID:   s.Name + "." + n.Name,
				Site: site,
				NS:   fmt.Sprintf("%s-%d-%d", l.Prefix, k, j),
				Addr: netip.MustParseAddr(fmt.Sprintf("192.168.%d.%d", k, 10+j)),
			}
			if err := l.addNS(node.NS); err != nil {
				return nil, err
			}
			err := l.run(site.Router,
				fmt.Sprintf("ip link add v%d type veth peer name eth0 netns %s", j, node.NS),
				fmt.Sprintf("ip link set v%d master lan up", j))
			if err != nil {
				return nil, err
			}
			err = l.run(node.NS,
				fmt.Sprintf("ip addr add %s/24 dev eth0", node.Addr),
				"ip link set eth0 up",
				fmt.Sprintf("ip route add default via 192.168.%d.1", k))
			if err != nil {
				return nil, err
			}
			if n.Public {
				public++
				node.Public = netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", 100+public))
				err := l.run(l.Inet,
					fmt.Sprintf("ip link add p%d type veth peer name pub netns %s", public, node.NS),
					fmt.Sprintf("ip link set p%d master br0 up", public))
				if err != nil {
					return nil, err
				}
				err = l.run(node.NS,
					fmt.Sprintf("ip addr add %s/24 dev pub", node.Public),
					"ip link set pub up")
				if err != nil {
					return nil, err
				}
			}
			l.Nodes = append(l.Nodes, node)
		}
	}
	return l, nil
}

// Node returns the node with ID "SITE.NODE", or nil.
func (l *Lab) Node(id string) *LabNode {
	for _, n := range l.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Cut takes every link of node id down: the node is gone from the network.
func (l *Lab) Cut(id string) error {
	n := l.Node(id)
	cmds := []string{"ip link set eth0 down"}
	if n.Public.IsValid() {
		cmds = append(cmds, "ip link set pub down")
	}
	return l.run(n.NS, cmds...)
}

// Restore brings a cut node's links back up.
func (l *Lab) Restore(id string) error {
	n := l.Node(id)
	gw := n.Site.CIDR.Addr().Next()
	cmds := []string{"ip link set eth0 up", "ip route replace default via " + gw.String()}
	if n.Public.IsValid() {
		cmds = append(cmds, "ip link set pub up")
	}
	return l.run(n.NS, cmds...)
}

// Exec runs a command in namespace ns and returns its combined output.
func (l *Lab) Exec(ns string, name string, args ...string) ([]byte, error) {
	return l.cmd(ns, nil, name, args...)
}

func (l *Lab) cmd(ns string, stdin *strings.Reader, name string, args ...string) ([]byte, error) {
	c := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	if stdin != nil {
		c.Stdin = stdin
	}
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.Bytes(), err
}

func (l *Lab) addNS(name string) error {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	l.namespaces = append(l.namespaces, name)
	return l.run(name, "ip link set lo up")
}

// run runs "ip ..." commands with -n ns.
func (l *Lab) run(ns string, cmds ...string) error {
	for _, c := range cmds {
		f := strings.Fields(c)
		args := append([]string{"-n", ns}, f[1:]...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip -n %s %s: %v: %s", ns, strings.Join(f[1:], " "), err, out)
		}
	}
	return nil
}

func (l *Lab) sysctl(ns, key, value string) error {
	return InNS(ns, func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(value+"\n"), 0o644)
	})
}

// Close deletes every namespace the lab made (and with them their links).
func (l *Lab) Close() error {
	var errs []error
	for i := len(l.namespaces) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", "netns", "del", l.namespaces[i]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", l.namespaces[i], err, out))
		}
	}
	l.namespaces = nil
	return errors.Join(errs...)
}

// InNS runs fn on a thread inside namespace name. Sockets fn opens stay in
// that namespace, so tests can listen and dial from Go.
func InNS(name string, fn func() error) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}
