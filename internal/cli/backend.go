package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/statecrypt"
	"github.com/hvctl/hvctl/templates"
)

// stateStore is the store of a loaded template's state: its state block
// with the environment and -backend-config over it, -workspace, and
// -state for local state (cluster.StateStore).
func (a *App) stateStore(t *tmplFlags, tmpl string, cfg *templates.Config) (*provision.Store, error) {
	return cluster.StateStore(cfg, tmpl, t.stateOptions(a.Environ))
}

// storeOf is the store of resolved state settings rs (a state block, or
// init -migrate-state's -from-backend; cluster.StoreOf).
func (a *App) storeOf(rs *templates.StateConfig, t *tmplFlags, tmpl string, cfg *templates.Config) (*provision.Store, error) {
	return cluster.StoreOf(rs, cfg, tmpl, t.stateOptions(a.Environ))
}

// readStore is the store of the verbs that read or edit the state
// without opening the cluster (show, state, output; cluster.ReadStore).
func (a *App) readStore(t *tmplFlags, tmpl string) (*provision.Store, error) {
	return cluster.ReadStore(tmpl, t.vars, t.stateOptions(a.Environ))
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
