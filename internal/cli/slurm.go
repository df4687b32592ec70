package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/slurm"
)

func init() {
	register(&command{name: "slurm", usage: "resume|suspend [PATH] NODELIST",
		help: "SLURM power saving: create (resume) or destroy (suspend) the named elastic nodes", run: runSlurm,
		subs: []*command{
			{name: "resume", usage: "[-reason WHY] [PATH] NODELIST", help: "Create the named elastic nodes (SLURM's ResumeProgram)", examples: []string{"hvctl slurm resume cloud-burst-[0-2]"}},
			{name: "suspend", usage: "[-reason WHY] [PATH] NODELIST", help: "Destroy the named elastic nodes (SLURM's SuspendProgram)"},
		}})
}

// runSlurm is SLURM's ResumeProgram, SuspendProgram and
// ResumeFailProgram (power_save mode): slurmctld runs it with a SLURM
// hostlist ("cloud-burst-[0-2]"), or with SLURM_RESUME_FILE, and it
// creates or destroys those elastic pool slots through the engine under
// the state lock. Names that are not elastic slots of the template are
// refused before anything changes.
func runSlurm(a *App, args []string) int {
	usage := "Usage: hvctl slurm resume|suspend [-reason WHY] [PATH] NODELIST"
	if len(args) == 0 || (args[0] != "resume" && args[0] != "suspend") {
		return a.fail(usage, "SLURM's power saving runs these: resume creates the named elastic nodes, suspend destroys them. "+
			"hvctl writes them as ResumeProgram, SuspendProgram and ResumeFailProgram when the template has scheduler { type = \"slurm\", elastic_mode = \"power_save\" }.")
	}
	verb := args[0]
	c := findCommand("slurm").sub(args[0])
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optLock|optParallelism)
	reason := fs.String("reason", "", "what asked (logged): resume, suspend, resume-fail")
	pos, code, ok := a.parse(fs, args[1:])
	if !ok {
		return code
	}
	tmpl, list := ".", ""
	switch len(pos) {
	case 1:
		list = pos[0]
	case 2:
		tmpl, list = pos[0], pos[1]
	case 0:
	default:
		return a.fail(usage, fmt.Sprintf("Too many arguments: %q.", pos))
	}
	if list == "" && verb == "resume" {
		if f := os.Getenv("SLURM_RESUME_FILE"); f != "" {
			data, err := os.ReadFile(f)
			if err != nil {
				return a.failErr(err)
			}
			rf, err := slurm.ParseResumeFile(data)
			if err != nil {
				return a.fail("Bad SLURM_RESUME_FILE", fmt.Sprintf("%s: %v", f, err))
			}
			list = rf.AllNodes
		}
	}
	names, err := slurm.ExpandHostlist(list)
	if err != nil || len(names) == 0 {
		return a.fail("No nodes to "+verb, fmt.Sprintf("NODELIST %q: %v. Give a SLURM hostlist such as cloud-burst-[0-2].", list, err))
	}
	if o.lockTimeout == 0 {
		o.lockTimeout = 10 * time.Minute // SLURM runs these concurrently
	}
	fmt.Fprintf(a.Stdout, "%s hvctl slurm %s %s (%s)\n", time.Now().UTC().Format(time.RFC3339), verb, list, *reason)
	s, ok := a.open(tmpl, &o, "slurm "+verb)
	if !ok {
		return exitError
	}
	defer s.close()
	slots, bad := s.SlurmSlots(names)
	if len(bad) > 0 {
		return a.fail("Not elastic nodes of this cluster", fmt.Sprintf("%s: SLURM asked to %s %s, which are not slots of an elastic pool of cluster %s. Nothing was changed.",
			tmpl, verb, strings.Join(bad, ", "), s.Config.Cluster.Name))
	}
	s.Engine.UI = &provision.TextUI{R: &provision.Renderer{W: a.Stdout}}
	// SLURM waits for the nodes: an interrupt does not abandon them.
	ctx := context.WithoutCancel(a.Ctx)
	act := s.Resume
	if verb == "suspend" {
		act = s.Suspend
	}
	n, err := act(ctx, slots)
	if err != nil {
		return a.failErr(err)
	}
	if n == 0 {
		fmt.Fprintf(a.Stdout, "Nothing to do: %s %s already.\n", list, map[string]string{"resume": "exist", "suspend": "are gone"}[verb])
	}
	return exitOK
}
