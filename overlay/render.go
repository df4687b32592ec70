package overlay

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// DefaultInterface is the overlay device's name on a node.
const DefaultInterface = "hvctl0"

// Sensitive is shown in place of a private key that is not rendered.
const Sensitive = "(sensitive)"

// RenderOptions say how a peer set is rendered.
type RenderOptions struct {
	// Interface is the device name, for file paths in the cloud-init
	// snippet; "" means DefaultInterface.
	Interface string
	// PrivateKey is written into the configuration when set. Otherwise the
	// [Interface] section carries a "# PrivateKey = (sensitive)" comment
	// and, when KeyFile is set, a PostUp that loads the key from KeyFile
	// on the node.
	PrivateKey *wgtypes.Key
	KeyFile    string
}

func (o RenderOptions) iface() string {
	if o.Interface == "" {
		return DefaultInterface
	}
	return o.Interface
}

// RenderWGQuick writes ps as a wg-quick(8) configuration. Routes are
// explicit (Table = off, one PostUp per route) because some AllowedIPs are
// only there to accept replies from site addresses and must not be routed.
// `wg-quick strip` of the output is accepted by `wg setconf`.
func RenderWGQuick(w io.Writer, ps *PeerSet, o RenderOptions) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# hvctl overlay: node %s\n", ps.Node)
	b.WriteString("[Interface]\n")
	if o.PrivateKey != nil {
		fmt.Fprintf(&b, "PrivateKey = %s\n", o.PrivateKey)
	} else {
		fmt.Fprintf(&b, "# PrivateKey = %s\n", Sensitive)
	}
	fmt.Fprintf(&b, "Address = %s\n", ps.Address)
	fmt.Fprintf(&b, "ListenPort = %d\n", ps.ListenPort)
	fmt.Fprintf(&b, "MTU = %d\n", ps.MTU)
	b.WriteString("Table = off\n")
	if o.PrivateKey == nil && o.KeyFile != "" {
		fmt.Fprintf(&b, "PostUp = wg set %%i private-key %s\n", o.KeyFile)
	}
	if ps.Forward {
		if ps.Address.Addr().Is4() {
			b.WriteString("PostUp = echo 1 > /proc/sys/net/ipv4/ip_forward\n")
		} else {
			b.WriteString("PostUp = echo 1 > /proc/sys/net/ipv6/conf/all/forwarding\n")
		}
	}
	for _, r := range ps.Routes {
		fmt.Fprintf(&b, "PostUp = ip route replace %s dev %%i\n", r)
	}
	for _, p := range ps.Peers {
		fmt.Fprintf(&b, "\n[Peer]\n# %s (%s)\n", p.Node, p.Role)
		fmt.Fprintf(&b, "PublicKey = %s\n", p.PublicKey)
		fmt.Fprintf(&b, "AllowedIPs = %s\n", formatPrefixes(p.AllowedIPs))
		if p.Endpoint.IsValid() {
			fmt.Fprintf(&b, "Endpoint = %s\n", p.Endpoint)
		}
		if p.Keepalive > 0 {
			fmt.Fprintf(&b, "PersistentKeepalive = %d\n", int(p.Keepalive.Seconds()))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// RenderCloudInit writes a #cloud-config snippet that installs
// wireguard-tools, generates the node's private key on first boot (it
// never leaves the node), writes the wg-quick configuration and brings the
// device up. o.PrivateKey, if set, is written instead of generating one.
func RenderCloudInit(w io.Writer, ps *PeerSet, o RenderOptions) error {
	name := o.iface()
	if o.KeyFile == "" {
		o.KeyFile = "/etc/wireguard/" + name + ".key"
	}
	var conf strings.Builder
	if err := RenderWGQuick(&conf, ps, o); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	b.WriteString("packages:\n  - wireguard-tools\n")
	b.WriteString("write_files:\n")
	fmt.Fprintf(&b, "  - path: /etc/wireguard/%s.conf\n", name)
	b.WriteString("    owner: root:root\n    permissions: \"0600\"\n    content: |\n")
	for _, line := range strings.SplitAfter(conf.String(), "\n") {
		if line == "" {
			continue
		}
		if line == "\n" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("      " + line)
	}
	b.WriteString("runcmd:\n")
	if o.PrivateKey == nil {
		fmt.Fprintf(&b, "  - [sh, -c, \"umask 077; test -s %s || wg genkey > %s\"]\n", o.KeyFile, o.KeyFile)
	}
	fmt.Fprintf(&b, "  - [wg-quick, up, %s]\n", name)
	_, err := io.WriteString(w, b.String())
	return err
}

// formatPrefixes joins prefixes with ", ".
func formatPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
