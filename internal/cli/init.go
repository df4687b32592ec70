package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hvctl/hvctl/provision"
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
	o.add(fs, optInput)
	migrate := fs.Bool("migrate-state", false, "copy the local state file (-state, or the default beside the template) into the configured backend, locked on both sides, verified by reading it back")
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
	var src *provision.Store
	if *migrate {
		src = o.tmplFlags.store(tmpl)
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
		src.Sealer = store.Sealer
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

// migrateState copies the state of src (a local file) into dst, both
// locked, and reads it back to check it. It refuses to overwrite a
// destination that already holds resources.
func (a *App) migrateState(src, dst *provision.Store, timeout time.Duration) error {
	if dst.Backend == nil && filepath.Clean(dst.Path) == filepath.Clean(src.Path) {
		fmt.Fprintln(a.Stdout, "The state is already where the state block puts it: nothing to migrate.")
		return nil
	}
	if !src.Exists() {
		return fmt.Errorf("there is no local state at %s to migrate", src.Path)
	}
	ls, err := src.Lock(a.Ctx, "init -migrate-state", timeout)
	if err != nil {
		return err
	}
	defer ls.Unlock()
	ld, err := dst.Lock(a.Ctx, "init -migrate-state", timeout)
	if err != nil {
		return err
	}
	defer ld.Unlock()
	st, err := src.Load()
	if err != nil {
		return err
	}
	old, err := dst.Load()
	if err != nil {
		return err
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
	fmt.Fprintf(a.Stdout, "Migrated the state (%s, serial %d) from %s to %s and read it back.\nThe local file is left as it was; remove it once you no longer need it.\n\n",
		provision.Plural(len(st.Resources), "resource", "resources"), st.Serial, src.Path, dst.Describe())
	return nil
}
