package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hvctl/hvctl/scheduler"
)

// LocalManagerPort is the TCP port of a site's local manager, on its
// node's overlay address.
const LocalManagerPort = 51822

// LocalServer serves a site's local manager over the overlay: node
// agents poll it for work and report back; the global manager hands it
// jobs and reads its state; it is the site's data cache.
type LocalServer struct {
	Local *scheduler.Local
	// SiteSecret authenticates nodes (site credentials) and the global
	// manager (the site secret's admin token).
	SiteSecret Secret
	// CacheDir holds the site cache's files.
	CacheDir string
	// GlobalURL and Credential fetch datasets from the global tier.
	GlobalURL  string
	Credential string
	HTTP       *http.Client
}

// Handler is the local manager's API.
func (s *LocalServer) Handler() http.Handler {
	if s.HTTP == nil {
		s.HTTP = &http.Client{Timeout: 10 * time.Minute}
	}
	os.MkdirAll(s.CacheDir, 0o700)
	s.Local.DatasetSize = s.datasetSize
	mux := http.NewServeMux()
	claimsOf := func(r *http.Request) (string, SiteClaims, bool) {
		id, c, err := s.SiteSecret.checkSiteCredential(bearer(r))
		return id, c, err == nil
	}
	node := func(f func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id, _, ok := claimsOf(r)
			if !ok {
				writeJSON(w, http.StatusUnauthorized, apiError{Error: "a site credential is required"})
				return
			}
			f(w, r, id)
		}
	}
	global := func(f http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !s.SiteSecret.checkAdmin(bearer(r)) {
				writeJSON(w, http.StatusUnauthorized, apiError{Error: "the global manager's site token is required"})
				return
			}
			f(w, r)
		}
	}
	mux.HandleFunc("POST /v1/work", node(func(w http.ResponseWriter, r *http.Request, id string) {
		var n scheduler.Node
		if err := decodeStrict(r.Body, &n); err != nil {
			writeErr(w, err)
			return
		}
		// The node's capacity and labels are what the engine gave it
		// (its credential's claims), whatever the poll says.
		_, c, _ := claimsOf(r)
		if !c.Worker {
			writeJSON(w, http.StatusForbidden, apiError{Error: "node " + id + " has no worker role: it runs no jobs"})
			return
		}
		n.ID, n.CPUs, n.MemoryMiB, n.GPUs, n.Labels = id, c.CPUs, c.MemoryMiB, c.GPUs, c.Labels
		wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
		if wait < 0 || wait > time.Minute {
			wait = 0
		}
		works := s.Local.Poll(n, wait)
		for i := range works {
			works[i].ResultGrant = s.SiteSecret.ResultGrant(works[i].Job.ID, id, works[i].Attempt)
		}
		writeJSON(w, http.StatusOK, works)
	}))
	mux.HandleFunc("POST /v1/report", node(func(w http.ResponseWriter, r *http.Request, id string) {
		var rep scheduler.Report
		if err := decodeStrict(limited(w, r, MaxReportBytes), &rep); err != nil {
			writeErr(w, err)
			return
		}
		if err := s.Local.Record(id, rep); err != nil && err != scheduler.ErrStaleAttempt {
			writeErr(w, &BadRequest{Field: "job_id", Msg: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}))
	mux.HandleFunc("GET /v1/datasets/{name}", node(func(w http.ResponseWriter, r *http.Request, id string) {
		s.serveDataset(w, r, r.PathValue("name"))
	}))
	mux.HandleFunc("POST /v1/site/jobs", global(func(w http.ResponseWriter, r *http.Request) {
		var jobs []*scheduler.Job
		if err := decodeStrict(limited(w, r, MaxSiteBatchBytes), &jobs); err != nil {
			writeErr(w, err)
			return
		}
		s.Local.Enqueue(jobs)
		writeJSON(w, http.StatusOK, map[string]int{"queued": len(jobs)})
	}))
	mux.HandleFunc("POST /v1/site/jobs/{id}/cancel", global(func(w http.ResponseWriter, r *http.Request) {
		j, err := s.Local.Cancel(r.PathValue("id"))
		if err != nil {
			writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, j)
	}))
	mux.HandleFunc("GET /v1/site/state", global(func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		writeJSON(w, http.StatusOK, s.Local.State(since))
	}))
	mux.HandleFunc("GET /v1/site/jobs/{id}/output", global(func(w http.ResponseWriter, r *http.Request) {
		out, ok := s.Local.Output(r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, apiError{Error: "no such job here"})
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(out)
	}))
	return limitBodies(mux, MaxRequestBytes, func(r *http.Request) bool {
		return r.URL.Path == "/v1/report" || r.URL.Path == "/v1/site/jobs"
	})
}

// Sweep loses silent nodes every interval until ctx ends.
func (s *LocalServer) Sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Local.Sweep()
		}
	}
}

