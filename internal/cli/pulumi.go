package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/internal/pulumiprov"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

func init() {
	register(&command{name: "pulumi-provider", usage: "[ENGINE_ADDRESS]", help: "Serve the Pulumi resource provider (started by the Pulumi engine as pulumi-resource-hvctl; not for people)", run: runPulumiProvider})
	register(&command{name: "pulumi", usage: "install [-dir DIR]", help: "Pulumi interop: install the hvctl resource provider plugin", run: runPulumi,
		subs: []*command{{name: "install", usage: "[-dir DIR]", help: "Write the pulumi-resource-hvctl plugin (a wrapper around this hvctl)", examples: []string{
			"hvctl pulumi install                 # beside this hvctl, so it is on PATH with it",
			"hvctl pulumi install -dir ~/.local/bin"}}}})
}

func runPulumiProvider(a *App, args []string) int {
	c := findCommand("pulumi-provider")
	fs := a.flagSet(c)
	// The engine passes its own logging and tracing flags; hvctl logs
	// through HVCTL_LOG and HVCTL_LOG_PATH instead.
	fs.Bool("logtostderr", false, "passed by the Pulumi engine; ignored")
	fs.Bool("logflow", false, "passed by the Pulumi engine; ignored")
	fs.Int("v", 0, "passed by the Pulumi engine; ignored")
	fs.String("tracing", "", "passed by the Pulumi engine; ignored")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	engine := ""
	if len(pos) == 1 {
		engine = pos[0]
	}
	err := pulumiprov.Serve(a.Ctx, engine, a.Stdout, &pulumiClusters{environ: a.Environ}, provision.Version, a.Environ)
	if err != nil && a.Ctx.Err() == nil {
		return a.failErr(err)
	}
	return exitOK
}

func runPulumi(a *App, args []string) int {
	c := findCommand("pulumi").sub(args[0])
	fs := a.flagSet(c)
	exe, _ := os.Executable()
	dir := fs.String("dir", "", "directory for the plugin (default: this hvctl's directory)")
	if _, code, ok := a.parse(fs, args[1:]); !ok {
		return code
	}
	if exe == "" {
		return a.fail("Cannot find this hvctl's executable", "The plugin runs this hvctl; start hvctl by its path.")
	}
	if *dir == "" {
		*dir = filepath.Dir(exe)
	}
	path, err := pulumiprov.Install(*dir, exe)
	if err != nil {
		return a.fail("Cannot write the plugin", err.Error())
	}
	fmt.Fprintf(a.Stdout, "Wrote %s (runs %s pulumi-provider).\n", path, exe)
	onPath := false
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if abs, err := filepath.Abs(d); err == nil && abs == filepath.Clean(*dir) {
			onPath = true
		}
	}
	if !onPath {
		fmt.Fprintf(a.Stdout, "\n%s is not on PATH: add it for the Pulumi CLI, or run\n    pulumi plugin install resource hvctl %s -f %s\n", *dir, strings.TrimPrefix(provision.Version, "v"), path)
	}
	return exitOK
}

// pulumiClusters runs the provider's cluster operations on the same
// code as hvctl plan, up and down, with their output captured.
// TODO(cluster): switch to internal/cluster when it lands.
type pulumiClusters struct {
	environ []string
}

var _ pulumiprov.Clusters = (*pulumiClusters)(nil)

// app is an App whose output goes to out and errors to errw.
func (p *pulumiClusters) app(ctx context.Context, out, errw io.Writer) *App {
	return &App{Stdin: strings.NewReader(""), Stdout: out, Stderr: errw, Environ: p.environ, Ctx: ctx}
}

// flags are the options of hvctl up for a spec: no prompts, the lock
// waited for up to a minute.
func (p *pulumiClusters) flags(s pulumiprov.Spec) *opFlags {
	o := &opFlags{}
	o.parallelism, o.lock, o.refresh, o.input, o.joinTimeout = provision.DefaultParallelism, true, true, false, 5*time.Minute
	o.lockTimeout = time.Minute
	o.noColor = true
	for _, v := range s.Vars {
		o.vars = append(o.vars, templates.VarArg{Name: v[0], Value: v[1]})
	}
	o.workspace = s.Workspace
	o.backendConfig = s.BackendConfig
	o.statePath = p.localStatePath(s, o.vars)
	return o
}

// localStatePath is s.StatePath when the state is local and nothing
// names its path; else "" (the backend, or the path setting, decides).
func (p *pulumiClusters) localStatePath(s pulumiprov.Spec, vars []templates.VarArg) string {
	cfg, d := templates.Load(s.Template, templates.LoadOptions{Args: vars, Environ: p.environ})
	if d.HasErrors() || cfg == nil {
		return s.StatePath // open reports the errors
	}
	rs, err := templates.ResolveState(cfg.State, s.BackendConfig, p.environ)
	if err != nil || rs.Backend != "local" {
		return ""
	}
	if _, ok := rs.Settings["path"]; ok {
		return ""
	}
	return s.StatePath
}

