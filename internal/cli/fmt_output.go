package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/hvctl/hvctl/provision"
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

// knownValues are the cluster.NAME.* values outputs may refer to, from
// the state.
func knownValues(cfg *templates.Config, st *provision.State) map[string]cty.Value {
	c := cfg.Cluster
	pre := "cluster." + c.Name
	known := map[string]cty.Value{
		pre + ".name":             cty.StringVal(c.Name),
		pre + ".overlay.cidr":     cty.StringVal(c.Overlay.CIDR.String()),
		pre + ".overlay.topology": cty.StringVal(string(c.Overlay.Topology)),
	}
	if len(c.Overlay.Hubs) > 0 {
		for _, s := range c.AllSites() {
			for _, n := range s.Nodes {
				if n.Path() != c.Overlay.Hubs[0] {
					continue
				}
				if r := st.Resource(provision.NodeAddress(n)); r != nil {
					if pub, _ := r.Attrs["public_address"].(string); pub != "" {
						known[pre+".overlay.endpoint"] = cty.StringVal(pub + ":" + strconv.Itoa(c.Overlay.Port))
					}
				}
			}
		}
	}
	return known
}

func runOutput(a *App, args []string) int {
	c := findCommand("output")
	fs := a.flagSet(c)
	var t tmplFlags
	t.add(fs)
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
	cfg, ok := a.load(tmpl, t.vars)
	if !ok {
		return exitError
	}
	st, err := t.store(tmpl).Load()
	if err != nil {
		return a.failErr(err)
	}
	known := knownValues(cfg, st)
	type out struct {
		Sensitive bool            `json:"sensitive"`
		Value     json.RawMessage `json:"value"`
		Type      json.RawMessage `json:"type"`
	}
	all := map[string]out{}
	var names []string
	for _, o := range cfg.Outputs {
		if name != "" && o.Name != name {
			continue
		}
		v, d := templates.EvalOutput(cfg, o, known)
		if a.diags(cfg.Files, d) {
			return exitError
		}
		if !v.IsWhollyKnown() {
			if name != "" {
				return a.fail("Output "+o.Name+" is not known yet", "Its value is known only after hvctl up.")
			}
			continue
		}
		names = append(names, o.Name)
		if *jsonOut {
			vb, _ := ctyjson.Marshal(v, v.Type())
			tb, _ := ctyjson.MarshalType(v.Type())
			if o.Sensitive && name == "" {
				vb = json.RawMessage("null")
			}
			all[o.Name] = out{Sensitive: o.Sensitive, Value: vb, Type: tb}
			continue
		}
		switch {
		case name != "" && *raw && v.Type() == cty.String:
			fmt.Fprintln(a.Stdout, v.AsString())
		case name != "":
			fmt.Fprintln(a.Stdout, templates.OutputString(v))
		case o.Sensitive:
			fmt.Fprintf(a.Stdout, "%s = <sensitive>\n", o.Name)
		default:
			fmt.Fprintf(a.Stdout, "%s = %s\n", o.Name, templates.OutputString(v))
		}
	}
	if name != "" && len(names) == 0 && !*jsonOut {
		var all []string
		for _, o := range cfg.Outputs {
			all = append(all, o.Name)
		}
		return a.fail("Output "+name+" not found", "The template defines no output with that name."+suggest(name, all))
	}
	if *jsonOut {
		if name != "" {
			if o, ok := all[name]; ok {
				a.Stdout.Write(append(o.Value, '\n'))
				return exitOK
			}
			return a.fail("Output "+name+" not found or not known yet", "")
		}
		return a.writeJSON(all)
	}
	if name == "" && len(names) == 0 {
		fmt.Fprintln(a.Stdout, "No outputs are known yet. Run hvctl up first.")
	}
	return exitOK
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
