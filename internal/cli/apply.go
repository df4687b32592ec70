package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/statecrypt"
	"github.com/hvctl/hvctl/templates"
)

func init() {
	register(&command{name: "plan", usage: "[PATH] [options]", help: "Show what apply would do", run: runPlan, examples: []string{
		"hvctl plan", "hvctl plan -out=cluster.hvplan examples/sim-hybrid.hcl", "hvctl plan -destroy", "hvctl plan -detailed-exitcode -input=false   # exit 2 when there are changes"}})
	register(&command{name: "apply", usage: "[PATH or PLANFILE] [options]", help: "Create or update the infrastructure", run: runApply, examples: []string{
		"hvctl apply", "hvctl apply cluster.hvplan   # exactly a saved plan", "hvctl apply -auto-approve -input=false", "hvctl apply -destroy -auto-approve"}})
	register(&command{name: "up", usage: "[PATH] [options]", help: "Apply without asking and wait until the cluster is up", run: runUp, examples: []string{
		"hvctl up examples/local-hybrid.hcl", "hvctl up -join-timeout=10m -json"}})
	register(&command{name: "destroy", usage: "[PATH] [options]", help: "Destroy everything the state holds", run: runDestroy, examples: []string{
		"hvctl destroy", "hvctl destroy -auto-approve"}})
	register(&command{name: "down", usage: "[PATH] [options]", help: "Destroy everything without asking", run: runDown, examples: []string{
		"hvctl down examples/local-hybrid.hcl"}})
}

