package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/manager"
)

// pollWait is how long a work poll waits: well under the local manager's
// LossAfter, since a poll is also how a node shows it is alive.
const pollWait = 4 * time.Second

func (a *Agent) setRuntime(rt manager.Runtime) {
	a.mu.Lock()
	if rt.LocalManager != "" && (a.lc == nil || rt.LocalManager != a.rt.LocalManager || rt.SiteCredential != a.rt.SiteCredential) {
		a.lc = manager.NewClient(manager.ClientConfig{Endpoints: []string{rt.LocalManager}, Token: rt.SiteCredential})
	}
	a.rt = rt
	start := rt.RunLocal != "" && !a.localStarted
	if start {
		a.localStarted = true
	}
	var stop func()
	if rt.RunLocal == "" && a.localStarted && a.stopLocal != nil {
		// Another node runs the site's local manager now.
		stop, a.stopLocal, a.localStarted = a.stopLocal, nil, false
	}
	a.mu.Unlock()
	if stop != nil {
		a.log.Printf("local manager of site %s: another node runs it now; stopping", a.cfg.Site)
		stop()
	}
	if rt.Witness != nil {
		a.becomeWitness(rt.Witness)
	}
	if start {
		if err := a.startLocal(rt); err != nil {
			a.log.Printf("local manager: %v", err)
			a.mu.Lock()
			a.localStarted = false
			a.mu.Unlock()
		}
	}
}

func (a *Agent) runtime() manager.Runtime {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rt
}

// localClient is the client of the site's local manager (nil until the
// runtime names one).
func (a *Agent) localClient() *manager.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lc
}

// startLocal runs this site's local manager on the node's overlay
// address (only nodes of the overlay reach it).
func (a *Agent) startLocal(rt manager.Runtime) error {
	secret, err := manager.ParseSecret(rt.RunLocal)
	if err != nil {
		return err
	}
	a.mu.Lock()
	addr := a.ps.Address.Addr()
	a.mu.Unlock()
	l := scheduler.NewLocal(a.cfg.Site, rt.SiteCache)
	l.GlobalSite, l.NodeCache = rt.GlobalSite, rt.NodeCache
	srv := &manager.LocalServer{Local: l, SiteSecret: secret, CacheDir: filepath.Join(a.cfg.Dir, "site-cache"),
		Global: a.mc.WithToken(a.cred)}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr.String(), strconv.Itoa(manager.LocalManagerPort)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := manager.NewServer(srv.Handler(), manager.Timeouts{})
	ctx, cancel := context.WithCancel(a.ctx)
	a.mu.Lock()
	a.stopLocal = cancel
	a.mu.Unlock()
	go hs.Serve(ln)
	go srv.Sweep(ctx, time.Second)
	go func() { <-ctx.Done(); hs.Close() }()
	a.log.Printf("local manager of site %s listening on %s", a.cfg.Site, ln.Addr())
	return nil
}

