package cli

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
)

func init() {
	register(&command{name: "overlay", usage: "show [-json] | config NODE [-show-secrets]", help: "Show the overlay's peers and routes, or a node's WireGuard config", run: runOverlay,
		subs: []*command{
			{name: "show", usage: "[PATH] [-json]", help: "Every node's peers and routes", examples: []string{"hvctl overlay show -json"}},
			{name: "config", usage: "NODE [PATH] [-show-secrets]", help: "A node's wg-quick configuration, its private key hidden unless -show-secrets", examples: []string{"hvctl overlay config onprem.frontend"}},
		}})
}

// overlayView is the overlay of a cluster: from its manager when the
// cluster runs agents, else planned from the state.
type overlayView struct {
	Source   string             `json:"source"` // "manager" or "plan"
	PeerSets []*overlay.PeerSet `json:"-"`
}

// loadOverlay gets the cluster's peer sets.
func (a *App) loadOverlay(s *session) (*overlayView, error) {
	st := s.State
	if mc := s.managerFor(st); mc != nil {
		var out struct {
			PeerSets []*overlay.PeerSet `json:"peer_sets"`
		}
		if err := mc.Overlay(a.Ctx, &out); err != nil {
			return nil, err
		}
		return &overlayView{Source: "manager", PeerSets: out.PeerSets}, nil
	}
	// No agents (sim): plan the overlay from the state, without keys.
	var members []overlay.Member
	var ids []string
	for _, r := range st.Resources {
		if r.Kind != provision.KindInstance {
			continue
		}
		id := manager.MemberID(r.Address)
		m := overlay.Member{ID: id, Site: str(r.Attrs, "site"), NAT: true}
		if ip, err := netip.ParseAddr(str(r.Attrs, "private_ip")); err == nil {
			m.SiteAddr = ip
		}
		if ip, err := netip.ParseAddr(str(r.Attrs, "public_address")); err == nil {
			m.Endpoint = netip.AddrPortFrom(ip, uint16(s.Config.Cluster.Overlay.Port))
			m.NAT = false
		}
		members = append(members, m)
		ids = append(ids, id)
	}
	if len(members) == 0 {
		return &overlayView{Source: "plan"}, nil
	}
	sort.Strings(ids)
	addrs, err := overlay.Allocate(s.Config.Cluster.Overlay.CIDR, nil, ids)
	if err != nil {
		return nil, err
	}
	topo, err := overlay.Plan(s.Config.Cluster, members, addrs)
	if err != nil {
		return nil, err
	}
	return &overlayView{Source: "plan", PeerSets: topo.All()}, nil
}

func str(a provision.Attrs, k string) string { s, _ := a[k].(string); return s }

// jsonPeerSet is a peer set with keys in their usual base64 form.
type jsonPeerSet struct {
	Node       string         `json:"node"`
	Address    netip.Prefix   `json:"address"`
	ListenPort int            `json:"listen_port"`
	MTU        int            `json:"mtu"`
	Forward    bool           `json:"forward"`
	Routes     []netip.Prefix `json:"routes,omitempty"`
	Peers      []jsonPeer     `json:"peers"`
}

type jsonPeer struct {
	Node       string         `json:"node"`
	Role       string         `json:"role"`
	Address    netip.Addr     `json:"address"`
	PublicKey  string         `json:"public_key,omitempty"`
	Endpoint   string         `json:"endpoint,omitempty"`
	AllowedIPs []netip.Prefix `json:"allowed_ips"`
	Keepalive  string         `json:"keepalive,omitempty"`
}

func keyString(k wgtypes.Key) string {
	if k == (wgtypes.Key{}) {
		return ""
	}
	return k.String()
}

