// Package live applies overlay peer sets to WireGuard devices: kernel
// WireGuard through netlink when the module is there, otherwise an
// in-process wireguard-go device on a TUN with its UAPI socket (so `wg
// show` sees it). Addresses, routes and MTU go through netlink; WireGuard
// settings go through wgctrl, peer by peer. It also probes hub and gateway
// tunnels with packets through them and moves the failover range to a
// backup hub (Monitor). Everything here needs CAP_NET_ADMIN.
package live

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hvctl/hvctl/overlay"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Kind says which WireGuard implementation backs a Device.
type Kind string

const (
	Kernel    Kind = "kernel"
	Userspace Kind = "userspace" // wireguard-go in this process
)

// routeProtocol marks the routes a Device adds (RTPROT_STATIC), so that it
// removes only its own.
const routeProtocol = unix.RTPROT_STATIC

// Config says which device to create and where.
type Config struct {
	// Name is the interface name, at most 15 bytes. Userspace devices put
	// their UAPI socket at /var/run/wireguard/NAME.sock, which is shared
	// by all namespaces, so names must be unique on the host.
	Name string
	// NetNS is the network namespace to create the device in: a name
	// under /run/netns or a path such as /proc/PID/ns/net; "" means the
	// caller's.
	NetNS string
	// PrivateKey is the device's key, generated on this node.
	PrivateKey wgtypes.Key
	// Userspace forces wireguard-go even when kernel WireGuard exists.
	Userspace bool
	// Logf receives wireguard-go's error messages; nil discards them.
	Logf func(format string, args ...any)
}

// Device is one overlay device, created by Open and removed by Close.
// Its methods are safe for concurrent use.
type Device struct {
	name string
	kind Kind
	ns   netns.NsHandle // netns.None() for the caller's namespace
	nl   *netlink.Handle
	wg   *wgctrl.Client

	// userspace only
	wgdev *device.Device
	uapi  net.Listener
	sock  string

	mu        sync.Mutex
	plan      *overlay.PeerSet // as given to Apply
	active    string           // hub holding the failover range ("" = primary)
	endpoints map[wgtypes.Key]netip.AddrPort
	closed    bool
}

// Open creates the device, sets its private key and leaves it down and
// without peers until Apply.
func Open(cfg Config) (d *Device, err error) {
	if cfg.Name == "" || len(cfg.Name) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("open overlay device: bad interface name %q", cfg.Name)
	}
	dev := &Device{name: cfg.Name, ns: netns.None(), endpoints: map[wgtypes.Key]netip.AddrPort{}}
	d = dev
	defer func() {
		if err != nil {
			dev.Close() // d is nil by now
		}
	}()
	if cfg.NetNS != "" {
		h, err := netns.GetFromName(cfg.NetNS)
		if err != nil {
			h, err = netns.GetFromPath(cfg.NetNS)
		}
		if err != nil {
			return nil, fmt.Errorf("open overlay device %s: network namespace %s: %w", cfg.Name, cfg.NetNS, err)
		}
		d.ns = h
		d.nl, err = netlink.NewHandleAt(h)
		if err != nil {
			return nil, fmt.Errorf("open overlay device %s: netlink in %s: %w", cfg.Name, cfg.NetNS, err)
		}
	} else {
		d.nl, err = netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("open overlay device %s: netlink: %w", cfg.Name, err)
		}
	}

	if !cfg.Userspace {
		err := d.nl.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: cfg.Name}})
		switch {
		case err == nil:
			d.kind = Kernel
		case errors.Is(err, unix.EEXIST):
			return nil, fmt.Errorf("open overlay device %s: the interface already exists", cfg.Name)
		}
	}
	if d.kind == "" {
		if err := d.startUserspace(cfg); err != nil {
			return nil, fmt.Errorf("open overlay device %s: %w", cfg.Name, err)
		}
	} else {
		err := inNS(d.ns, func() error {
			var err error
			d.wg, err = wgctrl.New()
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("open overlay device %s: wgctrl: %w", cfg.Name, err)
		}
	}
	key := cfg.PrivateKey
	if err := d.wg.ConfigureDevice(d.name, wgtypes.Config{PrivateKey: &key}); err != nil {
		return nil, fmt.Errorf("open overlay device %s: set private key: %w", cfg.Name, err)
	}
	return d, nil
}

