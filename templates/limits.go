package templates

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// maxExponent bounds the binary exponent of numbers in templates. Turning
// a number like 1e99999999 into a string takes minutes, so such numbers
// are rejected before anything converts them; no real setting needs more
// than float64 range.
const maxExponent = 1100

// checkNumberLiterals reports number literals outside float64 range.
func checkNumberLiterals(body hcl.Body) hcl.Diagnostics {
	b, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var diags hcl.Diagnostics
	hclsyntax.VisitAll(b, func(n hclsyntax.Node) hcl.Diagnostics {
		if lit, ok := n.(*hclsyntax.LiteralValueExpr); ok && hugeNumber(lit.Val) {
			diags = append(diags, errorf(lit.SrcRange, "Number out of range",
				"This number is too large or too small; numbers in templates must be within ±1e308."))
		}
		return nil
	})
	return diags
}

// hugeNumber reports whether v is or contains a known number whose
// magnitude is outside float64 range.
func hugeNumber(v cty.Value) bool {
	huge := false
	cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if huge || !x.IsKnown() || x.IsNull() || x.IsMarked() {
			return false, nil
		}
		if x.Type() == cty.Number {
			f := x.AsBigFloat()
			if !f.IsInf() {
				if e := f.MantExp(nil); e > maxExponent || e < -maxExponent {
					huge = true
				}
			}
		}
		return true, nil
	})
	return huge
}
