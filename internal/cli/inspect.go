package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/sim"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/templates"
)

func init() {
	register(&command{name: "status", usage: "[PATH] [-json]", help: "Show nodes by site and pool with their state", run: runStatus})
	register(&command{name: "show", usage: "[PLANFILE] [-json]", help: "Show the state, or a saved plan", run: runShow})
	register(&command{name: "state", usage: "list | show ADDR | rm ADDR... | unlock LOCK_ID", help: "Inspect and repair the state", run: runState,
		subs: []*command{
			{name: "list", usage: "[ADDR-PREFIX] [options]", help: "List the resources in the state"},
			{name: "show", usage: "ADDR [options]", help: "Show one resource, secrets hidden"},
			{name: "rm", usage: "ADDR... [options]", help: "Forget resources (the machines keep running)"},
			{name: "unlock", usage: "LOCK_ID [options]", help: "Remove a lock whose holder is gone (also: hvctl force-unlock)"},
			{name: "mv", usage: "SOURCE DESTINATION [options]", help: "Give a resource another address (after renaming it in the template)", examples: []string{"hvctl state mv site.lab.pool.wn.node[0] site.lab.pool.workers.node[0]"}},
			{name: "pull", usage: "[options] > FILE", help: "Print the state, secrets included, for a file (not to a terminal)"},
			{name: "push", usage: "FILE [options]", help: "Replace the state with FILE (same lineage, not older, unless -force)"},
			{name: "rekey", usage: "-new-key-env VAR [options]", help: "Encrypt the state with the passphrase in environment variable VAR (then point the state block's key_env or passphrase at it)",
				examples: []string{"HVCTL_STATE_KEY_NEW=... hvctl state rekey -new-key-env HVCTL_STATE_KEY_NEW"}},
		},
		examples: []string{"hvctl state list", "hvctl state show site.onprem.node.frontend", "hvctl state unlock 3f2a..."}})
	register(&command{name: "graph", usage: "[PATH] [-type plan]", help: "Print the resource graph as DOT for Graphviz", run: runGraph})
	register(&command{name: "sim", usage: "list [-json] [-all] [PATH]", help: "Inspect the sim provider's cloud", run: runSim,
		subs: []*command{{name: "list", usage: "[-json] [-all] [PATH]", help: "What really exists in the sim cloud", examples: []string{"hvctl sim list -json"}}}})
}

// NodeStatus is one node's row in status.
type NodeStatus struct {
	Address       string    `json:"address"`
	Site          string    `json:"site"`
	Pool          string    `json:"pool,omitempty"`
	Name          string    `json:"name"`
	ID            string    `json:"id"`
	State         string    `json:"state"`
	PrivateIP     string    `json:"private_ip,omitempty"`
	PublicAddress string    `json:"public_address,omitempty"`
	OverlayIP     string    `json:"overlay_ip,omitempty"`
	Peers         []PeerRow `json:"peers,omitempty"`
	Paths         []PathRow `json:"paths,omitempty"`
}

// PeerRow is one overlay peer of a node, as its device sees it.
type PeerRow struct {
	Peer          string `json:"peer"`
	LastHandshake string `json:"last_handshake,omitempty"`
	HandshakeAgo  string `json:"-"`
	Endpoint      string `json:"endpoint,omitempty"`
}

func nodeRows(st *provision.State) []NodeStatus {
	var rows []NodeStatus
	for _, r := range st.Resources {
		if r.Kind != provision.KindInstance {
			continue
		}
		str := func(k string) string { s, _ := r.Attrs[k].(string); return s }
		rows = append(rows, NodeStatus{
			Address: r.Address, Site: str("site"), Pool: str("pool"), Name: str("name"), ID: r.ID,
			State: cluster.NodeState(r), PrivateIP: str("private_ip"), PublicAddress: str("public_address"),
		})
	}
	return rows
}

