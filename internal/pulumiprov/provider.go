package pulumiprov

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil/rpcerror"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hvctl/hvctl/templates"
)

// ClusterType is the one resource type.
const ClusterType = "hvctl:index:Cluster"

// Provider is the resource provider server.
type Provider struct {
	pulumirpc.UnimplementedResourceProviderServer

	clusters Clusters
	host     *provider.HostClient
	version  string
	environ  []string

	// ctx is cancelled by the engine's Cancel: operations in flight
	// stop starting new work (hvctl's interrupt).
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	programDir string
}

// New returns a provider acting through clusters. host may be nil (no
// progress messages); environ is os.Environ()-style (HVCTL_VAR_*).
func New(clusters Clusters, host *provider.HostClient, version string, environ []string) *Provider {
	ctx, cancel := context.WithCancel(context.Background())
	return &Provider{clusters: clusters, host: host, version: version, environ: environ, ctx: ctx, cancel: cancel}
}

// base is the Pulumi program's directory, against which relative
// template paths and work directories resolve: the directory the engine
// started the plugin in (its project's directory; for an Automation API
// inline program, the working directory of the process running it).
func (p *Provider) base() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.programDir != "" {
		return p.programDir
	}
	wd, _ := os.Getwd()
	return wd
}

// SetProgramDir sets the directory base returns (tests; default: the
// working directory).
func (p *Provider) SetProgramDir(dir string) {
	p.mu.Lock()
	p.programDir = dir
	p.mu.Unlock()
}

// opCtx is ctx, also cancelled by the engine's Cancel.
func (p *Provider) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

var marshalOpts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, SkipNulls: true}

// Handshake: the engine's root and program directories are the
// plugin's own (where its binary is), not the Pulumi program's, so they
// are not used; the engine starts the plugin in the program's directory.
func (p *Provider) Handshake(context.Context, *pulumirpc.ProviderHandshakeRequest) (*pulumirpc.ProviderHandshakeResponse, error) {
	return &pulumirpc.ProviderHandshakeResponse{AcceptSecrets: true}, nil
}

// GetPluginInfo reports the provider's version.
func (p *Provider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: p.version}, nil
}

// GetSchema returns the package schema (schema.go).
func (p *Provider) GetSchema(_ context.Context, req *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	if req.SubpackageName != "" {
		return nil, rpcerror.Newf(codes.NotFound, "hvctl has no subpackage %q", req.SubpackageName)
	}
	s, err := Schema(p.version)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetSchemaResponse{Schema: s}, nil
}

// CheckConfig accepts the provider's configuration: it has none.
func (p *Provider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.News}, nil
}

// DiffConfig: the provider has no configuration to change.
func (p *Provider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

// Configure: secrets are accepted (a variable may be one, and stays
// one), and Create and Update are called in previews.
func (p *Provider) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true}, nil
}

// Cancel stops operations in flight from starting new work.
func (p *Provider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	p.cancel()
	return &emptypb.Empty{}, nil
}

func checkType(t string, urn string) error {
	if t == "" {
		t = string(resource.URN(urn).Type())
	}
	if t != ClusterType {
		return rpcerror.Newf(codes.InvalidArgument, "hvctl has no resource type %q; its one resource is %s", t, ClusterType)
	}
	return nil
}

// Check is hvctl validate: the inputs' types, then the template loaded
// with its variables. Every error diagnostic becomes a check failure
// naming the file and line; the work directory is fixed here (kept
// from the old inputs, else derived from the stack and name).
func (p *Provider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.Type, req.Urn); err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.News, marshalOpts)
	if err != nil {
		return nil, err
	}
	olds, err := plugin.UnmarshalProperties(req.Olds, marshalOpts)
	if err != nil {
		return nil, err
	}
	if v, ok := news[pWorkDir]; !ok || v.IsNull() {
		if ov, ok := olds[pWorkDir]; ok && ov.IsString() && ov.StringValue() != "" {
			news[pWorkDir] = ov
		} else {
			news[pWorkDir] = resource.NewStringProperty(defaultWorkDir(p.base(), resource.URN(req.Urn)))
		}
	}
	in, unknown, fails := decodeInputs(news)
	var out []*pulumirpc.CheckFailure
	for _, f := range fails {
		out = append(out, &pulumirpc.CheckFailure{Property: f.property, Reason: f.reason})
	}
	if len(fails) == 0 && !contains(unknown, pTemplate) && !contains(unknown, pVars) && !contains(unknown, pWorkDir) {
		for _, f := range p.validate(in) {
			out = append(out, &pulumirpc.CheckFailure{Property: f.property, Reason: f.reason})
		}
	}
	inputs, err := plugin.MarshalProperties(news, marshalOpts)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: inputs, Failures: out}, nil
}

