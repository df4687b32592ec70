package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/statecrypt"
	"github.com/hvctl/hvctl/templates"
)

func init() {
	register(&command{name: "init", usage: "[PATH] [options]", help: "Check the template and its providers and set up the state backend", run: runInit,
		examples: []string{"hvctl init -input=false", "hvctl init -backend-config path=/var/lib/hvctl/prod.json"}})
	register(&command{name: "force-unlock", usage: "LOCK_ID [PATH] [options]", help: "Remove a state lock whose holder is gone (as hvctl state unlock)", run: runForceUnlock,
		examples: []string{"hvctl force-unlock 3f2a9c1e-..."}})
}

// runInit is Terraform's init for CI scripts: it loads the template,
// configures every provider (their settings and preflight checks, no
// API call) and checks the state backend. For local state there is
// nothing to set up; -backend-config path=FILE is the state file.
func runInit(a *App, args []string) int {
	c := findCommand("init")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optInput|optLock)
	migrate := fs.Bool("migrate-state", false, "copy the state into the configured backend, locked on both sides, verified by reading it back: from the local state file (-state, or the default beside the template), or from -from-backend")
	fromBackend := fs.String("from-backend", "", "with -migrate-state: the backend the state is in now (local, pg or s3), for a move between backends")
	var fromConfig []string
	fs.Func("from-backend-config", "with -from-backend: a setting KEY=VALUE of the backend the state is in now (repeatable; the environment fills the rest)", func(s string) error {
		if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
			return fmt.Errorf("expected KEY=VALUE, got %q", s)
		}
		fromConfig = append(fromConfig, s)
		return nil
	})
	fromKeyEnv := fs.String("from-key-env", "", "with -from-backend: the environment variable with the passphrase the state is encrypted with now (default: the state block's)")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	tmpl := templatePath(pos)
	cfg, ok := a.load(tmpl, o.vars)
	if !ok {
		return exitError
	}
	if !*migrate && (*fromBackend != "" || len(fromConfig) > 0 || *fromKeyEnv != "") {
		return a.fail("-from-backend needs -migrate-state", "-from-backend, -from-backend-config and -from-key-env name where init -migrate-state moves the state from.")
	}
	if *fromBackend == "" && (len(fromConfig) > 0 || *fromKeyEnv != "") {
		return a.fail("-from-backend-config and -from-key-env need -from-backend", "Name the backend the state is in now: -from-backend local, pg or s3.")
	}
	var src *provision.Store
	var err error
	if *migrate {
		if *fromBackend != "" {
			if src, err = a.migrationSource(&o.tmplFlags, tmpl, cfg, *fromBackend, fromConfig, *fromKeyEnv); err != nil {
				return a.fail("Invalid -from-backend", err.Error())
			}
			defer src.Close()
		} else {
			src = o.tmplFlags.store(tmpl)
		}
		o.statePath = "" // -state names the source; the block the destination
	}
	store, err := a.stateStore(&o.tmplFlags, tmpl, cfg)
	if err != nil {
		return a.fail("Invalid state backend", err.Error())
	}
	eng, d := provision.NewEngine(cfg, store)
	if a.diags(cfg.Files, d) {
		return exitError
	}
	if src != nil {
		if src.Sealer == nil {
			src.Sealer = store.Sealer
		}
		if err := a.migrateState(src, store, o.lockTimeout); err != nil {
			return a.fail("State migration failed", err.Error())
		}
	}
	if _, err := store.Load(); err != nil {
		return a.failErr(err)
	}
	var names []string
	for _, p := range cfg.Providers {
		if _, ok := eng.Provider(p.Ref()); ok {
			names = append(names, p.Ref())
		}
	}
	sort.Strings(names)
	where := "local state: " + store.Path
	if store.Backend != nil {
		where = store.Backend.Describe()
	}
	if store.Sealer != nil {
		where += " (encrypted)"
	}
	fmt.Fprintf(a.Stdout, "Initializing the backend...\n  %s\n\nInitializing providers...\n", where)
	for _, n := range names {
		fmt.Fprintf(a.Stdout, "  - %s: configured (built in)\n", n)
	}
	fmt.Fprintf(a.Stdout, "\n%s\n\nYou may now begin working with hvctl. Try running \"hvctl plan\" to see\nany changes that are required for your infrastructure.\n", a.bold("hvctl has been successfully initialized!"))
	return exitOK
}

func runForceUnlock(a *App, args []string) int {
	c := findCommand("force-unlock")
	fs := a.flagSet(c)
	var t tmplFlags
	fs.StringVar(&t.statePath, "state", "", "state file (default .hvctl/state.json next to the template)")
	t.addBackend(fs)
	fs.Bool("force", false, "accepted for Terraform scripts: hvctl never asks, and refuses while the holder runs")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return a.fail("force-unlock needs the lock ID", "Usage: hvctl force-unlock LOCK_ID [PATH]; the ID is shown in the lock error.")
	}
	if !a.atMost(c, pos, 2) {
		return exitError
	}
	tmpl := templatePath(pos[1:])
	store := t.store(tmpl)
	if _, err := os.Stat(tmpl); err == nil {
		// The template says where the state is (its state block).
		cfg, ok := a.load(tmpl, nil)
		if !ok {
			return exitError
		}
		s, err := a.stateStore(&t, tmpl, cfg)
		if err != nil {
			return a.fail("Invalid state backend", err.Error())
		}
		store = s
	}
	if err := store.ForceUnlock(pos[0]); err != nil {
		return a.failErr(err)
	}
	fmt.Fprintln(a.Stdout, "hvctl state has been successfully unlocked!")
	return exitOK
}