// startUserspace runs wireguard-go on a TUN in d's namespace, with its
// UAPI socket.
func (d *Device) startUserspace(cfg Config) error {
	logf := cfg.Logf
	if logf == nil {
		logf = device.DiscardLogf
	}
	logger := &device.Logger{Verbosef: device.DiscardLogf, Errorf: logf}
	var uapiFile *os.File
	err := inNS(d.ns, func() error {
		t, err := tun.CreateTUN(cfg.Name, device.DefaultMTU)
		if err != nil {
			return fmt.Errorf("create TUN: %w", err)
		}
		nt := &nsTUN{Device: t, ns: d.ns}
		d.wgdev = device.NewDevice(nt, &nsBind{Bind: conn.NewDefaultBind(), ns: d.ns}, logger)
		uapiFile, err = ipc.UAPIOpen(cfg.Name)
		if err != nil {
			return fmt.Errorf("UAPI socket: %w", err)
		}
		d.wg, err = wgctrl.New()
		if err != nil {
			return fmt.Errorf("wgctrl: %w", err)
		}
		return nil
	})
	if err != nil {
		if uapiFile != nil {
			uapiFile.Close()
		}
		return err
	}
	d.kind = Userspace
	d.sock = filepath.Join("/var/run/wireguard", cfg.Name+".sock")
	d.uapi, err = ipc.UAPIListen(cfg.Name, uapiFile)
	uapiFile.Close()
	if err != nil {
		return fmt.Errorf("UAPI listen: %w", err)
	}
	go func() {
		for {
			c, err := d.uapi.Accept()
			if err != nil {
				return
			}
			go d.wgdev.IpcHandle(c)
		}
	}()
	return nil
}

// Name is the interface name.
func (d *Device) Name() string { return d.name }

// Kind says whether the device is kernel WireGuard or wireguard-go.
func (d *Device) Kind() Kind { return d.kind }

// Device reads the device's current WireGuard state.
func (d *Device) Device() (*wgtypes.Device, error) {
	return d.wg.Device(d.name)
}

// Plan returns the peer set last given to Apply, or nil.
func (d *Device) Plan() *overlay.PeerSet {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.plan
}

// ActiveHub returns the hub currently holding the failover range: the
// primary unless SetActiveHub moved it.
func (d *Device) ActiveHub() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.activeLocked()
}

func (d *Device) activeLocked() string {
	if d.active != "" || d.plan == nil || d.plan.Failover == nil {
		return d.active
	}
	return d.plan.Failover.Hubs[0]
}

// Apply brings the device to ps: link MTU, address and up state, IP
// forwarding, listen port, peers and routes. Peers are added, updated and
// removed one by one (never ReplacePeers), so traffic to peers that do not
// change is not disturbed. If SetActiveHub moved the failover range, it
// stays with that hub.
func (d *Device) Apply(ps *overlay.PeerSet) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("apply overlay to %s: device closed", d.name)
	}
	active := d.active
	if ps.Failover == nil || !slices.Contains(ps.Failover.Hubs, active) {
		active = ""
	}
	d.plan, d.active = ps, active
	return d.applyLocked()
}

// SetActiveHub moves the failover range to hub ("" or the primary's ID
// gives it back to the primary).
func (d *Device) SetActiveHub(hub string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.plan == nil || d.plan.Failover == nil {
		return fmt.Errorf("overlay device %s has no failover hubs", d.name)
	}
	if hub == d.plan.Failover.Hubs[0] {
		hub = ""
	}
	if hub != "" && !slices.Contains(d.plan.Failover.Hubs, hub) {
		return fmt.Errorf("overlay device %s: %s is not one of its hubs", d.name, hub)
	}
	if hub == d.active {
		return nil
	}
	d.active = hub
	return d.applyLocked()
}

