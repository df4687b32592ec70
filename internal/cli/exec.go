package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
)

func init() {
	register(&command{name: "exec", usage: "NODE [PATH] -- CMD...", help: "Run a command on a node", run: runExec})
}

// executor is the optional provider ability to run a command on a node
// (the local provider: inside the node's namespace; static: over SSH).
type executor interface {
	Exec(ctx context.Context, id string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

// findNode resolves NODE given as a member ID (onprem.wn[0]), an address
// (site.onprem.pool.wn.node[0]) or a node name (wn-0, frontend). When
// nothing matches it returns the member IDs and addresses to suggest from.
func findNode(st *provision.State, node string) (*provision.ResourceState, []string) {
	var names, addrs []string
	for _, r := range st.Resources {
		if r.Kind != provision.KindInstance {
			continue
		}
		id := manager.MemberID(r.Address)
		names = append(names, id)
		addrs = append(addrs, r.Address)
		if node == id || node == r.Address || node == str(r.Attrs, "name") || node == str(r.Attrs, "site")+"."+str(r.Attrs, "name") {
			return r, nil
		}
	}
	return nil, append(names, addrs...)
}

func runExec(a *App, args []string) int {
	c := findCommand("exec")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, 0)
	// Split at "--": before it, NODE and options; after it, the command.
	var cmd []string
	for i, x := range args {
		if x == "--" {
			cmd, args = args[i+1:], args[:i]
			break
		}
	}
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if len(cmd) == 0 || len(pos) == 0 {
		return a.fail("Usage: hvctl exec NODE -- CMD...", "NODE is a node as hvctl status shows it (onprem.frontend, cloud.burst[0]); the command follows \"--\".")
	}
	node := pos[0]
	tmpl := "."
	if len(pos) > 1 {
		tmpl = pos[1]
	}
	o.lock = false
	s, ok := a.open(tmpl, &o, "exec")
	if !ok {
		return exitError
	}
	defer s.close()
	r, names := findNode(s.State, node)
	if r == nil {
		return a.fail("No node "+node+" in the state", "See hvctl status for the nodes."+suggest(node, names))
	}
	p, ok := s.Engine.Provider(r.Provider)
	if !ok {
		return a.fail("Provider "+r.Provider+" is not configured", "")
	}
	ex, ok := p.(executor)
	if !ok {
		return a.fail(fmt.Sprintf("Cannot run commands on %s", node), fmt.Sprintf("The %s provider has no way to run commands on its machines (sim machines are not real). The local provider runs them in the node's namespace, the static provider over SSH.", r.Type))
	}
	rc, err := ex.Exec(a.Ctx, r.ID, cmd, a.Stdin, a.Stdout, a.Stderr)
	if err != nil {
		return a.failErr(fmt.Errorf("exec on %s: %w", node, err))
	}
	return rc
}
