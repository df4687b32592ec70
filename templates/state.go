package templates

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// StateBackends are the state backends a state block may name.
var StateBackends = []string{"local", "pg", "s3"}

// StateSettings are the settings each backend accepts, in the state
// block or from -backend-config KEY=VALUE.
var StateSettings = map[string][]string{
	"local": {"path"},
	"pg":    {"conn_str", "schema"},
	"s3":    {"bucket", "key", "region", "endpoint", "use_path_style", "profile", "lock_lease"},
}

// StateConfig is the template's state block: where the state lives and
// how it is encrypted. A template without one has the local backend.
type StateConfig struct {
	Backend string
	// Settings are the backend's settings as strings (booleans as
	// "true"/"false"); the CLI merges -backend-config and the
	// environment over them.
	Settings      map[string]string
	SettingRanges map[string]hcl.Range
	Encryption    *StateEncryption
	DeclRange     hcl.Range
}

// StateEncryption is the state block's encryption block: exactly one of
// Passphrase (sensitive) and KeyEnv (the name of the environment
// variable holding the passphrase).
type StateEncryption struct {
	Passphrase string
	KeyEnv     string
	DeclRange  hcl.Range
}

var stateSchema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "backend"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "encryption"}},
	}
	seen := map[string]bool{}
	for _, b := range StateBackends {
		for _, a := range StateSettings[b] {
			if !seen[a] {
				seen[a] = true
				s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a})
			}
		}
	}
	return s
}()

var encryptionSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "passphrase"}, {Name: "key_env"}}}

// decodeState decodes the state blocks (at most one).
func (l *loader) decodeState(blocks []*hcl.Block) {
	if len(blocks) == 0 {
		return
	}
	for _, b := range blocks[1:] {
		l.diags = append(l.diags, errorf(b.DefRange, "Duplicate state block",
			"A template has at most one state block; another one is defined at %s.", blocks[0].DefRange))
	}
	b := blocks[0]
	sc := &StateConfig{Backend: "local", Settings: map[string]string{}, SettingRanges: map[string]hcl.Range{}, DeclRange: b.DefRange}
	content, diags := b.Body.Content(stateSchema)
	l.diags = append(l.diags, diags...)
	attrs := sortAttrs(content.Attributes)
	if a := content.Attributes["backend"]; a != nil {
		if s, ok := l.stateString(a); ok {
			if !contains(StateBackends, s) {
				l.diags = append(l.diags, errorf(a.Expr.Range(), "Unknown state backend",
					"There is no state backend %q.%s Backends are %s.", s, didYouMean(s, StateBackends), quotedList(StateBackends)))
				return
			}
			sc.Backend = s
		}
	}
	allowed := StateSettings[sc.Backend]
	for _, a := range attrs {
		if a.Name == "backend" {
			continue
		}
		if !contains(allowed, a.Name) {
			l.diags = append(l.diags, errorf(a.NameRange, "Setting of another backend",
				"%s is not a setting of the %s backend; its settings are %s.", a.Name, sc.Backend, quotedList(allowed)))
			continue
		}
		var s string
		ok := false
		if a.Name == "use_path_style" {
			v, vok := l.eval(a.Expr, l.ctxLocals, scopeLocals)
			if vok && !v.IsNull() {
				if bv, err := convert.Convert(v, cty.Bool); err == nil && bv.IsKnown() {
					s, ok = "false", true
					if bv.True() {
						s = "true"
					}
				} else {
					l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid use_path_style", "use_path_style is true or false."))
				}
			}
		} else {
			s, ok = l.stateString(a)
		}
		if !ok {
			continue
		}
		if msg := CheckStateSetting(sc.Backend, a.Name, s); msg != "" {
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid "+a.Name, "%s", msg))
			continue
		}
		sc.Settings[a.Name] = s
		sc.SettingRanges[a.Name] = a.Expr.Range()
	}
	for _, eb := range content.Blocks {
		if sc.Encryption != nil {
			l.diags = append(l.diags, errorf(eb.DefRange, "Duplicate encryption block",
				"A state block has at most one encryption block; another one is at %s.", sc.Encryption.DeclRange))
			continue
		}
		enc := &StateEncryption{DeclRange: eb.DefRange}
		ec, diags := eb.Body.Content(encryptionSchema)
		l.diags = append(l.diags, diags...)
		pa, ka := ec.Attributes["passphrase"], ec.Attributes["key_env"]
		switch {
		case pa != nil && ka != nil:
			l.diags = append(l.diags, errorf(ka.NameRange, "Both passphrase and key_env",
				"The encryption block takes the passphrase (passphrase) or the name of the environment variable holding it (key_env), not both."))
			continue
		case pa == nil && ka == nil:
			l.diags = append(l.diags, errorf(eb.DefRange, "No passphrase",
				"The encryption block needs passphrase = var.NAME (a sensitive variable) or key_env = \"ENV_VAR\" (an environment variable holding the passphrase)."))
			continue
		case pa != nil:
			s, ok := l.stateString(pa)
			if !ok {
				continue
			}
			if s == "" {
				l.diags = append(l.diags, errorf(pa.Expr.Range(), "Empty passphrase", "The state passphrase is empty; give it a value, or remove the encryption block."))
				continue
			}
			enc.Passphrase = s
		default:
			s, ok := l.stateString(ka)
			if !ok {
				continue
			}
			if !validEnvName(s) {
				l.diags = append(l.diags, errorf(ka.Expr.Range(), "Invalid key_env",
					"key_env is the name of an environment variable (letters, digits and underscores, not starting with a digit), such as \"HVCTL_STATE_KEY\"; %q is not one.", s))
				continue
			}
			enc.KeyEnv = s
		}
		sc.Encryption = enc
	}
	l.cfg.State = sc
}

