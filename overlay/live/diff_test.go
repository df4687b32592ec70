package live

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hvctl/hvctl/overlay"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestPeerDiff(t *testing.T) {
	key := func(b byte) wgtypes.Key { var k wgtypes.Key; k[0] = b; return k }
	ipnet := func(s string) net.IPNet { return *prefixNet(netip.MustParsePrefix(s)) }
	ep := netip.MustParseAddrPort("203.0.113.1:51820")
	cur := &wgtypes.Device{Peers: []wgtypes.Peer{
		{PublicKey: key(1), AllowedIPs: []net.IPNet{ipnet("10.0.0.1/32")}, Endpoint: net.UDPAddrFromAddrPort(ep), PersistentKeepaliveInterval: 25 * time.Second},
		{PublicKey: key(2), AllowedIPs: []net.IPNet{ipnet("10.0.0.2/32")}},
		{PublicKey: key(3), AllowedIPs: []net.IPNet{ipnet("10.0.0.3/32")}, Endpoint: net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.51.100.7:40000"))},
	}}
	ps := &overlay.PeerSet{Peers: []overlay.Peer{
		{PublicKey: key(1), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}, Endpoint: ep, Keepalive: 25 * time.Second},
		// key 2 goes; key 3 gets the overlay range; key 4 is new
		{PublicKey: key(3), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.3/32"), netip.MustParsePrefix("10.0.0.0/16")}},
		{PublicKey: key(4), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.4/32")}, Endpoint: ep},
	}}
	last := map[wgtypes.Key]netip.AddrPort{key(1): ep}
	cfg := PeerDiff(cur, ps, last)
	if cfg.ReplacePeers {
		t.Fatal("ReplacePeers set")
	}
	got := map[wgtypes.Key]wgtypes.PeerConfig{}
	for _, p := range cfg.Peers {
		got[p.PublicKey] = p
	}
	if _, ok := got[key(1)]; ok {
		t.Errorf("unchanged peer 1 reconfigured: %+v", got[key(1)])
	}
	if p := got[key(2)]; !p.Remove {
		t.Errorf("peer 2 not removed: %+v", p)
	}
	if p := got[key(3)]; !p.UpdateOnly || !p.ReplaceAllowedIPs || len(p.AllowedIPs) != 2 || p.Endpoint != nil {
		t.Errorf("peer 3 = %+v, want an update of its AllowedIPs only (its roamed endpoint kept)", p)
	}
	if p := got[key(4)]; p.UpdateOnly || p.Remove || p.Endpoint == nil || !p.ReplaceAllowedIPs {
		t.Errorf("peer 4 = %+v, want it added", p)
	}
}