// validate loads the template as hvctl validate does, without writing
// anything, and returns its error diagnostics.
func (p *Provider) validate(in Inputs) []failure {
	base := p.base()
	s, err := in.spec(base, false)
	if err != nil {
		return []failure{{pTemplate, err.Error()}}
	}
	opts := templates.LoadOptions{Environ: p.environ}
	for _, v := range s.Vars {
		opts.Args = append(opts.Args, templates.VarArg{Name: v[0], Value: v[1]})
	}
	var d hcl.Diagnostics
	if inline(in.Template) {
		_, d = templates.LoadSource(map[string][]byte{s.Template: []byte(in.Template)}, s.Dir, opts)
	} else if _, err := os.Stat(s.Template); err != nil {
		return []failure{{pTemplate, fmt.Sprintf("no template at %s: hvctl reads a .hcl file, a directory of them, or inline HCL (%v)", s.Template, errors.Unwrap(err))}}
	} else {
		_, d = templates.Load(s.Template, opts)
	}
	var out []failure
	for _, x := range d {
		if x.Severity != hcl.DiagError {
			continue
		}
		prop := pTemplate
		if strings.Contains(strings.ToLower(x.Summary), "variable") && len(s.Vars) > 0 {
			prop = pVars // a value given in vars, or one it lacks
		}
		out = append(out, failure{prop, diagText(base, x)})
	}
	return out
}

