package cli

import (
	"fmt"
	"net/url"

	"github.com/hvctl/hvctl/scheduler/manager"
)

func init() {
	register(&command{name: "node", usage: "revoke [PATH] NODE...", help: "Revoke a node's credentials", run: runNode,
		subs: []*command{{name: "revoke", usage: "[PATH] NODE... [options]", help: "Revoke nodes' credentials: they cannot rejoin with them", examples: []string{"hvctl node revoke onprem.wn[0]"}}}})
}

// runNode is `hvctl node revoke NODE...`: the manager removes each node
// and forgets its credential, so it cannot rejoin with it; only a node
// the engine creates again (with a new join token) joins at its address.
func runNode(a *App, args []string) int {
	if len(args) == 0 || args[0] != "revoke" {
		return a.fail("node needs a subcommand", "Usage: hvctl node revoke [PATH] NODE... (NODE is a member ID such as onprem.wn[0], or an hvctl address).")
	}
	c := findCommand("node").sub("revoke")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, 0)
	pos, code, ok := a.parse(fs, args[1:])
	if !ok {
		return code
	}
	tmpl, nodes := ".", []string{}
	for _, p := range pos {
		if isTemplatePath(p) {
			tmpl = p
		} else {
			nodes = append(nodes, p)
		}
	}
	if len(nodes) == 0 {
		return a.fail("node revoke needs a node", "Usage: hvctl node revoke [PATH] NODE...; hvctl status lists the nodes.")
	}
	s, mc, ok := a.runtimeSession(tmpl, &o)
	if !ok {
		return exitError
	}
	defer s.close()
	failed := false
	for _, n := range nodes {
		id, hint := manager.MemberID(n), ""
		if r, names := findNode(s.State, n); r != nil {
			id = manager.MemberID(r.Address)
		} else {
			hint = suggest(n, names)
		}
		if _, err := mc.send(a, "DELETE", "/v1/nodes/"+url.PathEscape(id), nil, nil); err != nil {
			a.printError("Cannot revoke "+id, err.Error()+hint)
			failed = true
			continue
		}
		fmt.Fprintf(a.Stdout, "Node %s: credential revoked and removed from the cluster; it can join again only if hvctl creates it again.\n", id)
	}
	if failed {
		return exitError
	}
	return exitOK
}
