package manager

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/templates"
)

// dispatchRun submits an array of jobs to a global manager over two
// in-process sites (10 nodes of 4 slots each) and drives fake agents
// until every job is done; it returns jobs/s from submit to the last
// done. journal nil = the table in memory only.
func dispatchRun(b *testing.B, jobs int, journal scheduler.Journal) float64 {
	g := scheduler.NewGlobal([]scheduler.SiteInfo{{Name: "onprem", Tier: 0}, {Name: "cloud", Tier: 1}})
	g.Journal = journal
	locals := map[string]*scheduler.Local{}
	nodes := map[string][]scheduler.Node{}
	for _, s := range []string{"onprem", "cloud"} {
		l := scheduler.NewLocal(s, 0)
		l.GlobalSite = "onprem"
		locals[s] = l
		g.SetLink(s, scheduler.LocalLink{L: l})
		for k := 0; k < 10; k++ {
			n := scheduler.Node{ID: fmt.Sprintf("%s-%d", s, k), CPUs: 4}
			l.Poll(n, 0)
			nodes[s] = append(nodes[s], n)
		}
	}
	g.Sync()
	start := time.Now()
	if _, err := g.Submit(&scheduler.Spec{Command: []string{"x"}, Count: jobs}); err != nil {
		b.Fatal(err)
	}
	for round := 0; round < 100000; round++ {
		g.Sync()
		any := false
		for site, ns := range nodes {
			for _, n := range ns {
				for _, w := range locals[site].Poll(n, 0) {
					any = true
					if err := locals[site].Record(n.ID, scheduler.Report{JobID: w.Job.ID, Attempt: w.Attempt, State: scheduler.Done}); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		if !any && len(g.List(scheduler.Done)) == jobs { // listed only when idle
			break
		}
	}
	g.Sync()
	if done := len(g.List(scheduler.Done)); done != jobs {
		b.Fatalf("%d of %d jobs done", done, jobs)
	}
	return float64(jobs) / time.Since(start).Seconds()
}

// BenchmarkDispatchReplicated: submit and dispatch throughput of the
// global job table in memory and with every change written through the
// control log (raft with a raft-boltdb log on disk, one voter), in one
// run; the ratio is memory / log.
//
//	go test -run X -bench DispatchReplicated -benchtime 1x ./scheduler/manager/
func BenchmarkDispatchReplicated(b *testing.B) {
	const jobs = 10000
	for i := 0; i < b.N; i++ {
		mem := dispatchRun(b, jobs, nil)
		r, err := openReplica(ReplicaConfig{Dir: filepath.Join(b.TempDir(), "raft"), ID: "bench", Bootstrap: SingleVoter("bench")}, b.Logf)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.waitLeader(10 * time.Second); err != nil {
			b.Fatal(err)
		}
		logged := dispatchRun(b, jobs, logJournal{r})
		idx := r.raft.LastIndex()
		var bytes uint64
		for i := uint64(1); i <= idx; i++ {
			var l raft.Log
			if err := r.store.GetLog(i, &l); err == nil {
				bytes += uint64(len(l.Data))
			}
		}
		b.ReportMetric(float64(bytes), "log-bytes")
		r.close()
		b.ReportMetric(mem, "mem-jobs/s")
		b.ReportMetric(logged, "log-jobs/s")
		b.ReportMetric(mem/logged, "mem/log")
		b.Logf("%d jobs: memory %.0f jobs/s, control log %.0f jobs/s (%d log entries, %d bytes), ratio %.2f", jobs, mem, logged, idx, bytes, mem/logged)
	}
}

// BenchmarkFailover: three replicas over mutual TLS on loopback (two
// managers and the witness, raft's default timeouts, as agents run
// them); the leader is shut down (its transport closed, no leadership
// transfer) and the time until the survivor's API first answers 200 is
// measured, 10 times; the median is reported.
//
//	go test -run X -bench Failover -benchtime 1x ./scheduler/manager/
func BenchmarkFailover(b *testing.B) {
	cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(replicaTmpl)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		b.Fatal(d)
	}
	const rounds = 10
	for i := 0; i < b.N; i++ {
		var times []time.Duration
		for k := 0; k < rounds; k++ {
			times = append(times, failoverOnce(b, cfg.Cluster))
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		med := times[len(times)/2]
		b.ReportMetric(med.Seconds(), "median-s")
		b.ReportMetric(times[0].Seconds(), "min-s")
		b.ReportMetric(times[len(times)-1].Seconds(), "max-s")
		b.Logf("failover (leader shut down -> survivor answers 200), %d rounds: median %.2f s, min %.2f s, max %.2f s", rounds, med.Seconds(), times[0].Seconds(), times[len(times)-1].Seconds())
	}
}

func failoverOnce(b *testing.B, c *templates.Cluster) time.Duration {
	ca, err := NewCA("c")
	if err != nil {
		b.Fatal(err)
	}
	s := NewSecret()
	addrs := map[string]string{"onprem.frontend": freeAddr(b), "cloud.hub2": freeAddr(b), "cloud.gw": freeAddr(b)}
	resolve := func(id string) (string, error) {
		if a, ok := addrs[id]; ok {
			return a, nil
		}
		return "", fmt.Errorf("unknown replica %s", id)
	}
	dir := b.TempDir()
	rcfg := func(id string) ReplicaConfig {
		cert, key, err := ca.IssueReplica()
		if err != nil {
			b.Fatal(err)
		}
		tc, err := ReplicaTLS(ca.CertPEM, cert, key)
		if err != nil {
			b.Fatal(err)
		}
		return ReplicaConfig{Dir: filepath.Join(dir, id), ID: id, Listen: addrs[id], TLS: tc, Resolve: resolve, Witnesses: []string{"cloud.gw"}}
	}
	start := func(id string, boot bool) *Manager {
		rc := rcfg(id)
		if boot {
			rc.Bootstrap = SingleVoter(id)
		}
		m, err := New(Config{Cluster: c, Secret: s, Replica: &rc, Logf: func(string, ...any) {}})
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	m1 := start("onprem.frontend", true)
	m2 := start("cloud.hub2", false)
	defer m2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go RunWitness(ctx, rcfg("cloud.gw"), func(string, ...any) {})
	for _, j := range []struct {
		id, addr, site string
		public         string
	}{{"onprem.frontend", "site.onprem.node.frontend", "onprem", "198.51.100.1"}, {"cloud.hub2", "site.cloud.node.hub2", "cloud", "198.51.100.2"}, {"cloud.gw", "site.cloud.node.gw", "cloud", ""}} {
		req := &JoinRequest{Token: s.JoinToken(j.id), Address: j.addr, Site: j.site, PublicKey: key(b)}
		if j.public != "" {
			req.Endpoint = netip.AddrPortFrom(netip.MustParseAddr(j.public), 51820)
		}
		if _, err := m1.Join(req, ""); err != nil {
			b.Fatal(err)
		}
	}
	for _, id := range []string{"cloud.hub2", "cloud.gw"} {
		if err := m1.Beat(id, &Heartbeat{ProbeOK: true}); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, "three voters", 20*time.Second, func() bool {
		f := m1.replica.raft.GetConfiguration()
		return f.Error() == nil && len(f.Configuration().Servers) == 3
	})
	waitFor(b, "the follower has the log", 10*time.Second, func() bool { return m2.LeaderURL() != "" })
	srv := httptest.NewServer(m2.Handler())
	defer srv.Close()
	admin := "Bearer " + s.AdminToken()
	answers := func() bool {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/nodes", nil)
		req.Header.Set("Authorization", admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if answers() {
		b.Fatal("the follower served before the failover")
	}
	killed := time.Now()
	m1.Close()
	for !answers() {
		if time.Since(killed) > 30*time.Second {
			b.Fatal("no new leader 30 s after the leader died")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(killed)
}
