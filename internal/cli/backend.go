package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/pgstate"
	"github.com/hvctl/hvctl/provision/s3state"
	"github.com/hvctl/hvctl/provision/statecrypt"
	"github.com/hvctl/hvctl/templates"
)

// backends opens the remote state backends by name (pg, s3); each
// registers itself in an init.
var backends = map[string]func(settings map[string]string, cluster, workspace string) (provision.Backend, error){
	"pg": func(settings map[string]string, cluster, workspace string) (provision.Backend, error) {
		return pgstate.New(settings, cluster, workspace)
	},
	"s3": func(settings map[string]string, cluster, workspace string) (provision.Backend, error) {
		return s3state.New(context.Background(), settings, cluster, workspace)
	},
}

// stateStore is the store of a loaded template's state: its state block
// with the environment and -backend-config over it, -workspace, and
// -state for local state.
func (a *App) stateStore(t *tmplFlags, tmpl string, cfg *templates.Config) (*provision.Store, error) {
	var sc *templates.StateConfig
	if cfg != nil {
		sc = cfg.State
	}
	rs, err := templates.ResolveState(sc, t.backendConfig, a.Environ)
	if err != nil {
		return nil, err
	}
	return a.storeOf(rs, t, tmpl, cfg)
}

// storeOf is the store of resolved state settings rs (a state block, or
// init -migrate-state's -from-backend).
func (a *App) storeOf(rs *templates.StateConfig, t *tmplFlags, tmpl string, cfg *templates.Config) (*provision.Store, error) {
	ws := t.workspace
	if ws == "" {
		ws = "default"
	}
	if !validWorkspace(ws) {
		return nil, fmt.Errorf("-workspace %q: a workspace name has letters, digits, '-' and '_' (at most 64)", ws)
	}
	store := t.store(tmpl)
	switch rs.Backend {
	case "local":
		if p, ok := rs.Settings["path"]; ok && t.statePath == "" {
			if _, fromTemplate := rs.SettingRanges["path"]; fromTemplate && !filepath.IsAbs(p) && cfg != nil {
				p = filepath.Join(cfg.Dir, p)
			}
			store.Path = p
		}
		if ws != "default" && t.statePath == "" {
			// Terraform keeps other workspaces' local states apart too.
			store.Path = filepath.Join(filepath.Dir(store.Path), "workspaces", ws, filepath.Base(store.Path))
		}
	default:
		if t.statePath != "" {
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
	pass, err := rs.Encryption.PassphraseFrom(a.Environ)
	if err != nil {
		return nil, err
	}
	if pass != "" {
		store.Sealer = statecrypt.New(pass)
	}
	return store, nil
}

func validWorkspace(s string) bool {
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

// readStore is the store of the verbs that read or edit the state
// without a session (show, state, output): -state when given, else the
// template's state block when the template at tmpl loads (quietly; a
// template that does not load leaves the local default).
func (a *App) readStore(t *tmplFlags, tmpl string) (*provision.Store, error) {
	if t.statePath != "" {
		return t.store(tmpl), nil
	}
	if _, err := os.Stat(tmpl); err == nil {
		cfg, d := templates.Load(tmpl, templates.LoadOptions{Args: t.vars, Environ: a.Environ})
		if !d.HasErrors() && (cfg.State != nil || len(t.backendConfig) > 0 || t.workspace != "default" && t.workspace != "") {
			return a.stateStore(t, tmpl, cfg)
		}
	}
	return t.store(tmpl), nil
}

// stateRekey writes the state again under the passphrase in the
// environment variable env, locked, and reads it back with it. The old
// passphrase (the state block's) must open it first.
func (a *App) stateRekey(store *provision.Store, env string, timeout time.Duration) int {
	if env == "" {
		return a.fail("state rekey needs -new-key-env", "Usage: NEW=... hvctl state rekey -new-key-env NEW: the new passphrase comes from an environment variable, never the command line.")
	}
	pass, err := (&templates.StateEncryption{KeyEnv: env}).PassphraseFrom(a.Environ)
	if err != nil {
		return a.fail("No new passphrase", err.Error())
	}
	if store.Sealer == nil {
		return a.fail("The state is not encrypted", "state rekey changes the passphrase of an encrypted state; add encryption { key_env = \"...\" } to the state block to encrypt it (the next write does).")
	}
	l, err := store.Lock(a.Ctx, "state rekey", timeout)
	if err != nil {
		return a.failErr(err)
	}
	defer l.Unlock()
	// The elastic daemon's journal and history are sealed with the
	// state's passphrase too: not while it runs, and resealed with the
	// state (prepared first, so a file that does not open stops the
	// rekey before anything is written).
	el, err := (&provision.Store{Path: filepath.Join(store.Dir(), "elastic")}).Lock(a.Ctx, "state rekey", 0)
	if err != nil {
		var le *provision.LockError
		if errors.As(err, &le) && le.Holder != nil {
			return a.fail("The elastic daemon runs", fmt.Sprintf("Process %d runs the elastic daemon, whose journal and history are sealed with the state's passphrase; stop it (kill %d), rekey, and start it again with the new passphrase. Nothing was changed.", le.Holder.PID, le.Holder.PID))
		}
		return a.failErr(err)
	}
	defer el.Unlock()
	st, err := store.Load()
	if err != nil {
		return a.failErr(err)
	}
	newSealer := statecrypt.New(pass)
	resealed := map[string][]byte{}
	for _, name := range []string{"elastic-journal.json", elastic.HistoryFile} {
		path := filepath.Join(store.Dir(), name)
		b, err := elastic.Reseal(path, store.Sealer, newSealer)
		if err != nil {
			return a.fail("Cannot rekey the elastic files", err.Error()+". Nothing was changed.")
		}
		if b != nil {
			resealed[path] = b
		}
	}
	store.Close()
	store.Sealer = newSealer
	if err := store.Write(st); err != nil {
		return a.failErr(err)
	}
	for path, b := range resealed {
		if err := provision.WriteFileAtomic(path, b); err != nil {
			return a.fail("The state was rekeyed, an elastic file was not", fmt.Sprintf("%s: %v. It is still sealed with the old passphrase; move it aside before the elastic daemon starts.", path, err))
		}
	}
	if store.Backend == nil {
		// Once more, so state.json.backup holds no copy under the old
		// passphrase either.
		if err := store.Write(st); err != nil {
			return a.failErr(err)
		}
	}
	check := &provision.Store{Path: store.Path, Backend: store.Backend, Sealer: statecrypt.New(pass)}
	if _, err := check.Load(); err != nil {
		return a.failErr(fmt.Errorf("reading the rekeyed state back: %w", err))
	}
	fmt.Fprintf(a.Stdout, "The state in %s is now encrypted with the passphrase in %s.\nPoint the state block at it (key_env = %q) before the next command.\n", store.Describe(), env, env)
	return exitOK
}
