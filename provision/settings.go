package provision

import (
	"fmt"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/zclconf/go-cty/cty"
)

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