func validDataset(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\\x00")
}

func (s *LocalServer) datasetSize(name string) int64 {
	if fi, err := os.Stat(filepath.Join(s.CacheDir, name)); err == nil {
		return fi.Size()
	}
	req, _ := http.NewRequest("HEAD", s.GlobalURL+"/v1/datasets/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+s.Credential)
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.ContentLength
}

// serveDataset serves a dataset from the site cache, filling it from the
// global tier on a miss.
func (s *LocalServer) serveDataset(w http.ResponseWriter, r *http.Request, name string) {
	if !validDataset(name) {
		writeErr(w, &BadRequest{Field: "name", Msg: "not a dataset name"})
		return
	}
	path := filepath.Join(s.CacheDir, name)
	if _, err := os.Stat(path); err != nil {
		if err := s.fill(name, path); err != nil {
			writeJSON(w, http.StatusBadGateway, apiError{Error: err.Error()})
			return
		}
	}
	http.ServeFile(downloading(w), r, path)
}

func (s *LocalServer) fill(name, path string) error {
	req, err := http.NewRequest("GET", s.GlobalURL+"/v1/datasets/"+name, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.Credential)
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("fetch dataset %s from the global tier: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("fetch dataset %s from the global tier: %s", name, resp.Status)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	f.Close()
	return os.Rename(f.Name(), path)
}

// SiteLink reaches a local manager over HTTP (scheduler.SiteLink).
type SiteLink struct {
	URL   string
	Token string
	HTTP  *http.Client
}

func (l *SiteLink) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, l.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+l.Token)
	resp, err := l.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if p, ok := out.(*[]byte); ok {
		*p = b
		return nil
	}
	return json.Unmarshal(b, out)
}

// Enqueue hands jobs to the site, in batches that fit the site's
// MaxSiteBatchBytes (any job that passed submit fits in one).
func (l *SiteLink) Enqueue(jobs []*scheduler.Job) error {
	for len(jobs) > 0 {
		n, size := 0, 2
		for n < len(jobs) {
			b, err := json.Marshal(jobs[n])
			if err != nil {
				return err
			}
			if n > 0 && size+len(b)+1 > MaxSiteBatchBytes/2 {
				break
			}
			size += len(b) + 1
			n++
		}
		if err := l.do("POST", "/v1/site/jobs", jobs[:n], nil); err != nil {
			return err
		}
		jobs = jobs[n:]
	}
	return nil
}

// Cancel cancels a job at the site.
func (l *SiteLink) Cancel(id string) error {
	return l.do("POST", "/v1/site/jobs/"+id+"/cancel", nil, nil)
}

// State reads the site's state.
func (l *SiteLink) State(since uint64) (scheduler.SiteState, error) {
	var s scheduler.SiteState
	err := l.do("GET", "/v1/site/state?since="+strconv.FormatUint(since, 10), nil, &s)
	return s, err
}

// Output reads a job's output.
func (l *SiteLink) Output(id string) ([]byte, error) {
	var b []byte
	err := l.do("GET", "/v1/site/jobs/"+id+"/output", nil, &b)
	return b, err
}
