package live_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/overlay/live"
	"github.com/hvctl/hvctl/overlay/live/lab"
	"github.com/hvctl/hvctl/overlay/overlaytest"
	"github.com/hvctl/hvctl/templates"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// needLab skips (or, under HVCTL_E2E=1, fails) when the host cannot run
// real tests.
func needLab(t *testing.T, bins ...string) {
	t.Helper()
	err := lab.Check()
	for _, b := range bins {
		if _, e := exec.LookPath(b); e != nil && err == nil {
			err = fmt.Errorf("needs the %s command", b)
		}
	}
	if err == nil {
		return
	}
	if os.Getenv("HVCTL_E2E") == "1" {
		t.Fatalf("real overlay test cannot run: %v (HVCTL_E2E=1 makes this a failure)", err)
	}
	t.Skipf("real overlay test skipped: %v; run as root, or set HVCTL_E2E=1 to make this a failure", err)
}

// world is three NATed sites of two nodes joined by a live overlay: a.hub
// (primary hub, public) and b.hub (backup hub, public) are their sites'
// gateways; c.gw is site c's gateway behind NAT.
type world struct {
	lab   *lab.Lab
	spec  overlaytest.Spec
	topo  *overlay.Topology
	devs  map[string]*live.Device
	sets  map[string]*overlay.PeerSet
	ids   []string
	hubs  []string
	nodes map[string]*lab.LabNode
}

func newWorld(t *testing.T, kind templates.Topology) *world {
	t.Helper()
	needLab(t)
	spec := overlaytest.ThreeSites(kind)
	var sites []lab.Site
	for _, s := range spec.Sites {
		ls := lab.Site{Name: s.Name}
		for _, n := range s.Nodes {
			ls.Nodes = append(ls.Nodes, lab.Node{Name: n.Name, Public: n.Public})
		}
		sites = append(sites, ls)
	}
	l, err := lab.New(sites)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	built, err := overlaytest.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	// Fix up the site networks to the lab's, and the members to what the
	// nodes really are.
	for i, s := range built.Cluster.Sites {
		s.Network.CIDR = l.Sites[i].CIDR
	}
	w := &world{lab: l, spec: spec, devs: map[string]*live.Device{}, sets: map[string]*overlay.PeerSet{}, nodes: map[string]*lab.LabNode{}}
	keys := map[string]wgtypes.Key{}
	var members []overlay.Member
	for i, m := range built.Members {
		n := l.Node(m.ID)
		w.nodes[m.ID] = n
		k, err := overlay.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[m.ID] = k
		m.PublicKey = k.PublicKey()
		m.SiteAddr = n.Addr
		m.NAT = !n.Public.IsValid()
		m.Endpoint = netip.AddrPort{}
		m.ListenPort = 0
		if n.Public.IsValid() {
			m.Endpoint = netip.AddrPortFrom(n.Public, overlay.DefaultPort)
		} else {
			// Distinct ports so that the NAT keeps them; the reflexive
			// endpoint (NAT address, same port) is what a hub sees.
			m.ListenPort = overlay.DefaultPort + 1 + i
			if kind == templates.Mesh {
				m.Endpoint = netip.AddrPortFrom(n.Site.NAT, uint16(m.ListenPort))
			}
		}
		members = append(members, m)
		w.ids = append(w.ids, m.ID)
	}
	addrs, err := overlay.Allocate(built.Cluster.Overlay.CIDR, nil, w.ids)
	if err != nil {
		t.Fatal(err)
	}
	w.topo, err = overlay.Plan(built.Cluster, members, addrs)
	if err != nil {
		t.Fatal(err)
	}
	w.hubs = w.topo.Hubs()
	for i, id := range w.ids {
		ps, _ := w.topo.PeersFor(id)
		w.sets[id] = ps
		d, err := live.Open(live.Config{Name: fmt.Sprintf("%sw%d", l.Prefix, i), NetNS: w.nodes[id].NS, PrivateKey: keys[id], Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.Close(); err != nil {
				t.Errorf("close %s: %v", id, err)
			}
		})
		if err := d.Apply(ps); err != nil {
			t.Fatal(err)
		}
		w.devs[id] = d
	}
	return w
}

func (w *world) addr(id string) netip.Addr {
	a, _ := w.topo.Address(id)
	return a
}

