package cli

import (
	"fmt"

	"github.com/hvctl/hvctl/provision"
)

func init() {
	register(&command{name: "taint", usage: "ADDR [PATH] [options]", help: "Mark a resource for replacement by the next apply", run: runTaint,
		examples: []string{"hvctl taint site.onprem.pool.wn.node[1]", "hvctl plan   # shows it replaced"}})
	register(&command{name: "untaint", usage: "ADDR [PATH] [options]", help: "Undo taint: the next apply keeps the resource", run: runUntaint,
		examples: []string{"hvctl untaint site.onprem.pool.wn.node[1]"}})
	register(&command{name: "import", usage: "ADDR ID [PATH] [options]", help: "Adopt an existing machine into the state, by its provider ID", run: runImport,
		examples: []string{"hvctl import site.onprem.pool.wn.node[1] sim-i-3f2a9c1e", "hvctl state show site.onprem.pool.wn.node[1]"}})
}

func runTaint(a *App, args []string) int   { return a.setTaint(findCommand("taint"), args, true) }
func runUntaint(a *App, args []string) int { return a.setTaint(findCommand("untaint"), args, false) }

// setTaint marks or unmarks one resource, under the lock. A tainted
// resource is replaced by the next apply; an untainted one is awaited
// ready again, not assumed so.
func (a *App) setTaint(c *command, args []string, taint bool) int {
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optLock)
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return a.fail("hvctl "+c.name+" needs a resource address", "Usage: hvctl "+c.name+" "+c.usage+"; hvctl state list shows the addresses.")
	}
	if !a.atMost(c, pos, 2) {
		return exitError
	}
	addr := pos[0]
	s, ok := a.open(templatePath(pos[1:]), &o, c.name)
	if !ok {
		return exitError
	}
	defer s.close()
	r := s.State.Resource(addr)
	if r == nil {
		var addrs []string
		for _, x := range s.State.Resources {
			addrs = append(addrs, x.Address)
		}
		return a.fail("No resource "+addr+" in the state", "Nothing was changed. See hvctl state list."+suggest(addr, addrs))
	}
	switch {
	case taint && r.Status == provision.StatusPending:
		return a.fail(addr+" is being created", "Its creation was started but not recorded as done; run hvctl apply first, which finds it, then taint it.")
	case taint && r.Status == provision.StatusTainted:
		fmt.Fprintf(a.Stdout, "Resource instance %s is already tainted.\n", addr)
		return exitOK
	case !taint && r.Status != provision.StatusTainted:
		return a.fail(addr+" is not tainted", "Nothing was changed: untaint applies to tainted resources only.")
	}
	if taint {
		r.Status = provision.StatusTainted
	} else {
		r.Status = provision.StatusCreated
	}
	if err := s.Store.Write(s.State); err != nil {
		return a.failErr(err)
	}
	if taint {
		fmt.Fprintf(a.Stdout, "Resource instance %s has been marked as tainted.\n", addr)
	} else {
		fmt.Fprintf(a.Stdout, "Resource instance %s has been successfully untainted.\n", addr)
	}
	return exitOK
}

func runImport(a *App, args []string) int {
	c := findCommand("import")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optLock|optInput)
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) < 2 {
		return a.fail("hvctl import needs an address and an ID", "Usage: hvctl import ADDR ID [PATH]: ADDR is where the template declares the machine, ID its provider's ID (hvctl sim list, or the cloud's console).")
	}
	if !a.atMost(c, pos, 3) {
		return exitError
	}
	addr, id := pos[0], pos[1]
	s, ok := a.open(templatePath(pos[2:]), &o, "import")
	if !ok {
		return exitError
	}
	defer s.close()
	if _, err := s.Engine.Import(a.Ctx, s.State, addr, id); err != nil {
		return a.failErr(err)
	}
	if err := s.Store.Write(s.State); err != nil {
		return a.failErr(err)
	}
	fmt.Fprintf(a.Stdout, "%s: Importing from ID %q...\n%s: Import prepared!\n\n%s\n\nThe resource is now managed by hvctl. Run hvctl plan to see how it compares with the configuration.\n",
		addr, id, addr, a.bold("Import successful!"))
	return exitOK
}
