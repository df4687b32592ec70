// Package cli implements hvctl's command line: flag parsing, verbs, and
// the glue between templates, provision and the providers. cmd/hvctl only
// calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"

	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/internal/logging"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

// Exit codes, as Terraform's.
const (
	exitOK      = 0
	exitError   = 1
	exitChanges = 2 // plan -detailed-exitcode with changes
	exitFmt     = 3 // fmt -check found files to change
)

// App is one invocation's environment; tests build their own.
type App struct {
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Environ []string
	// Color is decided from -no-color, NO_COLOR and whether stdout is a
	// terminal.
	Color bool
	// Ctx is cancelled on the first interrupt: no new operation starts.
	Ctx context.Context

	// Log is the process's log (HVCTL_LOG, HVCTL_LOG_PATH), also
	// slog's default: off for the CLI's verbs unless asked for, info for
	// the agent and the elastic daemon.
	Log *slog.Logger

	verbs map[*flag.FlagSet]*command
}

type command struct {
	name  string
	usage string
	help  string
	// examples are command lines shown by -help.
	examples []string
	// subs are a group's subcommands (state list, state show, ...): Run
	// checks the first argument against them and -help lists them; the
	// group's run function gets the subcommand as its first argument.
	subs []*command
	run  func(a *App, args []string) int
}

// sub returns the subcommand name of a group, named "GROUP NAME" for
// its usage line; a name it does not have gets a bare command.
func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return &command{name: c.name + " " + s.name, usage: s.usage, help: s.help, examples: s.examples}
		}
	}
	return &command{name: c.name + " " + name, usage: c.usage, help: c.help}
}

func isHelpArg(s string) bool { return s == "-help" || s == "--help" || s == "-h" }

var commands []*command

func register(c *command) { commands = append(commands, c) }

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Main runs hvctl with args (without the program name) on the process's
// standard streams and returns the exit code.
func Main(args []string) int {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	ctx, stop := interrupts(os.Stderr, sig, func() { os.Exit(130) })
	defer stop()
	color := term.IsTerminal(int(os.Stdout.Fd())) && os.Getenv("NO_COLOR") == ""
	a := &App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Environ: os.Environ(), Color: color, Ctx: ctx}
	return a.Run(args)
}

// interrupts returns a context cancelled at the first signal on ch
// (Main: SIGINT or SIGTERM), saying at once what happens, as Terraform
// does; a second one says what is abandoned and calls exit. Abandoning
// is safe: each operation's intent is in the state before it starts,
// so the next plan or up finds what it made. The signals come in as a
// channel so that tests send them without signalling the test process.
func interrupts(w io.Writer, ch <-chan os.Signal, exit func()) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
		case <-done:
			return
		}
		fmt.Fprintln(w, "\nInterrupt received.\nPlease wait for hvctl to exit or data loss may occur.\nGracefully shutting down...")
		cancel()
		select {
		case <-ch:
		case <-done:
			return
		}
		fmt.Fprintln(w, "\nTwo interrupts received. Exiting immediately: operations in flight are abandoned. "+
			"Their intents are in the state, so the next hvctl plan, up or down finds what they made; the state lock is released as hvctl exits.")
		exit()
	}()
	return ctx, func() { close(done); cancel() }
}

