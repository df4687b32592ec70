package provision

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/hvctl/hvctl/templates"
)

// Schema declares a provider type's settings once: their names, types,
// what a good value is, and where each decoded value goes. Decode checks
// a provider block against it, so that unknown names ("did you mean"),
// unknown values, type errors and refused values are reported the same
// way by every provider, each diagnostic located at its argument.
type Schema struct {
	// Provider is the provider type, for messages ("aws").
	Provider string
	Settings []Setting
	// Hint, when set, may add advice to the "no argument" diagnostic of
	// an unknown name, instead of the nearest-name suggestion.
	Hint func(name string) string
}

// Setting declares one argument of a provider block.
type Setting struct {
	Name string
	// Into is where the decoded value goes: *string, *bool, *int,
	// *int64, *float64, *[]string, *map[string]string, or *time.Duration
	// (a duration string such as "2s"). Its type is the setting's type.
	Into any
	// Must says what a good value is ("must be a duration like \"2s\""):
	// the detail of a value of the wrong type, or one Valid refuses.
	Must string
	// Valid, when set, is given the decoded value (*Into's element type)
	// and reports whether it is good; when not, the diagnostic says Must.
	Valid func(v any) bool
	// Check, when set, is given the decoded value and returns "" or the
	// whole detail of a diagnostic (for messages that name a part of the
	// value, as "tags: the key ... is reserved").
	Check func(v any) string
	// Secret settings never have their value shown in a diagnostic.
	Secret bool
	// Refused, when set, makes the argument an error with this detail: a
	// name hvctl knows but does not support (yet).
	Refused string
}

// ctyType is the setting's HCL type, from its destination.
func (s *Setting) ctyType() cty.Type {
	switch s.Into.(type) {
	case *string, *time.Duration:
		return cty.String
	case *bool:
		return cty.Bool
	case *int, *int64, *float64:
		return cty.Number
	case *[]string:
		return cty.List(cty.String)
	case *map[string]string:
		return cty.Map(cty.String)
	}
	panic(fmt.Sprintf("provision: setting %s: unsupported destination %T", s.Name, s.Into))
}

// Names lists the schema's setting names, sorted.
func (sc *Schema) Names() []string {
	out := make([]string, 0, len(sc.Settings))
	for _, s := range sc.Settings {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// Decode checks cfg against the schema and stores each good value in
// its setting's Into; null arguments are left at their defaults. Every
// problem is an error diagnostic whose Subject is its argument's range
// (the block's, for problems of the block as a whole).
func (sc *Schema) Decode(cfg *templates.Provider) hcl.Diagnostics {
	body := &settingsBody{schema: sc, cfg: cfg}
	content, diags := body.Content(hcldec.ImpliedSchema(sc.objectSpec()))
	for i := range sc.Settings {
		s := &sc.Settings[i]
		attr, ok := content.Attributes[s.Name]
		if !ok {
			continue
		}
		diags = append(diags, sc.decodeOne(s, attr, cfg)...)
	}
	return diags
}

func (sc *Schema) objectSpec() hcldec.ObjectSpec {
	spec := hcldec.ObjectSpec{}
	for i := range sc.Settings {
		s := &sc.Settings[i]
		spec[s.Name] = &hcldec.AttrSpec{Name: s.Name, Type: s.ctyType()}
	}
	return spec
}

// decodeOne decodes one present, non-null argument into s.Into.
func (sc *Schema) decodeOne(s *Setting, attr *hcl.Attribute, cfg *templates.Provider) hcl.Diagnostics {
	raw := cfg.Attrs[s.Name]
	subject := Subject(cfg, s.Name)
	bad := func(detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + s.Name, Detail: detail, Subject: subject}}
	}
	if s.Refused != "" {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unsupported argument", Detail: s.Refused, Subject: subject}}
	}
	if !raw.IsWhollyKnown() {
		return bad(fmt.Sprintf("The value of %s must be known when the provider is configured.", s.Name))
	}
	must := func() hcl.Diagnostics {
		if s.Secret {
			return bad(fmt.Sprintf("%s %s.", s.Name, s.Must))
		}
		return bad(fmt.Sprintf("%s = %s: %s.", s.Name, ShowValue(raw), s.Must))
	}
	// hcldec converts the value to the setting's type; its own
	// diagnostic is replaced by one that says what a good value is.
	body := &settingsBody{schema: &Schema{Settings: []Setting{*s}}, cfg: &templates.Provider{
		Attrs: map[string]cty.Value{s.Name: raw}, AttrRanges: map[string]hcl.Range{s.Name: attr.Expr.Range()}, DeclRange: cfg.DeclRange}}
	v, d := hcldec.Decode(body, &hcldec.AttrSpec{Name: s.Name, Type: s.ctyType()}, nil)
	if d.HasErrors() || v.IsNull() {
		return must()
	}
	var got any
	switch dst := s.Into.(type) {
	case *time.Duration:
		x, err := time.ParseDuration(v.AsString())
		if err != nil {
			return must()
		}
		if x < 0 {
			return bad(fmt.Sprintf("%s = %s: must not be negative.", s.Name, ShowValue(raw)))
		}
		got = x
	case *int, *int64:
		f, _ := v.AsBigFloat().Float64()
		if f != math.Trunc(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<53 {
			return must()
		}
		if _, ok := dst.(*int); ok {
			got = int(f)
		} else {
			got = int64(f)
		}
	case *float64:
		f, _ := v.AsBigFloat().Float64()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return must()
		}
		got = f
	case *string:
		got = v.AsString()
	case *bool:
		got = v.True()
	case *[]string:
		var l []string
		if err := gocty.FromCtyValue(v, &l); err != nil {
			return must()
		}
		got = l
	case *map[string]string:
		m := map[string]string{}
		if err := gocty.FromCtyValue(v, &m); err != nil {
			return must()
		}
		got = m
	}
	if s.Valid != nil && !s.Valid(got) {
		return must()
	}
	if s.Check != nil {
		if detail := s.Check(got); detail != "" {
			return bad(detail)
		}
	}
	switch dst := s.Into.(type) {
	case *time.Duration:
		*dst = got.(time.Duration)
	case *int:
		*dst = got.(int)
	case *int64:
		*dst = got.(int64)
	case *float64:
		*dst = got.(float64)
	case *string:
		*dst = got.(string)
	case *bool:
		*dst = got.(bool)
	case *[]string:
		*dst = got.([]string)
	case *map[string]string:
		*dst = got.(map[string]string)
	}
	return nil
}

