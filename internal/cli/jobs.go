package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/scheduler/slurm"
	"github.com/hvctl/hvctl/templates"
)

func init() {
	register(&command{name: "submit", usage: "[PATH] (-f JOBFILE | [flags] -- CMD...)", help: "Submit jobs to the cluster's global manager", run: runSubmit})
	register(&command{name: "jobs", usage: "[PATH] [-status S] [-json]", help: "List jobs", run: runJobs})
	register(&command{name: "cancel", usage: "[PATH] JOB...", help: "Cancel jobs", run: runCancel})
	register(&command{name: "logs", usage: "[PATH] JOB", help: "Print a job's output", run: runLogs})
}

// runtimeSession opens the cluster for a runtime verb and returns its
// manager client, or fails saying why.
func (a *App) runtimeSession(tmpl string, o *opFlags) (*session, *managerClient, bool) {
	o.lock = false
	s, ok := a.open(tmpl, o, "jobs")
	if !ok {
		return nil, nil, false
	}
	mc := s.managerFor(s.State)
	if mc == nil {
		s.close()
		a.fail("No cluster manager to talk to", "The cluster's nodes run no agent (sim provider), or the cluster is not up. Run hvctl up on a template whose nodes run agents (local, aws, openstack).")
		return nil, nil, false
	}
	return s, mc, true
}

func runSubmit(a *App, args []string) int {
	c := findCommand("submit")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, 0)
	file := fs.String("f", "", "job file (HCL job blocks, or JSON)")
	n := fs.Int("n", 0, "array job: run N copies (HVCTL_ARRAY_INDEX tells each its index)")
	cpus := fs.Int("cpus", 0, "CPUs per job")
	mem := fs.String("memory", "", "memory per job, e.g. 2GiB")
	gpus := fs.Int("gpus", 0, "GPUs per job")
	prio := fs.Int("priority", 0, "priority (higher first)")
	retries := fs.Int("max-retries", 0, "retries after a failure of the command")
	site := fs.String("site", "", "run only in this site")
	var inputs, labels multiString
	fs.Var(&inputs, "input", "input dataset (repeatable)")
	fs.Var(&labels, "label", "required node label KEY=VALUE (repeatable)")
	jsonOut := fs.Bool("json", false, "print the submitted jobs as JSON")
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
	var specs []*scheduler.Spec
	switch {
	case *file != "" && len(cmd) > 0:
		return a.fail("Both -f and a command", "Give a job file with -f, or a command after --, not both.")
	case *file != "":
		src, err := os.ReadFile(*file)
		if err != nil {
			return a.failErr(err)
		}
		sp, err := scheduler.DecodeFile(*file, src)
		if err != nil {
			var d hcl.Diagnostics
			if dd, ok := err.(hcl.Diagnostics); ok {
				d = dd
				a.diags(map[string]*hcl.File{*file: {Bytes: src}}, d)
				return exitError
			}
			return a.failErr(err)
		}
		specs = sp
	case len(cmd) > 0:
		sp := &scheduler.Spec{Command: cmd, Count: *n, Priority: *prio, MaxRetries: *retries, Site: *site, Inputs: inputs,
			Resources: scheduler.Resources{CPUs: *cpus, GPUs: *gpus}}
		if *mem != "" {
			b, err := templates.ParseSize(*mem)
			if err != nil {
				return a.fail("Invalid -memory", err.Error())
			}
			sp.Resources.MemoryMiB = b >> 20
		}
		for _, l := range labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				return a.fail("Invalid -label "+l, "Labels are KEY=VALUE.")
			}
			if sp.Resources.Labels == nil {
				sp.Resources.Labels = map[string]string{}
			}
			sp.Resources.Labels[k] = v
		}
		if err := sp.Check(); err != nil {
			return a.failErr(err)
		}
		specs = []*scheduler.Spec{sp}
	default:
		return a.fail("Nothing to submit", "Usage: hvctl submit -f job.hcl, or hvctl submit [-n N] [-cpus C] ... -- CMD ARGS...")
	}
	s, mc, ok := a.runtimeSession(templatePath(pos), &o)
	if !ok {
		return exitError
	}
	defer s.close()
	var sums []*manager.SubmitSummary
	for _, sp := range specs {
		// One key per spec: a retry after a timeout or a lost connection
		// returns the jobs of the first attempt, never new ones.
		sum, err := mc.Submit(a.Ctx, sp, manager.NewIdempotencyKey())
		if err != nil {
			return a.failManager("Job rejected", err)
		}
		sums = append(sums, sum)
	}
	if *jsonOut {
		return a.writeSubmitted(mc, sums)
	}
	total, sites := 0, map[string]int{}
	for _, sum := range sums {
		total += sum.Count
		for site, n := range sum.BySite {
			sites[site] += n
		}
	}
	switch {
	case total == 1:
		site := ""
		for s := range sites {
			site = s
		}
		fmt.Fprintf(a.Stdout, "Submitted job %s to site %s.\n", sums[0].First, site)
	default:
		fmt.Fprintf(a.Stdout, "Submitted %d jobs (%s ... %s), by site: %s.\n", total, sums[0].First, sums[len(sums)-1].Last, provision.CountsText(sites, "not yet routed"))
	}
	return exitOK
}