func runStatus(a *App, args []string) int {
	c := findCommand("status")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, 0)
	jsonOut := fs.Bool("json", false, "print status as JSON")
	watch := fs.Duration("watch", 0, "redraw every interval (e.g. -watch=2s) until interrupted")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	o.lock = false
	s, ok := a.open(templatePath(pos), &o, "status")
	if !ok {
		return exitError
	}
	defer s.close()
	if *watch <= 0 {
		return a.statusOnce(s, *jsonOut)
	}
	for {
		if !*jsonOut {
			fmt.Fprint(a.Stdout, "\x1b[H\x1b[2J")
			fmt.Fprintf(a.Stdout, "%s  (every %s; Ctrl-C to stop)\n\n", time.Now().Format("15:04:05"), *watch)
		}
		if err := s.Reload(); err != nil {
			return a.failErr(err)
		}
		if code := a.statusOnce(s, *jsonOut); code != exitOK {
			return code
		}
		select {
		case <-a.Ctx.Done():
			return exitOK
		case <-time.After(*watch):
		}
	}
}

func (a *App) statusOnce(s *session, jsonOut bool) int {
	status, err := s.Status(a.Ctx)
	if err != nil {
		return a.failErr(err)
	}
	st, mgrErr := status.State, status.ManagerErr
	rows := nodeRows(st)
	if status.Members != nil {
		mergeManager(rows, status.Members)
	}
	if jsonOut {
		doc := map[string]any{"cluster": s.Config.Cluster.Name, "serial": s.State.Serial, "nodes": rows}
		if mgrErr != nil {
			doc["manager_error"] = mgrErr.Error()
		}
		return a.writeJSON(doc)
	}
	if len(rows) == 0 {
		fmt.Fprintf(a.Stdout, "Cluster %q has no nodes. Run hvctl up to create it.\n", s.Config.Cluster.Name)
		return exitOK
	}
	fmt.Fprintf(a.Stdout, "Cluster %q\n\n", s.Config.Cluster.Name)
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tPOOL\tNODE\tSTATE\tOVERLAY IP\tPRIVATE IP\tPUBLIC\tID")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Site, dash(r.Pool), r.member(), r.State, dash(r.OverlayIP), dash(r.PrivateIP), dash(r.PublicAddress), r.ID)
	}
	tw.Flush()
	var peers []string
	for _, r := range rows {
		for _, p := range r.Peers {
			hs := "never"
			if p.HandshakeAgo != "" {
				hs = p.HandshakeAgo + " ago"
			}
			peers = append(peers, fmt.Sprintf("%s\t%s\t%s\t%s", manager.MemberID(r.Address), p.Peer, hs, dash(p.Endpoint)))
		}
	}
	if len(peers) > 0 {
		fmt.Fprintln(a.Stdout, "\nOverlay peers:")
		tw = tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tPEER\tLAST HANDSHAKE\tENDPOINT")
		for _, p := range peers {
			fmt.Fprintln(tw, p)
		}
		tw.Flush()
	}
	a.printPaths(rows)
	if mc := s.managerFor(st); mc != nil && mgrErr == nil {
		var sig scheduler.Signals
		if _, err := mc.send(a, "GET", "/v1/queue", nil, &sig); err == nil {
			fmt.Fprintln(a.Stdout, "\nQueue:")
			tw = tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SITE\tPENDING JOBS\tPENDING SLOTS\tRUNNING\tFREE SLOTS")
			for _, q := range sig.Sites {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", q.Site, q.PendingJobs, q.PendingSlots, q.RunningJobs, q.FreeSlots)
			}
			tw.Flush()
		}
	}
	if mgrErr != nil {
		fmt.Fprintf(a.Stderr, "\nWarning: could not reach the cluster manager: %v\n", mgrErr)
	}
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// summary prints what up made.
func (a *App) summary(s *session, elapsed time.Duration, nodes []manager.Node) {
	st, err := s.Store.Load()
	if err != nil {
		return
	}
	rows := nodeRows(st)
	mergeManager(rows, nodes)
	sites := map[string]bool{}
	for _, r := range rows {
		sites[r.Site] = true
	}
	fmt.Fprintf(a.Stdout, "\nCluster %q is up: %d sites, %d nodes, in %s.\n\n", s.Config.Cluster.Name, len(sites), len(rows), elapsed)
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tNODE\tSTATE\tOVERLAY IP\tPRIVATE IP\tPUBLIC")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Site, r.member(), r.State, dash(r.OverlayIP), dash(r.PrivateIP), dash(r.PublicAddress))
	}
	tw.Flush()
	if ep := hubEndpoint(s, st); ep != "" {
		fmt.Fprintf(a.Stdout, "\nHub endpoint: %s\n", ep)
	}
}

