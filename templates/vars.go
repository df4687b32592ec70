package templates

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "description"},
		{Name: "sensitive"},
		{Name: "nullable"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true},
		{Name: "error_message", Required: true},
	},
}

// varDecl is a variable block while its value is being resolved.
type varDecl struct {
	v           *Variable
	defaults    *typeexpr.Defaults
	defaultExpr hcl.Expression
	validations []*hcl.Block
	// value and where it came from; src is nil for -var and environment
	// values, which have no source range of their own.
	value   cty.Value
	from    string
	src     *hcl.Range
	invalid bool // the value could not be used; skip validation
}

func (l *loader) decodeVariables(blocks []*hcl.Block) {
	for _, b := range blocks {
		name := b.Labels[0]
		if !l.checkIdent("variable", name, b.LabelRanges[0]) {
			continue
		}
		if prev, ok := l.vars[name]; ok {
			l.diags = append(l.diags, errorf(b.DefRange, "Duplicate variable",
				"A variable named %q was already declared at %s. Variable names must be unique.", name, prev.v.DeclRange))
			continue
		}
		d := &varDecl{v: &Variable{Name: name, Type: cty.DynamicPseudoType, DeclRange: b.DefRange}}
		content, diags := b.Body.Content(variableSchema)
		l.diags = append(l.diags, diags...)
		if a := content.Attributes["type"]; a != nil {
			ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(a.Expr)
			l.diags = append(l.diags, diags...)
			if !diags.HasErrors() {
				d.v.Type, d.defaults = ty, defaults
			}
		}
		if a := content.Attributes["description"]; a != nil {
			var s string
			if v, ok := l.evalStatic(a); ok && l.toString(a, v, &s) {
				d.v.Description = s
			}
		}
		if a := content.Attributes["sensitive"]; a != nil {
			if v, ok := l.evalStatic(a); ok {
				l.toBool(a, v, &d.v.Sensitive)
			}
		}
		if a := content.Attributes["default"]; a != nil {
			d.defaultExpr = a.Expr
			if v, ok := l.evalStatic(a); ok {
				r := a.Expr.Range()
				d.value, d.from, d.src = v, "the default", &r
			} else {
				d.value, d.invalid = cty.DynamicVal, true
			}
		}
		for _, vb := range content.Blocks {
			d.validations = append(d.validations, vb)
		}
		l.vars[name] = d
		l.varOrder = append(l.varOrder, d)
		l.cfg.Variables = append(l.cfg.Variables, d.v)
	}
}

// evalStatic evaluates an expression that may not refer to anything
// (variable defaults, descriptions).
func (l *loader) evalStatic(a *hcl.Attribute) (cty.Value, bool) {
	v, diags := a.Expr.Value(&hcl.EvalContext{Functions: l.funcs})
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return cty.DynamicVal, false
	}
	if hugeNumber(v) {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Number out of range",
			"This expression has a number that is too large or too small; numbers in templates must be within ±1e308."))
		return cty.DynamicVal, false
	}
	return v, true
}

func (l *loader) varNames() []string { return sortedKeys(l.vars) }

