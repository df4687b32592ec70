package pulumiprov

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/provision"
)

// Inputs are a Cluster resource's inputs.
type Inputs struct {
	// Template is a path to a .hcl file or a directory of them
	// (relative to the directory the engine starts the plugin in: the
	// Pulumi project's, or an Automation API program's working
	// directory), or the HCL itself:
	// a value with a newline or a '{' is inline HCL.
	Template string
	// Vars set template variables, as -var NAME=VALUE does.
	Vars map[string]string
	// Workspace is hvctl's workspace: one state per cluster and
	// workspace (default "default").
	Workspace string
	// State are state backend settings over the template's state
	// block, as -backend-config KEY=VALUE.
	State map[string]string
	// WorkDir is where hvctl keeps this cluster's local state
	// (WorkDir/.hvctl/state.json), the sim and local providers' worlds
	// and an inline template (WorkDir/main.hcl). Default:
	// PROGRAM_DIR/.hvctl-pulumi/STACK/NAME, fixed at the first Check.
	WorkDir string
}

// The input and output property names.
const (
	pTemplate  = "template"
	pVars      = "vars"
	pWorkspace = "workspace"
	pState     = "state"
	pWorkDir   = "workDir"

	pClusterName = "clusterName"
	pHubEndpoint = "hubEndpoint"
	pOverlayCIDR = "overlayCidr"
	pNodes       = "nodes"
	pOutputs     = "outputs"
	pStatePath   = "statePath"
	pResources   = "resources"

	// pPlan names hvctl's planned changes in a detailed diff.
	pPlan = "plan"
)

// inputNames are the input properties, in schema order.
var inputNames = []string{pTemplate, pVars, pWorkspace, pState, pWorkDir}

// inline reports whether a template value is HCL rather than a path.
func inline(tmpl string) bool { return strings.ContainsAny(tmpl, "\n{") }

// failure is one problem with the inputs, at a property.
type failure struct{ property, reason string }

// decodeInputs reads inputs from a property map. unknown lists the
// inputs not known yet (preview with values from other resources).
func decodeInputs(m resource.PropertyMap) (in Inputs, unknown []string, fails []failure) {
	str := func(name string) string {
		v, ok := m[resource.PropertyKey(name)]
		if !ok || v.IsNull() {
			return ""
		}
		if v.ContainsUnknowns() {
			unknown = append(unknown, name)
			return ""
		}
		v = unsecret(v)
		if !v.IsString() {
			fails = append(fails, failure{name, fmt.Sprintf("%s must be a string, not %s", name, v.TypeString())})
			return ""
		}
		return v.StringValue()
	}
	strMap := func(name string, scalars bool) map[string]string {
		v, ok := m[resource.PropertyKey(name)]
		if !ok || v.IsNull() {
			return nil
		}
		if v.ContainsUnknowns() {
			unknown = append(unknown, name)
			return nil
		}
		v = unsecret(v)
		if !v.IsObject() {
			fails = append(fails, failure{name, fmt.Sprintf("%s must be a map of strings, not %s", name, v.TypeString())})
			return nil
		}
		out := map[string]string{}
		for k, e := range v.ObjectValue() {
			s, err := scalar(unsecret(e), scalars)
			if err != nil {
				fails = append(fails, failure{name + "." + string(k), fmt.Sprintf("%s.%s: %v", name, k, err)})
				continue
			}
			out[string(k)] = s
		}
		return out
	}
	in.Template = str(pTemplate)
	in.Vars = strMap(pVars, true)
	in.Workspace = str(pWorkspace)
	in.State = strMap(pState, false)
	in.WorkDir = str(pWorkDir)
	if in.Template == "" && !contains(unknown, pTemplate) {
		fails = append(fails, failure{pTemplate, "template is required: a path to a .hcl file or directory, or the template's HCL"})
	}
	if in.Workspace != "" && !cluster.ValidWorkspace(in.Workspace) {
		fails = append(fails, failure{pWorkspace, fmt.Sprintf("workspace %q: a workspace name has letters, digits, '-' and '_' (at most 64)", in.Workspace)})
	}
	for k, v := range in.State {
		if k == "" {
			fails = append(fails, failure{pState, "a state setting needs a name"})
		}
		if k == "conn_str" && hasPassword(v) {
			fails = append(fails, failure{pState + ".conn_str", "state.conn_str holds a password, which Pulumi would keep in its state: set the connection string in HVCTL_PG_CONN_STR (or the password in PGPASSWORD or ~/.pgpass) in the environment instead"})
		}
	}
	return in, unknown, fails
}

