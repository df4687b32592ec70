package templates

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// VarArg is one variable setting from the command line: either
// -var NAME=VALUE (Name and Value set) or -var-file FILE (File set).
type VarArg struct {
	Name, Value string
	File        string
}

// LoadOptions carries variable values from outside the template.
type LoadOptions struct {
	// Args are the -var and -var-file flags in command-line order; a
	// later one wins over an earlier one.
	Args []VarArg
	// NoAutoVarFiles skips hvctl.hvars and *.auto.hvars beside the
	// template (AutoVarFiles).
	NoAutoVarFiles bool
	// Environ is os.Environ()-style; HVCTL_VAR_NAME=value sets variable
	// NAME. Command-line values win over the environment.
	Environ []string
}

// EnvPrefix is the prefix of environment variables that set template
// variables: HVCTL_VAR_burst_max=5.
const EnvPrefix = "HVCTL_VAR_"

// Extension is the file name extension of template files.
const Extension = ".hcl"

var topSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "provider", LabelNames: []string{"type", "name"}},
		{Type: "cluster", LabelNames: []string{"name"}},
		{Type: "output", LabelNames: []string{"name"}},
		{Type: "state"},
	},
}

// Load reads the template at path (one .hcl file, or a directory whose
// *.hcl files are read together), resolves its variables with opts,
// evaluates and checks it. When the diagnostics have errors the Config is
// partial: only its Files (for printing the diagnostics) are reliable.
func Load(path string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	l := newLoader(opts)
	var sources []source
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return l.cfg, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Failed to read template",
			Detail:   fmt.Sprintf("Cannot read %s: %s.", path, unwrapPathErr(err)),
		}}
	case fi.IsDir():
		l.cfg.Dir = path
		ents, err := os.ReadDir(path)
		if err != nil {
			return l.cfg, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Failed to read template directory", Detail: err.Error()}}
		}
		for _, e := range ents {
			if e.IsDir() || !strings.HasSuffix(e.Name(), Extension) || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			name := filepath.Join(path, e.Name())
			src, err := os.ReadFile(name)
			if err != nil {
				l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to read file", Detail: err.Error()})
				continue
			}
			sources = append(sources, source{name, src})
		}
		if len(sources) == 0 && !l.diags.HasErrors() {
			return l.cfg, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "No template files",
				Detail:   fmt.Sprintf("The directory %s contains no *%s files.", path, Extension),
			}}
		}
	default:
		l.cfg.Dir = filepath.Dir(path)
		src, err := os.ReadFile(path)
		if err != nil {
			return l.cfg, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Failed to read template", Detail: err.Error()}}
		}
		sources = append(sources, source{path, src})
	}
	l.load(sources)
	return l.cfg, l.diags
}

// LoadSource is Load for templates held in memory: files maps a file name
// to its contents and dir is where file() resolves relative paths.
func LoadSource(files map[string][]byte, dir string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	l := newLoader(opts)
	l.cfg.Dir = dir
	var sources []source
	for _, name := range sortedKeys(files) {
		sources = append(sources, source{name, files[name]})
	}
	l.load(sources)
	return l.cfg, l.diags
}

func unwrapPathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

type source struct {
	name string
	src  []byte
}

// loader holds the state of one Load.
type loader struct {
	opts   LoadOptions
	parser *hclparse.Parser
	cfg    *Config
	diags  hcl.Diagnostics
	funcs  map[string]function.Function

	vars      map[string]*varDecl
	varOrder  []*varDecl
	localDefs map[string]*hcl.Attribute
	locals    map[string]cty.Value
	// providers holds explicit provider blocks by type, then name.
	providers map[string]map[string]*Provider
	implicit  map[string]*Provider
	cluster   string // name of the cluster block, for output references

	ctxVars    *hcl.EvalContext // var.* only (validation conditions)
	ctxLocals  *hcl.EvalContext // var.*, local.* (locals, providers)
	ctxCluster *hcl.EvalContext // plus provider.* (cluster, outputs' static part)

	// nodes indexes every named node by path, pools likewise, to check
	// hubs, gateways and cache.global without scanning.
	nodes map[string]*Node
	pools map[string]*Pool
}

func newLoader(opts LoadOptions) *loader {
	l := &loader{
		opts:      opts,
		parser:    hclparse.NewParser(),
		cfg:       &Config{},
		vars:      map[string]*varDecl{},
		localDefs: map[string]*hcl.Attribute{},
		locals:    map[string]cty.Value{},
		providers: map[string]map[string]*Provider{},
		implicit:  map[string]*Provider{},
		nodes:     map[string]*Node{},
		pools:     map[string]*Pool{},
	}
	l.cfg.Files = l.parser.Files()
	return l
}

