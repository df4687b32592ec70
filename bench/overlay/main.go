// Command overlay measures the WireGuard overlay on a lab of network
// namespaces, all in one run: single-stream TCP throughput (iperf3) over
// the raw underlay, over one WireGuard tunnel, through the star hub, over
// a direct mesh tunnel, and over an OpenVPN static-key tunnel (the
// transport of paper 003's vRouter); and the time from device start to
// the first packet over the overlay. It prints figures and ratios.
//
// Needs root, iproute2, nftables, iperf3 and openvpn:
//
//	go run ./bench/overlay [-t 5s] [-starts 10]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/overlay/live"
	"github.com/hvctl/hvctl/overlay/live/lab"
	"github.com/hvctl/hvctl/overlay/overlaytest"
	"github.com/hvctl/hvctl/templates"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

var (
	duration = flag.Duration("t", 5*time.Second, "iperf3 run time per measurement")
	starts   = flag.Int("starts", 10, "device starts to time")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/overlay:", err)
		os.Exit(1)
	}
}

// overlayNet is one lab with an overlay of the given topology on it.
type overlayNet struct {
	topo *overlay.Topology
	devs []*live.Device
}

func (o *overlayNet) close() {
	for _, d := range o.devs {
		d.Close()
	}
}

func run() error {
	for _, bin := range []string{"iperf3", "openvpn"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("needs %s (Debian package %s)", bin, bin)
		}
	}
	spec := overlaytest.ThreeSites(templates.Star)
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
		return err
	}
	defer l.Close()
	hub, bn, cn := l.Node("a.hub"), l.Node("b.n1"), l.Node("c.n1")

	type row struct {
		name string
		bps  float64
		note string
	}
	var rows []row
	measure := func(name, note, from string, to netip.Addr, serverNS string) error {
		bps, err := iperf(l, from, to, serverNS)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rows = append(rows, row{name, bps, note})
		fmt.Fprintf(os.Stderr, "%-34s %8.0f Mbit/s\n", name, bps/1e6)
		return nil
	}

	// Raw underlay: node behind NAT in site b to the public hub in site a.
	if err := measure("raw veth (b.n1 -> hub, NAT)", "underlay, one NAT", bn.NS, hub.Public, hub.NS); err != nil {
		return err
	}

	// Star.
	star, err := bringUp(l, templates.Star)
	if err != nil {
		return err
	}
	hubAddr, _ := star.topo.Address("a.hub")
	cAddr, _ := star.topo.Address("c.n1")
	if err := waitPing(bn.NS, hubAddr, 15*time.Second); err != nil {
		return err
	}
	if err := waitPing(bn.NS, cAddr, 15*time.Second); err != nil {
		return err
	}
	if err := measure("wireguard one tunnel (b.n1 -> hub)", "wireguard-go", bn.NS, hubAddr, hub.NS); err != nil {
		return err
	}
	if err := measure("star through hub (b.n1 -> c.n1)", "two tunnels, hub forwards", bn.NS, cAddr, cn.NS); err != nil {
		return err
	}
	star.close()

	// Mesh: direct tunnel between two NATed sites.
	mesh, err := bringUp(l, templates.Mesh)
	if err != nil {
		return err
	}
	cAddr, _ = mesh.topo.Address("c.n1")
	if err := waitPing(bn.NS, cAddr, 15*time.Second); err != nil {
		return err
	}
	if err := measure("mesh direct (b.n1 -> c.n1)", "one tunnel through two NATs", bn.NS, cAddr, cn.NS); err != nil {
		return err
	}
	mesh.close()

	// OpenVPN static key, client in b.n1, server on the hub.
	stopVPN, err := openvpn(l, hub, bn)
	if err != nil {
		return err
	}
	if err := measure("openvpn static key (b.n1 -> hub)", "paper 003 vRouter transport", bn.NS, netip.MustParseAddr("10.8.0.1"), hub.NS); err != nil {
		stopVPN()
		return err
	}
	stopVPN()

	// Time from device start to the first packet over the overlay.
	startTimes, err := timeStarts(l, *starts)
	if err != nil {
		return err
	}

	base := rows[0].bps
	fmt.Printf("single-stream TCP throughput, iperf3 -t %s, one run on %s\n\n", *duration, l.Prefix)
	fmt.Printf("| path | Mbit/s | vs raw | note |\n|---|---:|---:|---|\n")
	for _, r := range rows {
		fmt.Printf("| %s | %.0f | %.2f | %s |\n", r.name, r.bps/1e6, r.bps/base, r.note)
	}
	var wg, ovpn float64
	for _, r := range rows {
		switch {
		case strings.HasPrefix(r.name, "wireguard one"):
			wg = r.bps
		case strings.HasPrefix(r.name, "openvpn"):
			ovpn = r.bps
		}
	}
	fmt.Printf("\nwireguard / openvpn (one tunnel each): %.2f\n", wg/ovpn)
	slices.Sort(startTimes)
	fmt.Printf("\ndevice start to first packet over the overlay (%d starts): median %s, min %s, max %s\n",
		len(startTimes), startTimes[len(startTimes)/2].Round(time.Millisecond), startTimes[0].Round(time.Millisecond), startTimes[len(startTimes)-1].Round(time.Millisecond))
	return nil
}

