package agent

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// JobProcess runs one job's command so that every process it starts
// can be killed at once, and dies with the agent:
//
//   - as root, the command is PID 1 of a new PID namespace: killing it
//     makes the kernel kill every process in the namespace, however
//     they daemonised or regrouped;
//   - otherwise (no CAP_SYS_ADMIN) it leads its own process group, and
//     the group is killed;
//   - either way it gets SIGKILL when the agent dies (Pdeathsig), which
//     for a PID namespace's first process takes the whole job with it.
//
// Kill is safe to call at any time, more than once, from any goroutine.
type JobProcess struct {
	Cmd *exec.Cmd
	// PIDNamespace is set when the job runs in its own PID namespace.
	PIDNamespace bool

	mu     sync.Mutex
	killed bool
	done   bool
	exited chan struct{}
}

// StartJob starts the command newCmd makes as a job process, killed
// when ctx ends (newCmd may be called twice: a command cannot be
// started again after a failed start).
func StartJob(ctx context.Context, newCmd func() *exec.Cmd) (*JobProcess, error) {
	p := &JobProcess{exited: make(chan struct{})}
	start := func(attr *syscall.SysProcAttr) error {
		cmd := newCmd()
		cmd.SysProcAttr = attr
		cmd.WaitDelay = 5 * time.Second
		p.Cmd = cmd
		return cmd.Start()
	}
	err := start(&syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: syscall.CLONE_NEWPID})
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EUSERS) {
		// No PID namespaces here: a process group.
		err = start(&syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL})
	} else if err == nil {
		p.PIDNamespace = true
	}
	if err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			p.Kill()
		case <-p.exited:
		}
	}()
	return p, nil
}

// Wait waits for the job's command to end (exec.Cmd.Wait).
func (p *JobProcess) Wait() error {
	err := p.Cmd.Wait()
	p.mu.Lock()
	if !p.done {
		p.done = true
		close(p.exited)
	}
	p.mu.Unlock()
	return err
}

// Kill kills every process of the job.
func (p *JobProcess) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || p.Cmd.Process == nil {
		return
	}
	p.killed = true
	pid := p.Cmd.Process.Pid
	// The group first (in a PID namespace too: its processes keep the
	// first one's group unless they left it), then the first process,
	// whose death ends the namespace.
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
}

// Killed reports whether Kill ended the job.
func (p *JobProcess) Killed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed
}