// opFlags are the flags of the verbs that open a cluster; each verb
// offers the groups that mean something to it (opt...).
type opFlags struct {
	tmplFlags
	parallelism int
	lockTimeout time.Duration
	lock        bool
	refresh     bool
	jsonOut     bool
	noColor     bool
	input       bool
	joinTimeout time.Duration
	replace     listFlag
	target      listFlag
	refreshOnly bool
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// planOptions are the engine's options from the flags.
func (o *opFlags) planOptions(destroy bool) provision.PlanOptions {
	return provision.PlanOptions{Destroy: destroy, Refresh: o.refresh || o.refreshOnly, Replace: o.replace, Target: o.target, RefreshOnly: o.refreshOnly}
}

// checkTargeting refuses flag combinations that mean nothing.
func (a *App) checkTargeting(o *opFlags, destroy bool) bool {
	switch {
	case destroy && len(o.replace) > 0:
		a.fail("-replace cannot be used when destroying", "A destroy removes every resource; -replace keeps one and makes it again. Use one or the other.")
	case destroy && o.refreshOnly:
		a.fail("-refresh-only cannot be used when destroying", "A refresh-only plan changes nothing but the state's record; a destroy changes everything.")
	case o.refreshOnly && (len(o.replace) > 0 || len(o.target) > 0):
		a.fail("-refresh-only cannot be combined with -replace or -target", "A refresh-only plan takes no action on any resource.")
	case o.refreshOnly && !o.refresh:
		a.fail("-refresh-only and -refresh=false contradict each other", "A refresh-only plan is a refresh.")
	default:
		return true
	}
	return false
}

// targetingWarning is Terraform's warning for -target.
func (a *App) targetingWarning(p *provision.Plan) {
	if len(p.Targets) == 0 {
		return
	}
	yellow := func(s string) string {
		if a.Color {
			return "\x1b[33m\x1b[1m" + s + "\x1b[0m"
		}
		return s
	}
	fmt.Fprintf(a.Stdout, "\n%s Resource targeting is in effect\n\nYou are creating a plan with the -target option (%s), which means that the result of this plan may not represent all of the changes requested by the current configuration.\n\nThe -target option is not for routine use, and is provided only for exceptional situations such as recovering from errors or mistakes, or when hvctl specifically suggests to use it as part of an error message.\n",
		yellow("Warning:"), strings.Join(p.Targets, ", "))
}

// opt selects optional flag groups of a verb.
type opt uint

const (
	optLock        opt = 1 << iota // -lock, -lock-timeout
	optParallelism                 // -parallelism
	optRefresh                     // -refresh
	optJoin                        // -join-timeout
	optInput                       // -input
	optTarget                      // -replace, -target, -refresh-only
)

// optChange are the groups of the verbs that change the cluster.
const optChange = optLock | optParallelism | optRefresh | optInput | optTarget

// add sets the defaults of every field and registers the template
// flags, -no-color and the groups in opts.
func (o *opFlags) add(fs *flag.FlagSet, opts opt) {
	o.tmplFlags.add(fs)
	o.tmplFlags.addBackend(fs)
	o.parallelism, o.lock, o.refresh, o.input, o.joinTimeout = provision.DefaultParallelism, true, true, true, 5*time.Minute
	if opts&optParallelism != 0 {
		fs.IntVar(&o.parallelism, "parallelism", provision.DefaultParallelism, "most provider API calls in flight; waiting for a boot holds none (-1 = from each provider's declared API rate, 0 = unlimited)")
	}
	if opts&optLock != 0 {
		fs.DurationVar(&o.lockTimeout, "lock-timeout", 0, "how long to wait for the state lock")
		fs.BoolVar(&o.lock, "lock", true, "lock the state during the operation")
	}
	if opts&optRefresh != 0 {
		fs.BoolVar(&o.refresh, "refresh", true, "read the real infrastructure before planning")
	}
	if opts&optInput != 0 {
		fs.BoolVar(&o.input, "input", true, "ask for input (-input=false: fail where hvctl would ask, as in CI)")
	}
	if opts&optTarget != 0 {
		fs.Var(&o.replace, "replace", "replace the resource at ADDR although nothing changed (repeatable)")
		fs.Var(&o.target, "target", "limit the operation to ADDR and what it depends on (repeatable; not for routine use)")
		if opts&optRefresh != 0 {
			fs.BoolVar(&o.refreshOnly, "refresh-only", false, "only record in the state what refresh finds; change no resource")
		}
	}
	if opts&optJoin != 0 {
		fs.DurationVar(&o.joinTimeout, "join-timeout", 5*time.Minute, "how long to wait for nodes to join the overlay")
	}
	fs.BoolVar(&o.noColor, "no-color", false, "no colour in output")
}

// session is one open cluster (internal/cluster) and what the verb
// that opened it prints with.
type session struct {
	*cluster.Cluster
	a           *App
	joinTimeout time.Duration
}

func (s *session) close() { s.Close() }

// clusterOptions are the options that open tmpl's cluster.
func (a *App) clusterOptions(tmpl string, o *opFlags, operation string) cluster.Options {
	return cluster.Options{Template: tmpl, Vars: o.vars, Environ: a.Environ, StatePath: o.statePath,
		Workspace: o.workspace, BackendConfig: o.backendConfig, Operation: operation, NoLock: !o.lock,
		LockTimeout: o.lockTimeout, Parallelism: o.parallelism}
}

// open opens the cluster of tmpl: template, providers, state backend,
// lock and state. It prints errors itself; ok=false means exit 1.
func (a *App) open(tmpl string, o *opFlags, operation string) (*session, bool) {
	if o.noColor {
		a.Color = false
	}
	c, err := cluster.Open(a.Ctx, a.clusterOptions(tmpl, o, operation))
	if err != nil {
		a.failErr(err)
		return nil, false
	}
	a.diags(c.Config.Files, c.Warnings)
	return &session{Cluster: c, a: a, joinTimeout: o.joinTimeout}, true
}

func runPlan(a *App, args []string) int {
	c := findCommand("plan")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optChange)
	out := fs.String("out", "", "save the plan to FILE for apply")
	destroy := fs.Bool("destroy", false, "plan to destroy everything")
	detailed := fs.Bool("detailed-exitcode", false, "exit 2 when the plan has changes")
	fs.BoolVar(&o.jsonOut, "json", false, "print the plan as JSON")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	if !a.checkTargeting(&o, *destroy) {
		return exitError
	}
	s, ok := a.open(templatePath(pos), &o, "plan")
	if !ok {
		return exitError
	}
	defer s.close()
	plan, _, err := s.Plan(a.Ctx, o.planOptions(*destroy))
	if err != nil {
		return a.failErr(err)
	}
	if o.jsonOut {
		if err := provision.WritePlanJSON(a.Stdout, plan); err != nil {
			return a.failErr(err)
		}
	} else {
		r := &provision.Renderer{W: a.Stdout, Color: a.Color}
		r.RenderPlan(plan)
		a.targetingWarning(plan)
	}
	if *out != "" {
		if err := savePlan(*out, plan, &o, s.Store.Sealer); err != nil {
			return a.failErr(err)
		}
		if !o.jsonOut {
			fmt.Fprintf(a.Stdout, "\nSaved the plan to: %s\n\nTo perform exactly these actions, run:\n    hvctl apply %q\n", *out, *out)
		}
	}
	if *detailed && plan.HasChanges() {
		return exitChanges
	}
	return exitOK
}

