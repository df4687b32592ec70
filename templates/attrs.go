package templates

import (
	"math/big"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// value evaluates attribute name of attrs in the cluster scope. It returns
// ok = false when the attribute is absent or null, or its value cannot be
// used (an error has then been reported).
func (l *loader) value(attrs hcl.Attributes, name string) (*hcl.Attribute, cty.Value, bool) {
	a := attrs[name]
	if a == nil {
		return nil, cty.NilVal, false
	}
	v, ok := l.eval(a.Expr, l.ctxCluster, scopeCluster)
	if !ok || !v.IsWhollyKnown() || v.IsNull() {
		return a, v, false
	}
	return a, v, true
}

func (l *loader) typeErr(a *hcl.Attribute, want string, v cty.Value) {
	l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid value for \""+a.Name+"\"",
		"%s must be %s; got %s.", a.Name, want, friendlyType(v)))
}

func friendlyType(v cty.Value) string {
	t := v.Type()
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		return "a list"
	case t.IsObjectType() || t.IsMapType():
		return "an object"
	}
	return t.FriendlyName()
}

func (l *loader) toString(a *hcl.Attribute, v cty.Value, dst *string) bool {
	s, err := convert.Convert(v, cty.String)
	if err != nil || !s.IsKnown() || s.IsNull() || !v.Type().IsPrimitiveType() {
		l.typeErr(a, "a string", v)
		return false
	}
	*dst = s.AsString()
	return true
}

func (l *loader) toBool(a *hcl.Attribute, v cty.Value, dst *bool) bool {
	b, err := convert.Convert(v, cty.Bool)
	if err != nil || !b.IsKnown() || b.IsNull() {
		l.typeErr(a, "true or false", v)
		return false
	}
	*dst = b.True()
	return true
}

func (l *loader) toNumber(a *hcl.Attribute, v cty.Value) (*big.Float, bool) {
	n, err := convert.Convert(v, cty.Number)
	if err != nil || !n.IsKnown() || n.IsNull() {
		l.typeErr(a, "a number", v)
		return nil, false
	}
	return n.AsBigFloat(), true
}

// toInt converts to a whole number within [lo, hi].
func (l *loader) toInt(a *hcl.Attribute, v cty.Value, lo, hi int64, dst *int) bool {
	f, ok := l.toNumber(a, v)
	if !ok {
		return false
	}
	i, acc := f.Int64()
	if acc != big.Exact || !f.IsInt() {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid value for \""+a.Name+"\"",
			"%s must be a whole number; got %s.", a.Name, f.Text('g', 10)))
		return false
	}
	if i < lo || i > hi {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid value for \""+a.Name+"\"",
			"%s must be between %d and %d; got %d.", a.Name, lo, hi, i))
		return false
	}
	*dst = int(i)
	return true
}

func (l *loader) toFloat(a *hcl.Attribute, v cty.Value, dst *float64) bool {
	f, ok := l.toNumber(a, v)
	if !ok {
		return false
	}
	x, _ := f.Float64()
	if x < 0 {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid value for \""+a.Name+"\"",
			"%s must not be negative; got %g.", a.Name, x))
		return false
	}
	*dst = x
	return true
}

func (l *loader) toStringList(a *hcl.Attribute, v cty.Value, dst *[]string) bool {
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || !lv.IsWhollyKnown() || lv.IsNull() {
		l.typeErr(a, "a list of strings", v)
		return false
	}
	out := make([]string, 0, lv.LengthInt())
	for it := lv.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid value for \""+a.Name+"\"", "%s must not contain null.", a.Name))
			return false
		}
		out = append(out, e.AsString())
	}
	*dst = out
	return true
}

func (l *loader) toStringMap(a *hcl.Attribute, v cty.Value, dst *map[string]string) bool {
	mv, err := convert.Convert(v, cty.Map(cty.String))
	if err != nil || !mv.IsWhollyKnown() || mv.IsNull() {
		l.typeErr(a, "a map of strings, like { key = \"value\" }", v)
		return false
	}
	out := make(map[string]string, mv.LengthInt())
	for it := mv.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if e.IsNull() {
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid value for \""+a.Name+"\"", "%s must not contain null values.", a.Name))
			return false
		}
		out[k.AsString()] = e.AsString()
	}
	*dst = out
	return true
}

// toSize accepts a string with a unit ("4GiB") or a number of bytes.
func (l *loader) toSize(a *hcl.Attribute, v cty.Value, dst *int64) bool {
	if v.Type() == cty.Number {
		f := v.AsBigFloat()
		n, acc := f.Int64()
		if acc != big.Exact || n < 0 {
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid size", "%s must be a whole, non-negative number of bytes or a size with a unit, like \"4GiB\".", a.Name))
			return false
		}
		*dst = n
		return true
	}
	var s string
	if !l.toString(a, v, &s) {
		return false
	}
	n, err := ParseSize(s)
	if err != nil {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid size",
			"%s: %s. A size is a number with a unit: B, KiB, MiB, GiB, TiB, PiB (powers of 1024) or KB, MB, GB, TB, PB (powers of 1000), like \"512MiB\" or \"4GiB\".", a.Name, err))
		return false
	}
	*dst = n
	return true
}

func (l *loader) toDuration(a *hcl.Attribute, v cty.Value, dst *time.Duration) bool {
	var s string
	if v.Type() != cty.String {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid duration",
			"%s must be a string with a unit, like \"30s\", \"5m\", \"6h\" or \"1d\"; got %s.", a.Name, friendlyType(v)))
		return false
	}
	if !l.toString(a, v, &s) {
		return false
	}
	d, err := ParseDuration(s)
	if err != nil {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid duration",
			"%s: %s. A duration is a number with a unit: ms, s, m, h or d, like \"30s\", \"5m\", \"1h30m\" or \"1d\".", a.Name, err))
		return false
	}
	*dst = d
	return true
}

// Convenience forms: look up, evaluate and convert in one call. Each
// returns whether dst was set.

func (l *loader) getString(attrs hcl.Attributes, name string, dst *string) bool {
	a, v, ok := l.value(attrs, name)
	return ok && l.toString(a, v, dst)
}

func (l *loader) getBool(attrs hcl.Attributes, name string, dst *bool) bool {
	a, v, ok := l.value(attrs, name)
	return ok && l.toBool(a, v, dst)
}

func (l *loader) getInt(attrs hcl.Attributes, name string, lo, hi int64, dst *int) bool {
	a, v, ok := l.value(attrs, name)
	return ok && l.toInt(a, v, lo, hi, dst)
}

func (l *loader) getFloat(attrs hcl.Attributes, name string, dst *float64) bool {
	a, v, ok := l.value(attrs, name)
	return ok && l.toFloat(a, v, dst)
}

func (l *loader) getStringList(attrs hcl.Attributes, name string, dst *[]string) bool {
	a, v, ok := l.value(attrs, name)
	return ok && l.toStringList(a, v, dst)
}

func (l *loader) getStringMap(attrs hcl.Attributes, name string, dst *map[string]string) bool {
	a, v, ok := l.value(attrs, name)
	return ok && l.toStringMap(a, v, dst)
}

func (l *loader) getSize(attrs hcl.Attributes, name string, dst *int64) bool {
	a, v, ok := l.value(attrs, name)
	return ok && l.toSize(a, v, dst)
}

func (l *loader) getDuration(attrs hcl.Attributes, name string, dst *time.Duration) bool {
	a, v, ok := l.value(attrs, name)
	return ok && l.toDuration(a, v, dst)
}