// runLoop asks the site's local manager for work and runs it.
func (a *Agent) runLoop(ctx context.Context) {
	if !a.cfg.hasRole("worker") {
		return // hubs, managers and gateways run no jobs unless they are also workers
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	go a.fenceLoop(ctx)
	for ctx.Err() == nil {
		rt, lc := a.runtime(), a.localClient()
		if rt.LocalManager == "" || rt.SiteCredential == "" || lc == nil {
			sleep(ctx, time.Second)
			continue
		}
		node := scheduler.Node{CPUs: a.cfg.CPUs, MemoryMiB: a.cfg.MemoryMiB, GPUs: a.cfg.GPUs, Labels: a.cfg.Labels}
		works, err := lc.Work(ctx, node, a.runningJobs(), pollWait)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Printf("work poll: %v", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		a.mu.Lock()
		a.lastPoll = time.Now()
		a.mu.Unlock()
		for _, w := range works {
			if w.Cancel {
				a.killJob(w.Job.ID, w.Attempt, "cancelled")
				continue
			}
			a.expect(w.Job.ID, w.Attempt)
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.runJob(ctx, lc, w)
			}()
		}
	}
}

// runningJob is an attempt of a job given to this node: proc is nil
// until its command starts (inputs are fetched first).
type runningJob struct {
	attempt   int
	proc      *JobProcess
	cancelled bool
	// ended: its command has ended and its report is being sent. The
	// fence leaves it alone (nothing runs), and polls still name it, so
	// a new local manager waits for the report instead of running the
	// job again.
	ended bool
}

// ended records that attempt of job id has ended here; false when it
// was cancelled or fenced first.
func (a *Agent) ended(id string, attempt int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.running[id]
	if r == nil || r.attempt != attempt || r.cancelled {
		return false
	}
	r.ended = true
	return true
}

// expect records that attempt of job id was given to this node, so a
// cancel that comes before its command starts is not lost.
func (a *Agent) expect(id string, attempt int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running == nil {
		a.running = map[string]*runningJob{}
	}
	a.running[id] = &runningJob{attempt: attempt}
}

// attach records the process of attempt of job id; false when the
// attempt was cancelled meanwhile (the process is then killed).
func (a *Agent) attach(id string, attempt int, p *JobProcess) bool {
	a.mu.Lock()
	r := a.running[id]
	if r == nil || r.attempt != attempt {
		r = &runningJob{attempt: attempt}
		if a.running == nil {
			a.running = map[string]*runningJob{}
		}
		a.running[id] = r
	}
	r.proc = p
	cancelled := r.cancelled
	a.mu.Unlock()
	if cancelled {
		p.Kill()
	}
	return !cancelled
}

// cancelled reports whether attempt of job id was cancelled here.
func (a *Agent) cancelled(id string, attempt int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.running[id]
	return r != nil && r.attempt == attempt && r.cancelled
}

func (a *Agent) forget(id string, attempt int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r := a.running[id]; r != nil && r.attempt == attempt {
		delete(a.running, id)
	}
}

// killJob kills attempt of job id if it runs here.
func (a *Agent) killJob(id string, attempt int, why string) {
	a.mu.Lock()
	r := a.running[id]
	var p *JobProcess
	if r != nil && r.attempt == attempt {
		r.cancelled = true
		p = r.proc
	}
	a.mu.Unlock()
	if r != nil && r.attempt == attempt {
		if p != nil {
			p.Kill()
		}
		a.log.Printf("job %s attempt %d: killed (%s)", id, attempt, why)
	}
}

// FenceAfter is how long a node runs jobs without hearing from its
// site's local manager: under the local manager's loss time
// (scheduler.DefaultLossAfter), after which it runs them elsewhere, so
// a job never runs twice at once.
const FenceAfter = scheduler.DefaultLossAfter - 3*time.Second

// fenceLoop kills every job of this node once the local manager has not
// answered a poll for FenceAfter.
func (a *Agent) fenceLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		silent := !a.lastPoll.IsZero() && time.Since(a.lastPoll) > FenceAfter
		var kill []*JobProcess
		var ids []string
		if silent {
			for id, r := range a.running {
				if !r.cancelled && !r.ended {
					r.cancelled = true
					ids = append(ids, fmt.Sprintf("%s attempt %d", id, r.attempt))
					if r.proc != nil {
						kill = append(kill, r.proc)
					}
				}
			}
		}
		a.mu.Unlock()
		for _, p := range kill {
			p.Kill()
		}
		for _, id := range ids {
			a.log.Printf("job %s: killed (no answer from the local manager for %s; it runs the job elsewhere)", id, FenceAfter)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// runJob fetches a job's inputs into the node cache, runs its command
// and reports the result with its output.
func (a *Agent) runJob(ctx context.Context, lc *manager.Client, w scheduler.Work) {
	j := w.Job
	defer a.forget(j.ID, w.Attempt)
	rep := scheduler.Report{JobID: j.ID, Attempt: w.Attempt, State: scheduler.Done}
	cacheDir := filepath.Join(a.cfg.Dir, "node-cache")
	os.MkdirAll(cacheDir, 0o700)
	var fetchErr error
	for _, f := range w.Fetches {
		path := filepath.Join(cacheDir, f.Dataset)
		// One download per dataset at a time on this node: jobs that
		// need the same input wait for it instead of fetching it twice.
		unlock := a.lockDataset(f.Dataset)
		_, statErr := os.Stat(path)
		if statErr != nil || f.From != scheduler.TierNode {
			fetchErr = lc.Download(ctx, f.Dataset, path)
		}
		unlock()
		if fetchErr != nil {
			break
		}
	}
	var out bytes.Buffer
	if a.cancelled(j.ID, w.Attempt) {
		return
	}
	if fetchErr != nil {
		rep.State, rep.ExitCode, rep.Error = scheduler.Failed, -1, "fetch inputs: "+fetchErr.Error()
		a.ended(j.ID, w.Attempt)
	} else {
		outDir := filepath.Join(a.cfg.Dir, "results", j.ID+"."+strconv.Itoa(w.Attempt))
		os.RemoveAll(outDir)
		os.MkdirAll(outDir, 0o700)
		defer os.RemoveAll(outDir)
		lw := &limitWriter{w: &out, n: scheduler.MaxOutput}
		jobEnv := []string{"HVCTL_JOB_ID=" + j.ID, "HVCTL_ARRAY_INDEX=" + strconv.Itoa(j.Index),
			"HVCTL_NODE=" + a.id, "HVCTL_SITE=" + a.cfg.Site, "HVCTL_INPUT_DIR=" + cacheDir, "HVCTL_ATTEMPT=" + strconv.Itoa(w.Attempt),
			"HVCTL_OUTPUT_DIR=" + outDir}
		ctr, err := a.containerRun(ctx, w, cacheDir, outDir, jobEnv) // nil: no container (container.go)
		var proc *JobProcess
		if err == nil {
			proc, err = StartJob(ctx, func() *exec.Cmd {
				var cmd *exec.Cmd
				if ctr != nil {
					cmd, _ = ctr.Cmd()
				} else {
					cmd = exec.Command(j.Spec.Command[0], j.Spec.Command[1:]...)
					cmd.Dir = cacheDir
				}
				cmd.Env = append(os.Environ(), jobEnv...)
				cmd.Stdout, cmd.Stderr = lw, lw
				return cmd
			})
			if err != nil && ctr != nil {
				ctr.Finish(nil) // its cgroup
			}
		}
		if err == nil {
			a.attach(j.ID, w.Attempt, proc)
			err = proc.Wait()
			if ctr != nil {
				err = ctr.Finish(err)
			}
			if !a.ended(j.ID, w.Attempt) {
				return // cancelled or fenced: the local manager has moved on
			}
		}
		var ee *exec.ExitError
		var me *MemoryError
		if err == nil {
			// Results go to the global tier before the job is reported
			// done, so they are there when it shows as done.
			if uerr := a.uploadResults(ctx, j.ID, w.ResultGrant, outDir); uerr != nil {
				err = uerr
			}
		}
		switch {
		case err == nil:
		case errors.As(err, &me):
			rep.State, rep.ExitCode, rep.Error = scheduler.Failed, 137, me.Error()
		case errors.As(err, &ee):
			rep.State, rep.ExitCode = scheduler.Failed, ee.ExitCode()
		default:
			rep.State, rep.ExitCode, rep.Error = scheduler.Failed, -1, err.Error()
		}
	}
	if ctx.Err() != nil {
		return // the agent stops: the job will be run again elsewhere
	}
	rep.Output = out.String()
	// Report to the site's local manager of the moment: it may have
	// moved to another node, or restarted and not yet been seeded.
	deadline := time.Now().Add(reportFor)
	for ctx.Err() == nil {
		if cur := a.localClient(); cur != nil {
			lc = cur
		}
		err := lc.Report(ctx, rep)
		if err == nil {
			return
		}
		a.log.Printf("report job %s: %v", j.ID, err)
		if time.Now().After(deadline) {
			return
		}
		sleep(ctx, time.Second)
	}
}

// reportFor is how long a node keeps trying to report a job: longer
// than a local manager takes to be designated again and seeded.
const reportFor = 2 * time.Minute

// runningJobs are the attempts this node runs (told at each poll: a
// new local manager adopts them).
func (a *Agent) runningJobs() []scheduler.RunningJob {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]scheduler.RunningJob, 0, len(a.running))
	for id, r := range a.running {
		if !r.cancelled {
			out = append(out, scheduler.RunningJob{ID: id, Attempt: r.attempt})
		}
	}
	return out
}

// lockDataset serialises fetches of one dataset on this node.
func (a *Agent) lockDataset(name string) func() {
	a.mu.Lock()
	if a.fetching == nil {
		a.fetching = map[string]*sync.Mutex{}
	}
	m := a.fetching[name]
	if m == nil {
		m = &sync.Mutex{}
		a.fetching[name] = m
	}
	a.mu.Unlock()
	m.Lock()
	return m.Unlock
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if len(q) > l.n {
		q = q[:l.n]
	}
	l.n -= len(q)
	l.w.Write(q)
	return len(p), nil
}

// uploadResults sends the files a job left in its output directory to
// the global manager, with this node's credential.
func (a *Agent) uploadResults(ctx context.Context, job, grant, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if err := a.mc.WithToken(a.cred).PutResult(ctx, job, e.Name(), filepath.Join(dir, e.Name()), grant); err != nil {
			return fmt.Errorf("upload result %s: %w", e.Name(), err)
		}
	}
	return nil
}
