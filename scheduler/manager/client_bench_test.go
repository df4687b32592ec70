package manager

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/templates"
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

// BenchmarkSubmitArray100kLog submits an array of 100,000 jobs over
// HTTP through the client (summary answer, as hvctl submit does) to a
// manager whose job table is in memory and to one whose table is in the
// control log (a single voter, raft-boltdb on disk), in one run, and
// reports each one's jobs/s, the log's entry bytes for the submit and
// the ratio.
//
//	go test -run X -bench SubmitArray100kLog -benchtime 1x ./scheduler/manager/
func BenchmarkSubmitArray100kLog(b *testing.B) {
	const n = 100000
	cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(tmpl)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		b.Fatal(d)
	}
	run := func(withLog bool) (float64, uint64) {
		s := NewSecret()
		mc := Config{Cluster: cfg.Cluster, Secret: s}
		if withLog {
			mc.Replica = &ReplicaConfig{Dir: filepath.Join(b.TempDir(), "raft"), ID: "onprem.frontend", Bootstrap: SingleVoter("onprem.frontend")}
		}
		m, err := New(mc)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		srv := httptest.NewServer(m.Handler())
		defer srv.Close()
		c := NewClient(ClientConfig{Endpoints: []string{srv.URL}, Token: s.AdminToken()})
		spec := &scheduler.Spec{Command: []string{"sh", "-c", "echo $HVCTL_ARRAY_INDEX"}, Count: n}
		var before uint64
		if withLog {
			before = m.replica.raft.LastIndex()
		}
		start := time.Now()
		sum, err := c.Submit(context.Background(), spec, "bench-key")
		if err != nil || sum.Count != n {
			b.Fatalf("submit: %v %+v", err, sum)
		}
		rate := n / time.Since(start).Seconds()
		var bytes uint64
		if withLog {
			for i := before + 1; i <= m.replica.raft.LastIndex(); i++ {
				var l raft.Log
				if err := m.replica.store.GetLog(i, &l); err == nil {
					bytes += uint64(len(l.Data))
				}
			}
		}
		return rate, bytes
	}
	for i := 0; i < b.N; i++ {
		mem, _ := run(false)
		logged, bytes := run(true)
		b.ReportMetric(mem, "mem-jobs/s")
		b.ReportMetric(logged, "log-jobs/s")
		b.ReportMetric(mem/logged, "mem/log")
		b.ReportMetric(float64(bytes), "log-bytes")
		b.Logf("submit -n %d: memory %.0f jobs/s, control log %.0f jobs/s (%d bytes of log entries), ratio %.2f", n, mem, logged, bytes, mem/logged)
	}
}
