package manager

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hvctl/hvctl/scheduler"
)

// BenchmarkSubmitArray100k submits an array of 100,000 jobs over HTTP
// through the client, as hvctl submit does (summary answer), and as
// before (every job in the answer), then lists them page by page and in
// one answer. It reports each case's jobs/s; the ratios are in
// docs/benchmarks.md.
func BenchmarkSubmitArray100k(b *testing.B) {
	const n = 100000
	for i := 0; i < b.N; i++ {
		m, _, s := newManagerTB(b)
		srv := httptest.NewServer(m.Handler())
		c := NewClient(ClientConfig{Endpoints: []string{srv.URL}, Token: s.AdminToken()})
		ctx := context.Background()
		spec := &scheduler.Spec{Command: []string{"true"}, Count: n}

		start := time.Now()
		sum, err := c.Submit(ctx, spec, "")
		if err != nil || sum.Count != n {
			b.Fatalf("submit: %v %+v", err, sum)
		}
		b.ReportMetric(n/time.Since(start).Seconds(), "summary-submit-jobs/s")

		start = time.Now()
		var full struct{ Jobs []*scheduler.Job }
		if err := c.Do(ctx, &Call{Method: "POST", Path: "/v1/jobs", In: spec, Out: &full, Timeout: SubmitTimeout(n), MaxResponse: 1 << 30}); err != nil || len(full.Jobs) != n {
			b.Fatalf("full submit: %v", err)
		}
		b.ReportMetric(n/time.Since(start).Seconds(), "full-submit-jobs/s")

		start = time.Now()
		count := 0
		if err := c.EachJob(ctx, JobsQuery{Array: sum.ArrayID}, func(*scheduler.Job) error { count++; return nil }); err != nil || count != n {
			b.Fatalf("pages: %v (%d jobs)", err, count)
		}
		b.ReportMetric(n/time.Since(start).Seconds(), "paged-list-jobs/s")
		srv.Close()
	}
}