// settingsBody is an hcl.Body over a provider block's evaluated
// arguments (the template loader evaluates them with the template's
// variables and locals), so hcldec can decode them.
type settingsBody struct {
	schema *Schema
	cfg    *templates.Provider
}

func (b *settingsBody) Content(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, rest, diags := b.PartialContent(s)
	for _, name := range rest.(*settingsBody).names() {
		detail := fmt.Sprintf("The %s provider has no argument %q.", b.schema.Provider, name)
		if hint := b.hint(name); hint != "" {
			detail += " " + hint
		} else if near := Nearest(name, b.schema.Names()); near != "" {
			detail += fmt.Sprintf(" Did you mean %q?", near)
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported argument", Detail: detail, Subject: Subject(b.cfg, name)})
	}
	return c, diags
}

func (b *settingsBody) hint(name string) string {
	if b.schema.Hint == nil {
		return ""
	}
	return b.schema.Hint(name)
}

func (b *settingsBody) PartialContent(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	c := &hcl.BodyContent{Attributes: hcl.Attributes{}, MissingItemRange: b.cfg.DeclRange}
	want := map[string]bool{}
	for _, a := range s.Attributes {
		want[a.Name] = true
	}
	rest := &settingsBody{schema: b.schema, cfg: &templates.Provider{Attrs: map[string]cty.Value{}, AttrRanges: b.cfg.AttrRanges, DeclRange: b.cfg.DeclRange}}
	var diags hcl.Diagnostics
	for _, name := range b.names() {
		v := b.cfg.Attrs[name]
		if !want[name] {
			rest.cfg.Attrs[name] = v
			continue
		}
		r := *Subject(b.cfg, name)
		c.Attributes[name] = &hcl.Attribute{Name: name, Expr: hcl.StaticExpr(v, r), Range: r, NameRange: r}
	}
	for _, a := range s.Attributes {
		if _, ok := c.Attributes[a.Name]; a.Required && !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing required argument",
				Detail: fmt.Sprintf("The argument %q is required.", a.Name), Subject: &c.MissingItemRange})
		}
	}
	return c, rest, diags
}

func (b *settingsBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	c, _, diags := b.PartialContent(&hcl.BodySchema{})
	return c.Attributes, diags
}

func (b *settingsBody) MissingItemRange() hcl.Range { return b.cfg.DeclRange }

// names are the block's non-null arguments, sorted.
func (b *settingsBody) names() []string {
	var out []string
	for name, v := range b.cfg.Attrs {
		if !v.IsNull() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Subject is the source range of a provider block's argument, or of the
// block when the argument is not in it.
func Subject(cfg *templates.Provider, name string) *hcl.Range {
	if r, ok := cfg.AttrRanges[name]; ok {
		return &r
	}
	r := cfg.DeclRange
	return &r
}

// SettingError is an error diagnostic about a provider block's argument.
func SettingError(cfg *templates.Provider, name, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: Subject(cfg, name)}
}

// Given reports whether cfg sets argument name (to a non-null value).
func Given(cfg *templates.Provider, name string) bool {
	v, ok := cfg.Attrs[name]
	return ok && !v.IsNull()
}

// NonEmpty is a Setting.Valid for strings and lists: not empty.
func NonEmpty(v any) bool {
	switch x := v.(type) {
	case string:
		return x != ""
	case []string:
		return len(x) > 0
	}
	return true
}

// Between is a Setting.Valid for numbers: lo ≤ v ≤ hi.
func Between(lo, hi float64) func(v any) bool {
	return func(v any) bool {
		var f float64
		switch x := v.(type) {
		case int:
			f = float64(x)
		case int64:
			f = float64(x)
		case float64:
			f = x
		default:
			return false
		}
		return f >= lo && f <= hi
	}
}

// Nearest returns the candidate closest to name (for "did you mean"
// hints in providers' settings diagnostics), or "" when none is close.
func Nearest(name string, candidates []string) string {
	best, bestD := "", len(name)/2+2
	for _, c := range candidates {
		if d := levenshtein.Distance(strings.ToLower(name), c, nil); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// ShowValue renders a setting's value for a diagnostic detail.
func ShowValue(v cty.Value) string {
	switch {
	case !v.IsKnown() || v.IsNull():
		return "null"
	case v.Type() == cty.String:
		return fmt.Sprintf("%q", v.AsString())
	case v.Type() == cty.Number:
		return v.AsBigFloat().Text('g', -1)
	case v.Type() == cty.Bool:
		return fmt.Sprint(v.True())
	}
	return "a " + v.Type().FriendlyName()
}
