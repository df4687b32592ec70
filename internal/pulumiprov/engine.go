package pulumiprov

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/templates"
)

// Engine runs the provider's cluster operations in-process on
// internal/cluster: the same code as hvctl plan, up and down.
type Engine struct {
	// Environ is os.Environ()-style: HVCTL_VAR_*, passphrases and
	// credentials the template and its state block read.
	Environ []string
	// JoinTimeout bounds Apply's wait for the nodes to join (default
	// 5 minutes, as hvctl up's -join-timeout).
	JoinTimeout time.Duration
}

var _ Clusters = (*Engine)(nil)

// lockTimeout is how long an operation waits for the state lock.
const lockTimeout = time.Minute

// open opens the spec's cluster under the lock.
func (e *Engine) open(ctx context.Context, s Spec, op string, ui provision.UI) (*cluster.Cluster, error) {
	var vars []templates.VarArg
	for _, v := range s.Vars {
		vars = append(vars, templates.VarArg{Name: v[0], Value: v[1]})
	}
	o := cluster.Options{Template: s.Template, Vars: vars, Environ: e.Environ, Workspace: s.Workspace,
		BackendConfig: s.BackendConfig, Operation: "pulumi " + op, LockTimeout: lockTimeout,
		Parallelism: provision.ParallelismAuto, UI: ui}
	o.StatePath = e.localStatePath(s, vars)
	c, err := cluster.Open(ctx, o)
	if err != nil {
		return nil, describeErr(err)
	}
	return c, nil
}

// localStatePath is s.StatePath when the state is local and nothing
// names its path; else "" (the backend, or the path setting, decides).
func (e *Engine) localStatePath(s Spec, vars []templates.VarArg) string {
	cfg, d, err := cluster.LoadTemplate(s.Template, vars, e.Environ)
	if err != nil || d.HasErrors() || cfg == nil {
		return s.StatePath // Open reports the errors
	}
	rs, err := templates.ResolveState(cfg.State, s.BackendConfig, e.Environ)
	if err != nil || rs.Backend != "local" {
		return ""
	}
	if _, ok := rs.Settings["path"]; ok {
		return ""
	}
	return s.StatePath
}

// describeErr gives a template's diagnostics their file and line.
func describeErr(err error) error {
	var de *cluster.DiagnosticsError
	if errors.As(err, &de) {
		var b bytes.Buffer
		templates.WriteDiagnostics(&b, de.Files, de.Diagnostics, false, 0)
		return errors.New(strings.TrimSpace(b.String()))
	}
	var ce *cluster.Error
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %s", ce.Summary, ce.Detail)
	}
	return err
}

