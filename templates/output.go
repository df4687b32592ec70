package templates

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

var outputSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "value", Required: true}, {Name: "description"}, {Name: "sensitive"},
}}

func (l *loader) decodeOutputs(blocks []*hcl.Block) {
	seen := map[string]*Output{}
	for _, b := range blocks {
		name := b.Labels[0]
		if !l.checkIdent("output", name, b.LabelRanges[0]) {
			continue
		}
		if prev, ok := seen[name]; ok {
			l.diags = append(l.diags, errorf(b.DefRange, "Duplicate output",
				"An output named %q was already defined at %s. Output names must be unique.", name, prev.DeclRange))
			continue
		}
		o := &Output{Name: name, DeclRange: b.DefRange}
		seen[name] = o
		content, diags := b.Body.Content(outputSchema)
		l.diags = append(l.diags, diags...)
		if a := content.Attributes["description"]; a != nil {
			if v, ok := l.evalStatic(a); ok && !v.IsNull() {
				l.toString(a, v, &o.Description)
			}
		}
		if a := content.Attributes["sensitive"]; a != nil {
			if v, ok := l.evalStatic(a); ok && !v.IsNull() {
				l.toBool(a, v, &o.Sensitive)
			}
		}
		if a := content.Attributes["value"]; a != nil {
			o.Expr = a.Expr
			l.diags = append(l.diags, l.checkRefs(a.Expr, scopeOutput)...)
		}
		l.cfg.Outputs = append(l.cfg.Outputs, o)
	}
}

// EvalOutput evaluates an output's expression. known holds values that
// are only available after apply, keyed by their dotted reference, such
// as "cluster.hybrid.overlay.endpoint"; a value may also stand for a whole
// object ("cluster.hybrid.overlay"). References to cluster values not in
// known evaluate to unknown (cty.DynamicVal), so the result may be
// unknown or partly unknown.
func EvalOutput(cfg *Config, o *Output, known map[string]cty.Value) (cty.Value, hcl.Diagnostics) {
	if o == nil || o.Expr == nil {
		return cty.NilVal, nil
	}
	vars := map[string]cty.Value{}
	for _, v := range cfg.Variables {
		vars[v.Name] = v.Value
	}
	locals := cfg.Locals
	if locals == nil {
		locals = map[string]cty.Value{}
	}
	l := &loader{providers: map[string]map[string]*Provider{}}
	for _, p := range cfg.Providers {
		if l.providers[p.Type] == nil {
			l.providers[p.Type] = map[string]*Provider{}
		}
		l.providers[p.Type][p.Name] = p
	}
	// Build the cluster.* tree from known values and the references the
	// expression makes, leaving what is not known unknown.
	root := &tree{}
	for k, v := range known {
		parts := strings.Split(k, ".")
		if len(parts) > 0 && parts[0] == "cluster" {
			root.set(parts[1:], v)
		}
	}
	for _, t := range o.Expr.Variables() {
		if t.RootName() != "cluster" {
			continue
		}
		var path []string
		for _, step := range t[1:] {
			a, ok := step.(hcl.TraverseAttr)
			if !ok {
				break
			}
			path = append(path, a.Name)
		}
		root.reach(path)
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":      cty.ObjectVal(vars),
			"local":    cty.ObjectVal(locals),
			"provider": l.providerObject(),
			"cluster":  root.value(),
		},
		Functions: Functions(cfg.Dir),
	}
	v, diags := o.Expr.Value(ctx)
	if diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	if o.Sensitive {
		v = v.Mark(SensitiveMark)
	}
	return v, diags
}

// SensitiveMark marks values of sensitive outputs returned by EvalOutput.
const SensitiveMark = sensitiveMark("sensitive")

type sensitiveMark string

// tree is a nested object under construction.
type tree struct {
	leaf     cty.Value // set for a known value
	children map[string]*tree
}

func (t *tree) set(path []string, v cty.Value) {
	if len(path) == 0 {
		t.leaf = v
		return
	}
	if t.children == nil {
		t.children = map[string]*tree{}
	}
	c := t.children[path[0]]
	if c == nil {
		c = &tree{}
		t.children[path[0]] = c
	}
	c.set(path[1:], v)
}

// reach makes sure path exists, as unknown where nothing is known.
func (t *tree) reach(path []string) {
	if len(path) == 0 || t.leaf != cty.NilVal {
		return
	}
	if t.children == nil {
		t.children = map[string]*tree{}
	}
	c := t.children[path[0]]
	if c == nil {
		c = &tree{}
		t.children[path[0]] = c
	}
	c.reach(path[1:])
}

func (t *tree) value() cty.Value {
	if t.leaf != cty.NilVal {
		return t.leaf
	}
	if len(t.children) == 0 {
		return cty.DynamicVal
	}
	m := make(map[string]cty.Value, len(t.children))
	for k, c := range t.children {
		m[k] = c.value()
	}
	return cty.ObjectVal(m)
}

// OutputString renders an evaluated output for people in HCL syntax,
// as Terraform does ("outs" quoted, [1, 2], { a = 1 }), unknown as
// "(known after apply)" and sensitive as "(sensitive value)".
func OutputString(v cty.Value) string {
	switch {
	case v.HasMark(SensitiveMark):
		return "(sensitive value)"
	case !v.IsWhollyKnown():
		return "(known after apply)"
	}
	v, _ = v.UnmarkDeep()
	return string(hclwrite.TokensForValue(v).Bytes())
}

func ctyJSON(v cty.Value) ([]byte, error) {
	return ctyjson.Marshal(v, v.Type())
}