// Run runs one command line.
func (a *App) Run(args []string) int {
	if a.Ctx == nil {
		a.Ctx = context.Background()
	}
	// Global options come before the verb.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		switch name {
		case "chdir":
			if !hasVal {
				if len(args) < 2 {
					return a.fail("Invalid -chdir", "-chdir needs a directory: hvctl -chdir=DIR VERB ...")
				}
				val, args = args[1], args[1:]
			}
			if err := os.Chdir(val); err != nil {
				return a.fail("Invalid -chdir", fmt.Sprintf("Cannot change to %s: %v", val, err))
			}
		case "no-color":
			a.Color = false
		case "h", "help":
			a.usage(a.Stdout)
			return exitOK
		case "v", "version":
			return a.Run([]string{"version"})
		default:
			a.usage(a.Stderr)
			return a.fail("Unknown global option "+args[0], "Global options are -chdir=DIR and -no-color; verb options go after the verb.")
		}
		args = args[1:]
	}
	if len(args) == 0 {
		a.usage(a.Stderr)
		return exitError
	}
	c := findCommand(args[0])
	if c == nil {
		return a.fail(fmt.Sprintf("Unknown command %q", args[0]), "Run hvctl -help for the list of commands."+suggest(args[0], commandNames()))
	}
	dflt := logging.Off
	if c.name == "agent" || (c.name == "elastic" && len(args) > 1 && args[1] == "run") {
		dflt = slog.LevelInfo
	}
	l, closeLog, err := logging.New(a.Environ, a.Stderr, dflt)
	if err != nil {
		return a.fail("Invalid logging setting", err.Error())
	}
	defer closeLog()
	a.Log = l
	// slog's default is this run's log while it runs, and what it was
	// after: an in-process run (tests, the Pulumi provider) does not
	// leave its log, closed or pointing at its caller's buffers, as the
	// process's.
	prev := slog.Default()
	slog.SetDefault(l)
	defer slog.SetDefault(prev)
	l.Debug("hvctl starting", "version", provision.Version, "args", strings.Join(args, " "))
	if len(c.subs) > 0 {
		switch {
		case len(args) == 1:
			a.groupUsage(a.Stderr, c)
			return a.fail("hvctl "+c.name+" needs a subcommand", "Run hvctl "+c.name+" -help for the subcommands and their options.")
		case isHelpArg(args[1]):
			a.groupUsage(a.Stdout, c)
			return exitOK
		}
		var names []string
		found := false
		for _, s := range c.subs {
			names = append(names, s.name)
			found = found || s.name == args[1]
		}
		if !found {
			return a.fail(fmt.Sprintf("Unknown subcommand %q of hvctl %s", args[1], c.name),
				fmt.Sprintf("hvctl %s has %s.%s", c.name, strings.Join(names, ", "), suggest(args[1], names)))
		}
	}
	return c.run(a, args[1:])
}

// groupUsage lists a group's subcommands.
func (a *App) groupUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: hvctl %s <subcommand> [options] [args]\n\n  %s\n\nSubcommands:\n", c.name, c.help)
	for _, s := range c.subs {
		fmt.Fprintf(w, "  %-10s %s\n", s.name, s.help)
	}
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintf(w, "\nRun hvctl %s SUBCOMMAND -help for a subcommand's options.\n", c.name)
}

func commandNames() []string {
	var n []string
	for _, c := range commands {
		n = append(n, c.name)
	}
	return n
}

func (a *App) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: hvctl [global options] <command> [args]\n\n")
	fmt.Fprintf(w, "hvctl provisions hierarchical virtual clusters across sites, joined by a\nWireGuard overlay, from HCL templates.\n\nCommands:\n")
	cs := append([]*command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.help)
	}
	fmt.Fprintf(w, "\nGlobal options:\n  -chdir=DIR   run as if started in DIR\n  -no-color    no colour in output (also NO_COLOR, or when stdout is not a terminal)\n\nEvery command takes -help.\n")
}

// fail prints "Error: SUMMARY" and a detail paragraph to stderr.
func (a *App) fail(summary, detail string) int {
	a.printError(summary, detail)
	return exitError
}

func (a *App) printError(summary, detail string) {
	red := func(s string) string {
		if a.Color {
			return "\x1b[31m\x1b[1m" + s + "\x1b[0m"
		}
		return s
	}
	fmt.Fprintf(a.Stderr, "\n%s %s\n", red("Error:"), summary)
	if detail != "" {
		fmt.Fprintf(a.Stderr, "\n%s\n", detail)
	}
	fmt.Fprintln(a.Stderr)
}

// failErr prints an error; the first line is the summary.
func (a *App) failErr(err error) int {
	var le *provision.LockError
	if errors.As(err, &le) {
		return a.fail("Error acquiring the state lock", strings.TrimPrefix(le.Error(), "error acquiring the state lock: "))
	}
	var de *cluster.DiagnosticsError
	if errors.As(err, &de) {
		a.diags(de.Files, de.Diagnostics)
		return exitError
	}
	var ce *cluster.Error
	if errors.As(err, &ce) {
		return a.fail(ce.Summary, ce.Detail)
	}
	msg := err.Error()
	summary, detail, _ := strings.Cut(msg, "\n")
	return a.fail(summary, strings.TrimSpace(detail))
}

// diags prints diagnostics with source snippets and reports whether any
// is an error.
func (a *App) diags(files map[string]*hcl.File, d hcl.Diagnostics) bool {
	if len(d) == 0 {
		return false
	}
	templates.WriteDiagnostics(a.Stderr, files, d, a.Color, 78)
	return d.HasErrors()
}

// flagSet makes a verb's FlagSet. Go's flag package prints nothing
// itself: parse prints the help (-help, on stdout) or the error (stderr).
func (a *App) flagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if a.verbs == nil {
		a.verbs = map[*flag.FlagSet]*command{}
	}
	a.verbs[fs] = c
	return fs
}

