package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/pgstate"
	"github.com/hvctl/hvctl/provision/s3state"
	"github.com/hvctl/hvctl/provision/statecrypt"
	"github.com/hvctl/hvctl/templates"
)

// StateOptions say where a template's state is beyond its state block.
type StateOptions struct {
	// StatePath is a local state file (-state); "" is the block's, or
	// .hvctl/state.json beside the template.
	StatePath string
	// Workspace is "default" when empty.
	Workspace string
	// BackendConfig are KEY=VALUE settings over the state block.
	BackendConfig []string
	// Environ is read for backend settings and the passphrase.
	Environ []string
}

func (o Options) stateOptions() StateOptions {
	return StateOptions{StatePath: o.StatePath, Workspace: o.Workspace, BackendConfig: o.BackendConfig, Environ: o.Environ}
}

// backends open the remote state backends by name.
var backends = map[string]func(settings map[string]string, cluster, workspace string) (provision.Backend, error){
	"pg": func(settings map[string]string, cluster, workspace string) (provision.Backend, error) {
		return pgstate.New(settings, cluster, workspace)
	},
	"s3": func(settings map[string]string, cluster, workspace string) (provision.Backend, error) {
		return s3state.New(context.Background(), settings, cluster, workspace)
	},
}

// DefaultStatePath is .hvctl/state.json next to the template.
func DefaultStatePath(tmpl string) string {
	dir := tmpl
	if st, err := os.Stat(tmpl); err == nil && !st.IsDir() {
		dir = filepath.Dir(tmpl)
	}
	return filepath.Join(dir, ".hvctl", "state.json")
}

// LocalStore is the local state file of tmpl: o.StatePath, else the
// default beside the template.
func LocalStore(tmpl string, o StateOptions) *provision.Store {
	p := o.StatePath
	if p == "" {
		p = DefaultStatePath(tmpl)
	}
	return &provision.Store{Path: p}
}

// StateStore is the store of a loaded template's state: its state
// block with the environment and BackendConfig over it, the workspace,
// and StatePath for local state. cfg may be nil (local state only).
func StateStore(cfg *templates.Config, tmpl string, o StateOptions) (*provision.Store, error) {
	var sc *templates.StateConfig
	if cfg != nil {
		sc = cfg.State
	}
	rs, err := templates.ResolveState(sc, o.BackendConfig, o.Environ)
	if err != nil {
		return nil, err
	}
	return StoreOf(rs, cfg, tmpl, o)
}

// StoreOf is the store of resolved state settings rs (a state block,
// or init -migrate-state's -from-backend).
func StoreOf(rs *templates.StateConfig, cfg *templates.Config, tmpl string, o StateOptions) (*provision.Store, error) {
	ws := o.Workspace
	if ws == "" {
		ws = "default"
	}
	if !ValidWorkspace(ws) {
		return nil, fmt.Errorf("-workspace %q: a workspace name has letters, digits, '-' and '_' (at most 64)", ws)
	}
	store := LocalStore(tmpl, o)
	switch rs.Backend {
	case "local":
		if p, ok := rs.Settings["path"]; ok && o.StatePath == "" {
			if _, fromTemplate := rs.SettingRanges["path"]; fromTemplate && !filepath.IsAbs(p) && cfg != nil {
				p = filepath.Join(cfg.Dir, p)
			}
			store.Path = p
		}
		if ws != "default" && o.StatePath == "" {
			// Terraform keeps other workspaces' local states apart too.
			store.Path = filepath.Join(filepath.Dir(store.Path), "workspaces", ws, filepath.Base(store.Path))
		}
	default:
		if o.StatePath != "" {
			return nil, fmt.Errorf("-state names a local state file, but the template's state is in the %s backend; remove -state", rs.Backend)
		}
		open := backends[rs.Backend]
		if open == nil {
			return nil, fmt.Errorf("the %s state backend is not built into this hvctl", rs.Backend)
		}
		if cfg == nil || cfg.Cluster == nil {
			return nil, fmt.Errorf("the %s state backend keys the state by cluster name, and the template has no cluster", rs.Backend)
		}
		b, err := open(rs.Settings, cfg.Cluster.Name, ws)
		if err != nil {
			return nil, err
		}
		store.Backend = b
	}
	pass, err := rs.Encryption.PassphraseFrom(o.Environ)
	if err != nil {
		return nil, err
	}
	if pass != "" {
		store.Sealer = statecrypt.New(pass)
	}
	return store, nil
}

// ValidWorkspace reports whether s is a workspace name.
func ValidWorkspace(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ReadStore is the store of the verbs that read or edit the state
// without opening the cluster (show, state, output, the daemon's view
// of its machines): StatePath when given, else the template's state
// block when the template loads (quietly: a template that does not
// load leaves the local default).
func ReadStore(tmpl string, vars []templates.VarArg, o StateOptions) (*provision.Store, error) {
	if o.StatePath != "" {
		return LocalStore(tmpl, o), nil
	}
	if _, err := os.Stat(tmpl); err == nil {
		cfg, d := templates.Load(tmpl, templates.LoadOptions{Args: vars, Environ: o.Environ})
		if !d.HasErrors() && (cfg.State != nil || len(o.BackendConfig) > 0 || o.Workspace != "default" && o.Workspace != "") {
			return StateStore(cfg, tmpl, o)
		}
	}
	return LocalStore(tmpl, o), nil
}