// bringUp plans kind over the lab's ThreeSites cluster and starts every
// node's device.
func bringUp(l *lab.Lab, kind templates.Topology) (*overlayNet, error) {
	spec := overlaytest.ThreeSites(kind)
	b, err := overlaytest.Build(spec)
	if err != nil {
		return nil, err
	}
	for i, s := range b.Cluster.Sites {
		s.Network.CIDR = l.Sites[i].CIDR
	}
	var ids []string
	privs := map[string]wgtypes.Key{}
	for i := range b.Members {
		m := &b.Members[i]
		n := l.Node(m.ID)
		k, err := overlay.GenerateKey()
		if err != nil {
			return nil, err
		}
		privs[m.ID] = k
		m.PublicKey = k.PublicKey()
		m.SiteAddr = n.Addr
		m.NAT = !n.Public.IsValid()
		m.Endpoint, m.ListenPort = netip.AddrPort{}, 0
		if n.Public.IsValid() {
			m.Endpoint = netip.AddrPortFrom(n.Public, overlay.DefaultPort)
		} else {
			m.ListenPort = overlay.DefaultPort + 1 + i
			if kind == templates.Mesh {
				m.Endpoint = netip.AddrPortFrom(n.Site.NAT, uint16(m.ListenPort))
			}
		}
		ids = append(ids, m.ID)
	}
	addrs, err := overlay.Allocate(b.Cluster.Overlay.CIDR, nil, ids)
	if err != nil {
		return nil, err
	}
	tp, err := overlay.Plan(b.Cluster, b.Members, addrs)
	if err != nil {
		return nil, err
	}
	o := &overlayNet{topo: tp}
	for i, id := range ids {
		ps, _ := tp.PeersFor(id)
		d, err := live.Open(live.Config{Name: fmt.Sprintf("%sb%d", l.Prefix, i), NetNS: l.Node(id).NS, PrivateKey: privs[id]})
		if err != nil {
			o.close()
			return nil, err
		}
		o.devs = append(o.devs, d)
		if err := d.Apply(ps); err != nil {
			o.close()
			return nil, err
		}
	}
	return o, nil
}

func waitPing(ns string, dst netip.Addr, within time.Duration) error {
	p, err := live.NewPinger(ns)
	if err != nil {
		return err
	}
	defer p.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := p.Ping(ctx, dst)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no reply from %s within %s: %w", dst, within, err)
		}
	}
}

