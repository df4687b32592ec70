package templates

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// scope says which names an expression may refer to.
type scope int

const (
	scopeVars    scope = iota // var.*
	scopeLocals               // var.*, local.*
	scopeCluster              // var.*, local.*, provider.*
	scopeOutput               // var.*, local.*, provider.*, cluster.*
)

func (s scope) roots() []string {
	switch s {
	case scopeVars:
		return []string{"var"}
	case scopeLocals:
		return []string{"var", "local"}
	case scopeCluster:
		return []string{"var", "local", "provider"}
	}
	return []string{"var", "local", "provider", "cluster"}
}

// eval checks the references of expr against sc and evaluates it. It
// returns false when there were errors (already reported); the value may
// still be unknown when it depends on something that failed earlier.
func (l *loader) eval(expr hcl.Expression, ctx *hcl.EvalContext, sc scope) (cty.Value, bool) {
	if diags := l.checkRefs(expr, sc); diags.HasErrors() {
		l.diags = append(l.diags, diags...)
		return cty.DynamicVal, false
	}
	v, diags := expr.Value(ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return cty.DynamicVal, false
	}
	if hugeNumber(v) {
		l.diags = append(l.diags, errorf(expr.Range(), "Number out of range",
			"This expression has a number that is too large or too small; numbers in templates must be within ±1e308."))
		return cty.DynamicVal, false
	}
	return v, true
}

// checkRefs reports references that do not resolve in sc, suggesting the
// nearest valid name.
func (l *loader) checkRefs(expr hcl.Expression, sc scope) hcl.Diagnostics {
	var diags hcl.Diagnostics
	roots := sc.roots()
	for _, t := range expr.Variables() {
		root := t.RootName()
		allowed := false
		for _, r := range roots {
			allowed = allowed || r == root
		}
		if !allowed {
			detail := fmt.Sprintf("There is no %q in scope here.", root)
			if s := suggest(root, roots); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			known := []string{"var", "local", "provider", "cluster"}
			if !contains(roots, root) && contains(known, root) {
				detail = fmt.Sprintf("References to %s.* are not allowed here.", root)
			}
			detail += fmt.Sprintf(" Expressions here may refer to %s.", refList(roots))
			diags = append(diags, errorf(t.SourceRange(), "Invalid reference", "%s", detail))
			continue
		}
		step := func(i int) (string, hcl.Range, bool) {
			if len(t) <= i {
				return "", t.SourceRange(), false
			}
			switch s := t[i].(type) {
			case hcl.TraverseAttr:
				return s.Name, s.SrcRange, true
			case hcl.TraverseIndex:
				if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() {
					return s.Key.AsString(), s.SrcRange, true
				}
			}
			return "", t.SourceRange(), false
		}
		switch root {
		case "var":
			name, r, ok := step(1)
			if !ok {
				diags = append(diags, errorf(r, "Invalid reference", "A reference to a variable is var.NAME, naming a declared variable."))
			} else if _, ok := l.vars[name]; !ok {
				diags = append(diags, errorf(t.SourceRange(), "Reference to undeclared input variable",
					"An input variable named %q has not been declared.%s Declared variables: %s.", name, didYouMean(name, l.varNames()), quotedList(l.varNames())))
			}
		case "local":
			name, r, ok := step(1)
			if !ok {
				diags = append(diags, errorf(r, "Invalid reference", "A reference to a local value is local.NAME."))
			} else if _, ok := l.localDefs[name]; !ok {
				names := sortedKeys(l.localDefs)
				diags = append(diags, errorf(t.SourceRange(), "Reference to undeclared local value",
					"A local value named %q has not been declared.%s Declared local values: %s.", name, didYouMean(name, names), quotedList(names)))
			}
		case "provider":
			typ, r, ok := step(1)
			name, r2, ok2 := step(2)
			switch {
			case !ok || !ok2:
				if ok {
					r = r2
				}
				diags = append(diags, errorf(r, "Invalid reference", "A reference to a provider is provider.TYPE.NAME, naming a provider block, for example provider.aws.ohio."))
			case !contains(providerTypes, typ):
				diags = append(diags, errorf(r, "Unknown provider type",
					"There is no provider type %q.%s Provider types are %s.", typ, didYouMean(typ, providerTypes), quotedList(providerTypes)))
			case name != "default" && l.providers[typ][name] == nil:
				names := sortedKeys(l.providers[typ])
				diags = append(diags, errorf(t.SourceRange(), "Reference to undeclared provider",
					"There is no provider %q %q.%s Declared %s providers: %s; %q names the default configuration of that type.",
					typ, name, didYouMean(name, names), typ, quotedList(names), "default"))
			}
		case "cluster":
			name, r, ok := step(1)
			if !ok {
				diags = append(diags, errorf(r, "Invalid reference", "A reference to the cluster is cluster.NAME.ATTRIBUTE."))
			} else if name != l.cluster {
				diags = append(diags, errorf(t.SourceRange(), "Reference to undeclared cluster",
					"There is no cluster named %q.%s The cluster is %q.", name, didYouMean(name, []string{l.cluster}), l.cluster))
			}
		}
	}
	return diags
}