func (l *loader) load(sources []source) {
	l.funcs = Functions(l.cfg.Dir)
	var varBlocks, localBlocks, provBlocks, clusterBlocks, outBlocks, stateBlocks []*hcl.Block
	firstFile := &hcl.File{}
	first := true
	syntaxErr := false
	for _, s := range sources {
		l.cfg.Sources = append(l.cfg.Sources, s.name)
		f, diags := l.parser.ParseHCL(s.src, s.name)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() || f == nil || f.Body == nil {
			syntaxErr = true
			continue
		}
		if first {
			firstFile, first = f, false
		}
		if diags := checkNumberLiterals(f.Body); diags.HasErrors() {
			l.diags = append(l.diags, diags...)
			syntaxErr = true
			continue
		}
		content, diags := f.Body.Content(topSchema)
		l.diags = append(l.diags, diags...)
		for _, b := range content.Blocks {
			switch b.Type {
			case "variable":
				varBlocks = append(varBlocks, b)
			case "locals":
				localBlocks = append(localBlocks, b)
			case "provider":
				provBlocks = append(provBlocks, b)
			case "cluster":
				clusterBlocks = append(clusterBlocks, b)
			case "output":
				outBlocks = append(outBlocks, b)
			case "state":
				stateBlocks = append(stateBlocks, b)
			}
		}
	}
	if syntaxErr {
		// A syntax error makes everything after it guesswork; report
		// only what the parser found.
		return
	}

	l.decodeVariables(varBlocks)
	l.assignVariables()
	l.ctxVars = &hcl.EvalContext{Variables: map[string]cty.Value{"var": l.varObject()}, Functions: l.funcs}
	l.validateVariables()
	l.evalLocals(localBlocks)
	l.ctxLocals = &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": l.varObject(), "local": cty.ObjectVal(l.locals)},
		Functions: l.funcs,
	}
	l.cfg.Locals = l.locals
	for _, b := range provBlocks {
		l.decodeProvider(b)
	}
	l.decodeState(stateBlocks)
	l.ctxCluster = &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":      l.varObject(),
			"local":    cty.ObjectVal(l.locals),
			"provider": l.providerObject(),
		},
		Functions: l.funcs,
	}

	switch len(clusterBlocks) {
	case 0:
		r := hcl.Range{Filename: "<template>", Start: hcl.InitialPos, End: hcl.InitialPos}
		if len(sources) > 0 {
			r.Filename = sources[0].name
		}
		if body, ok := firstFile.Body.(*hclsyntax.Body); ok {
			// Point at the end of the first file, where a block could go.
			r = hcl.Range{Filename: body.SrcRange.Filename, Start: body.SrcRange.End, End: body.SrcRange.End}
		}
		l.diags = append(l.diags, errorf(r, "Missing cluster block",
			"A template needs exactly one cluster \"NAME\" block describing the overlay and the sites."))
	default:
		for _, b := range clusterBlocks[1:] {
			l.diags = append(l.diags, errorf(b.DefRange, "Duplicate cluster block",
				"A template has exactly one cluster block; another one, %q, is defined at %s.",
				clusterBlocks[0].Labels[0], clusterBlocks[0].DefRange))
		}
		l.cluster = clusterBlocks[0].Labels[0]
	}
	l.decodeOutputs(outBlocks)
	if len(clusterBlocks) > 0 {
		l.cfg.Cluster = l.decodeCluster(clusterBlocks[0])
	}
	// Implicit providers go after the explicit ones, in type order, so
	// the result does not depend on map iteration.
	for _, t := range providerTypes {
		if p := l.implicit[t]; p != nil {
			l.cfg.Providers = append(l.cfg.Providers, p)
		}
	}
	sortDiags(l.diags)
}

// sortDiags orders diagnostics by file and position so output is stable;
// diagnostics without a subject keep their place at the front.
func sortDiags(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		default:
			return a.Start.Byte < b.Start.Byte
		}
	})
}

// validName reports whether name can be used as a site, node, pool or
// cluster name: it appears in dotted paths, so no dots or colons.
func validName(name string) bool {
	if name == "" || !hclsyntax.ValidIdentifier(name) {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (l *loader) checkName(kind, name string, r hcl.Range) bool {
	if validName(name) {
		return true
	}
	l.diags = append(l.diags, errorf(r, "Invalid "+kind+" name",
		"%q is not a valid %s name: a name starts with a letter and may contain letters, digits, underscores and dashes.", name, kind))
	return false
}

func (l *loader) checkIdent(kind, name string, r hcl.Range) bool {
	if hclsyntax.ValidIdentifier(name) {
		return true
	}
	l.diags = append(l.diags, errorf(r, "Invalid "+kind+" name",
		"%q is not a valid %s name: a name starts with a letter or underscore and may contain letters, digits, underscores and dashes.", name, kind))
	return false
}
