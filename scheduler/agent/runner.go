package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	a.rt = rt
	start := rt.RunLocal != "" && !a.localStarted
	if start {
		a.localStarted = true
	}
	a.mu.Unlock()
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
		GlobalURL: strings.TrimSuffix(a.cfg.attr("manager_url"), "/"), Credential: a.cred,
		HTTP: &http.Client{Timeout: 10 * time.Minute, Transport: a.http.Transport}}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr.String(), strconv.Itoa(manager.LocalManagerPort)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := manager.NewServer(srv.Handler(), manager.Timeouts{})
	go hs.Serve(ln)
	go srv.Sweep(a.ctx, time.Second)
	go func() { <-a.ctx.Done(); hs.Close() }()
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
	for ctx.Err() == nil {
		rt := a.runtime()
		if rt.LocalManager == "" || rt.SiteCredential == "" {
			sleep(ctx, time.Second)
			continue
		}
		node := scheduler.Node{CPUs: a.cfg.CPUs, MemoryMiB: a.cfg.MemoryMiB, GPUs: a.cfg.GPUs, Labels: a.cfg.Labels}
		var works []scheduler.Work
		if _, err := a.callURL(ctx, rt.LocalManager, "POST", "/v1/work?wait="+pollWait.String(), rt.SiteCredential, node, &works); err != nil {
			if ctx.Err() == nil {
				a.log.Printf("work poll: %v", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		for _, w := range works {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.runJob(ctx, rt, w)
			}()
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
func (a *Agent) runJob(ctx context.Context, rt manager.Runtime, w scheduler.Work) {
	j := w.Job
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
			fetchErr = a.download(ctx, rt.LocalManager+"/v1/datasets/"+f.Dataset, rt.SiteCredential, path)
		}
		unlock()
		if fetchErr != nil {
			break
		}
	}
	var out bytes.Buffer
	if fetchErr != nil {
		rep.State, rep.ExitCode, rep.Error = scheduler.Failed, -1, "fetch inputs: "+fetchErr.Error()
	} else {
		outDir := filepath.Join(a.cfg.Dir, "results", j.ID+"."+strconv.Itoa(w.Attempt))
		os.RemoveAll(outDir)
		os.MkdirAll(outDir, 0o700)
		defer os.RemoveAll(outDir)
		cmd := exec.CommandContext(ctx, j.Spec.Command[0], j.Spec.Command[1:]...)
		cmd.Env = append(os.Environ(), "HVCTL_JOB_ID="+j.ID, "HVCTL_ARRAY_INDEX="+strconv.Itoa(j.Index),
			"HVCTL_NODE="+a.id, "HVCTL_SITE="+a.cfg.Site, "HVCTL_INPUT_DIR="+cacheDir, "HVCTL_ATTEMPT="+strconv.Itoa(w.Attempt),
			"HVCTL_OUTPUT_DIR="+outDir)
		cmd.Dir = cacheDir
		lw := &limitWriter{w: &out, n: scheduler.MaxOutput}
		cmd.Stdout, cmd.Stderr = lw, lw
		err := cmd.Run()
		var ee *exec.ExitError
		if err == nil {
			// Results go to the global tier before the job is reported
			// done, so they are there when it shows as done.
			if uerr := a.uploadResults(ctx, j.ID, w.ResultGrant, outDir); uerr != nil {
				err = uerr
			}
		}
		switch {
		case err == nil:
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
	for attempt := 0; attempt < 10; attempt++ {
		if _, err := a.callURL(ctx, rt.LocalManager, "POST", "/v1/report", rt.SiteCredential, rep, nil); err == nil {
			return
		} else {
			a.log.Printf("report job %s: %v", j.ID, err)
		}
		sleep(ctx, time.Second)
	}
}

func (a *Agent) download(ctx context.Context, url, cred, path string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	f.Close()
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
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
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		url := strings.TrimSuffix(a.cfg.attr("manager_url"), "/") + "/v1/jobs/" + job + "/results/" + e.Name()
		req, err := http.NewRequestWithContext(ctx, "PUT", url, f)
		if err != nil {
			f.Close()
			return err
		}
		req.Header.Set("Authorization", "Bearer "+a.cred)
		req.Header.Set(manager.ResultGrantHeader, grant)
		resp, err := a.http.Do(req)
		f.Close()
		if err != nil {
			return fmt.Errorf("upload result %s: %w", e.Name(), err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("upload result %s: %s", e.Name(), resp.Status)
		}
	}
	return nil
}