func refList(roots []string) string {
	q := make([]string, len(roots))
	for i, r := range roots {
		q[i] = r + ".*"
	}
	return strings.Join(q, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Range, out[j].Range
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	return out
}

// evalLocals collects every locals block, reports duplicates, unknown
// references and cycles, and evaluates the locals in dependency order.
func (l *loader) evalLocals(blocks []*hcl.Block) {
	var order []*hcl.Attribute
	for _, b := range blocks {
		attrs, diags := b.Body.JustAttributes()
		l.diags = append(l.diags, diags...)
		for _, a := range sortAttrs(attrs) {
			if prev, ok := l.localDefs[a.Name]; ok {
				l.diags = append(l.diags, errorf(a.NameRange, "Duplicate local value",
					"A local value named %q was already defined at %s. Local value names must be unique.", a.Name, prev.NameRange))
				continue
			}
			l.localDefs[a.Name] = a
			order = append(order, a)
		}
	}
	// Dependencies; a local with a bad reference is broken.
	deps := map[string][]string{}
	broken := map[string]bool{}
	for _, a := range order {
		if diags := l.checkRefs(a.Expr, scopeLocals); diags.HasErrors() {
			l.diags = append(l.diags, diags...)
			broken[a.Name] = true
		}
		for _, t := range a.Expr.Variables() {
			if t.RootName() != "local" || len(t) < 2 {
				continue
			}
			if s, ok := t[1].(hcl.TraverseAttr); ok {
				if _, def := l.localDefs[s.Name]; def {
					deps[a.Name] = append(deps[a.Name], s.Name)
				}
			}
		}
	}
	// Depth-first walk: report each cycle once, at its first local.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var sorted []string
	var stack []string
	var visit func(n string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch color[d] {
			case white:
				visit(d)
			case grey:
				i := len(stack) - 1
				for stack[i] != d {
					i--
				}
				cyc := append(append([]string{}, stack[i:]...), d)
				for _, c := range stack[i:] {
					broken[c] = true
				}
				for j := range cyc {
					cyc[j] = "local." + cyc[j]
				}
				a := l.localDefs[d]
				l.diags = append(l.diags, errorf(a.Expr.Range(), "Cycle in local values",
					"The local values refer to each other in a cycle: %s. A local value may refer to other locals only if they do not refer back to it.",
					strings.Join(cyc, " → ")))
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		sorted = append(sorted, n)
	}
	for _, a := range order {
		if color[a.Name] == white {
			visit(a.Name)
		}
	}
	for _, n := range sorted {
		bad := broken[n]
		for _, d := range deps[n] {
			bad = bad || broken[d]
		}
		if bad {
			broken[n] = true
			l.locals[n] = cty.DynamicVal
			continue
		}
		ctx := &hcl.EvalContext{
			Variables: map[string]cty.Value{"var": l.varObject(), "local": cty.ObjectVal(l.locals)},
			Functions: l.funcs,
		}
		v, ok := l.eval(l.localDefs[n].Expr, ctx, scopeLocals)
		if !ok {
			broken[n] = true
			v = cty.DynamicVal
		}
		l.locals[n] = v
	}
}
