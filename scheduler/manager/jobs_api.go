package manager

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hvctl/hvctl/scheduler"
)

// jobRoutes adds the runtime plane's API (cluster token):
//
//	POST /v1/jobs              submit a job spec (JSON); an array with "count"
//	GET  /v1/jobs[?state=S]    list jobs
//	GET  /v1/jobs/{id}         one job
//	POST /v1/jobs/{id}/cancel  cancel
//	GET  /v1/jobs/{id}/logs    its captured output
//	GET  /v1/jobs/{id}/results[/{name}]  files it left in $HVCTL_OUTPUT_DIR
//	GET  /v1/queue             queue-depth signals per site
//	GET/HEAD/PUT /v1/datasets/{name}  the global data tier (node credentials may read)
//	GET  /metrics              Prometheus metrics
func (m *Manager) jobRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/jobs", m.admin(func(w http.ResponseWriter, r *http.Request) {
		spec, err := scheduler.DecodeJSON(http.MaxBytesReader(w, r.Body, scheduler.MaxSpecBytes))
		if err != nil {
			writeSpecErr(w, err)
			return
		}
		jobs, replayed, err := m.global.SubmitKey(spec, r.Header.Get(HeaderIdempotencyKey))
		if err != nil {
			writeSpecErr(w, err)
			return
		}
		if r.URL.Query().Get("summary") != "" {
			writeJSON(w, http.StatusOK, summarize(jobs, replayed))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
	}))
	mux.HandleFunc("GET /v1/jobs", m.admin(func(w http.ResponseWriter, r *http.Request) {
		st := scheduler.State(r.URL.Query().Get("state"))
		switch st {
		case "", scheduler.Queued, scheduler.Assigned, scheduler.Running, scheduler.Done, scheduler.Failed, scheduler.Cancelled:
		default:
			writeErr(w, &BadRequest{Field: "state", Msg: "one of queued, assigned, running, done, failed, cancelled"})
			return
		}
		q, err := pageQuery(r)
		if err != nil {
			writeErr(w, err)
			return
		}
		q.State = st
		jobs, next, err := m.global.Page(q)
		if err != nil {
			writeSpecErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, JobPage{Jobs: jobs, Next: next})
	}))
	mux.HandleFunc("GET /v1/jobs/{id}", m.admin(func(w http.ResponseWriter, r *http.Request) {
		j, ok := m.global.Get(r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, apiError{Error: "no job " + r.PathValue("id")})
			return
		}
		writeJSON(w, http.StatusOK, j)
	}))
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", m.admin(func(w http.ResponseWriter, r *http.Request) {
		j, err := m.global.Cancel(r.PathValue("id"))
		if err != nil {
			writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, j)
	}))
	mux.HandleFunc("GET /v1/jobs/{id}/logs", m.admin(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := m.global.Get(r.PathValue("id")); !ok {
			writeJSON(w, http.StatusNotFound, apiError{Error: "no job " + r.PathValue("id")})
			return
		}
		out, err := m.global.Output(r.PathValue("id"))
		if err != nil {
			writeJSON(w, http.StatusBadGateway, apiError{Error: err.Error()})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(out)
	}))
	mux.HandleFunc("PUT /v1/jobs/{id}/results/{name}", m.putResult)
	mux.HandleFunc("GET /v1/jobs/{id}/results", m.admin(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if _, ok := m.global.Get(id); !ok || !validDataset(id) {
			writeJSON(w, http.StatusNotFound, apiError{Error: "no job " + id})
			return
		}
		type file struct {
			Name  string `json:"name"`
			Bytes int64  `json:"bytes"`
		}
		files := []file{}
		for name, rf := range m.results(id) {
			files = append(files, file{name, rf.Bytes})
		}
		sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
		writeJSON(w, http.StatusOK, map[string]any{"job": id, "files": files})
	}))
	mux.HandleFunc("GET /v1/jobs/{id}/results/{name}", m.admin(func(w http.ResponseWriter, r *http.Request) {
		id, name := r.PathValue("id"), r.PathValue("name")
		if !validDataset(id) || !validDataset(name) {
			writeJSON(w, http.StatusNotFound, apiError{Error: "no such result"})
			return
		}
		path := m.resultPath(id, name)
		if _, ok := m.results(id)[name]; !ok {
			writeJSON(w, http.StatusNotFound, apiError{Error: "no such result"})
			return
		}
		http.ServeFile(downloading(w), r, path)
	}))
	mux.HandleFunc("GET /v1/queue", m.admin(func(w http.ResponseWriter, r *http.Request) {
		if m.cfg.Signals != nil {
			sig, err := m.cfg.Signals()
			if err != nil {
				writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "read the queue: " + err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, sig)
			return
		}
		writeJSON(w, http.StatusOK, m.global.Signals())
	}))
	mux.HandleFunc("PUT /v1/datasets/{name}", m.admin(m.putDataset))
	readDataset := func(w http.ResponseWriter, r *http.Request) {
		if _, err := m.authNode(bearer(r)); err != nil && !m.cfg.Secret.checkAdmin(bearer(r)) {
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "a node credential or the cluster token is required"})
			return
		}
		name := r.PathValue("name")
		if !validDataset(name) || m.datasets == "" {
			writeJSON(w, http.StatusNotFound, apiError{Error: "no dataset " + name})
			return
		}
		path := filepath.Join(m.datasets, name)
		if _, err := os.Stat(path); err != nil {
			writeJSON(w, http.StatusNotFound, apiError{Error: "no dataset " + name})
			return
		}
		http.ServeFile(downloading(w), r, path)
	}
	mux.HandleFunc("GET /v1/datasets/{name}", readDataset)
	mux.HandleFunc("HEAD /v1/datasets/{name}", readDataset)
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{m: m}, &pathCollector{m: m})
	mux.Handle("GET /metrics", m.admin(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP))
}

