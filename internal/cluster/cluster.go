// Package cluster is the operations layer under hvctl's commands, as
// Terraform's local backend is under its CLI: it opens a cluster (the
// template and its variables, the state backend, the state lock, the
// cluster's secret and CA), plans and applies through the provision
// engine, and applies pool operations for the elastic daemon and SLURM's
// power saving (Provisioner, Resume, Suspend). The CLI keeps flags,
// prompts and rendering; the elastic daemon, hvctl slurm and in-process
// callers (tests, a Pulumi provider) use this package the same way.
// Nothing here prints: errors say what happened and what to do. It
// registers every built-in provider.
package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hvctl/hvctl/provision"
	_ "github.com/hvctl/hvctl/provision/aws"       // registers the aws provider
	_ "github.com/hvctl/hvctl/provision/local"     // registers the local provider
	_ "github.com/hvctl/hvctl/provision/openstack" // registers the openstack provider
	_ "github.com/hvctl/hvctl/provision/sim"       // registers the sim provider
	_ "github.com/hvctl/hvctl/provision/static"    // registers the static provider
	"github.com/hvctl/hvctl/scheduler/agent"
	"github.com/hvctl/hvctl/templates"
)

// Options say which cluster to open and how.
type Options struct {
	// Template is the template file or directory ("." when empty).
	Template string
	// Vars are the template's variables (-var, -var-file), in order.
	Vars []templates.VarArg
	// Environ is the environment the template, the state block and the
	// backends read (HVCTL_VAR_*, passphrases, credentials); nil reads
	// none.
	Environ []string

	// StatePath names a local state file instead of the template's
	// state block (-state).
	StatePath string
	// Workspace picks one of the cluster's states ("default" when
	// empty).
	Workspace string
	// BackendConfig are KEY=VALUE settings over the state block.
	BackendConfig []string

	// Operation names the operation in the lock's holder info ("apply",
	// "elastic"): another process that finds the lock taken says who
	// holds it.
	Operation string
	// NoLock opens without the state lock (read-only verbs).
	NoLock bool
	// LockTimeout is how long to wait for the lock (0: fail at once).
	LockTimeout time.Duration
	// Parallelism is the engine's bound on provider API calls in
	// flight (provision.Engine.Parallelism: provision.ParallelismAuto
	// takes it from the providers' declared limits, 0 is unlimited).
	Parallelism int
	// UI receives apply progress (nil: none).
	UI provision.UI
}

// Cluster is an open cluster: its configuration, its state (loaded
// under the lock unless NoLock) and the engine that changes it. Close
// releases the lock.
type Cluster struct {
	Config *templates.Config
	Store  *provision.Store
	Engine *provision.Engine
	// State is the state as loaded at Open; operations read it and the
	// engine changes it in place.
	State *provision.State
	// Template is the absolute path of the template.
	Template string
	// Warnings are the template's and providers' warnings.
	Warnings hcl.Diagnostics
	// Warn, when set, is told what went wrong without stopping an
	// operation (the managers did not take the new template), as it
	// happens.
	Warn func(msg string)

	opts Options
	lock *provision.Lock
	boot *agent.Bootstrap
}

// Error is a failure with a one-line summary and a paragraph saying
// what happened and what to do.
type Error struct {
	Summary string
	Detail  string
}

func (e *Error) Error() string { return e.Summary + "\n" + e.Detail }

// DiagnosticsError is a template (or provider settings) that does not
// load: its diagnostics, with the files they point into for snippets.
type DiagnosticsError struct {
	Files       map[string]*hcl.File
	Diagnostics hcl.Diagnostics
}

func (e *DiagnosticsError) Error() string { return e.Diagnostics.Error() }

// Open loads the template, configures its providers, opens the state
// backend, takes the lock (unless NoLock) and loads the state. The
// errors are *DiagnosticsError (the template), *Error, or the lock's
// *provision.LockError naming the holder.
func Open(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Template == "" {
		opts.Template = "."
	}
	cfg, warn, err := LoadTemplate(opts.Template, opts.Vars, opts.Environ)
	if err != nil {
		return nil, err
	}
	store, err := StateStore(cfg, opts.Template, opts.stateOptions())
	if err != nil {
		return nil, &Error{"Invalid state backend", err.Error()}
	}
	abs, _ := filepath.Abs(opts.Template)
	c := &Cluster{Config: cfg, Store: store, Template: abs, Warnings: warn, opts: opts}
	eng, d := provision.NewEngine(cfg, store)
	if d.HasErrors() {
		return nil, &DiagnosticsError{Files: cfg.Files, Diagnostics: d}
	}
	c.Warnings = append(c.Warnings, d...)
	eng.Parallelism = opts.Parallelism
	eng.UI = opts.UI
	c.Engine = eng
	if !opts.NoLock {
		l, err := store.Lock(ctx, opts.Operation, opts.LockTimeout)
		if err != nil {
			return nil, err
		}
		c.lock = l
	}
	st, err := store.Load()
	if err != nil {
		c.Close()
		return nil, err
	}
	if st.Cluster != "" && cfg.Cluster != nil && st.Cluster != cfg.Cluster.Name {
		c.Close()
		return nil, &Error{"State belongs to another cluster",
			fmt.Sprintf("The state at %s is for cluster %q, but the template defines cluster %q. Use -state to choose another state file, or destroy the old cluster first.", store.Describe(), st.Cluster, cfg.Cluster.Name)}
	}
	c.State = st
	return c, nil
}

// Close releases the state lock.
func (c *Cluster) Close() error {
	if c.lock == nil {
		return nil
	}
	l := c.lock
	c.lock = nil
	return l.Unlock()
}

// Reload reads the state again (status -watch; after an apply).
func (c *Cluster) Reload() error {
	st, err := c.Store.Load()
	if err != nil {
		return err
	}
	c.State = st
	return nil
}

// LoadTemplate reads the template at path with vars and the
// environment. A template that does not load is a *DiagnosticsError
// (or an *Error when there is nothing at path); warnings come back on
// success.
func LoadTemplate(path string, vars []templates.VarArg, environ []string) (*templates.Config, hcl.Diagnostics, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, &Error{"No template at " + path, fmt.Sprintf("hvctl reads a template from a .hcl file or a directory of .hcl files: %v", err)}
	}
	cfg, d := templates.Load(path, templates.LoadOptions{Args: vars, Environ: environ})
	if d.HasErrors() {
		return nil, nil, &DiagnosticsError{Files: FilesOf(cfg, d), Diagnostics: d}
	}
	return cfg, d, nil
}

// FilesOf are the files diagnostics point into: the configuration's,
// or, when it did not load, the files the diagnostics name, read again
// so that snippets can be shown.
func FilesOf(cfg *templates.Config, d hcl.Diagnostics) map[string]*hcl.File {
	if cfg != nil && cfg.Files != nil {
		return cfg.Files
	}
	files := map[string]*hcl.File{}
	for _, x := range d {
		if x.Subject == nil {
			continue
		}
		name := x.Subject.Filename
		if _, ok := files[name]; ok {
			continue
		}
		if b, err := os.ReadFile(name); err == nil {
			files[name] = &hcl.File{Bytes: b}
		}
	}
	return files
}