// Plan is hvctl plan: the changes, without the no-ops.
func (e *Engine) Plan(ctx context.Context, s Spec, destroy bool) ([]Change, error) {
	c, err := e.open(ctx, s, "plan", nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	plan, _, err := c.Plan(ctx, provision.PlanOptions{Refresh: true, Destroy: destroy})
	if err != nil {
		return nil, err
	}
	var out []Change
	for _, ch := range plan.Changes {
		if ch.Action != provision.ActionNoop {
			out = append(out, Change{Address: ch.Address, Action: string(ch.Action)})
		}
	}
	return out, nil
}

// ui renders apply progress as hvctl does, line by line to progress.
func ui(progress func(string)) (provision.UI, *lineWriter) {
	w := &lineWriter{fn: progress}
	return &provision.TextUI{R: &provision.Renderer{W: w}}, w
}

// applyErr is an apply's error with every failed address.
func applyErr(res *cluster.Result, err error) error {
	if res == nil || res.ApplyResult == nil || len(res.Errors) == 0 {
		return err
	}
	var lines []string
	for addr, e := range res.Errors {
		if strings.Contains(e.Error(), "skipped because a dependency failed") {
			continue
		}
		lines = append(lines, addr+": "+e.Error())
	}
	sort.Strings(lines)
	return fmt.Errorf("%v\n%s\nThe state records what was done; the next pulumi up continues.", err, strings.Join(lines, "\n"))
}

// Apply is hvctl up: plan, apply, then wait until every node that runs
// an agent has joined and its overlay paths answer.
func (e *Engine) Apply(ctx context.Context, s Spec, progress func(string)) (*Cluster, error) {
	u, w := ui(progress)
	defer w.Flush()
	c, err := e.open(ctx, s, "up", u)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	plan, refreshed, err := c.Plan(ctx, provision.PlanOptions{Refresh: true})
	if err != nil {
		return nil, err
	}
	if res, err := c.Apply(ctx, plan, refreshed); err != nil {
		return nil, applyErr(res, err)
	}
	members, err := e.waitJoined(ctx, c, progress)
	if err != nil {
		return nil, err
	}
	return describe(c, c.State, members)
}

// waitJoined waits for the cluster's agents as hvctl up does.
func (e *Engine) waitJoined(ctx context.Context, c *cluster.Cluster, progress func(string)) ([]manager.Node, error) {
	want := c.AgentMembers(c.State)
	mc := c.Manager(c.State)
	if mc == nil || len(want) == 0 {
		return nil, nil
	}
	timeout := e.JoinTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	if progress == nil {
		progress = func(string) {}
	}
	start := time.Now()
	progress(fmt.Sprintf("Waiting for %s to join the overlay...", provision.Plural(len(want), "node", "nodes")))
	var last error
	for {
		nodes, err := mc.Nodes(ctx)
		if err == nil {
			var missing, dead []string
			for id := range want {
				ok := false
				for _, n := range nodes {
					if n.ID == id && n.State == manager.StateJoined && n.ProbeOK {
						ok = true
						dead = append(dead, n.DeadPaths()...)
					}
				}
				if !ok {
					missing = append(missing, id)
				}
			}
			if len(missing) == 0 && len(dead) == 0 {
				progress(fmt.Sprintf("All %s joined after %s.", provision.Plural(len(want), "node", "nodes"), provision.HumanDuration(time.Since(start))))
				return nodes, nil
			}
			sort.Strings(missing)
			sort.Strings(dead)
			last = fmt.Errorf("not joined: %s; dead overlay paths: %s", orNone(missing), orNone(dead))
		} else {
			last = err
		}
		if time.Since(start) > timeout {
			return nil, fmt.Errorf("the overlay was not ready within %s: %v\nEach node's agent log is in the state directory (%s); hvctl status shows what joined.", provision.HumanDuration(timeout), last, c.Store.Dir())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// Refresh is what really exists (not recorded in hvctl's state: the
// next plan refreshes again), and what the manager knows of the nodes.
func (e *Engine) Refresh(ctx context.Context, s Spec) (*Cluster, error) {
	c, err := e.open(ctx, s, "refresh", nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	return describe(c, st.State, st.Members)
}

// Destroy is hvctl down.
func (e *Engine) Destroy(ctx context.Context, s Spec, progress func(string)) error {
	u, w := ui(progress)
	defer w.Flush()
	c, err := e.open(ctx, s, "down", u)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Destroy(ctx)
	if err != nil {
		return applyErr(res, err)
	}
	return nil
}

// describe is the cluster as Pulumi sees it: nil without resources.
func describe(c *cluster.Cluster, st *provision.State, members []manager.Node) (*Cluster, error) {
	if len(st.Resources) == 0 {
		return nil, nil
	}
	out := &Cluster{Name: c.Config.Cluster.Name, Outputs: map[string]any{}, Resources: map[string]string{}}
	ov := c.Config.Cluster.Overlay
	if ov.CIDR.IsValid() {
		out.OverlayCIDR = ov.CIDR.String()
	}
	byID := map[string]manager.Node{}
	for _, m := range members {
		byID[m.ID] = m
	}
	for _, r := range st.Resources {
		out.Resources[r.Address] = r.Status
		if r.Kind != provision.KindInstance {
			continue
		}
		str := func(k string) string { s, _ := r.Attrs[k].(string); return s }
		n := Node{Address: r.Address, Site: str("site"), Pool: str("pool"), Name: str("name"), State: cluster.NodeState(r),
			PrivateIP: str("private_ip"), PublicAddress: str("public_address")}
		if m, ok := byID[manager.MemberID(r.Address)]; ok {
			if m.OverlayIP.IsValid() {
				n.OverlayIP = m.OverlayIP.String()
			}
			switch {
			case m.State == manager.StateFailed:
				n.State = "failed"
			case !m.ProbeOK && n.State == "idle":
				n.State = "joining"
			}
		} else if members != nil && n.State == "idle" {
			n.State = "joining"
		}
		out.Nodes = append(out.Nodes, n)
		if len(ov.Hubs) > 0 && n.Site+"."+n.Name == ov.Hubs[0] && n.PublicAddress != "" {
			out.HubEndpoint = fmt.Sprintf("%s:%d", n.PublicAddress, ov.Port)
		}
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
			out.Outputs[name] = v
		}
	}
	if c.Store.Backend == nil {
		out.StatePath, _ = filepath.Abs(c.Store.Path)
	}
	return out, nil
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