// stateString evaluates a state setting that must be a non-null string.
func (l *loader) stateString(a *hcl.Attribute) (string, bool) {
	v, ok := l.eval(a.Expr, l.ctxLocals, scopeLocals)
	if !ok {
		return "", false
	}
	if v.IsNull() {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid "+a.Name, "%s must not be null.", a.Name))
		return "", false
	}
	v, _ = v.Unmark()
	s, err := convert.Convert(v, cty.String)
	if err != nil || !s.IsKnown() {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid "+a.Name, "%s must be a string.", a.Name))
		return "", false
	}
	return s.AsString(), true
}

// CheckStateSetting checks one backend setting's value; it returns what
// is wrong, or "". The CLI checks -backend-config values with it too.
func CheckStateSetting(backend, key, value string) string {
	switch key {
	case "schema":
		if !validEnvName(value) || strings.ToLower(value) != value || len(value) > 63 {
			return "The schema is a PostgreSQL identifier: lower-case letters, digits and underscores, not starting with a digit, at most 63 characters; " + quote(value) + " is not one."
		}
	case "use_path_style":
		if value != "true" && value != "false" {
			return "use_path_style is true or false, not " + quote(value) + "."
		}
	case "lock_lease":
		if d, err := time.ParseDuration(value); err != nil || d < time.Second {
			return "lock_lease is a duration of at least 1s, like \"1m\", not " + quote(value) + "."
		}
	case "bucket", "path", "key", "conn_str":
		if value == "" {
			return key + " must not be empty."
		}
	}
	return ""
}

func quote(s string) string { return "\"" + s + "\"" }

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// StateEnv are the environment variables that give backend settings a
// state block leaves out: credentials stay out of templates.
var StateEnv = map[string]map[string]string{
	"pg": {"conn_str": "HVCTL_PG_CONN_STR", "schema": "HVCTL_PG_SCHEMA"},
}

// ResolveState returns the backend settings of sc (nil: local state)
// with the environment (os.Environ form) filling settings the template
// leaves out and -backend-config KEY=VALUE pairs (kvs) overriding both;
// defaults: pg schema "hvctl". An error names the pair or variable
// that is wrong.
func ResolveState(sc *StateConfig, kvs []string, environ []string) (*StateConfig, error) {
	out := &StateConfig{Backend: "local", Settings: map[string]string{}, SettingRanges: map[string]hcl.Range{}}
	if sc != nil {
		out.Backend, out.Encryption, out.DeclRange = sc.Backend, sc.Encryption, sc.DeclRange
		for k, v := range sc.Settings {
			out.Settings[k] = v
			out.SettingRanges[k] = sc.SettingRanges[k]
		}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for key, name := range StateEnv[out.Backend] {
		if _, set := out.Settings[key]; set {
			continue
		}
		if v, ok := env[name]; ok && v != "" {
			if msg := CheckStateSetting(out.Backend, key, v); msg != "" {
				return nil, fmt.Errorf("environment variable %s: %s", name, msg)
			}
			out.Settings[key] = v
		}
	}
	allowed := StateSettings[out.Backend]
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-backend-config %q: expected KEY=VALUE", kv)
		}
		if !contains(allowed, k) {
			return nil, fmt.Errorf("-backend-config %s: %s is not a setting of the %s backend; its settings are %s%s",
				kv, k, out.Backend, quotedList(allowed), didYouMean(k, allowed))
		}
		if msg := CheckStateSetting(out.Backend, k, v); msg != "" {
			return nil, fmt.Errorf("-backend-config %s: %s", k, msg)
		}
		out.Settings[k] = v
		delete(out.SettingRanges, k)
	}
	switch out.Backend {
	case "pg":
		if out.Settings["conn_str"] == "" {
			return nil, fmt.Errorf("the pg state backend needs conn_str: set it in the state block, in HVCTL_PG_CONN_STR, or with -backend-config conn_str=postgres://...")
		}
		if out.Settings["schema"] == "" {
			out.Settings["schema"] = "hvctl"
		}
	case "s3":
		if out.Settings["bucket"] == "" {
			return nil, fmt.Errorf("the s3 state backend needs bucket: set it in the state block or with -backend-config bucket=NAME")
		}
	}
	return out, nil
}

// PassphraseFrom returns the state passphrase of enc (nil: no encryption,
// ""), reading key_env from environ. An unset variable is an error.
func (enc *StateEncryption) PassphraseFrom(environ []string) (string, error) {
	if enc == nil {
		return "", nil
	}
	if enc.KeyEnv == "" {
		return enc.Passphrase, nil
	}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == enc.KeyEnv {
			if v == "" {
				break
			}
			return v, nil
		}
	}
	return "", fmt.Errorf("the state is encrypted with the passphrase in the environment variable %s (key_env), which is not set", enc.KeyEnv)
}