// planFile is the on-disk form of a saved plan. Format 1 is the plan
// in JSON. Format 2 is a format-1 file sealed whole under the state's
// encryption (statecrypt), with only the template in the clear: its
// state block says where the passphrase comes from.
type planFile struct {
	Format int             `json:"hvctl_plan_format"`
	Plan   *provision.Plan `json:"plan,omitempty"`
	// Workspace and State are the -workspace and -state the plan was
	// made with; apply uses them unless told otherwise.
	Workspace string `json:"workspace,omitempty"`
	State     string `json:"state,omitempty"`

	Template string `json:"template,omitempty"` // format 2
	Sealed   []byte `json:"sealed,omitempty"`   // format 2: the format-1 file, sealed
}

// savePlan writes p to path (0600); with a sealer (the state is
// encrypted) the file is sealed too, so it holds no plaintext of the
// plan, the state it was made from or the variables.
func savePlan(path string, p *provision.Plan, o *opFlags, sealer *statecrypt.Sealer) error {
	pf := planFile{Format: 1, Plan: redactPlan(p)}
	if o.workspace != "default" {
		pf.Workspace = o.workspace
	}
	if o.statePath != "" {
		pf.State, _ = filepath.Abs(o.statePath)
	}
	b, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return err
	}
	if sealer != nil {
		sealed, err := sealer.Seal(b)
		if err != nil {
			return fmt.Errorf("save plan: %w", err)
		}
		if b, err = json.MarshalIndent(planFile{Format: 2, Template: p.Template, Sealed: sealed}, "", "  "); err != nil {
			return err
		}
	}
	if err := provision.WriteFileAtomic(path, b); err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	return nil
}

// planSealer returns the Sealer that opens a sealed plan made from the
// template at tmpl: the passphrase its state block names (key_env, or a
// variable given in the environment as HVCTL_VAR_NAME; the plan's own
// variables are inside the sealed part).
func (a *App) planSealer(path, tmpl string) (*statecrypt.Sealer, error) {
	cfg, d := templates.Load(tmpl, templates.LoadOptions{Environ: a.Environ})
	if d.HasErrors() {
		return nil, fmt.Errorf("%s is an encrypted plan; its passphrase is set by the state block of %s, which does not load without the plan's variables: %s. Give the variables the state block needs in the environment (HVCTL_VAR_NAME=...), or use key_env", path, tmpl, d.Errs()[0])
	}
	if cfg.State == nil || cfg.State.Encryption == nil {
		return nil, fmt.Errorf("%s is an encrypted plan, but the state block of %s has no encryption now; it cannot be opened", path, tmpl)
	}
	pass, err := cfg.State.Encryption.PassphraseFrom(a.Environ)
	if err != nil {
		return nil, fmt.Errorf("%s is an encrypted plan: %w", path, err)
	}
	return statecrypt.New(pass), nil
}

