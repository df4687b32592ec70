package pulumiprov

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil/rpcerror"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

const urn = "urn:pulumi:dev::proj::hvctl:index:Cluster::lab"

// fakeClusters records the operations and answers from its fields.
type fakeClusters struct {
	calls   []string
	specs   []Spec
	changes []Change
	cluster *Cluster
	err     error
}

func (f *fakeClusters) Plan(_ context.Context, s Spec, destroy bool) ([]Change, error) {
	f.calls, f.specs = append(f.calls, "plan"), append(f.specs, s)
	return f.changes, f.err
}

func (f *fakeClusters) Apply(_ context.Context, s Spec, progress func(string)) (*Cluster, error) {
	f.calls, f.specs = append(f.calls, "apply"), append(f.specs, s)
	progress("Apply complete!")
	return f.cluster, f.err
}

func (f *fakeClusters) Refresh(_ context.Context, s Spec) (*Cluster, error) {
	f.calls, f.specs = append(f.calls, "refresh"), append(f.specs, s)
	return f.cluster, nil
}

func (f *fakeClusters) Destroy(_ context.Context, s Spec, _ func(string)) error {
	f.calls, f.specs = append(f.calls, "destroy"), append(f.specs, s)
	return f.err
}

func pstruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	st, err := plugin.MarshalProperties(resource.NewPropertyMapFromMap(m), marshalOpts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func pmap(t *testing.T, st *structpb.Struct) resource.PropertyMap {
	t.Helper()
	m, err := plugin.UnmarshalProperties(st, marshalOpts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newProvider(t *testing.T, f *fakeClusters) *Provider {
	t.Helper()
	p := New(f, nil, "0.1.0", nil)
	dir, _ := filepath.Abs("testdata")
	p.SetProgramDir(dir)
	return p
}

// TestCheck: Check is hvctl validate; each error diagnostic is a check
// failure at "template" naming file and line, and bad input types are
// failures at their property.
func TestCheck(t *testing.T) {
	cases := []struct {
		name   string
		inputs map[string]any
		want   []string // substrings of the failures, in order
	}{
		{"valid file", map[string]any{"template": "good.hcl", "vars": map[string]any{"workers": 3}}, nil},
		{"valid inline", map[string]any{"template": "provider \"sim\" \"x\" {}\ncluster \"c\" {\n  overlay {\n cidr = \"10.1.0.0/16\"\n topology = \"mesh\"\n }\n  site \"a\" {\n    provider = provider.sim.x\n    network { cidr = \"192.168.1.0/24\" }\n    node \"n\" {\n instance { cpus = 1 }\n }\n  }\n}\n"}, nil},
		{"diagnostics located", map[string]any{"template": "bad.hcl"}, []string{"bad.hcl:4,", "No hub", "bad.hcl:12,", "Unsupported argument"}},
		{"inline located", map[string]any{"template": "cluster \"c\" {\n  nope = 1\n}\n"}, []string{filepath.Join(".hvctl-pulumi", "dev", "lab", "main.hcl") + ":2,"}},
		{"bad variable", map[string]any{"template": "good.hcl", "vars": map[string]any{"workers": "many"}}, []string{"vars: ", "workers"}},
		{"missing file", map[string]any{"template": "nope.hcl"}, []string{"no template at"}},
		{"no template", map[string]any{}, []string{"template is required"}},
		{"password in conn_str", map[string]any{"template": "good.hcl", "state": map[string]any{"conn_str": "postgres://hv:hunter2@db/hv"}}, []string{"state.conn_str: state.conn_str holds a password"}},
		{"keyword password", map[string]any{"template": "good.hcl", "state": map[string]any{"conn_str": "host=db password=hunter2"}}, []string{"holds a password"}},
		{"conn_str without password", map[string]any{"template": "good.hcl", "state": map[string]any{"conn_str": "postgres://hv@db/hv", "schema": "x"}}, nil},
		{"wrong types", map[string]any{"template": 3, "vars": "x", "workspace": "a b"}, []string{"template must be a string", "vars must be a map", "workspace \"a b\""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newProvider(t, &fakeClusters{})
			resp, err := p.Check(context.Background(), &pulumirpc.CheckRequest{Urn: urn, News: pstruct(t, c.inputs)})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range resp.Failures {
				got = append(got, f.Property+": "+f.Reason)
			}
			all := strings.Join(got, "\n")
			if len(c.want) == 0 && len(got) > 0 {
				t.Fatalf("unexpected failures:\n%s", all)
			}
			if len(c.want) > 0 && len(got) == 0 {
				t.Fatalf("no failures; want %q", c.want)
			}
			rest := all
			for _, w := range c.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("failures lack %q (in order):\n%s", w, all)
				}
				rest = rest[i+len(w):]
			}
			in := pmap(t, resp.Inputs)
			if wd := in["workDir"]; !wd.IsString() || !strings.HasSuffix(wd.StringValue(), filepath.Join(".hvctl-pulumi", "dev", "lab")) {
				t.Errorf("workDir = %v, want the default under the program directory", wd)
			}
		})
	}
}

// TestCheckKeepsWorkDir: a resource keeps the work directory of its
// first Check, so moving the program does not move its state.
func TestCheckKeepsWorkDir(t *testing.T) {
	p := newProvider(t, &fakeClusters{})
	resp, err := p.Check(context.Background(), &pulumirpc.CheckRequest{Urn: urn,
		Olds: pstruct(t, map[string]any{"template": "good.hcl", "workDir": "/srv/old"}),
		News: pstruct(t, map[string]any{"template": "good.hcl"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := pmap(t, resp.Inputs)["workDir"]; got.StringValue() != "/srv/old" {
		t.Errorf("workDir = %v, want /srv/old", got)
	}
}

// TestDiff: inputs and hvctl's plan decide the diff.
func TestDiff(t *testing.T) {
	base := map[string]any{"template": "good.hcl", "vars": map[string]any{"workers": "1"}, "workDir": "/w"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name     string
		news     map[string]any
		changes  []Change
		want     pulumirpc.DiffResponse_DiffChanges
		replaces []string
		keys     []string
		planned  bool
	}{
		{"nothing", base, nil, pulumirpc.DiffResponse_DIFF_NONE, nil, nil, true},
		{"plan has changes", base, []Change{{"site.a.pool.wn.node[1]", "create"}, {"site.a.node.hub", "update"}},
			pulumirpc.DiffResponse_DIFF_SOME, nil, []string{`plan["site.a.node.hub"]`, `plan["site.a.pool.wn.node[1]"]`}, true},
		{"vars changed", with("vars", map[string]any{"workers": "2"}), []Change{{"site.a.pool.wn.node[1]", "create"}},
			pulumirpc.DiffResponse_DIFF_SOME, nil, []string{`plan["site.a.pool.wn.node[1]"]`, "vars"}, true},
		{"vars changed, plan empty", with("vars", map[string]any{"workers": "1", "unused": "x"}), nil,
			pulumirpc.DiffResponse_DIFF_SOME, nil, []string{"vars"}, true},
		{"workspace replaces", with("workspace", "prod"), nil, pulumirpc.DiffResponse_DIFF_SOME, []string{"workspace"}, []string{"workspace"}, false},
		{"workDir replaces", with("workDir", "/elsewhere"), nil, pulumirpc.DiffResponse_DIFF_SOME, []string{"workDir"}, []string{"workDir"}, false},
		{"unknown vars", with("vars", resource.MakeComputed(resource.NewStringProperty(""))), nil, pulumirpc.DiffResponse_DIFF_SOME, nil, []string{"vars"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeClusters{changes: c.changes}
			p := newProvider(t, f)
			news := pstruct(t, c.news)
			if v, ok := c.news["vars"].(resource.PropertyValue); ok {
				m := resource.NewPropertyMapFromMap(base)
				m["vars"] = v
				news, _ = plugin.MarshalProperties(m, marshalOpts)
			}
			resp, err := p.Diff(context.Background(), &pulumirpc.DiffRequest{Urn: urn, Id: "good", Olds: pstruct(t, base), News: news})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Changes != c.want {
				t.Errorf("changes = %v, want %v", resp.Changes, c.want)
			}
			if strings.Join(resp.Replaces, ",") != strings.Join(c.replaces, ",") {
				t.Errorf("replaces = %v, want %v", resp.Replaces, c.replaces)
			}
			var keys []string
			for k := range resp.DetailedDiff {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if strings.Join(keys, " ") != strings.Join(c.keys, " ") {
				t.Errorf("detailed diff keys = %v, want %v", keys, c.keys)
			}
			if planned := len(f.calls) > 0; planned != c.planned {
				t.Errorf("planned = %v, want %v", planned, c.planned)
			}
			if d := resp.DetailedDiff[`plan["site.a.pool.wn.node[1]"]`]; d != nil && d.Kind != pulumirpc.PropertyDiff_ADD {
				t.Errorf("a created node's diff kind = %v, want ADD", d.Kind)
			}
		})
	}
}

// TestCreateUpdateDeleteRead: the operations reach Clusters with the
// resolved spec; outputs carry the inputs and the public cluster, and
// previews make no call.
func TestCreateUpdateDeleteRead(t *testing.T) {
	cl := &Cluster{Name: "good", HubEndpoint: "198.18.0.3:51820", OverlayCIDR: "10.200.0.0/16",
		Nodes:   []Node{{Address: "site.a.node.hub", Site: "a", Name: "hub", State: "idle", OverlayIP: "10.200.0.1"}},
		Outputs: map[string]any{"hub": "198.18.0.3"}, Resources: map[string]string{"site.a.node.hub": "ready"}, StatePath: "/w/.hvctl/state.json"}
	f := &fakeClusters{cluster: cl}
	p := newProvider(t, f)
	ctx := context.Background()
	in := map[string]any{"template": "good.hcl", "vars": map[string]any{"workers": "2"}, "workDir": "/w"}

	prev, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: pstruct(t, in), Preview: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 0 || !pmap(t, prev.Properties)["hubEndpoint"].IsComputed() {
		t.Fatalf("preview called %v; hubEndpoint = %v", f.calls, pmap(t, prev.Properties)["hubEndpoint"])
	}

	cr, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: pstruct(t, in)})
	if err != nil {
		t.Fatal(err)
	}
	if cr.Id != "good" {
		t.Errorf("id = %q", cr.Id)
	}
	out := pmap(t, cr.Properties).Mappable()
	b, _ := json.Marshal(out)
	for _, w := range []string{`"hubEndpoint":"198.18.0.3:51820"`, `"overlayIp":"10.200.0.1"`, `"template":"good.hcl"`, `"outputs":{"hub":"198.18.0.3"}`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("outputs lack %s: %s", w, b)
		}
	}
	s := f.specs[0]
	wantTmpl, _ := filepath.Abs(filepath.Join("testdata", "good.hcl"))
	if s.Template != wantTmpl || s.Dir != "/w" || s.StatePath != "/w/.hvctl/state.json" || s.Workspace != "default" || len(s.Vars) != 1 || s.Vars[0] != [2]string{"workers", "2"} {
		t.Errorf("spec = %+v", s)
	}

	if _, err := p.Update(ctx, &pulumirpc.UpdateRequest{Urn: urn, Id: "good", Olds: cr.Properties, News: pstruct(t, in)}); err != nil {
		t.Fatal(err)
	}
	rr, err := p.Read(ctx, &pulumirpc.ReadRequest{Urn: urn, Id: "good", Properties: cr.Properties})
	if err != nil || rr.Id != "good" {
		t.Fatalf("read: %v, id %q", err, rr.GetId())
	}
	if _, err := p.Delete(ctx, &pulumirpc.DeleteRequest{Urn: urn, Id: "good", Properties: cr.Properties}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, ","); got != "apply,apply,refresh,destroy" {
		t.Errorf("calls = %s", got)
	}
	f.cluster = nil
	rr, err = p.Read(ctx, &pulumirpc.ReadRequest{Urn: urn, Id: "good", Properties: cr.Properties})
	if err != nil || rr.Id != "" {
		t.Errorf("read of a destroyed cluster: %v, id %q (want gone)", err, rr.GetId())
	}
}

// TestCreateInlineWritesTemplate: an inline template is written to the
// work directory before apply, and that is the spec's template.
func TestCreateInlineWritesTemplate(t *testing.T) {
	dir := t.TempDir()
	src := "cluster \"c\" {}\n"
	f := &fakeClusters{cluster: &Cluster{Name: "c"}}
	p := newProvider(t, f)
	if _, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn, Properties: pstruct(t, map[string]any{"template": src, "workDir": dir})}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "main.hcl"))
	if err != nil || string(b) != src || f.specs[0].Template != filepath.Join(dir, "main.hcl") {
		t.Errorf("main.hcl = %q, %v; spec template %s", b, err, f.specs[0].Template)
	}
}