func writeSpecErr(w http.ResponseWriter, err error) {
	var se *scheduler.SpecError
	var ze *scheduler.SizeError
	if errors.As(err, &ze) {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: ze.Error(), Field: "body"})
		return
	}
	if errors.As(err, &se) {
		writeErr(w, &BadRequest{Field: se.Field, Msg: se.Msg})
		return
	}
	writeErr(w, err)
}

// ResultGrantHeader carries the result grant of the attempt a node
// uploads results for (scheduler.Work.ResultGrant).
const ResultGrantHeader = "Hvctl-Result-Grant"

// putResult stores a result file of a job. Only the node running the
// job's current attempt may: its node credential, and the grant its
// site's local manager gave it with that attempt. A job's files together
// stay within MaxResultBytes.
func (m *Manager) putResult(w http.ResponseWriter, r *http.Request) {
	node, err := m.authNode(bearer(r))
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, apiError{Error: "a node credential is required: " + err.Error()})
		return
	}
	id, name := r.PathValue("id"), r.PathValue("name")
	j, ok := m.global.Get(id)
	if !ok || !validDataset(id) || !validDataset(name) {
		writeErr(w, &BadRequest{Field: "name", Msg: "no such job, or not a plain file name"})
		return
	}
	if err := m.mayStoreResult(j, node, r.Header.Get(ResultGrantHeader)); err != nil {
		writeErr(w, err)
		return
	}
	var used int64
	for n, rf := range m.results(id) {
		if n != name {
			used += rf.Bytes
		}
	}
	left := m.cfg.ResultQuota - used
	if r.ContentLength > left || left <= 0 {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Field: "body",
			Error: fmt.Sprintf("job %s's results would be over their quota of %s (%s stored)", id, byteSize(m.cfg.ResultQuota), byteSize(used))})
		return
	}
	body, _ := streaming(w, r, left)
	if m.replica != nil {
		m.putResultLog(w, id, name, used, body)
		return
	}
	dir := filepath.Join(m.datasets, "results", id)
	os.MkdirAll(dir, 0o700)
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		writeErr(w, err)
		return
	}
	_, err = io.Copy(tmp, body)
	tmp.Close()
	if err != nil {
		os.Remove(tmp.Name())
		if _, ok := tooLarge(err); ok {
			writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Field: "body",
				Error: fmt.Sprintf("job %s's results would be over their quota of %s (%s stored)", id, byteSize(m.cfg.ResultQuota), byteSize(used))})
			return
		}
		writeErr(w, &BadRequest{Field: "body", Msg: err.Error()})
		return
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"stored": name})
}

// putResultLog stores a result through the control log (results.go):
// chunk by chunk, then its end with size and hash; answered once the
// end is committed, so a stored result is on a quorum of replicas.
func (m *Manager) putResultLog(w http.ResponseWriter, id, name string, used int64, body io.Reader) {
	upload := newUploadID()
	buf := make([]byte, ResultChunkBytes)
	h := sha256.New()
	var off int64
	for {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			h.Write(buf[:n])
			if aerr := m.replica.apply(&Command{Op: OpResult, Result: &ResultChunk{Job: id, Name: name, Upload: upload, Offset: off, Data: buf[:n]}}); aerr != nil {
				writeJSON(w, http.StatusServiceUnavailable, apiError{Error: aerr.Error()})
				return
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			if _, ok := tooLarge(err); ok {
				writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Field: "body",
					Error: fmt.Sprintf("job %s's results would be over their quota of %s (%s stored)", id, byteSize(m.cfg.ResultQuota), byteSize(used))})
				return
			}
			writeErr(w, &BadRequest{Field: "body", Msg: err.Error()})
			return
		}
	}
	end := &ResultChunk{Job: id, Name: name, Upload: upload, End: true, Bytes: off, SHA256: hex.EncodeToString(h.Sum(nil))}
	if err := m.replica.apply(&Command{Op: OpResult, Result: end}); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"stored": name})
}