// ping waits up to within for an echo reply from dst in node from's
// namespace.
func (w *world) ping(from, dst string, within time.Duration) error {
	p, err := live.NewPinger(w.nodes[from].NS)
	if err != nil {
		return err
	}
	defer p.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := p.Ping(ctx, w.addr(dst))
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// listen opens a TCP listener in node id's namespace on its overlay address.
func (w *world) listen(t *testing.T, id string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := lab.InNS(w.nodes[id].NS, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(w.addr(id), 0).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dial connects from node from's namespace to addr.
func (w *world) dial(from string, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := lab.InNS(w.nodes[from].NS, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// tcpEcho checks a TCP round trip from node a to node b.
func (w *world) tcpEcho(t *testing.T, a, b string) error {
	ln := w.listen(t, b)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := w.dial(a, ln.Addr().String(), 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte("hello from " + a)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

func site(id string) string { return strings.SplitN(id, ".", 2)[0] }

func TestLiveTopologies(t *testing.T) {
	for _, kind := range []templates.Topology{templates.Star, templates.Mesh, templates.Hierarchical} {
		t.Run(string(kind), func(t *testing.T) {
			w := newWorld(t, kind)
			// First contact may need a handshake retry (5 s) while NATs
			// open; after that every pair must answer at once.
			for _, a := range w.ids {
				for _, b := range w.ids {
					if a >= b || site(a) == site(b) {
						continue
					}
					if err := w.ping(a, b, 15*time.Second); err != nil {
						t.Errorf("%s: ping %s -> %s: %v", kind, a, b, err)
						continue
					}
					if err := w.tcpEcho(t, a, b); err != nil {
						t.Errorf("%s: tcp %s -> %s: %v", kind, a, b, err)
					}
					if err := w.tcpEcho(t, b, a); err != nil {
						t.Errorf("%s: tcp %s -> %s: %v", kind, b, a, err)
					}
				}
			}
			// wg show reads every device hvctl made.
			for id, d := range w.devs {
				out, err := exec.Command("wg", "show", d.Name(), "peers").CombinedOutput()
				if err != nil {
					t.Errorf("wg show %s (%s): %v: %s", d.Name(), id, err, out)
					continue
				}
				if got, want := len(strings.Fields(string(out))), len(w.sets[id].Peers); got != want {
					t.Errorf("wg show %s (%s): %d peers, want %d", d.Name(), id, got, want)
				}
			}
		})
	}
}

// TestLiveFailover kills the primary hub and waits for traffic between the
// other sites to resume through the backup: the bounded 10 s wait is the
// requirement itself.
func TestLiveFailover(t *testing.T) {
	w := newWorld(t, templates.Star)
	for _, pair := range [][2]string{{"c.n1", "b.n1"}, {"a.n1", "c.n1"}} {
		if err := w.ping(pair[0], pair[1], 15*time.Second); err != nil {
			t.Fatalf("before failover: %s -> %s: %v", pair[0], pair[1], err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	monitors := map[string]*live.Monitor{}
	for _, id := range w.ids {
		if w.sets[id].Failover == nil {
			continue
		}
		p, err := live.NewPinger(w.nodes[id].NS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		m := &live.Monitor{Device: w.devs[id], Prober: p, Interval: time.Second, FailAfter: 3, FailbackAfter: 5 * time.Second,
			Logf: func(f string, a ...any) { t.Logf(id+": "+f, a...) }}
		monitors[id] = m
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(ctx) }()
	}
	if len(monitors) != 4 {
		t.Fatalf("%d nodes with failover hubs, want 4", len(monitors))
	}
	time.Sleep(2 * time.Second) // let the monitors see both hubs up

	primary := w.hubs[0]
	killed := time.Now()
	if err := w.lab.Cut(primary); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{"c.n1", "b.n1"}, {"a.n1", "c.n1"}, {"b.n1", "c.gw"}} {
		left := 10*time.Second - time.Since(killed)
		if err := w.ping(pair[0], pair[1], left); err != nil {
			t.Errorf("%s -> %s not through the backup within 10 s of killing %s: %v", pair[0], pair[1], primary, err)
		}
	}
	t.Logf("traffic resumed %.1fs after the primary hub was cut", time.Since(killed).Seconds())
	for id := range monitors {
		if got := w.devs[id].ActiveHub(); got != w.hubs[1] {
			t.Errorf("%s: active hub %s, want the backup %s", id, got, w.hubs[1])
		}
	}
	if err := w.tcpEcho(t, "c.n1", "b.n1"); err != nil {
		t.Errorf("tcp through the backup: %v", err)
	}

	// The primary comes back: after FailbackAfter of answered probes the
	// range returns to it.
	if err := w.lab.Restore(primary); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for id := range monitors {
		for w.devs[id].ActiveHub() != primary && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if got := w.devs[id].ActiveHub(); got != primary {
			t.Errorf("%s: range did not move back to %s (holder %s)", id, primary, got)
		}
	}
	if err := w.ping("c.n1", "b.n1", 5*time.Second); err != nil {
		t.Errorf("after failback: %v", err)
	}
}

// TestLiveTCPStreamDuringPeerChurn keeps a TCP stream flowing through the
// hub while 20 peers are added to and then removed from every device on
// its path, one Apply per peer.
func TestLiveTCPStreamDuringPeerChurn(t *testing.T) {
	w := newWorld(t, templates.Star)
	if err := w.ping("c.n1", "b.n1", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	ln := w.listen(t, "b.n1")
	received := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		received <- n
	}()
	c, err := w.dial("c.n1", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	var writeErr error
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 16<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Write(buf)
			sent += int64(n)
			if err != nil {
				writeErr = err
				return
			}
		}
	}()

	path := []string{"c.n1", w.hubs[0], "b.n1"}
	var extra []overlay.Peer
	for i := 0; i < 20; i++ {
		k, _ := overlay.GenerateKey()
		a := netip.AddrFrom4([4]byte{10, 200, 100, byte(i + 1)})
		extra = append(extra, overlay.Peer{Node: fmt.Sprintf("extra[%d]", i), Role: overlay.PeerNode, PublicKey: k.PublicKey(),
			Address: a, AllowedIPs: []netip.Prefix{netip.PrefixFrom(a, 32)}})
	}
	step := func(n int) {
		for _, id := range path {
			ps := *w.sets[id]
			ps.Peers = append(append([]overlay.Peer{}, w.sets[id].Peers...), extra[:n]...)
			if err := w.devs[id].Apply(&ps); err != nil {
				t.Fatalf("apply with %d extra peers to %s: %v", n, id, err)
			}
			dev, _ := w.devs[id].Device()
			if got := len(dev.Peers); got != len(ps.Peers) {
				t.Fatalf("%s: %d peers on the device, want %d", id, got, len(ps.Peers))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for n := 1; n <= 20; n++ {
		step(n)
	}
	for n := 19; n >= 0; n-- {
		step(n)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done
	if writeErr != nil {
		t.Fatalf("stream broke while peers changed, after %d bytes: %v", sent, writeErr)
	}
	c.Close()
	got := <-received
	if got != sent {
		t.Errorf("received %d bytes, sent %d", got, sent)
	}
	t.Logf("streamed %.1f MiB through the hub during 40 peer changes on 3 devices", float64(sent)/(1<<20))
}

// TestWGToolsInterop feeds every rendered configuration to wireguard-tools:
// `wg-quick strip` then `wg setconf` on a live device.
func TestWGToolsInterop(t *testing.T) {
	needLab(t, "wg", "wg-quick")
	l, err := lab.New([]lab.Site{{Name: "x", Nodes: []lab.Node{{Name: "n"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	k, _ := overlay.GenerateKey()
	d, err := live.Open(live.Config{Name: l.Prefix + "w0", NetNS: l.Nodes[0].NS, PrivateKey: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	dir := t.TempDir()
	for _, kind := range []templates.Topology{templates.Star, templates.Mesh, templates.Hierarchical} {
		for _, spec := range []overlaytest.Spec{overlaytest.Paper003(kind), overlaytest.ThreeSites(kind)} {
			spec.Reflexive = true
			b, err := overlaytest.Build(spec)
			if err != nil {
				t.Fatal(err)
			}
			tp, err := overlay.Plan(b.Cluster, b.Members, b.Addrs)
			if err != nil {
				t.Fatal(err)
			}
			for i, ps := range tp.All() {
				for _, withKey := range []bool{false, true} {
					var opts overlay.RenderOptions
					if withKey {
						key := b.Keys[ps.Node]
						opts.PrivateKey = &key
					}
					var buf bytes.Buffer
					if err := overlay.RenderWGQuick(&buf, ps, opts); err != nil {
						t.Fatal(err)
					}
					file := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
					os.WriteFile(file, buf.Bytes(), 0o600)
					stripped, err := exec.Command("wg-quick", "strip", file).Output()
					if err != nil {
						t.Errorf("%s %s: wg-quick strip: %v\n%s", kind, ps.Node, err, buf.String())
						continue
					}
					set := exec.Command("wg", "setconf", d.Name(), "/dev/stdin")
					set.Stdin = bytes.NewReader(stripped)
					if out, err := set.CombinedOutput(); err != nil {
						t.Errorf("%s %s: wg setconf: %v: %s\n%s", kind, ps.Node, err, out, stripped)
						continue
					}
					out, err := exec.Command("wg", "show", d.Name(), "allowed-ips").Output()
					if err != nil {
						t.Errorf("wg show: %v", err)
						continue
					}
					if got := len(strings.Split(strings.TrimSpace(string(out)), "\n")); got != len(ps.Peers) {
						t.Errorf("%s %s: wg show lists %d peers, want %d", kind, ps.Node, got, len(ps.Peers))
					}
				}
			}
		}
	}
}
