package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// hostCommand is how this manager node runs hvctl against the cluster's
// state, or nil when its provider cannot (see provision.HostLocal).
func (a *Agent) hostCommand() *HostCommand {
	raw := a.cfg.attr("hvctl_command")
	if raw == "" {
		return nil
	}
	var h HostCommand
	if err := json.Unmarshal([]byte(raw), &h); err != nil || len(h.Argv) == 0 {
		a.log.Printf("hvctl_command is unreadable, so the manager runs no hvctl commands: %v", err)
		return nil
	}
	return &h
}

// hasElasticPools reports whether any pool of c has min < max.
func hasElasticPools(c *templates.Cluster) bool {
	for _, s := range c.AllSites() {
		for _, p := range s.Pools {
			if p.Elastic() {
				return true
			}
		}
	}
	return false
}

// elasticLoop runs `hvctl elastic run` for the cluster, where hvctl runs,
// for as long as the agent runs: restarted when it exits (with backoff),
// stopped with SIGTERM when the agent stops, and sent SIGTERM by the
// kernel should the agent die first. Its log is elastic.log beside the
// agent's. The daemon's own lock keeps it to one per cluster: the others
// (on the other manager nodes, or behind one started by hand) stand by.
func (a *Agent) elasticLoop(ctx context.Context) {
	h := a.hostCommand()
	// Every manager node runs one: the first holds the daemon's lock,
	// the others stand by and take over when its node dies.
	argv := h.Command([]string{"elastic", "run", "-standby"})
	logPath := filepath.Join(a.cfg.Dir, "elastic.log")
	backoff := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		err := a.runSupervised(ctx, argv, h.Dir, logPath)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		a.log.Printf("elastic daemon exited (%v); restarting in %s (log: %s)", err, backoff, logPath)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// runSupervised runs argv until it exits or ctx is done (then SIGTERM,
// and SIGKILL after a minute).
func (a *Agent) runSupervised(ctx context.Context, argv []string, dir, logPath string) error {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Pdeathsig follows the thread that forked: keep it alive.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	a.log.Printf("elastic daemon started: pid %d", cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		return errors.Join(errors.New("killed after ignoring SIGTERM for a minute"), <-done)
	}
}