// readPlan reads a saved plan, opening a sealed one with the passphrase
// of its template's state block; ok=false when path is not a plan file.
func (a *App) readPlan(path string) (*planFile, bool, error) {
	st, err := os.Stat(path)
	if err != nil || st.IsDir() || strings.HasSuffix(path, ".hcl") {
		return nil, false, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	pf, err := decodePlanFile(path, b)
	if err != nil {
		return nil, false, err
	}
	if pf.Format == 2 {
		s, err := a.planSealer(path, pf.Template)
		if err != nil {
			return nil, false, err
		}
		plain, err := s.Open(pf.Sealed)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		if pf, err = decodePlanFile(path, plain); err != nil {
			return nil, false, err
		}
		if pf.Format != 1 {
			return nil, false, fmt.Errorf("%s: the sealed plan inside is format %d, not a plan (format 1); the plan file is damaged", path, pf.Format)
		}
	}
	return pf, true, nil
}

// decodePlanFile parses a saved plan (format 1) or the clear part of a
// sealed one (format 2) and checks it is whole.
func decodePlanFile(path string, b []byte) (*planFile, error) {
	var pf planFile
	if err := json.Unmarshal(b, &pf); err != nil || pf.Format == 0 {
		return nil, fmt.Errorf("%s is neither a template (.hcl) nor a plan saved by hvctl plan -out", path)
	}
	switch {
	case pf.Format == 2:
		if pf.Template == "" {
			return nil, fmt.Errorf("%s: an encrypted plan without its template; the plan file is damaged, make it again with hvctl plan -out", path)
		}
		if _, _, err := statecrypt.ParseHeader(pf.Sealed); err != nil {
			return nil, fmt.Errorf("%s: the encrypted plan: %w", path, err)
		}
		return &pf, nil
	case pf.Format != 1 || pf.Plan == nil:
		return nil, fmt.Errorf("%s: unsupported plan format %d (this hvctl reads formats 1 and 2)", path, pf.Format)
	}
	if pf.Workspace != "" && !cluster.ValidWorkspace(pf.Workspace) {
		return nil, fmt.Errorf("%s: workspace %q is not a workspace name; the plan file is damaged", path, pf.Workspace)
	}
	for i, c := range pf.Plan.Changes {
		if c == nil || c.Address == "" {
			return nil, fmt.Errorf("%s: change %d has no address; the plan file is damaged, make it again with hvctl plan -out", path, i)
		}
		switch c.Action {
		case provision.ActionNoop, provision.ActionCreate, provision.ActionUpdate, provision.ActionReplace, provision.ActionDelete:
		default:
			return nil, fmt.Errorf("%s: change %s has unknown action %q", path, c.Address, c.Action)
		}
		if c.Provider == "" {
			return nil, fmt.Errorf("%s: change %s has no provider", path, c.Address)
		}
	}
	return &pf, nil
}

func runApply(a *App, args []string) int {
	c := findCommand("apply")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optChange)
	auto := fs.Bool("auto-approve", false, "do not ask for confirmation")
	destroy := fs.Bool("destroy", false, "destroy everything the state holds (as hvctl destroy)")
	fs.BoolVar(&o.jsonOut, "json", false, "print progress as JSON lines")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	path := templatePath(pos)
	saved, isPlan, err := a.readPlan(path)
	if err != nil {
		return a.failErr(err)
	}
	if isPlan {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "var", "var-file", "destroy", "refresh":
				set = append(set, "-"+f.Name)
			}
		})
		if len(set) > 0 {
			return a.fail("A saved plan cannot be changed by "+strings.Join(set, ", "),
				fmt.Sprintf("%s was planned with its own variables and options, which apply uses as they are. Plan again with those options (hvctl plan %s -out=FILE), then apply that file.", path, strings.Join(set, " ")))
		}
		return a.applySaved(saved, &o, fs)
	}
	verb := "apply"
	if *destroy {
		verb = "destroy"
	}
	return a.applyTemplate(path, &o, *auto, *destroy, verb)
}

func runUp(a *App, args []string) int {
	c := findCommand("up")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optChange|optJoin)
	fs.BoolVar(&o.jsonOut, "json", false, "print progress and the summary as JSON")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	return a.applyTemplate(templatePath(pos), &o, true, false, "up")
}

func runDestroy(a *App, args []string) int {
	c := findCommand("destroy")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optChange)
	auto := fs.Bool("auto-approve", false, "do not ask for confirmation")
	fs.BoolVar(&o.jsonOut, "json", false, "print progress as JSON lines")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	return a.applyTemplate(templatePath(pos), &o, *auto, true, "destroy")
}

