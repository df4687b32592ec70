package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hvctl/hvctl/elastic"
	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
)

func runElasticRun(a *App, args []string) int {
	c := findCommand("elastic").sub("run")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optParallelism)
	metrics := fs.String("metrics", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9108)")
	steps := fs.Int("steps", 0, "stop after this many decisions (0 = run until interrupted)")
	standby := fs.Bool("standby", false, "when another daemon runs this cluster's pools, wait and take over when it stops (how every manager node runs one) instead of exiting")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	tmpl := templatePath(pos)
	o.lock = false
	s, mc, ok := a.runtimeSession(tmpl, &o)
	if !ok {
		return exitError
	}
	cfg, store := s.Config, s.Store
	pools := s.PolicyPools()
	s.close()
	elasticPools := 0
	for _, p := range pools {
		if p.Min < p.Max {
			elasticPools++
		}
	}
	if elasticPools == 0 {
		return a.fail("No elastic pools", "The template has no pool with min < max: there is nothing for the daemon to size.")
	}
	// One daemon per cluster: the hub's manager starts one where it can
	// (provision.HostLocal), and people start them by hand.
	daemonLock := &provision.Store{Path: filepath.Join(store.Dir(), "elastic")}
	dl, err := daemonLock.Lock(a.Ctx, "elastic run", 0)
	if err != nil && *standby && errors.As(err, new(*provision.LockError)) {
		// A standby: the kernel frees the lock when its holder dies, and
		// this one goes on from the journal it kept.
		holder := "another process"
		if h := daemonLock.LockHolder(); h != nil {
			holder = fmt.Sprintf("process %d (%s)", h.PID, h.Who)
		}
		a.Log.Info("elastic daemon stands by", "why", holder+" runs the elastic daemon of cluster "+cfg.Cluster.Name+"; this one takes over when it stops")
		dl, err = daemonLock.Lock(a.Ctx, "elastic run", 100*365*24*time.Hour)
		if err == nil {
			a.Log.Info("elastic daemon takes over", "why", holder+" stopped")
		}
	}
	if err != nil {
		var le *provision.LockError
		if errors.As(err, &le) && le.Holder != nil {
			return a.fail("The elastic daemon already runs",
				fmt.Sprintf("Process %d (%s, since %s) runs the elastic daemon of cluster %s; one runs per cluster. "+
					"Stop it first (kill %d), or leave it running. When the cluster's manager runs on this host it starts one itself.",
					le.Holder.PID, le.Holder.Who, le.Holder.Created.Format(time.RFC3339), cfg.Cluster.Name, le.Holder.PID))
		}
		return a.failErr(err)
	}
	defer dl.Unlock()
	logger := a.Log
	// The daemon's changes are made through internal/cluster, which
	// opens the cluster under the state lock for each batch.
	copts := a.clusterOptions(tmpl, &o, "elastic")
	copts.NoLock = false
	copts.UI = &provision.TextUI{R: &provision.Renderer{W: a.Stderr}}
	prov := &cluster.Provisioner{Options: copts, Manager: mc.Client, Log: logger}
	d := &elastic.Daemon{Pools: pools, Settings: cfg.Cluster.Elastic, Queue: &cluster.QueueSource{Manager: mc.Client}, Cloud: prov,
		Journal: elastic.FileJournal{Path: store.Dir() + "/elastic-journal.json"}, Log: logger,
		History: &elastic.FileHistory{Path: filepath.Join(store.Dir(), elastic.HistoryFile)}, Cluster: cfg.Cluster.Name}
	if *metrics != "" {
		reg := prometheus.NewRegistry()
		m, err := elastic.NewMetrics(reg)
		if err != nil {
			return a.failErr(err)
		}
		d.Metrics = m
		srv := manager.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), manager.Timeouts{})
		srv.Addr = *metrics
		go srv.ListenAndServe()
		defer srv.Close()
	}
	logger.Info("elastic daemon started", "cluster", cfg.Cluster.Name, "pools", elasticPools, "interval", cfg.Cluster.Elastic.Interval.String())
	iv := cfg.Cluster.Elastic.Interval
	for i := 0; *steps == 0 || i < *steps; i++ {
		if err := d.Step(a.Ctx); err != nil && a.Ctx.Err() == nil {
			logger.Error("elastic step", "err", err)
		}
		select {
		case <-a.Ctx.Done():
			i = -2
		case <-time.After(iv):
		}
		if i == -2 {
			break
		}
	}
	prov.Wait()
	return exitOK
}