// writeSubmitted prints the submitted jobs as one JSON array, reading
// them back page by page (an array of 100,000 is never one answer).
func (a *App) writeSubmitted(mc *managerClient, sums []*manager.SubmitSummary) int {
	w := newJSONArray(a.Stdout)
	for _, sum := range sums {
		q := manager.JobsQuery{Array: sum.ArrayID}
		if q.Array == "" {
			q.Array = sum.First
		}
		if err := mc.EachJob(a.Ctx, q, w.add); err != nil {
			return a.failManager("Read the submitted jobs", err)
		}
	}
	if err := w.close(); err != nil {
		return a.failErr(err)
	}
	return exitOK
}

// jsonArray writes a JSON array element by element, indented as
// writeJSON does.
type jsonArray struct {
	w   io.Writer
	n   int
	err error
}

func newJSONArray(w io.Writer) *jsonArray { return &jsonArray{w: w} }

func (j *jsonArray) add(v *scheduler.Job) error {
	if j.err != nil {
		return j.err
	}
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		j.err = err
		return err
	}
	sep := ",\n  "
	if j.n == 0 {
		sep = "[\n  "
	}
	j.n++
	_, j.err = fmt.Fprintf(j.w, "%s%s", sep, b)
	return j.err
}

func (j *jsonArray) close() error {
	if j.err != nil {
		return j.err
	}
	if j.n == 0 {
		_, err := io.WriteString(j.w, "[]\n")
		return err
	}
	_, err := io.WriteString(j.w, "\n]\n")
	return err
}

type multiString []string

func (m *multiString) String() string     { return strings.Join(*m, ",") }
func (m *multiString) Set(s string) error { *m = append(*m, s); return nil }