// TestCreateFailurePartial: a failed apply that left resources is a
// partial failure carrying them, so Pulumi keeps the resource.
func TestCreateFailurePartial(t *testing.T) {
	f := &fakeClusters{cluster: &Cluster{Name: "good", Resources: map[string]string{"site.a.node.hub": "ready"}}, err: errors.New("site.a.pool.wn.node[0]: capacity")}
	p := newProvider(t, f)
	_, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn, Properties: pstruct(t, map[string]any{"template": "good.hcl", "workDir": "/w"})})
	if err == nil || !strings.Contains(err.Error(), "capacity") {
		t.Fatalf("err = %v", err)
	}
	st, ok := statusDetails(err)
	if !ok || st.Id != "good" || st.Properties == nil {
		t.Errorf("no init-failed details with the cluster: %+v", st)
	}
}

// TestSchemaGolden: GetSchema's document (testdata/schema.json).
func TestSchemaGolden(t *testing.T) {
	p := newProvider(t, &fakeClusters{})
	resp, err := p.GetSchema(context.Background(), &pulumirpc.GetSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(resp.Schema), &doc); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "schema.json")
	if *update {
		os.WriteFile(golden, []byte(resp.Schema+"\n"), 0o644)
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run TestSchemaGolden -update)", err)
	}
	if resp.Schema+"\n" != string(want) {
		t.Errorf("schema differs from %s (-update rewrites it)", golden)
	}
	if _, err := p.Check(context.Background(), &pulumirpc.CheckRequest{Urn: urn, Type: "hvctl:index:Other", News: pstruct(t, map[string]any{})}); err == nil {
		t.Error("Check of another type succeeded")
	}
}

// statusDetails finds the init-failed details of an error.
func statusDetails(err error) (*pulumirpc.ErrorResourceInitFailed, bool) {
	e, ok := rpcerror.FromError(err)
	if !ok {
		return nil, false
	}
	for _, d := range e.Details() {
		if f, ok := d.(*pulumirpc.ErrorResourceInitFailed); ok {
			return f, true
		}
	}
	return nil, false
}
