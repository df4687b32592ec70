package templates

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestHugeNumbers: converting a number like 1e9999999 to a string takes
// minutes in cty, so such numbers are rejected up front (found by
// FuzzLoad).
func TestHugeNumbers(t *testing.T) {
	tests := []struct{ name, src string }{
		{"literal", `cluster "c" { tags = { a = 1e9999999 } }`},
		{"computed", `locals { x = 1e300 * 1e300 * 1e300 * 1e300 }`},
		{"variable default", "variable \"v\" {\n  type = string\n  default = 1e9999999\n}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := LoadSource(map[string][]byte{"x.hcl": []byte(tt.src)}, ".", LoadOptions{})
			if !hasSummary(diags, "Number out of range") {
				t.Errorf("no range error: %v", diags)
			}
		})
	}
	_, diags := Load("testdata/valid/vars.hcl", LoadOptions{Args: []VarArg{{Name: "labels", Value: "{ a = 1e9999999 }"}}})
	if !diags.HasErrors() {
		t.Error("no error for a huge -var number")
	}
}

func hasSummary(diags hcl.Diagnostics, s string) bool {
	for _, d := range diags {
		if d.Summary == s {
			return true
		}
	}
	return false
}