func runDown(a *App, args []string) int {
	c := findCommand("down")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optChange)
	fs.BoolVar(&o.jsonOut, "json", false, "print progress as JSON lines")
	fs.Bool("auto-approve", true, "accepted for scripts written for destroy; down never asks")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	return a.applyTemplate(templatePath(pos), &o, true, true, "down")
}

// ask prints the confirmation prompt and reports whether the answer is
// exactly "yes".
func (a *App) ask(destroy bool) bool {
	if destroy {
		fmt.Fprint(a.Stdout, "\nDo you really want to destroy all resources?\n  hvctl will destroy all your managed infrastructure, as shown above.\n  There is no undo. Only 'yes' will be accepted to confirm.\n\n  Enter a value: ")
	} else {
		fmt.Fprint(a.Stdout, "\nDo you want to perform these actions?\n  hvctl will perform the actions described above.\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
	}
	line, err := bufio.NewReader(a.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return false
	}
	fmt.Fprintln(a.Stdout)
	return strings.TrimSpace(line) == "yes"
}

func (a *App) ui(jsonOut bool) provision.UI {
	if jsonOut {
		return &provision.JSONUI{W: a.Stdout}
	}
	return &provision.TextUI{R: &provision.Renderer{W: a.Stdout, Color: a.Color}}
}

func (a *App) applyTemplate(tmpl string, o *opFlags, auto, destroy bool, verb string) int {
	start := time.Now()
	s, ok := a.open(tmpl, o, verb)
	if !ok {
		return exitError
	}
	defer s.close()
	if !a.checkTargeting(o, destroy) {
		return exitError
	}
	plan, refreshed, err := s.Plan(a.Ctx, o.planOptions(destroy))
	if err != nil {
		return a.failErr(err)
	}
	if o.jsonOut {
		if !auto {
			return a.fail("-json needs -auto-approve", "hvctl cannot ask for confirmation while printing JSON. Add -auto-approve, or apply a saved plan.")
		}
	} else {
		(&provision.Renderer{W: a.Stdout, Color: a.Color}).RenderPlan(plan)
		a.targetingWarning(plan)
	}
	if plan.HasChanges() && !auto && !o.input {
		return a.fail("No approval: -input=false and no -auto-approve", "hvctl would ask whether to perform these actions, but -input=false forbids asking; nothing was changed. Add -auto-approve, or apply a plan saved with plan -out.")
	}
	if plan.HasChanges() && !auto && !a.ask(destroy) {
		what := "Apply"
		if destroy {
			what = "Destroy"
		}
		return a.fail(what+" cancelled.", "Only the answer \"yes\" approves; nothing was changed.")
	}
	return a.execute(s, plan, refreshed, destroy, verb, start, o.jsonOut)
}

func (a *App) applySaved(pf *planFile, o *opFlags, fs *flag.FlagSet) int {
	start := time.Now()
	plan := pf.Plan
	if plan.Template == "" {
		return a.fail("Saved plan has no template", "Make the plan again with hvctl plan -out.")
	}
	vars := make([]templates.VarArg, len(plan.Vars))
	for i, v := range plan.Vars {
		vars[i] = templates.VarArg{Name: v.Name, Value: v.Value, File: v.File}
	}
	o.vars = vars
	// The state the plan was made from, unless told otherwise (the
	// stale check below refuses another one).
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["state"] {
		o.statePath = pf.State
	}
	if !given["workspace"] && pf.Workspace != "" {
		o.workspace = pf.Workspace
	}
	s, ok := a.open(plan.Template, o, "apply")
	if !ok {
		return exitError
	}
	defer s.close()
	stale := s.State.Lineage != plan.Lineage || s.State.Serial != plan.Serial
	if plan.Lineage == "" {
		stale = s.State.Serial != 0 // made before any state existed
	}
	if stale {
		return a.fail("Saved plan is stale",
			fmt.Sprintf("The state was changed after this plan was made (the plan was made against %s; the state is now %s). Nothing was applied. Run hvctl plan again.",
				stateVersion(plan.Lineage, plan.Serial), stateVersion(s.State.Lineage, s.State.Serial)))
	}
	if err := restorePlan(plan, s.State); err != nil {
		return a.failErr(err)
	}
	refreshed := s.State
	if len(plan.Drift) > 0 {
		var err error
		refreshed, _, err = s.Engine.Refresh(a.Ctx, s.State)
		if err != nil {
			return a.failErr(err)
		}
	}
	return a.execute(s, plan, refreshed, plan.Destroy, "apply", start, o.jsonOut)
}

// warner says a warning that does not stop the operation: a Warning
// block, or with -json a line of Terraform's machine-readable UI
// ({"type": "diagnostic", "@level": "warn", ...}).
func (a *App) warner(ui provision.UI) func(msg string) {
	if ui, ok := ui.(*provision.JSONUI); ok {
		return func(msg string) {
			ui.Emit(map[string]any{"type": "diagnostic", "@level": "warn", "@message": "Warning: " + msg,
				"diagnostic": map[string]any{"severity": "warning", "summary": msg}})
		}
	}
	return func(msg string) { fmt.Fprintf(a.Stdout, "Warning: %s\n\n", msg) }
}

func (a *App) execute(s *session, plan *provision.Plan, st *provision.State, destroy bool, verb string, start time.Time, jsonOut bool) int {
	s.Engine.UI = a.ui(jsonOut)
	s.Warn = a.warner(s.Engine.UI)
	quiet := !plan.HasChanges() && plan.Awaiting() == 0 && verb != "up"
	if !quiet && !jsonOut {
		fmt.Fprintln(a.Stdout)
	}
	// Even with nothing to change, Apply records what refresh learned
	// (machines gone or now ready).
	res, err := s.Apply(a.Ctx, plan, st)
	if res != nil && res.Err() != nil {
		interrupted := a.Ctx.Err() != nil
		var failed []string
		for _, addr := range errorAddrs(res.ApplyResult) {
			// An interrupt cancels every operation in flight: one
			// message says so, not one "context canceled" per resource.
			if interrupted && errors.Is(res.Errors[addr], context.Canceled) {
				continue
			}
			failed = append(failed, addr)
		}
		for _, addr := range failed {
			a.printError(res.Errors[addr].Error(), "The state records what was done; run the command again to retry.")
		}
		if interrupted {
			a.printError("Operation interrupted", "hvctl stopped starting new operations after the interrupt; the ones in flight finished and the state records them. Run the command again to continue.")
		}
		return exitError
	}
	if err != nil {
		return a.failErr(err)
	}
	if quiet {
		if !jsonOut && verb == "apply" {
			a.printOutputs(res.Outputs)
		}
		return exitOK
	}
	if jsonOut {
		(&provision.JSONUI{W: a.Stdout}).Emit(map[string]any{"type": "summary", "operation": verb,
			"added": res.Added, "changed": res.Changed, "destroyed": res.Destroyed, "elapsed_seconds": time.Since(start).Seconds()})
	} else if destroy {
		fmt.Fprintf(a.Stdout, "\n%s Resources: %d destroyed.\n", a.bold("Destroy complete!"), res.Destroyed)
	} else {
		fmt.Fprintf(a.Stdout, "\n%s Resources: %d added, %d changed, %d destroyed.\n", a.bold("Apply complete!"), res.Added, res.Changed, res.Destroyed)
	}
	if verb == "up" {
		nodes, err := a.waitJoined(s, s.joinTimeout)
		if err != nil {
			return a.failErr(err)
		}
		if !jsonOut {
			a.summary(s, time.Since(start).Round(time.Second), nodes)
		}
	}
	if !jsonOut && !destroy {
		a.printOutputs(res.Outputs)
	}
	return exitOK
}

func errorAddrs(r *provision.ApplyResult) []string {
	var out []string
	for k, err := range r.Errors {
		if strings.Contains(err.Error(), "skipped because a dependency failed") {
			continue
		}
		out = append(out, k)
	}
	provision.SortAddresses(out)
	return out
}

func (a *App) bold(s string) string {
	if a.Color {
		return "\x1b[1m\x1b[32m" + s + "\x1b[0m"
	}
	return s
}

// stateVersion names a state's lineage and serial for people.
func stateVersion(lineage string, serial uint64) string {
	if lineage == "" {
		return "no state (before the first apply)"
	}
	return fmt.Sprintf("state %s, serial %d", lineage, serial)
}