// results is job's stored results: the replicated index, or without a
// control log the files in the global tier's directory.
func (m *Manager) results(job string) map[string]ResultFile {
	if m.replica != nil {
		return m.replica.fsm.Results(job)
	}
	out := map[string]ResultFile{}
	ents, _ := os.ReadDir(filepath.Join(m.datasets, "results", job))
	for _, e := range ents {
		if info, err := e.Info(); err == nil && e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out[e.Name()] = ResultFile{Bytes: info.Size()}
		}
	}
	return out
}

// resultPath is where this manager keeps a result file.
func (m *Manager) resultPath(job, name string) string {
	if m.replica != nil {
		return m.replica.fsm.resultPath(job, name)
	}
	return filepath.Join(m.datasets, "results", job, name)
}

// mayStoreResult says whether node may store results for job j with
// grant: the grant must be the one j's site gave node for an attempt
// that is still j's latest, and j must not have ended.
func (m *Manager) mayStoreResult(j *scheduler.Job, node, grant string) error {
	if j.Site == "" || grant == "" {
		return fmt.Errorf("%w: node %s was not given job %s", ErrForbidden, node, j.ID)
	}
	attempt, ok := m.cfg.Secret.Site(j.Site).checkResultGrant(grant, j.ID, node)
	if !ok {
		return fmt.Errorf("%w: node %s was not given job %s (no valid result grant)", ErrForbidden, node, j.ID)
	}
	if attempt < j.Attempt || (attempt == j.Attempt && j.Node != "" && j.Node != node) || j.State.Final() {
		return fmt.Errorf("%w: attempt %d of job %s is no longer current; its results are not taken", ErrForbidden, attempt, j.ID)
	}
	return nil
}

func (m *Manager) putDataset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validDataset(name) {
		writeErr(w, &BadRequest{Field: "name", Msg: "a dataset name is a plain file name"})
		return
	}
	if m.datasets == "" {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the cluster has no global data tier (cache.global)"})
		return
	}
	os.MkdirAll(m.datasets, 0o700)
	tmp, err := os.CreateTemp(m.datasets, "."+name+".*")
	if err != nil {
		writeErr(w, err)
		return
	}
	body, _ := streaming(w, r, MaxDatasetBytes)
	n, err := io.Copy(tmp, body)
	tmp.Close()
	if err != nil {
		os.Remove(tmp.Name())
		if _, ok := tooLarge(err); ok {
			writeErr(w, err)
			return
		}
		writeErr(w, &BadRequest{Field: "body", Msg: err.Error()})
		return
	}
	if err := os.Rename(tmp.Name(), filepath.Join(m.datasets, name)); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dataset": name, "bytes": n})
}

// collector exports the runtime plane's metrics.
type collector struct{ m *Manager }

var (
	descPending = prometheus.NewDesc("hvctl_jobs_pending", "Queued jobs per site.", []string{"site"}, nil)
	descSlots   = prometheus.NewDesc("hvctl_pending_slots", "Queued demand per site, in CPU slots.", []string{"site"}, nil)
	descFree    = prometheus.NewDesc("hvctl_free_slots", "Free CPU slots per site.", []string{"site"}, nil)
	descRunning = prometheus.NewDesc("hvctl_jobs_running", "Running jobs per site.", []string{"site"}, nil)
	descIdle    = prometheus.NewDesc("hvctl_node_idle_seconds", "How long each node has been idle.", []string{"site", "node"}, nil)
	descFetch   = prometheus.NewDesc("hvctl_dataset_fetches_total", "Dataset fetches by the tier that had the data.", []string{"tier"}, nil)
	descMoved   = prometheus.NewDesc("hvctl_bytes_moved_between_sites_total", "Bytes fetched from the global tier into another site.", nil, nil)
	descNodes   = prometheus.NewDesc("hvctl_nodes", "Members of the cluster by state.", []string{"state"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPending, descSlots, descFree, descRunning, descIdle, descFetch, descMoved, descNodes} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	sig := c.m.global.Signals()
	for _, s := range sig.Sites {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(s.PendingJobs), s.Site)
		ch <- prometheus.MustNewConstMetric(descSlots, prometheus.GaugeValue, float64(s.PendingSlots), s.Site)
		ch <- prometheus.MustNewConstMetric(descFree, prometheus.GaugeValue, float64(s.FreeSlots), s.Site)
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(s.RunningJobs), s.Site)
		for _, n := range s.Nodes {
			ch <- prometheus.MustNewConstMetric(descIdle, prometheus.GaugeValue, n.IdleFor, s.Site, n.ID)
		}
	}
	fetched, moved := c.m.global.CacheStats()
	tiers := make([]string, 0, len(fetched))
	for t := range fetched {
		tiers = append(tiers, string(t))
	}
	sort.Strings(tiers)
	for _, t := range tiers {
		ch <- prometheus.MustNewConstMetric(descFetch, prometheus.CounterValue, float64(fetched[scheduler.Tier(t)]), t)
	}
	ch <- prometheus.MustNewConstMetric(descMoved, prometheus.CounterValue, float64(moved))
	states := map[string]int{}
	for _, n := range c.m.Nodes() {
		states[n.State]++
	}
	for st, n := range states {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(n), st)
	}
}
