package agent

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/hvctl/hvctl/scheduler/manager"
)

// Path probing: the agent keeps probing the overlay address of every
// target the manager lists for it (every hub and gateway; every node in
// a mesh), so that heartbeats carry the health of each path and up,
// status and /metrics can tell a cluster that carries traffic everywhere
// from one whose nodes merely reach their first hop.
const (
	pathInterval = 2 * time.Second
	pathTimeout  = time.Second
	pathWindow   = 10 // probes kept per path for the loss figure
	pathParallel = 16 // probes in flight at once
)

// pathTracker keeps the recent probe results of each path. It has no
// I/O of its own: probeAll is given the ping function and the clock.
type pathTracker struct {
	mu    sync.Mutex
	paths map[string]*pathState // by target node
}

type pathState struct {
	addr       netip.Addr
	ok         bool
	lastAnswer time.Time
	recent     []bool // oldest first, at most pathWindow
}

// probeAll probes every target once, in parallel (bounded), records the
// results and forgets targets no longer listed.
func (pt *pathTracker) probeAll(ctx context.Context, targets []manager.ProbeTarget, ping func(context.Context, netip.Addr) error, now func() time.Time) {
	results := make([]bool, len(targets))
	sem := make(chan struct{}, pathParallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, pathTimeout)
			defer cancel()
			results[i] = ping(pctx, t.Address) == nil
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	keep := make(map[string]*pathState, len(targets))
	for i, t := range targets {
		st := pt.paths[t.Node]
		if st == nil || st.addr != t.Address {
			st = &pathState{addr: t.Address}
		}
		st.ok = results[i]
		if st.ok {
			st.lastAnswer = now()
		}
		st.recent = append(st.recent, st.ok)
		if len(st.recent) > pathWindow {
			st.recent = st.recent[len(st.recent)-pathWindow:]
		}
		keep[t.Node] = st
	}
	pt.paths = keep
}

// report is the path health to send with a heartbeat.
func (pt *pathTracker) report() []manager.PathHealth {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	out := make([]manager.PathHealth, 0, len(pt.paths))
	for to, st := range pt.paths {
		h := manager.PathHealth{To: to, Address: st.addr, OK: st.ok, LastAnswer: st.lastAnswer, Sent: len(st.recent)}
		for _, ok := range st.recent {
			if !ok {
				h.Lost++
			}
		}
		out = append(out, h)
	}
	return out
}

// pathLoop probes the runtime's targets every pathInterval.
func (a *Agent) pathLoop(ctx context.Context) {
	ping := func(ctx context.Context, dst netip.Addr) error {
		_, err := a.pinger.Ping(ctx, dst)
		return err
	}
	t := time.NewTicker(pathInterval)
	defer t.Stop()
	for {
		a.paths.probeAll(ctx, a.runtime().Probe, ping, time.Now)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