// iperf runs an iperf3 server in serverNS bound to to, a client in from,
// and returns the receiver's bits per second.
func iperf(l *lab.Lab, from string, to netip.Addr, serverNS string) (float64, error) {
	srv := exec.Command("ip", "netns", "exec", serverNS, "iperf3", "-s", "-1", "-B", to.String(), "-p", "5201")
	if err := srv.Start(); err != nil {
		return 0, err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var out []byte
	var err error
	for try := 0; try < 20; try++ {
		time.Sleep(100 * time.Millisecond)
		out, err = l.Exec(from, "iperf3", "-c", to.String(), "-p", "5201", "-t", fmt.Sprint(int(duration.Seconds())), "-J")
		if err == nil {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3: %v: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

// openvpn starts a static-key point-to-point tunnel: server on the hub's
// public address (10.8.0.1), client in node c (10.8.0.2).
func openvpn(l *lab.Lab, server, client *lab.LabNode) (stop func(), err error) {
	dir, err := os.MkdirTemp("", "hvctl-ovpn")
	if err != nil {
		return nil, err
	}
	key := filepath.Join(dir, "static.key")
	if out, err := exec.Command("openvpn", "--genkey", "secret", key).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("openvpn --genkey: %v: %s", err, out)
	}
	common := []string{"--dev", "tun", "--proto", "udp", "--port", "1194",
		"--cipher", "AES-256-CBC", "--auth", "SHA256", "--verb", "1"}
	// OpenVPN 2.7 refuses static keys unless told; 2.6 only warns and
	// does not know the option.
	if help, _ := exec.Command("openvpn", "--help").CombinedOutput(); strings.Contains(string(help), "allow-deprecated-insecure-static-crypto") {
		common = append(common, "--allow-deprecated-insecure-static-crypto")
	}
	srv := exec.Command("ip", append([]string{"netns", "exec", server.NS, "openvpn", "--ifconfig", "10.8.0.1", "10.8.0.2", "--local", server.Public.String(), "--secret", key, "0"}, common...)...)
	cli := exec.Command("ip", append([]string{"netns", "exec", client.NS, "openvpn", "--ifconfig", "10.8.0.2", "10.8.0.1", "--remote", server.Public.String(), "--keepalive", "10", "60", "--secret", key, "1"}, common...)...)
	logs := filepath.Join(dir, "log")
	lf, _ := os.Create(logs)
	srv.Stdout, srv.Stderr, cli.Stdout, cli.Stderr = lf, lf, lf, lf
	stop = func() {
		for _, c := range []*exec.Cmd{cli, srv} {
			if c.Process != nil {
				c.Process.Kill()
				c.Wait()
			}
		}
		lf.Close()
		os.RemoveAll(dir)
	}
	if err := srv.Start(); err != nil {
		stop()
		return nil, err
	}
	if err := cli.Start(); err != nil {
		stop()
		return nil, err
	}
	if err := waitPing(client.NS, netip.MustParseAddr("10.8.0.1"), 20*time.Second); err != nil {
		b, _ := os.ReadFile(logs)
		stop()
		return nil, fmt.Errorf("openvpn tunnel: %w\n%s", err, b)
	}
	return stop, nil
}

// timeStarts opens a fresh device on b.n1 n times (the hub's device stays
// up, already knowing b.n1's key) and times Open + Apply + the first echo
// reply from the hub through the tunnel.
func timeStarts(l *lab.Lab, n int) ([]time.Duration, error) {
	star, err := bringUp(l, templates.Star)
	if err != nil {
		return nil, err
	}
	defer star.close()
	idx := slices.Index(star.topo.Nodes(), "b.n1")
	ps, _ := star.topo.PeersFor("b.n1")
	hubAddr, _ := star.topo.Address("a.hub")
	// Take b.n1's planned device down; reuse its key on each start.
	old := star.devs[idx]
	cur, err := old.Device()
	if err != nil {
		return nil, err
	}
	priv := cur.PrivateKey
	old.Close()
	var out []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		d, err := live.Open(live.Config{Name: fmt.Sprintf("%ss%d", l.Prefix, i%2), NetNS: l.Node("b.n1").NS, PrivateKey: priv})
		if err != nil {
			return nil, err
		}
		if err := d.Apply(ps); err != nil {
			d.Close()
			return nil, err
		}
		if err := waitPingFast(l.Node("b.n1").NS, hubAddr, 10*time.Second); err != nil {
			d.Close()
			return nil, err
		}
		out = append(out, time.Since(start))
		d.Close()
		time.Sleep(200 * time.Millisecond)
	}
	return out, nil
}

func waitPingFast(ns string, dst netip.Addr, within time.Duration) error {
	p, err := live.NewPinger(ns)
	if err != nil {
		return err
	}
	defer p.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := p.Ping(ctx, dst)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}
