package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/templates"
)

func init() {
	register(&command{name: "fmt", usage: "[-check] [-diff] [PATH]", help: "Rewrite templates in canonical format", run: runFmt})
	register(&command{name: "output", usage: "[NAME] [PATH] [-json]", help: "Show template outputs", run: runOutput})
}

func runFmt(a *App, args []string) int {
	c := findCommand("fmt")
	fs := a.flagSet(c)
	check := fs.Bool("check", false, "do not rewrite; exit 3 if a file would change")
	diff := fs.Bool("diff", false, "print a unified diff of the changes")
	recursive := fs.Bool("recursive", false, "also format templates in subdirectories")
	write := fs.Bool("write", true, "rewrite the files that change (-check implies -write=false)")
	list := fs.Bool("list", true, "print the names of the files that change")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	res, d := templates.FormatPath(templatePath(pos), templates.FormatOptions{Check: *check, Diff: *diff, Recursive: *recursive, NoWrite: !*write, NoList: !*list}, a.Stdout)
	if a.diags(res.Files, d) {
		return exitError
	}
	if *check && len(res.Changed) > 0 {
		return exitFmt
	}
	return exitOK
}

func runOutput(a *App, args []string) int {
	c := findCommand("output")
	fs := a.flagSet(c)
	var t tmplFlags
	t.add(fs)
	t.addBackend(fs)
	jsonOut := fs.Bool("json", false, "print as JSON")
	raw := fs.Bool("raw", false, "print a string output without quotes")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	var name string
	tmpl := "."
	for _, p := range pos {
		if isTemplatePath(p) {
			tmpl = p
		} else {
			name = p
		}
	}
	store, err := a.readStore(&t, tmpl)
	if err != nil {
		return a.failErr(err)
	}
	st, err := store.Load()
	if err != nil {
		return a.failErr(err)
	}
	outs, err := cluster.LoadOutputs(st)
	if err != nil {
		return a.failErr(err)
	}
	if len(outs) == 0 {
		if name != "" {
			return a.fail("Output "+name+" not found", "The state records no outputs: apply records them (hvctl apply, or hvctl apply -refresh-only to record them without changing anything).")
		}
		fmt.Fprintln(a.Stdout, "No outputs are recorded. Apply records the template's outputs: run hvctl apply (or apply -refresh-only).")
		return exitOK
	}
	names := make([]string, 0, len(outs))
	for n := range outs {
		names = append(names, n)
	}
	sort.Strings(names)
	if name != "" {
		o, ok := outs[name]
		if !ok {
			return a.fail("Output "+name+" not found", "The state records no output with that name."+suggest(name, names))
		}
		v, err := o.CtyValue()
		if err != nil {
			return a.failErr(err)
		}
		switch {
		case *jsonOut:
			a.Stdout.Write(append(o.Value, '\n'))
		case *raw:
			if v.Type() != cty.String && v.Type() != cty.Number && v.Type() != cty.Bool {
				return a.fail("Output "+name+" is not a string, number or bool", "-raw prints primitive values only; use -json for "+name+".")
			}
			fmt.Fprintln(a.Stdout, rawString(v))
		default:
			fmt.Fprintln(a.Stdout, templates.OutputString(v))
		}
		return exitOK
	}
	if *jsonOut {
		all := map[string]cluster.Output{}
		for n, o := range outs {
			if o.Sensitive {
				o.Value = json.RawMessage("null") // shown only when asked for by name
			}
			all[n] = o
		}
		return a.writeJSON(all)
	}
	for _, n := range names {
		o := outs[n]
		if o.Sensitive {
			fmt.Fprintf(a.Stdout, "%s = <sensitive>\n", n)
			continue
		}
		v, err := o.CtyValue()
		if err != nil {
			return a.failErr(err)
		}
		fmt.Fprintf(a.Stdout, "%s = %s\n", n, templates.OutputString(v))
	}
	return exitOK
}

// rawString is a primitive value without quotes (output -raw).
func rawString(v cty.Value) string {
	switch v.Type() {
	case cty.String:
		return v.AsString()
	case cty.Bool:
		if v.True() {
			return "true"
		}
		return "false"
	}
	return v.AsBigFloat().Text('f', -1)
}

// isTemplatePath reports whether a positional names a template (a .hcl
// file or a directory) rather than an output name.
func isTemplatePath(p string) bool {
	if strings.HasSuffix(p, ".hcl") {
		return true
	}
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