// scalar turns a variable's value into its -var text: strings as they
// are, numbers and bools as HCL literals, and (when allowed) lists and
// maps as JSON, which HCL reads as tuples and objects.
func scalar(v resource.PropertyValue, structured bool) (string, error) {
	switch {
	case v.IsString():
		return v.StringValue(), nil
	case v.IsNumber():
		return strconv.FormatFloat(v.NumberValue(), 'f', -1, 64), nil
	case v.IsBool():
		return strconv.FormatBool(v.BoolValue()), nil
	case structured && (v.IsArray() || v.IsObject()):
		b, err := json.Marshal(v.Mappable())
		return string(b), err
	}
	return "", fmt.Errorf("must be a string, number or bool, not %s", v.TypeString())
}

func unsecret(v resource.PropertyValue) resource.PropertyValue {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	return v
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Spec is one cluster operation's inputs, resolved: what Clusters act on.
type Spec struct {
	// Template is the absolute path of the template file or directory.
	Template string
	// Vars are the template variables (NAME=VALUE, sorted by name).
	Vars [][2]string
	// Workspace is hvctl's workspace ("default" when not set).
	Workspace string
	// BackendConfig are KEY=VALUE state settings over the template's
	// state block, sorted.
	BackendConfig []string
	// StatePath is the local state file, used when the state backend
	// is local and no path setting names another.
	StatePath string
	// Dir is the resource's working directory.
	Dir string
}

// spec resolves inputs against base (the Pulumi program's directory).
// With write, an inline template is written to Dir/main.hcl first.
func (in Inputs) spec(base string, write bool) (Spec, error) {
	dir := in.WorkDir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(base, dir)
	}
	s := Spec{Workspace: in.Workspace, Dir: dir, StatePath: filepath.Join(dir, ".hvctl", "state.json")}
	if s.Workspace == "" {
		s.Workspace = "default"
	}
	for _, k := range sortedKeys(in.Vars) {
		s.Vars = append(s.Vars, [2]string{k, in.Vars[k]})
	}
	for _, k := range sortedKeys(in.State) {
		s.BackendConfig = append(s.BackendConfig, k+"="+in.State[k])
	}
	if inline(in.Template) {
		s.Template = filepath.Join(dir, "main.hcl")
		if write {
			if err := writeTemplate(s.Template, in.Template); err != nil {
				return s, err
			}
		}
		return s, nil
	}
	s.Template = in.Template
	if !filepath.IsAbs(s.Template) {
		s.Template = filepath.Join(base, s.Template)
	}
	return s, nil
}

// writeTemplate writes an inline template unless the file already has it.
func writeTemplate(path, src string) error {
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, []byte(src)) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write the inline template: %w", err)
	}
	if err := provision.WriteFileAtomic(path, []byte(src)); err != nil {
		return fmt.Errorf("write the inline template: %w", err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// defaultWorkDir is PROGRAM_DIR/.hvctl-pulumi/STACK/NAME for a resource.
func defaultWorkDir(base string, urn resource.URN) string {
	stack, name := "stack", "cluster"
	if urn.IsValid() {
		stack, name = urn.Stack().String(), urn.Name()
	}
	return filepath.Join(base, ".hvctl-pulumi", safeName(stack), safeName(name))
}

// safeName keeps a stack or resource name usable as one path element.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if out := b.String(); out != "" && out != "." && out != ".." {
		return out
	}
	return "_"
}

// hasPassword reports whether a PostgreSQL connection string (URL or
// keyword form) carries a password.
func hasPassword(conn string) bool {
	if u, err := url.Parse(conn); err == nil && u.Scheme != "" && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	if u, err := url.Parse(conn); err == nil && u.Query().Has("password") {
		return true
	}
	for _, f := range strings.Fields(conn) {
		if strings.HasPrefix(strings.ToLower(f), "password=") {
			return true
		}
	}
	return false
}
