package cli

import (
	"github.com/hashicorp/hcl/v2"

	"github.com/hvctl/hvctl/templates"
)

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonDiag struct {
	Severity string     `json:"severity"`
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail,omitempty"`
	Range    *jsonRange `json:"range,omitempty"`
}

// diagsJSON converts diagnostics to Terraform's JSON diagnostic shape.
func diagsJSON(d hcl.Diagnostics) []jsonDiag {
	out := []jsonDiag{}
	for _, x := range d {
		j := jsonDiag{Severity: "error", Summary: x.Summary, Detail: x.Detail}
		if x.Severity == hcl.DiagWarning {
			j.Severity = "warning"
		}
		if r := x.Subject; r != nil {
			j.Range = &jsonRange{Filename: r.Filename,
				Start: jsonPos{r.Start.Line, r.Start.Column, r.Start.Byte},
				End:   jsonPos{r.End.Line, r.End.Column, r.End.Byte}}
		}
		out = append(out, j)
	}
	return out
}

func (a *App) validateJSON(path string, t *tmplFlags) int {
	_, d := templates.Load(path, templates.LoadOptions{Args: t.vars, Environ: a.Environ})
	errs, warns := 0, 0
	for _, x := range d {
		if x.Severity == hcl.DiagError {
			errs++
		} else {
			warns++
		}
	}
	a.writeJSON(map[string]any{"format_version": "1.0", "valid": errs == 0, "error_count": errs,
		"warning_count": warns, "diagnostics": diagsJSON(d)})
	if errs > 0 {
		return exitError
	}
	return exitOK
}