// hubEndpoint is the primary hub's public WireGuard endpoint, or "".
func hubEndpoint(s *session, st *provision.State) string {
	hubs := s.Config.Cluster.Overlay.Hubs
	if len(hubs) == 0 {
		return ""
	}
	for _, r := range nodeRows(st) {
		if r.Site+"."+r.Name == hubs[0] && r.PublicAddress != "" {
			return fmt.Sprintf("%s:%d", r.PublicAddress, s.Config.Cluster.Overlay.Port)
		}
	}
	return ""
}

// mergeManager adds what the manager knows (join state, overlay address,
// peer handshakes) to the rows.
func mergeManager(rows []NodeStatus, nodes []manager.Node) {
	byID := map[string]manager.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	for i := range rows {
		n, ok := byID[manager.MemberID(rows[i].Address)]
		if !ok {
			if nodes != nil && rows[i].State == "idle" {
				rows[i].State = "joining"
			}
			continue
		}
		rows[i].OverlayIP = n.OverlayIP.String()
		switch {
		case n.State == manager.StateFailed:
			rows[i].State = "failed"
		case !n.ProbeOK && rows[i].State == "idle":
			rows[i].State = "joining"
		}
		for pid, p := range n.Peers {
			ps := PeerRow{Peer: pid}
			if !p.LastHandshake.IsZero() {
				ps.LastHandshake = p.LastHandshake.UTC().Format(time.RFC3339)
				ps.HandshakeAgo = provision.HumanDuration(time.Since(p.LastHandshake))
			}
			if p.Endpoint.IsValid() {
				ps.Endpoint = p.Endpoint.String()
			}
			rows[i].Peers = append(rows[i].Peers, ps)
		}
		sort.Slice(rows[i].Peers, func(a, b int) bool { return rows[i].Peers[a].Peer < rows[i].Peers[b].Peer })
		rows[i].Paths = pathRows(n)
	}
}

func (a *App) writeJSON(v any) int {
	enc := json.NewEncoder(a.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return a.failErr(err)
	}
	return exitOK
}

// redactedState returns a copy of st with sensitive attributes removed.
func redactedState(st *provision.State) *provision.State {
	c := st.Clone()
	for _, r := range c.Resources {
		for k := range r.Attrs {
			if provision.IsSecret(k) {
				r.Attrs[k] = "(sensitive value)"
			}
		}
	}
	c.Data = nil
	return c
}

func runShow(a *App, args []string) int {
	c := findCommand("show")
	fs := a.flagSet(c)
	var t tmplFlags
	fs.StringVar(&t.statePath, "state", "", "state file (default .hvctl/state.json)")
	t.addBackend(fs)
	jsonOut := fs.Bool("json", false, "print as JSON")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	if len(pos) > 0 {
		pf, isPlan, err := a.readPlan(pos[0])
		if err != nil {
			return a.failErr(err)
		}
		if isPlan {
			plan := pf.Plan
			if *jsonOut {
				if err := provision.WritePlanJSON(a.Stdout, plan); err != nil {
					return a.failErr(err)
				}
				return exitOK
			}
			(&provision.Renderer{W: a.Stdout, Color: a.Color}).RenderPlan(plan)
			return exitOK
		}
	}
	store, err := a.readStore(&t, templatePath(pos))
	if err != nil {
		return a.failErr(err)
	}
	st, err := store.Load()
	if err != nil {
		return a.failErr(err)
	}
	st = redactedState(st)
	if *jsonOut {
		return a.writeJSON(st)
	}
	if len(st.Resources) == 0 {
		fmt.Fprintln(a.Stdout, "The state is empty.")
		return exitOK
	}
	for _, r := range st.Resources {
		writeResource(a.Stdout, r)
	}
	return exitOK
}