func runJobs(a *App, args []string) int {
	c := findCommand("jobs")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, 0)
	state := fs.String("status", "", "only jobs in this state (queued, running, done, failed, cancelled)")
	jsonOut := fs.Bool("json", false, "print as JSON")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	s, mc, ok := a.runtimeSession(templatePath(pos), &o)
	if !ok {
		return exitError
	}
	defer s.close()
	if sc := s.Config.Cluster.Scheduler; sc.Type == "slurm" {
		if !sc.Accounting {
			return a.fail("No SLURM accounting", "This cluster's jobs are SLURM's, and without accounting only squeue knows them: set scheduler { type = \"slurm\", accounting = true } and run hvctl up, or run squeue on the hub (hvctl exec HUB -- squeue).")
		}
		return a.slurmJobs(mc, *state, *jsonOut)
	}
	q := manager.JobsQuery{State: scheduler.State(*state)}
	if *jsonOut {
		w := newJSONArray(a.Stdout)
		if err := mc.EachJob(a.Ctx, q, w.add); err != nil {
			return a.failManager("Cannot list jobs", err)
		}
		if err := w.close(); err != nil {
			return a.failErr(err)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSITE\tNODE\tEXIT\tTRIES\tSUBMITTED\tCOMMAND\tREASON")
	err := mc.EachJob(a.Ctx, q, func(j *scheduler.Job) error {
		exit := "-"
		if j.ExitCode != nil {
			exit = fmt.Sprint(*j.ExitCode)
		}
		cmd := strings.Join(j.Spec.Command, " ")
		if len(cmd) > 40 {
			cmd = cmd[:37] + "..."
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.State, dash(j.Site), dash(j.Node), exit, j.Attempt,
			j.Submitted.Local().Format(time.TimeOnly), cmd, dash(j.Reason))
		return err
	})
	tw.Flush()
	if err != nil {
		return a.failManager("Cannot list jobs", err)
	}
	return exitOK
}

func runCancel(a *App, args []string) int {
	c := findCommand("cancel")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, 0)
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	tmpl, ids := ".", []string{}
	for _, p := range pos {
		if isTemplatePath(p) {
			tmpl = p
		} else {
			ids = append(ids, p)
		}
	}
	if len(ids) == 0 {
		return a.fail("cancel needs job IDs", "Usage: hvctl cancel JOB...; hvctl jobs lists them.")
	}
	s, mc, ok := a.runtimeSession(tmpl, &o)
	if !ok {
		return exitError
	}
	defer s.close()
	failed := false
	for _, id := range ids {
		j, err := mc.Cancel(a.Ctx, id)
		if err != nil {
			a.printError("Cannot cancel "+id, managerDetail(err))
			failed = true
			continue
		}
		fmt.Fprintf(a.Stdout, "Job %s: %s\n", id, j.State)
	}
	if failed {
		return exitError
	}
	return exitOK
}

func runLogs(a *App, args []string) int {
	c := findCommand("logs")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, 0)
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	tmpl, id := ".", ""
	for _, p := range pos {
		if isTemplatePath(p) {
			tmpl = p
		} else {
			id = p
		}
	}
	if id == "" {
		return a.fail("logs needs a job ID", "Usage: hvctl logs JOB.")
	}
	s, mc, ok := a.runtimeSession(tmpl, &o)
	if !ok {
		return exitError
	}
	defer s.close()
	b, err := mc.Logs(a.Ctx, id)
	if err != nil {
		return a.failManager("Cannot read the logs of "+id, err)
	}
	a.Stdout.Write(b)
	return exitOK
}

// slurmJobs lists a SLURM cluster's jobs from its accounting (sacct on
// the hub); -status takes SLURM's states (completed, failed, ...) or
// hvctl's (done = COMPLETED).
func (a *App) slurmJobs(mc *managerClient, state string, jsonOut bool) int {
	jobs, err := mc.SlurmJobs(a.Ctx)
	if err != nil {
		return a.failManager("Cannot list jobs", err)
	}
	want := strings.ToUpper(state)
	switch want {
	case "DONE":
		want = "COMPLETED"
	case "QUEUED":
		want = "PENDING"
	}
	kept := []slurm.AcctJob{}
	for _, j := range jobs {
		if want == "" || j.State == want {
			kept = append(kept, j)
		}
	}
	if jsonOut {
		enc := json.NewEncoder(a.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(kept); err != nil {
			return a.failErr(err)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tUSER\tPARTITION\tNODES\tEXIT\tSUBMITTED\tNAME")
	for _, j := range kept {
		exit := fmt.Sprint(j.ExitCode)
		if j.Signal != 0 {
			exit += fmt.Sprintf(" (signal %d)", j.Signal)
		}
		sub := "-"
		if !j.Submitted.IsZero() {
			sub = j.Submitted.Local().Format(time.TimeOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.State, dash(j.User), dash(j.Partition),
			dash(slurm.CompressHostlist(j.Nodes)), exit, sub, dash(j.Name))
	}
	tw.Flush()
	return exitOK
}