func toJSON(ps *overlay.PeerSet) jsonPeerSet {
	j := jsonPeerSet{Node: ps.Node, Address: ps.Address, ListenPort: ps.ListenPort, MTU: ps.MTU, Forward: ps.Forward, Routes: ps.Routes, Peers: []jsonPeer{}}
	for _, p := range ps.Peers {
		jp := jsonPeer{Node: p.Node, Role: string(p.Role), Address: p.Address, PublicKey: keyString(p.PublicKey), AllowedIPs: p.AllowedIPs}
		if p.Endpoint.IsValid() {
			jp.Endpoint = p.Endpoint.String()
		}
		if p.Keepalive > 0 {
			jp.Keepalive = p.Keepalive.String()
		}
		j.Peers = append(j.Peers, jp)
	}
	return j
}

func runOverlay(a *App, args []string) int {
	if len(args) == 0 || (args[0] != "show" && args[0] != "config") {
		return a.fail("Usage: hvctl overlay show [-json] | overlay config NODE [-show-secrets]", "show lists every node's peers and routes; config prints one node's wg-quick configuration.")
	}
	sub := args[0]
	c := findCommand("overlay").sub(sub)
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, 0)
	jsonOut := fs.Bool("json", false, "print as JSON")
	secrets := fs.Bool("show-secrets", false, "config: include the node's private key, read from the node")
	pos, code, ok := a.parse(fs, args[1:])
	if !ok {
		return code
	}
	var node string
	tmpl := "."
	for _, p := range pos {
		if isTemplatePath(p) {
			tmpl = p
		} else {
			node = p
		}
	}
	o.lock = false
	s, ok := a.open(tmpl, &o, "overlay")
	if !ok {
		return exitError
	}
	defer s.close()
	view, err := a.loadOverlay(s)
	if err != nil {
		return a.failErr(err)
	}
	if sub == "show" {
		return a.overlayShow(s, view, *jsonOut)
	}
	if node == "" {
		return a.fail("overlay config needs a node", "Usage: hvctl overlay config NODE, where NODE is e.g. onprem.frontend or cloud.burst[0] (see hvctl overlay show).")
	}
	var ps *overlay.PeerSet
	var names []string
	for _, x := range view.PeerSets {
		names = append(names, x.Node)
		if x.Node == node || x.Node == manager.MemberID(node) {
			ps = x
		}
	}
	if ps == nil {
		return a.fail("No node "+node+" in the overlay", "See hvctl overlay show for the nodes."+suggest(node, names))
	}
	opts := overlay.RenderOptions{}
	if *secrets {
		key, err := a.nodePrivateKey(s, ps.Node)
		if err != nil {
			return a.failErr(err)
		}
		opts.PrivateKey = &key
	}
	if err := overlay.RenderWGQuick(a.Stdout, ps, opts); err != nil {
		return a.failErr(err)
	}
	return exitOK
}

// nodePrivateKey reads a node's private key where it lives: on the node.
func (a *App) nodePrivateKey(s *session, id string) (wgtypes.Key, error) {
	for _, r := range s.State.Resources {
		if manager.MemberID(r.Address) != id {
			continue
		}
		p, ok := s.Engine.Provider(r.Provider)
		if !ok {
			break
		}
		kr, ok := p.(interface{ NodeDir(id string) string })
		if !ok {
			return wgtypes.Key{}, fmt.Errorf("the %s provider cannot read a node's files; the private key exists only on the node", r.Type)
		}
		b, err := os.ReadFile(filepath.Join(kr.NodeDir(r.ID), "wg.key"))
		if err != nil {
			return wgtypes.Key{}, fmt.Errorf("read the private key of %s: %w", id, err)
		}
		return wgtypes.ParseKey(strings.TrimSpace(string(b)))
	}
	return wgtypes.Key{}, fmt.Errorf("node %s has no private key hvctl can read (is it running an agent?)", id)
}