func writeResource(w io.Writer, r *provision.ResourceState) {
	fmt.Fprintf(w, "# %s:\nresource %q %q {\n", r.Address, r.Type, r.Address)
	keys := []string{"id", "status"}
	vals := map[string]string{"id": fmt.Sprintf("%q", r.ID), "status": fmt.Sprintf("%q", r.Status)}
	var ak []string
	for k := range r.Attrs {
		ak = append(ak, k)
	}
	sort.Strings(ak)
	for _, k := range ak {
		keys = append(keys, k)
		vals[k] = provision.FormatValue(r.Attrs[k])
		if provision.IsSecret(k) {
			vals[k] = "(sensitive value)"
		}
	}
	width := 0
	for _, k := range keys {
		width = max(width, len(k))
	}
	for _, k := range keys {
		fmt.Fprintf(w, "    %-*s = %s\n", width, k, vals[k])
	}
	fmt.Fprintln(w, "}")
	fmt.Fprintln(w)
}

func runState(a *App, args []string) int {
	sub := args[0]
	c := findCommand("state").sub(sub)
	fs := a.flagSet(c)
	var t tmplFlags
	fs.StringVar(&t.statePath, "state", "", "state file (default ./.hvctl/state.json)")
	t.addBackend(fs)
	lockTimeout := fs.Duration("lock-timeout", 0, "how long to wait for the state lock (rm, mv, push)")
	force := fs.Bool("force", false, "push: replace a state of another lineage or a newer serial")
	newKeyEnv := ""
	if sub == "rekey" {
		fs.StringVar(&newKeyEnv, "new-key-env", "", "the environment variable holding the new passphrase")
	}
	pos, code, ok := a.parse(fs, args[1:])
	if !ok {
		return code
	}
	store, err := a.readStore(&t, ".")
	if err != nil {
		return a.failErr(err)
	}
	switch sub {
	case "list":
		st, err := store.Load()
		if err != nil {
			return a.failErr(err)
		}
		for _, r := range st.Resources {
			if len(pos) == 0 || strings.HasPrefix(r.Address, pos[0]) {
				fmt.Fprintln(a.Stdout, r.Address)
			}
		}
		return exitOK
	case "show":
		if len(pos) != 1 {
			return a.fail("state show needs one address", "Usage: hvctl state show ADDR. See hvctl state list for the addresses.")
		}
		st, err := store.Load()
		if err != nil {
			return a.failErr(err)
		}
		r := st.Resource(pos[0])
		var addrs []string
		if r == nil {
			r, addrs = findNode(st, pos[0]) // a node by its member name
		}
		if r == nil {
			for _, x := range st.Resources {
				addrs = append(addrs, x.Address)
			}
			return a.fail("No resource "+pos[0]+" in the state", "See hvctl state list for the addresses."+suggest(pos[0], addrs))
		}
		writeResource(a.Stdout, redactedState(&provision.State{Version: 1, Lineage: "x", Resources: []*provision.ResourceState{r}}).Resources[0])
		return exitOK
	case "rm":
		if len(pos) == 0 {
			return a.fail("state rm needs addresses", "Usage: hvctl state rm ADDR... — hvctl forgets the resources; it does not destroy them.")
		}
		l, err := store.Lock(a.Ctx, "state rm", *lockTimeout)
		if err != nil {
			return a.failErr(err)
		}
		defer l.Unlock()
		st, err := store.Load()
		if err != nil {
			return a.failErr(err)
		}
		for _, addr := range pos {
			if st.Resource(addr) == nil {
				return a.fail("No resource "+addr+" in the state", "Nothing was removed. See hvctl state list.")
			}
		}
		for _, addr := range pos {
			provision.ForgetResource(st, addr)
			fmt.Fprintf(a.Stdout, "Removed %s\n", addr)
		}
		if err := store.Write(st); err != nil {
			return a.failErr(err)
		}
		fmt.Fprintf(a.Stdout, "Successfully removed %d resource(s). They still exist at their provider.\n", len(pos))
		return exitOK
	case "unlock":
		if len(pos) != 1 {
			return a.fail("state unlock needs the lock ID", "Usage: hvctl state unlock LOCK_ID; the ID is shown in the lock error.")
		}
		if err := store.ForceUnlock(pos[0]); err != nil {
			return a.failErr(err)
		}
		fmt.Fprintln(a.Stdout, "hvctl state has been successfully unlocked!")
		return exitOK
	case "mv":
		if len(pos) != 2 {
			return a.fail("state mv needs a source and a destination address", "Usage: hvctl state mv SOURCE DESTINATION; see hvctl state list.")
		}
		return a.stateMove(store, pos[0], pos[1], *lockTimeout)
	case "pull":
		if !a.atMost(c, pos, 0) {
			return exitError
		}
		if f, ok := a.Stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return a.fail("state pull prints secrets", "The state holds the cluster's secrets (its CA key, join tokens); hvctl prints it only into a file or a pipe: hvctl state pull > state.json (and keep that file private).")
		}
		l, err := store.Lock(a.Ctx, "state pull", *lockTimeout)
		if err != nil {
			return a.failErr(err)
		}
		defer l.Unlock()
		st, err := store.Load()
		if err != nil {
			return a.failErr(err)
		}
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return a.failErr(err)
		}
		a.Stdout.Write(append(b, '\n'))
		return exitOK
	case "rekey":
		if !a.atMost(c, pos, 0) {
			return exitError
		}
		return a.stateRekey(store, newKeyEnv, *lockTimeout)
	case "push":
		if len(pos) != 1 {
			return a.fail("state push needs a file", "Usage: hvctl state push FILE (a state written by hvctl state pull).")
		}
		return a.statePush(store, pos[0], *force, *lockTimeout)
	}
	return a.fail("Unknown state subcommand "+sub, "Use list, show, rm, unlock, mv, pull, push or rekey."+suggest(sub, []string{"list", "show", "rm", "unlock", "mv", "pull", "push", "rekey"}))
}