// assignVariables applies the environment and then the command line, in
// order, over the defaults, converts every value to its type and reports
// variables that have none.
func (l *loader) assignVariables() {
	// Environment: exact name first, then a case-insensitive match
	// (HVCTL_VAR_BURST_MAX), never an error for unknown names since the
	// environment is shared with everything else.
	envs := map[string]string{}
	for _, kv := range l.opts.Environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		envs[strings.TrimPrefix(k, EnvPrefix)] = v
	}
	for _, d := range l.varOrder {
		raw, ok := envs[d.v.Name]
		from := EnvPrefix + d.v.Name
		if !ok {
			for k, v := range envs {
				if strings.EqualFold(k, d.v.Name) {
					raw, ok, from = v, true, EnvPrefix+k
					break
				}
			}
		}
		if ok {
			l.setRaw(d, raw, "the environment variable "+from)
		}
	}
	// Variable files next to the template load by themselves, after
	// the environment and before the command line, as Terraform's
	// terraform.tfvars and *.auto.tfvars do.
	if !l.opts.NoAutoVarFiles {
		for _, f := range AutoVarFiles(l.cfg.Dir) {
			l.readVarFile(f)
		}
	}
	for _, a := range l.opts.Args {
		if a.File != "" {
			l.readVarFile(a.File)
			continue
		}
		d, ok := l.vars[a.Name]
		if !ok {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail: fmt.Sprintf("A variable named %q was assigned on the command line (-var), but the template does not declare it.%s Declared variables: %s.",
					a.Name, didYouMean(a.Name, l.varNames()), quotedList(l.varNames())),
			})
			continue
		}
		l.setRaw(d, a.Value, fmt.Sprintf("-var %s=...", a.Name))
	}
	for _, d := range l.varOrder {
		switch {
		case d.invalid:
			d.v.Value = cty.DynamicVal
		case d.value == cty.NilVal:
			l.diags = append(l.diags, errorf(d.v.DeclRange, "No value for required variable",
				"The variable %q has no default and no value was given. Set it with -var %s=VALUE, in a -var-file, or with the environment variable %s%s.",
				d.v.Name, d.v.Name, EnvPrefix, d.v.Name))
			d.v.Value, d.invalid = cty.DynamicVal, true
		default:
			d.v.Value = l.convertVar(d)
		}
	}
}

// setRaw sets a variable from a -var or environment string: taken
// literally for string (or untyped) variables, else parsed as an HCL
// expression, as Terraform does.
func (l *loader) setRaw(d *varDecl, raw, from string) {
	d.from, d.src, d.invalid = from, nil, false
	if d.v.Type == cty.String || d.v.Type == cty.DynamicPseudoType {
		d.value = cty.StringVal(raw)
		return
	}
	if d.v.Type.IsPrimitiveType() {
		// A number or bool is read from the string as Terraform does:
		// "abc" for a number is "a number is required", not an HCL
		// expression error about variables.
		v, err := convert.Convert(cty.StringVal(strings.TrimSpace(raw)), d.v.Type)
		if err == nil && hugeNumber(v) {
			err = fmt.Errorf("numbers must be within ±1e308")
		}
		if err != nil {
			l.diags = append(l.diags, errorf(d.v.DeclRange, "Invalid value for variable",
				"The value %q from %s is not valid for variable %q: %s.",
				raw, from, d.v.Name, err))
			d.value, d.invalid = cty.DynamicVal, true
			return
		}
		d.value = v
		return
	}
	fn := fmt.Sprintf("<value for var.%s>", d.v.Name)
	expr, diags := hclsyntax.ParseExpression([]byte(raw), fn, hcl.InitialPos)
	if !diags.HasErrors() {
		var vd hcl.Diagnostics
		d.value, vd = expr.Value(nil)
		diags = append(diags, vd...)
		if !vd.HasErrors() && hugeNumber(d.value) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Number out of range", Detail: "numbers must be within ±1e308"})
		}
	}
	if diags.HasErrors() {
		l.diags = append(l.diags, errorf(d.v.DeclRange, "Invalid value for variable",
			"The value %q from %s is not a valid expression for variable %q of type %s: %s",
			raw, from, d.v.Name, typeexpr.TypeString(d.v.Type), diags[0].Summary+"; "+diags[0].Detail))
		d.value, d.invalid = cty.DynamicVal, true
	}
}

