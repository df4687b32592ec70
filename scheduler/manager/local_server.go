package manager

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hvctl/hvctl/scheduler"
)

// PollRequest is a node's work poll: its capacity, and the jobs it is
// running (a new local manager adopts them instead of running them
// again).
type PollRequest struct {
	scheduler.Node
	Running []scheduler.RunningJob `json:"running,omitempty"`
}

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
	// Global fetches datasets from the global tier (with the node's
	// credential).
	Global *Client
}

// Handler is the local manager's API.
func (s *LocalServer) Handler() http.Handler {
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
		var req PollRequest
		if err := decodeStrict(r.Body, &req); err != nil {
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
		n := req.Node
		n.ID, n.CPUs, n.MemoryMiB, n.GPUs, n.Labels = id, c.CPUs, c.MemoryMiB, c.GPUs, c.Labels
		s.Local.Adopt(id, req.Running)
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
	mux.HandleFunc("POST /v1/site/seed", global(func(w http.ResponseWriter, r *http.Request) {
		// The site's share of the job table, in batches like an enqueue.
		var jobs []*scheduler.Job
		if err := decodeStrict(limited(w, r, MaxSiteBatchBytes), &jobs); err != nil {
			writeErr(w, err)
			return
		}
		for i, j := range jobs {
			if err := checkJob(j); err != nil {
				writeErr(w, &BadRequest{Field: fmt.Sprintf("[%d]", i), Msg: err.Error()})
				return
			}
		}
		s.Local.Seed(jobs)
		writeJSON(w, http.StatusOK, map[string]int{"seeded": len(jobs)})
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
		return r.URL.Path == "/v1/report" || r.URL.Path == "/v1/site/jobs" || r.URL.Path == "/v1/site/seed"
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
	return s.Global.DatasetSize(context.Background(), name)
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
	if err := s.Global.Download(context.Background(), name, path); err != nil {
		return fmt.Errorf("fill the site cache from the global tier: %w", err)
	}
	return nil
}