func runGraph(a *App, args []string) int {
	c := findCommand("graph")
	fs := a.flagSet(c)
	var t tmplFlags
	t.add(fs)
	typ := fs.String("type", "plan", "graph type: plan (resources) or overlay (peerings)")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	tmpl := templatePath(pos)
	switch *typ {
	case "plan":
	case "overlay":
		o := opFlags{tmplFlags: t, lock: false, parallelism: provision.DefaultParallelism}
		s, ok := a.open(tmpl, &o, "graph")
		if !ok {
			return exitError
		}
		defer s.close()
		view, err := a.loadOverlay(s)
		if err != nil {
			return a.failErr(err)
		}
		overlayDOT(a.Stdout, view, s.Config.Cluster.Overlay.Hubs)
		return exitOK
	default:
		return a.fail("Unknown graph type "+*typ, "hvctl graph -type plan prints the resource graph; -type overlay the overlay's peerings.")
	}
	cfg, ok := a.load(tmpl, t.vars)
	if !ok {
		return exitError
	}
	st, err := t.store(tmpl).Load()
	if err != nil {
		return a.failErr(err)
	}
	g, err := provision.BuildGraph(cfg.Cluster, st)
	if err != nil {
		return a.failErr(err)
	}
	fmt.Fprintln(a.Stdout, "digraph hvctl {")
	fmt.Fprintln(a.Stdout, "  rankdir = \"RL\";")
	for _, r := range g.Resources {
		fmt.Fprintf(a.Stdout, "  %q [label=\"%s\\n%s\", shape=box];\n", r.Address, r.Type(), r.Address)
	}
	for _, r := range g.Resources {
		for _, d := range r.Deps {
			fmt.Fprintf(a.Stdout, "  %q -> %q;\n", r.Address, d)
		}
	}
	fmt.Fprintln(a.Stdout, "}")
	return exitOK
}

func runSim(a *App, args []string) int {
	if len(args) == 0 || args[0] != "list" {
		return a.fail("Usage: hvctl sim list [-json] [-all] [PATH]", "sim list prints the sim provider's inventory: what really exists in its cloud.")
	}
	c := findCommand("sim").sub("list")
	fs := a.flagSet(c)
	var t tmplFlags
	fs.StringVar(&t.statePath, "state", "", "state file whose directory holds the sim world")
	jsonOut := fs.Bool("json", false, "print a JSON array")
	all := fs.Bool("all", false, "include terminated machines")
	pos, code, ok := a.parse(fs, args[1:])
	if !ok {
		return code
	}
	tmpl := templatePath(pos)
	// The worlds of the template's sim providers (their world setting),
	// else the one HVCTL_SIM_WORLD or the state directory holds.
	worlds := []string{""}
	if _, err := os.Stat(tmpl); err == nil {
		if cfg, d := templates.Load(tmpl, templates.LoadOptions{Environ: a.Environ}); !d.HasErrors() {
			worlds = nil
			for _, p := range cfg.Providers {
				if p.Type == "sim" {
					s, _ := sim.ParseSettings(p, nil)
					if !slices.Contains(worlds, s.World) {
						worlds = append(worlds, s.World)
					}
				}
			}
			if len(worlds) == 0 {
				worlds = []string{""}
			}
		}
	}
	var items []sim.Item
	for _, w := range worlds {
		its, err := sim.ListWorld(t.store(tmpl).Dir(), w)
		if err != nil {
			return a.failErr(err)
		}
		items = append(items, its...)
	}
	var shown []sim.Item
	for _, it := range items {
		if *all || (it.State != "terminated" && it.State != "deleted") {
			shown = append(shown, it)
		}
	}
	if shown == nil {
		shown = []sim.Item{}
	}
	if *jsonOut {
		return a.writeJSON(shown)
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tCLUSTER\tADDRESS\tSTATE")
	for _, it := range shown {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.ID, it.Kind, it.Cluster, it.Address, it.State)
	}
	tw.Flush()
	return exitOK
}