// diagText is one diagnostic as "FILE:LINE,COL-COL: SUMMARY; DETAIL",
// the file relative to base when it lies under it.
func diagText(base string, d *hcl.Diagnostic) string {
	var b strings.Builder
	if r := d.Subject; r != nil {
		rr := *r
		if rel, err := filepath.Rel(base, rr.Filename); err == nil && !strings.HasPrefix(rel, "..") {
			rr.Filename = rel
		}
		b.WriteString(rr.String())
		b.WriteString(": ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString("; ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// replaceKeys are inputs whose change means another cluster state:
// Pulumi replaces the resource (destroying the old cluster first).
var replaceKeys = map[string]bool{pWorkspace: true, pState: true, pWorkDir: true}

// Diff is hvctl plan: changed inputs, and the plan's changes by
// resource address under "plan" (plan["site.a.pool.wn.node[2]"]: a key
// that is neither an input nor an output, so Pulumi shows each change as
// it is) when the state stays the same.
func (p *Provider) Diff(ctx context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	if err := checkType(req.Type, req.Urn); err != nil {
		return nil, err
	}
	olds, err := plugin.UnmarshalProperties(req.Olds, marshalOpts)
	if err != nil {
		return nil, err
	}
	if req.OldInputs != nil {
		if oi, err := plugin.UnmarshalProperties(req.OldInputs, marshalOpts); err == nil {
			olds = oi
		}
	}
	news, err := plugin.UnmarshalProperties(req.News, marshalOpts)
	if err != nil {
		return nil, err
	}
	ignore := map[string]bool{}
	for _, k := range req.IgnoreChanges {
		ignore[k] = true
	}
	detailed := map[string]*pulumirpc.PropertyDiff{}
	var replaces, diffs []string
	for _, k := range inputNames {
		if ignore[k] {
			continue
		}
		o, hasOld := olds[resource.PropertyKey(k)]
		n, hasNew := news[resource.PropertyKey(k)]
		hasOld = hasOld && !o.IsNull()
		hasNew = hasNew && !n.IsNull()
		kind := pulumirpc.PropertyDiff_UPDATE
		switch {
		case !hasOld && !hasNew:
			continue
		case !hasOld:
			kind = pulumirpc.PropertyDiff_ADD
		case !hasNew:
			kind = pulumirpc.PropertyDiff_DELETE
		case !n.ContainsUnknowns() && unsecretDeep(o).DeepEquals(unsecretDeep(n)):
			continue
		}
		if replaceKeys[k] {
			kind += pulumirpc.PropertyDiff_ADD_REPLACE - pulumirpc.PropertyDiff_ADD
			replaces = append(replaces, k)
		}
		detailed[k] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
		diffs = append(diffs, k)
	}
	if len(replaces) > 0 {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_SOME, Replaces: replaces, Diffs: diffs,
			DetailedDiff: detailed, HasDetailedDiff: true, DeleteBeforeReplace: true}, nil
	}
	in, unknown, fails := decodeInputs(news)
	if len(unknown) == 0 && len(fails) == 0 {
		s, err := in.spec(p.base(), true)
		if err != nil {
			return nil, err
		}
		ctx, cancel := p.opCtx(ctx)
		defer cancel()
		changes, err := p.clusters.Plan(ctx, s, false)
		if err != nil {
			return nil, err
		}
		if len(changes) > 0 {
			diffs = append(diffs, pPlan)
		}
		for _, c := range changes {
			kind := pulumirpc.PropertyDiff_UPDATE
			switch c.Action {
			case "create":
				kind = pulumirpc.PropertyDiff_ADD
			case "delete":
				kind = pulumirpc.PropertyDiff_DELETE
			}
			detailed[fmt.Sprintf("%s[%q]", pPlan, c.Address)] = &pulumirpc.PropertyDiff{Kind: kind}
		}
	}
	if len(detailed) == 0 {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
	}
	sort.Strings(diffs)
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_SOME, Diffs: diffs, DetailedDiff: detailed, HasDetailedDiff: true}, nil
}

// unsecretDeep drops secret markers, so a value compares by content.
func unsecretDeep(v resource.PropertyValue) resource.PropertyValue {
	v = unsecret(v)
	switch {
	case v.IsObject():
		m := resource.PropertyMap{}
		for k, e := range v.ObjectValue() {
			m[k] = unsecretDeep(e)
		}
		return resource.NewObjectProperty(m)
	case v.IsArray():
		a := make([]resource.PropertyValue, len(v.ArrayValue()))
		for i, e := range v.ArrayValue() {
			a[i] = unsecretDeep(e)
		}
		return resource.NewArrayProperty(a)
	}
	return v
}

// inputsOnly keeps the input properties of m.
func inputsOnly(m resource.PropertyMap) resource.PropertyMap {
	out := resource.PropertyMap{}
	for _, k := range inputNames {
		if v, ok := m[resource.PropertyKey(k)]; ok {
			out[resource.PropertyKey(k)] = v
		}
	}
	return out
}

// outputs are the inputs and the cluster's properties; in a preview
// (c nil) the cluster's properties are not known yet.
func outputs(in resource.PropertyMap, c *Cluster) resource.PropertyMap {
	out := inputsOnly(in)
	if c == nil {
		for _, k := range outputNames {
			out[resource.PropertyKey(k)] = resource.MakeComputed(resource.NewStringProperty(""))
		}
		return out
	}
	for k, v := range c.properties() {
		out[k] = v
	}
	return out
}

// id is the resource's ID: the cluster's name, and the workspace when
// it is not the default one.
func id(c *Cluster, s Spec) string {
	if s.Workspace != "" && s.Workspace != "default" {
		return c.Name + "/" + s.Workspace
	}
	return c.Name
}

// progress sends hvctl's output lines to the engine as status messages
// of the resource.
func (p *Provider) progress(ctx context.Context, urn string) func(string) {
	return func(line string) {
		if p.host == nil || strings.TrimSpace(line) == "" {
			return
		}
		p.host.LogStatus(ctx, diag.Info, resource.URN(urn), line)
	}
}

// specOf decodes and resolves a resource's inputs.
func (p *Provider) specOf(m resource.PropertyMap, write bool) (Spec, error) {
	in, unknown, fails := decodeInputs(m)
	if len(fails) > 0 {
		return Spec{}, rpcerror.New(codes.InvalidArgument, fails[0].reason)
	}
	if len(unknown) > 0 {
		return Spec{}, rpcerror.Newf(codes.InvalidArgument, "inputs not known: %s", strings.Join(unknown, ", "))
	}
	return in.spec(p.base(), write)
}

// apply is Create and Update outside previews: hvctl up. A failure
// after some resources were made is reported as a partial failure with
// what exists, so Pulumi keeps the resource (and destroy removes it).
func (p *Provider) apply(ctx context.Context, urn string, in resource.PropertyMap, s Spec, current string) (string, *structpb.Struct, error) {
	ctx, cancel := p.opCtx(ctx)
	defer cancel()
	c, err := p.clusters.Apply(ctx, s, p.progress(ctx, urn))
	if err == nil {
		st, merr := plugin.MarshalProperties(outputs(in, c), marshalOpts)
		return id(c, s), st, merr
	}
	partial, rerr := p.clusters.Refresh(context.WithoutCancel(ctx), s)
	if rerr != nil || partial == nil {
		return "", nil, err
	}
	ident := current
	if ident == "" {
		ident = id(partial, s)
	}
	st, merr := plugin.MarshalProperties(outputs(in, partial), marshalOpts)
	ins, ierr := plugin.MarshalProperties(inputsOnly(in), marshalOpts)
	if merr != nil || ierr != nil {
		return "", nil, err
	}
	return "", nil, rpcerror.WithDetails(rpcerror.New(codes.Unknown, err.Error()),
		&pulumirpc.ErrorResourceInitFailed{Id: ident, Properties: st, Inputs: ins, Reasons: []string{err.Error()}})
}

// Create is hvctl up on a new cluster.
func (p *Provider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	ident, st, err := p.up(ctx, req.Type, req.Urn, req.Properties, req.Preview, "")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: ident, Properties: st}, nil
}