func (d *Device) applyLocked() error {
	ps := d.plan
	if d.active != "" {
		var err error
		if ps, err = ps.WithActiveHub(d.active); err != nil {
			return err
		}
	}
	if err := d.applyLink(ps); err != nil {
		return fmt.Errorf("apply overlay to %s: %w", d.name, err)
	}
	if err := d.applyPeers(ps); err != nil {
		return fmt.Errorf("apply overlay peers to %s: %w", d.name, err)
	}
	if err := d.applyRoutes(ps); err != nil {
		return fmt.Errorf("apply overlay routes to %s: %w", d.name, err)
	}
	return nil
}

func (d *Device) applyLink(ps *overlay.PeerSet) error {
	link, err := d.nl.LinkByName(d.name)
	if err != nil {
		return err
	}
	if ps.MTU > 0 && link.Attrs().MTU != ps.MTU {
		if err := d.nl.LinkSetMTU(link, ps.MTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", ps.MTU, err)
		}
	}
	addrs, err := d.nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	want := prefixNet(ps.Address)
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			have = true
			continue
		}
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		if err := d.nl.AddrDel(link, &a); err != nil {
			return fmt.Errorf("remove address %s: %w", a.IPNet, err)
		}
	}
	if !have {
		if err := d.nl.AddrReplace(link, &netlink.Addr{IPNet: want}); err != nil {
			return fmt.Errorf("add address %s: %w", ps.Address, err)
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := d.nl.LinkSetUp(link); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
	}
	if ps.Forward {
		path := "/proc/sys/net/ipv4/ip_forward"
		if ps.Address.Addr().Is6() {
			path = "/proc/sys/net/ipv6/conf/all/forwarding"
		}
		err := inNS(d.ns, func() error { return os.WriteFile(path, []byte("1\n"), 0o644) })
		if err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
		if ps.Address.Addr().Is4() {
			// A hub forwards between peers of one device: the packet leaves
			// the interface it came in on, which the kernel would answer
			// with an ICMP redirect to a next hop the sender cannot use.
			err := inNS(d.ns, func() error {
				for _, p := range []string{"/proc/sys/net/ipv4/conf/all/send_redirects", "/proc/sys/net/ipv4/conf/" + d.name + "/send_redirects"} {
					if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("disable ICMP redirects: %w", err)
			}
		}
	}
	return nil
}

func (d *Device) applyPeers(ps *overlay.PeerSet) error {
	cur, err := d.wg.Device(d.name)
	if err != nil {
		return err
	}
	cfg := PeerDiff(cur, ps, d.endpoints)
	if cur.ListenPort != ps.ListenPort && ps.ListenPort != 0 {
		port := ps.ListenPort
		cfg.ListenPort = &port
	}
	if cfg.ListenPort == nil && len(cfg.Peers) == 0 {
		return nil
	}
	if err := d.wg.ConfigureDevice(d.name, cfg); err != nil {
		return err
	}
	for _, p := range ps.Peers {
		d.endpoints[p.PublicKey] = p.Endpoint
	}
	for k := range d.endpoints {
		if !slices.ContainsFunc(ps.Peers, func(p overlay.Peer) bool { return p.PublicKey == k }) {
			delete(d.endpoints, k)
		}
	}
	return nil
}

// PeerDiff is the wgctrl configuration that takes device cur to peer set
// ps peer by peer: removed peers get Remove, new peers are added, changed
// peers get UpdateOnly with only what changed (ReplaceAllowedIPs when
// their AllowedIPs differ). ReplacePeers is never set. lastEndpoints are
// the endpoints planned at the previous apply: an endpoint is only set
// when the plan changed it, so that a peer that roamed (NAT) keeps the
// address WireGuard learnt.
func PeerDiff(cur *wgtypes.Device, ps *overlay.PeerSet, lastEndpoints map[wgtypes.Key]netip.AddrPort) wgtypes.Config {
	var cfg wgtypes.Config
	have := make(map[wgtypes.Key]*wgtypes.Peer, len(cur.Peers))
	for i := range cur.Peers {
		have[cur.Peers[i].PublicKey] = &cur.Peers[i]
	}
	want := make(map[wgtypes.Key]bool, len(ps.Peers))
	for _, p := range ps.Peers {
		want[p.PublicKey] = true
	}
	for _, p := range cur.Peers {
		if !want[p.PublicKey] {
			cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
		}
	}
	for _, p := range ps.Peers {
		c, ok := have[p.PublicKey]
		pc := wgtypes.PeerConfig{PublicKey: p.PublicKey}
		changed := !ok
		if !ok || !sameIPs(c.AllowedIPs, p.AllowedIPs) {
			pc.ReplaceAllowedIPs = true
			pc.AllowedIPs = make([]net.IPNet, len(p.AllowedIPs))
			for i, a := range p.AllowedIPs {
				pc.AllowedIPs[i] = *prefixNet(a)
			}
			changed = true
		}
		last, known := lastEndpoints[p.PublicKey]
		if p.Endpoint.IsValid() && (!ok || !known || last != p.Endpoint || c.Endpoint == nil) {
			pc.Endpoint = net.UDPAddrFromAddrPort(p.Endpoint)
			changed = true
		}
		if !ok || c.PersistentKeepaliveInterval != p.Keepalive {
			ka := p.Keepalive
			pc.PersistentKeepaliveInterval = &ka
			changed = true
		}
		if ok {
			pc.UpdateOnly = true
		}
		if changed {
			cfg.Peers = append(cfg.Peers, pc)
		}
	}
	return cfg
}

func sameIPs(have []net.IPNet, want []netip.Prefix) bool {
	if len(have) != len(want) {
		return false
	}
	set := make(map[netip.Prefix]bool, len(have))
	for _, h := range have {
		ones, _ := h.Mask.Size()
		a, ok := netip.AddrFromSlice(h.IP)
		if !ok {
			return false
		}
		set[netip.PrefixFrom(a.Unmap(), ones)] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}

func (d *Device) applyRoutes(ps *overlay.PeerSet) error {
	link, err := d.nl.LinkByName(d.name)
	if err != nil {
		return err
	}
	routes, err := d.nl.RouteList(link, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, r := range ps.Routes {
		want[prefixNet(r).String()] = true
	}
	have := map[string]bool{}
	for _, r := range routes {
		if r.Protocol != routeProtocol || r.Dst == nil {
			continue
		}
		if want[r.Dst.String()] {
			have[r.Dst.String()] = true
			continue
		}
		if err := d.nl.RouteDel(&r); err != nil {
			return fmt.Errorf("remove route %s: %w", r.Dst, err)
		}
	}
	for _, p := range ps.Routes {
		dst := prefixNet(p)
		if have[dst.String()] {
			continue
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Protocol: routeProtocol, Scope: netlink.SCOPE_LINK}
		if err := d.nl.RouteReplace(r); err != nil {
			return fmt.Errorf("add route %s: %w", p, err)
		}
	}
	return nil
}

// Close removes the device, its routes and its UAPI socket.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	switch d.kind {
	case Kernel:
		if link, err := d.nl.LinkByName(d.name); err == nil {
			if err := d.nl.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", d.name, err))
			}
		}
	case Userspace:
		if d.uapi != nil {
			d.uapi.Close()
		}
		if d.wgdev != nil {
			d.wgdev.Close() // closes the TUN, which removes the interface
		}
		if d.sock != "" {
			if err := os.Remove(d.sock); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if d.wg != nil {
		d.wg.Close()
	}
	if d.nl != nil {
		d.nl.Close()
	}
	if int(d.ns) > 0 {
		d.ns.Close()
	}
	return errors.Join(errs...)
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// nsTUN is a TUN whose MTU is read in its own namespace: wireguard-go
// asks from whatever thread handles a link event, and the ioctl it uses
// looks the interface up by name in that thread's namespace.
type nsTUN struct {
	tun.Device
	ns netns.NsHandle
}

func (t *nsTUN) MTU() (int, error) {
	var mtu int
	err := inNS(t.ns, func() error {
		var err error
		mtu, err = t.Device.MTU()
		return err
	})
	return mtu, err
}

// nsBind opens wireguard-go's UDP sockets in the device's namespace:
// wireguard-go opens them when the device comes up, from its own
// goroutines.
type nsBind struct {
	conn.Bind
	ns netns.NsHandle
}

func (b *nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	err = inNS(b.ns, func() error {
		var err error
		fns, actual, err = b.Bind.Open(port)
		return err
	})
	return fns, actual, err
}