func (l *loader) readVarFile(name string) {
	parse := l.parser.ParseHCLFile
	if strings.HasSuffix(name, ".json") {
		parse = l.parser.ParseJSONFile // Terraform's .tfvars.json
	}
	f, diags := parse(name)
	l.diags = append(l.diags, diags...)
	if f == nil || diags.HasErrors() {
		return
	}
	attrs, diags := f.Body.JustAttributes()
	l.diags = append(l.diags, diags...)
	for _, a := range sortAttrs(attrs) {
		d, ok := l.vars[a.Name]
		if !ok {
			l.diags = append(l.diags, errorf(a.NameRange, "Value for undeclared variable",
				"The template does not declare a variable named %q.%s Declared variables: %s.",
				a.Name, didYouMean(a.Name, l.varNames()), quotedList(l.varNames())))
			continue
		}
		v, ok := l.evalStatic(a)
		r := a.Expr.Range()
		d.value, d.from, d.src, d.invalid = v, "the variable file "+name, &r, !ok
	}
}

func (l *loader) convertVar(d *varDecl) cty.Value {
	v := d.value
	if d.defaults != nil {
		v = d.defaults.Apply(v)
	}
	out, err := convert.Convert(v, d.v.Type)
	if err != nil {
		subject := d.v.DeclRange
		if d.src != nil {
			subject = *d.src
		}
		l.diags = append(l.diags, errorf(subject, "Invalid value for variable",
			"The value from %s is not valid for variable %q: %s. The variable's type is %s.",
			d.from, d.v.Name, err, typeexpr.TypeString(d.v.Type)))
		d.invalid = true
		return cty.DynamicVal
	}
	return out
}

func (l *loader) varObject() cty.Value {
	m := make(map[string]cty.Value, len(l.varOrder))
	for _, d := range l.varOrder {
		m[d.v.Name] = d.v.Value
	}
	return cty.ObjectVal(m)
}

// validateVariables runs every validation block of every variable with
// a usable value.
func (l *loader) validateVariables() {
	for _, d := range l.varOrder {
		for _, b := range d.validations {
			content, diags := b.Body.Content(validationSchema)
			l.diags = append(l.diags, diags...)
			cond, msg := content.Attributes["condition"], content.Attributes["error_message"]
			if cond == nil || msg == nil || d.invalid {
				continue
			}
			cv, ok := l.eval(cond.Expr, l.ctxVars, scopeVars)
			if !ok || !cv.IsKnown() {
				continue
			}
			if cv.IsNull() {
				l.diags = append(l.diags, errorf(cond.Expr.Range(), "Invalid variable validation result",
					"The condition for variable %q returned null; it must return true or false.", d.v.Name))
				continue
			}
			bv, err := convert.Convert(cv, cty.Bool)
			if err != nil {
				l.diags = append(l.diags, errorf(cond.Expr.Range(), "Invalid variable validation result",
					"The condition for variable %q must return a bool: %s.", d.v.Name, err))
				continue
			}
			if bv.True() {
				continue
			}
			text := "Invalid value."
			if mv, ok := l.eval(msg.Expr, l.ctxVars, scopeVars); ok && mv.IsKnown() && !mv.IsNull() {
				if s, err := convert.Convert(mv, cty.String); err == nil {
					text = s.AsString()
				}
			}
			l.diags = append(l.diags, errorf(cond.Expr.Range(), "Invalid value for variable",
				"%s\n\nThe value of var.%s comes from %s; this was checked by the validation rule at %s.",
				text, d.v.Name, d.from, cond.Expr.Range()))
			// Do not let the rejected value cause follow-on errors.
			d.v.Value, d.invalid = cty.DynamicVal, true
			break
		}
	}
}

// AutoVarFiles are the variable files loaded without -var-file from a
// template's directory, in order: hvctl.hvars, hvctl.hvars.json, then
// *.auto.hvars and *.auto.hvars.json in lexical order.
func AutoVarFiles(dir string) []string {
	var out []string
	for _, n := range []string{"hvctl.hvars", "hvctl.hvars.json"} {
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && !fi.IsDir() {
			out = append(out, filepath.Join(dir, n))
		}
	}
	var auto []string
	for _, pat := range []string{"*.auto.hvars", "*.auto.hvars.json"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		auto = append(auto, m...)
	}
	sort.Strings(auto)
	return append(out, auto...)
}