// verbUsage prints a verb's usage, examples and its own flags.
func (a *App) verbUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: hvctl %s %s\n\n  %s\n", c.name, c.usage, c.help)
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintf(w, "\nOptions:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// parse parses flags interspersed with positional arguments (Go's flag
// stops at the first positional; Terraform users put flags anywhere).
// Arguments after "--" are positional. It returns the positionals, or
// ok=false with an exit code: -help prints the verb's usage on stdout
// (exit 0), a bad flag an error naming it on stderr (exit 1).
func (a *App) parse(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	c := a.verbs[fs]
	if c == nil {
		c = &command{name: fs.Name()}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.verbUsage(a.Stdout, c, fs)
				return nil, exitOK, false
			}
			var names []string
			fs.VisitAll(func(f *flag.Flag) { names = append(names, "-"+f.Name) })
			hint := ""
			if _, bad, found := strings.Cut(err.Error(), "not defined: "); found {
				hint = suggest(bad, names)
			}
			a.fail("Invalid option for hvctl "+c.name, fmt.Sprintf("%v.%s Run hvctl %s -help for its options.", err, hint, c.name))
			return nil, exitError, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), 0, true
		}
		// fs.Parse consumed a "--" terminator itself if it came first.
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// atMost refuses more than n positional arguments, naming the extra ones.
func (a *App) atMost(c *command, pos []string, n int) bool {
	if len(pos) <= n {
		return true
	}
	a.fail("Too many arguments for hvctl "+c.name, fmt.Sprintf("Unexpected %s. Usage: hvctl %s %s", quoteList(pos[n:]), c.name, c.usage))
	return false
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

type varFlag struct{ args *[]templates.VarArg }

func (v varFlag) String() string { return "" }
func (v varFlag) Set(s string) error {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("expected NAME=VALUE, got %q", s)
	}
	*v.args = append(*v.args, templates.VarArg{Name: name, Value: val})
	return nil
}

type varFileFlag struct{ args *[]templates.VarArg }

func (v varFileFlag) String() string { return "" }
func (v varFileFlag) Set(s string) error {
	*v.args = append(*v.args, templates.VarArg{File: s})
	return nil
}

// tmplFlags are the flags of every verb that reads a template.
type tmplFlags struct {
	vars          []templates.VarArg
	statePath     string
	workspace     string
	backendConfig []string
}

func (t *tmplFlags) add(fs *flag.FlagSet) {
	fs.Var(varFlag{&t.vars}, "var", "set a variable: -var NAME=VALUE (repeatable)")
	fs.Var(varFileFlag{&t.vars}, "var-file", "read variables from an HCL file (repeatable)")
	fs.StringVar(&t.statePath, "state", "", "state file (default .hvctl/state.json next to the template)")
}

// addBackend registers -workspace and -backend-config.
func (t *tmplFlags) addBackend(fs *flag.FlagSet) {
	fs.StringVar(&t.workspace, "workspace", "default", "the workspace: one state per cluster and workspace")
	fs.Func("backend-config", "a state backend setting KEY=VALUE over the template's state block (repeatable)", func(s string) error {
		if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
			return fmt.Errorf("expected KEY=VALUE, got %q", s)
		}
		t.backendConfig = append(t.backendConfig, s)
		return nil
	})
}

// templatePath returns the template path from positionals (default ".").
func templatePath(pos []string) string {
	if len(pos) > 0 {
		return pos[0]
	}
	return "."
}

// stateOptions are the flags that say where the state is.
func (t *tmplFlags) stateOptions(environ []string) cluster.StateOptions {
	return cluster.StateOptions{StatePath: t.statePath, Workspace: t.workspace, BackendConfig: t.backendConfig, Environ: environ}
}

// store is the local state file of tmpl (-state, or the default).
func (t *tmplFlags) store(tmpl string) *provision.Store {
	return cluster.LocalStore(tmpl, cluster.StateOptions{StatePath: t.statePath})
}

// load reads a template, printing diagnostics. ok=false on errors.
func (a *App) load(path string, vars []templates.VarArg) (*templates.Config, bool) {
	cfg, warn, err := cluster.LoadTemplate(path, vars, a.Environ)
	if err != nil {
		a.failErr(err)
		return nil, false
	}
	a.diags(cfg.Files, warn)
	return cfg, true
}

// suggest returns " Did you mean X?" for the nearest name, or "".
func suggest(given string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := levenshtein.Distance(given, n, nil); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

type flagT = flag.Flag