func (a *App) overlayShow(s *session, view *overlayView, jsonOut bool) int {
	if jsonOut {
		sets := []jsonPeerSet{}
		for _, ps := range view.PeerSets {
			sets = append(sets, toJSON(ps))
		}
		return a.writeJSON(map[string]any{"cluster": s.Config.Cluster.Name, "topology": s.Config.Cluster.Overlay.Topology,
			"cidr": s.Config.Cluster.Overlay.CIDR, "source": view.Source, "peer_sets": sets})
	}
	if len(view.PeerSets) == 0 {
		fmt.Fprintln(a.Stdout, "The overlay has no nodes yet. Run hvctl up first.")
		return exitOK
	}
	fmt.Fprintf(a.Stdout, "Overlay %s, %s topology", s.Config.Cluster.Overlay.CIDR, s.Config.Cluster.Overlay.Topology)
	if view.Source == "plan" {
		fmt.Fprint(a.Stdout, " (planned from the state: this cluster's nodes run no agent, so there are no keys)")
	}
	fmt.Fprintln(a.Stdout)
	for _, ps := range view.PeerSets {
		fmt.Fprintf(a.Stdout, "\n%s  %s  mtu %d  port %d", a.boldPlain(ps.Node), ps.Address, ps.MTU, ps.ListenPort)
		if ps.Forward {
			fmt.Fprint(a.Stdout, "  forwards")
		}
		fmt.Fprintln(a.Stdout)
		tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PEER\tROLE\tADDRESS\tENDPOINT\tALLOWED IPS\tKEEPALIVE")
		for _, p := range ps.Peers {
			ep, ka := "-", "-"
			if p.Endpoint.IsValid() {
				ep = p.Endpoint.String()
			}
			if p.Keepalive > 0 {
				ka = p.Keepalive.String()
			}
			var allowed []string
			for _, x := range p.AllowedIPs {
				allowed = append(allowed, x.String())
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Node, p.Role, p.Address, ep, strings.Join(allowed, ","), ka)
		}
		tw.Flush()
		if len(ps.Routes) > 0 {
			var r []string
			for _, x := range ps.Routes {
				r = append(r, x.String())
			}
			fmt.Fprintf(a.Stdout, "  routes: %s\n", strings.Join(r, ", "))
		}
	}
	return exitOK
}

func (a *App) boldPlain(s string) string {
	if a.Color {
		return "\x1b[1m" + s + "\x1b[0m"
	}
	return s
}

// overlayDOT writes the overlay graph: one box per node, grouped by site,
// an edge per peering.
func overlayDOT(w io.Writer, view *overlayView, hubs []string) {
	fmt.Fprintln(w, "graph overlay {")
	fmt.Fprintln(w, "  node [shape=box];")
	bySite := map[string][]*overlay.PeerSet{}
	var sites []string
	for _, ps := range view.PeerSets {
		site := ps.Node[:strings.LastIndex(ps.Node, ".")]
		if _, ok := bySite[site]; !ok {
			sites = append(sites, site)
		}
		bySite[site] = append(bySite[site], ps)
	}
	sort.Strings(sites)
	isHub := map[string]bool{}
	for _, h := range hubs {
		isHub[h] = true
	}
	for i, site := range sites {
		fmt.Fprintf(w, "  subgraph cluster_%d {\n    label = %q;\n", i, site)
		for _, ps := range bySite[site] {
			style := ""
			if isHub[ps.Node] {
				style = ", style=bold"
			}
			fmt.Fprintf(w, "    %q [label=\"%s\\n%s\"%s];\n", ps.Node, ps.Node, ps.Address.Addr(), style)
		}
		fmt.Fprintln(w, "  }")
	}
	seen := map[[2]string]bool{}
	for _, ps := range view.PeerSets {
		for _, p := range ps.Peers {
			e := [2]string{ps.Node, p.Node}
			if e[0] > e[1] {
				e[0], e[1] = e[1], e[0]
			}
			if seen[e] {
				continue
			}
			seen[e] = true
			fmt.Fprintf(w, "  %q -- %q;\n", e[0], e[1])
		}
	}
	fmt.Fprintln(w, "}")
}