// Update is hvctl up with the new inputs.
func (p *Provider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	_, st, err := p.up(ctx, req.Type, req.Urn, req.News, req.Preview, req.Id)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: st}, nil
}

// up is Create and Update: in a preview, the outputs known from the
// inputs; else hvctl up of the cluster (ident "" for a new one).
func (p *Provider) up(ctx context.Context, typ, urn string, props *structpb.Struct, preview bool, ident string) (string, *structpb.Struct, error) {
	if err := checkType(typ, urn); err != nil {
		return "", nil, err
	}
	in, err := plugin.UnmarshalProperties(props, marshalOpts)
	if err != nil {
		return "", nil, err
	}
	if preview {
		st, err := plugin.MarshalProperties(outputs(in, nil), marshalOpts)
		return "", st, err
	}
	s, err := p.specOf(in, true)
	if err != nil {
		return "", nil, err
	}
	return p.apply(ctx, urn, in, s, ident)
}

// oldInputs are a resource's last inputs: the old inputs when the
// engine sends them, else the input properties of its outputs.
func oldInputs(outs, ins *structpb.Struct) (resource.PropertyMap, error) {
	if ins != nil && len(ins.Fields) > 0 {
		return plugin.UnmarshalProperties(ins, marshalOpts)
	}
	m, err := plugin.UnmarshalProperties(outs, marshalOpts)
	return inputsOnly(m), err
}

// Delete is hvctl down.
func (p *Provider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if err := checkType(req.Type, req.Urn); err != nil {
		return nil, err
	}
	in, err := oldInputs(req.Properties, req.OldInputs)
	if err != nil {
		return nil, err
	}
	s, err := p.specOf(in, true)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.opCtx(ctx)
	defer cancel()
	if err := p.clusters.Destroy(ctx, s, p.progress(ctx, req.Urn)); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Read is hvctl's refresh: what really exists. A cluster without
// resources is gone (empty ID).
func (p *Provider) Read(ctx context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if err := checkType(req.Type, req.Urn); err != nil {
		return nil, err
	}
	in, err := oldInputs(req.Properties, req.Inputs)
	if err != nil {
		return nil, err
	}
	s, err := p.specOf(in, true)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.opCtx(ctx)
	defer cancel()
	c, err := p.clusters.Refresh(ctx, s)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return &pulumirpc.ReadResponse{}, nil
	}
	st, err := plugin.MarshalProperties(outputs(in, c), marshalOpts)
	if err != nil {
		return nil, err
	}
	ins, err := plugin.MarshalProperties(inputsOnly(in), marshalOpts)
	if err != nil {
		return nil, err
	}
	ident := req.Id
	if ident == "" {
		ident = id(c, s)
	}
	return &pulumirpc.ReadResponse{Id: ident, Properties: st, Inputs: ins}, nil
}