// stateMove gives the resource at from the address to, under the lock:
// the machine is untouched and keeps its client token, and resources
// that depend on it follow.
func (a *App) stateMove(store *provision.Store, from, to string, lockTimeout time.Duration) int {
	l, err := store.Lock(a.Ctx, "state mv", lockTimeout)
	if err != nil {
		return a.failErr(err)
	}
	defer l.Unlock()
	st, err := store.Load()
	if err != nil {
		return a.failErr(err)
	}
	r := st.Resource(from)
	if r == nil {
		var addrs []string
		for _, x := range st.Resources {
			addrs = append(addrs, x.Address)
		}
		return a.fail("No resource "+from+" in the state", "Nothing was moved. See hvctl state list."+suggest(from, addrs))
	}
	if k := provision.KindOf(to); k != r.Kind {
		what := "not a resource address"
		if k != "" {
			what = "the address of " + article(string(k))
		}
		return a.fail(fmt.Sprintf("Cannot move %s to %s", from, to), fmt.Sprintf("%s is %s, and %s is %s; a resource keeps its kind. Nothing was moved.", from, article(string(r.Kind)), to, what))
	}
	if st.Resource(to) != nil {
		return a.fail("The state already has "+to, "Nothing was moved: remove or move that resource first.")
	}
	provision.MoveResource(st, from, to)
	if err := store.Write(st); err != nil {
		return a.failErr(err)
	}
	fmt.Fprintf(a.Stdout, "Move %q to %q\nSuccessfully moved 1 object.\n", from, to)
	return exitOK
}

// statePush replaces the state with the file's, under the lock. A state
// of another lineage, or older than the current one, is refused unless
// force: it would forget machines the current state knows.
func (a *App) statePush(store *provision.Store, file string, force bool, lockTimeout time.Duration) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return a.failErr(err)
	}
	in, err := provision.DecodeState(file, b)
	if err != nil {
		return a.fail("Invalid state file", err.Error()+"\nNothing was pushed.")
	}
	l, err := store.Lock(a.Ctx, "state push", lockTimeout)
	if err != nil {
		return a.failErr(err)
	}
	defer l.Unlock()
	cur, err := store.Load()
	if err != nil {
		return a.failErr(err)
	}
	if store.Exists() && !force {
		if cur.Lineage != in.Lineage {
			return a.fail("The pushed state is of another lineage", fmt.Sprintf("%s has lineage %s; the current state has %s: it describes other machines, and pushing it would lose track of these. Nothing was pushed; add -force to replace it anyway.", file, in.Lineage, cur.Lineage))
		}
		if in.Serial < cur.Serial {
			return a.fail("The pushed state is older than the current one", fmt.Sprintf("%s has serial %d; the current state has serial %d. Nothing was pushed; add -force to replace it anyway.", file, in.Serial, cur.Serial))
		}
	}
	// Write bumps the serial: the pushed state becomes the newest.
	in.Serial = max(in.Serial, cur.Serial)
	if err := store.Write(in); err != nil {
		return a.failErr(err)
	}
	fmt.Fprintf(a.Stdout, "Pushed %s: %s, serial %d.\n", file, provision.Plural(len(in.Resources), "resource", "resources"), in.Serial)
	return exitOK
}

// article is "an instance", "a network".
func article(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}
