package manager

import (
	"context"
	"net/http"

	"github.com/hvctl/hvctl/scheduler/slurm"
)

// slurmRoutes: GET /v1/slurm/jobs lists the jobs of a SLURM cluster
// with accounting, as slurmdbd recorded them (cluster token); 501 on a
// cluster without.
func (m *Manager) slurmRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/slurm/jobs", m.admin(func(w http.ResponseWriter, r *http.Request) {
		if m.cfg.SlurmJobs == nil {
			writeJSON(w, http.StatusNotImplemented, apiError{Error: "this cluster keeps no SLURM accounting (scheduler { type = \"slurm\", accounting = true })"})
			return
		}
		jobs, err := m.cfg.SlurmJobs()
		if err != nil {
			writeJSON(w, http.StatusBadGateway, apiError{Error: err.Error()})
			return
		}
		if jobs == nil {
			jobs = []slurm.AcctJob{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
	}))
}

// SlurmJobs lists the jobs SLURM's accounting recorded (cluster token).
func (c *Client) SlurmJobs(ctx context.Context) ([]slurm.AcctJob, error) {
	var out struct {
		Jobs []slurm.AcctJob `json:"jobs"`
	}
	err := c.Do(ctx, &Call{Method: "GET", Path: "/v1/slurm/jobs", Out: &out, Retry: true})
	return out.Jobs, err
}