// migrationSource is the store init -migrate-state -from-backend reads:
// backend from with its settings from kvs and the environment, the same
// cluster and workspace, the passphrase from keyEnv when given.
func (a *App) migrationSource(t *tmplFlags, tmpl string, cfg *templates.Config, from string, kvs []string, keyEnv string) (*provision.Store, error) {
	if !slices.Contains(templates.StateBackends, from) {
		return nil, fmt.Errorf("-from-backend %q: the backends are %s", from, strings.Join(templates.StateBackends, ", "))
	}
	rs, err := templates.ResolveState(&templates.StateConfig{Backend: from}, kvs, a.Environ)
	if err != nil {
		return nil, err
	}
	src, err := a.storeOf(rs, &tmplFlags{statePath: t.statePath, workspace: t.workspace}, tmpl, cfg)
	if err != nil {
		return nil, err
	}
	if keyEnv != "" {
		pass, err := (&templates.StateEncryption{KeyEnv: keyEnv}).PassphraseFrom(a.Environ)
		if err != nil {
			return nil, fmt.Errorf("-from-key-env: %w", err)
		}
		src.Sealer = statecrypt.New(pass)
	}
	return src, nil
}

// migrateState copies the state of src into dst, both locked, and reads
// it back to check it. It refuses to overwrite a destination that
// already holds another lineage's resources, and leaves src as it was.
func (a *App) migrateState(src, dst *provision.Store, timeout time.Duration) error {
	if (dst.Backend == nil) == (src.Backend == nil) && dst.Describe() == src.Describe() ||
		dst.Backend == nil && src.Backend == nil && filepath.Clean(dst.Path) == filepath.Clean(src.Path) {
		fmt.Fprintln(a.Stdout, "The state is already where the state block puts it: nothing to migrate.")
		return nil
	}
	if src.Backend == nil && !src.Exists() {
		return fmt.Errorf("there is no local state at %s to migrate", src.Path)
	}
	ls, err := src.Lock(a.Ctx, "init -migrate-state", timeout)
	if err != nil {
		return fmt.Errorf("locking the source, %s: %w", src.Describe(), err)
	}
	defer ls.Unlock()
	ld, err := dst.Lock(a.Ctx, "init -migrate-state", timeout)
	if err != nil {
		return fmt.Errorf("locking the destination, %s: %w", dst.Describe(), err)
	}
	defer ld.Unlock()
	st, err := src.Load()
	if err != nil {
		return fmt.Errorf("reading the source, %s: %w", src.Describe(), err)
	}
	if src.Backend != nil && st.Lineage == "" && len(st.Resources) == 0 {
		return fmt.Errorf("there is no state in %s to migrate", src.Describe())
	}
	old, err := dst.Load()
	if errors.Is(err, statecrypt.ErrWrongPassphrase) && src.Sealer != nil && src.Sealer != dst.Sealer {
		// An earlier copy under the source's passphrase (moving back
		// with a new one): read it with that to check its lineage.
		sealer := dst.Sealer
		dst.Sealer = src.Sealer
		old, err = dst.Load()
		dst.Sealer = sealer
	}
	if err != nil {
		return fmt.Errorf("reading the destination, %s: %w", dst.Describe(), err)
	}
	if len(old.Resources) > 0 && old.Lineage != st.Lineage {
		return fmt.Errorf("%s already holds another state (lineage %s, %s); hvctl does not overwrite it. Destroy or move that state first", dst.Describe(), old.Lineage, provision.Plural(len(old.Resources), "resource", "resources"))
	}
	want, _ := json.Marshal(st.Resources)
	if err := dst.Write(st); err != nil {
		return err
	}
	back, err := dst.Load()
	if err != nil {
		return fmt.Errorf("reading the migrated state back: %w", err)
	}
	got, _ := json.Marshal(back.Resources)
	if back.Lineage != st.Lineage || back.Serial != st.Serial || string(got) != string(want) {
		return fmt.Errorf("the state read back from %s differs from what was written (lineage %s serial %d, want %s serial %d)", dst.Describe(), back.Lineage, back.Serial, st.Lineage, st.Serial)
	}
	left := "The local file is left as it was; remove it once you no longer need it."
	if src.Backend != nil {
		left = "The source is left as it was; delete it there once you no longer need it."
	}
	fmt.Fprintf(a.Stdout, "Migrated the state (%s, serial %d) from %s to %s and read it back.\n%s\n\n",
		provision.Plural(len(st.Resources), "resource", "resources"), st.Serial, src.Describe(), dst.Describe(), left)
	return nil
}