// errOf is the error hvctl printed (summary, location, detail).
func errOf(errb *bytes.Buffer, fallback string) error {
	if msg := strings.TrimSpace(errb.String()); msg != "" {
		return errors.New(strings.TrimPrefix(msg, "Error: "))
	}
	return errors.New(fallback)
}

// Plan is hvctl plan: the changes, without the no-ops.
func (p *pulumiClusters) Plan(ctx context.Context, s pulumiprov.Spec, destroy bool) ([]pulumiprov.Change, error) {
	var out, errb bytes.Buffer
	a := p.app(ctx, &out, &errb)
	o := p.flags(s)
	sess, ok := a.open(s.Template, o, "plan")
	if !ok {
		return nil, errOf(&errb, "hvctl plan failed")
	}
	defer sess.close()
	plan, _, err := sess.Engine.Plan(ctx, sess.State, o.planOptions(destroy))
	if err != nil {
		return nil, err
	}
	var changes []pulumiprov.Change
	for _, c := range plan.Changes {
		if c.Action == provision.ActionNoop {
			continue
		}
		changes = append(changes, pulumiprov.Change{Address: c.Address, Action: string(c.Action)})
	}
	return changes, nil
}

// Apply is hvctl up.
func (p *pulumiClusters) Apply(ctx context.Context, s pulumiprov.Spec, progress func(string)) (*pulumiprov.Cluster, error) {
	var errb bytes.Buffer
	lw := &lineWriter{fn: progress}
	a := p.app(ctx, lw, &errb)
	code := a.applyTemplate(s.Template, p.flags(s), true, false, "up")
	lw.Flush()
	if code != exitOK {
		return nil, errOf(&errb, "hvctl up failed")
	}
	return p.describe(ctx, s, false)
}

// Refresh reads what really exists.
func (p *pulumiClusters) Refresh(ctx context.Context, s pulumiprov.Spec) (*pulumiprov.Cluster, error) {
	return p.describe(ctx, s, true)
}

// Destroy is hvctl down.
func (p *pulumiClusters) Destroy(ctx context.Context, s pulumiprov.Spec, progress func(string)) error {
	var errb bytes.Buffer
	lw := &lineWriter{fn: progress}
	a := p.app(ctx, lw, &errb)
	code := a.applyTemplate(s.Template, p.flags(s), true, true, "down")
	lw.Flush()
	if code != exitOK {
		return errOf(&errb, "hvctl down failed")
	}
	return nil
}

// describe is the cluster as the state (refreshed when asked) and its
// manager see it; nil when the state holds no resource.
func (p *pulumiClusters) describe(ctx context.Context, s pulumiprov.Spec, refresh bool) (*pulumiprov.Cluster, error) {
	var out, errb bytes.Buffer
	a := p.app(ctx, &out, &errb)
	o := p.flags(s)
	sess, ok := a.open(s.Template, o, "refresh")
	if !ok {
		return nil, errOf(&errb, "cannot open the cluster")
	}
	defer sess.close()
	st := sess.State
	if refresh {
		var err error
		if st, _, err = sess.Engine.Refresh(ctx, sess.State); err != nil {
			return nil, err
		}
	}
	if len(st.Resources) == 0 {
		return nil, nil
	}
	rows := nodeRows(st)
	if mc := sess.managerFor(st); mc != nil {
		if nodes, err := mc.nodes(ctx); err == nil {
			mergeManager(rows, nodes)
		}
	}
	c := &pulumiprov.Cluster{Name: sess.Config.Cluster.Name, HubEndpoint: hubEndpoint(sess, st), Outputs: map[string]any{}, Resources: map[string]string{}}
	if sess.Config.Cluster.Overlay.CIDR.IsValid() {
		c.OverlayCIDR = sess.Config.Cluster.Overlay.CIDR.String()
	}
	for _, r := range rows {
		c.Nodes = append(c.Nodes, pulumiprov.Node{Address: r.Address, Site: r.Site, Pool: r.Pool, Name: r.Name, State: r.State,
			OverlayIP: r.OverlayIP, PrivateIP: r.PrivateIP, PublicAddress: r.PublicAddress})
	}
	for _, r := range st.Resources {
		c.Resources[r.Address] = r.Status
	}
	outs, err := cluster.LoadOutputs(st)
	if err != nil {
		return nil, err
	}
	for name, o := range outs {
		if o.Sensitive {
			continue // never to Pulumi
		}
		var v any
		if json.Unmarshal(o.Value, &v) == nil {
			c.Outputs[name] = v
		}
	}
	if sess.Store.Backend == nil {
		c.StatePath, _ = filepath.Abs(sess.Store.Path)
	}
	return c, nil
}

// lineWriter calls fn with each complete line written to it.
type lineWriter struct {
	fn  func(string)
	buf []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if w.fn != nil {
			w.fn(string(w.buf[:i]))
		}
		w.buf = w.buf[i+1:]
	}
}

// Flush passes on a last line without a newline.
func (w *lineWriter) Flush() {
	if len(w.buf) > 0 && w.fn != nil {
		w.fn(string(w.buf))
	}
	w.buf = nil
}
