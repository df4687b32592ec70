package slurm

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hvctl/hvctl/scheduler"
)

// Reading is one look at SLURM: the decoded outputs of squeue
// SqueuePendingArgs, squeue SqueueRunningArgs and sinfo SinfoArgs, taken
// at Time.
type Reading struct {
	Time    time.Time
	Pending []Pending
	// Running is the number of jobs on each SLURM node name.
	Running map[string]int
	Nodes   []NodeInfo
}

// IdleTracker remembers across readings since when each node has been
// idle. Its zero value is ready; it is safe for concurrent use.
type IdleTracker struct {
	mu    sync.Mutex
	since map[string]time.Time
}

// observe records whether node id is idle at now and returns for how long
// it has been, in seconds (0 the first time it is seen idle).
func (t *IdleTracker) observe(now time.Time, id string, idle bool) float64 {
	if !idle {
		delete(t.since, id)
		return 0
	}
	s, ok := t.since[id]
	if !ok || now.Before(s) {
		t.since[id] = now
		return 0
	}
	return now.Sub(s).Seconds()
}

// Signals converts one reading into the builtin scheduler's signals, the
// form the elastic daemon reads from GET /v1/queue. nodes is the
// cluster's node list (Nodes); SLURM nodes not in it are ignored.
//
// Pending jobs are all Waiting demand: SLURM has not given them to a
// site. A job over n nodes counts as n jobs of its per-node share of CPUs
// (rounded up) and its per-node memory. Jobs pin to a site when every
// partition they ask for is that site's (or a sub-site's), or when their
// constraint (features joined by '&') names a site feature (one under
// the partition's site refines the pin); label
// features become the demand's labels. Blocked jobs (held, dependencies,
// ...) are not demand.
//
// Each site lists its compute nodes that have a registered slurmd:
// powered-down, powering and never-seen nodes are left out, so that the
// elastic daemon counts a machine that exists but has not registered as
// booting. A node is Lost when SLURM shows it down or not responding.
// RunningJobs counts a job over several nodes once per node.
func Signals(r Reading, nodes []Node, idle *IdleTracker) scheduler.Signals {
	out := scheduler.Signals{Time: r.Time, Waiting: scheduler.SiteSignals{},
		Cache: scheduler.CacheSignals{FetchesByTier: map[scheduler.Tier]int64{}}}
	info := make(map[string]NodeInfo, len(r.Nodes))
	for _, n := range r.Nodes {
		info[n.Name] = n
	}
	if idle != nil {
		idle.mu.Lock()
		defer idle.mu.Unlock()
		if idle.since == nil {
			idle.since = map[string]time.Time{}
		}
	}
	sites := map[string]*scheduler.SiteSignals{}
	var siteNames []string
	seen := map[string]bool{}
	for _, n := range nodes {
		ss := sites[n.Site]
		if ss == nil {
			ss = &scheduler.SiteSignals{Site: n.Site}
			sites[n.Site] = ss
			siteNames = append(siteNames, n.Site)
		}
		ni, ok := info[n.Name]
		if !ok || ni.Absent() {
			continue
		}
		ns := scheduler.NodeState{
			Node: scheduler.Node{ID: n.MemberID, Site: n.Site, Pool: n.Pool,
				CPUs: n.CPUs, MemoryMiB: n.MemoryMiB, GPUs: n.GPUs, Labels: n.Labels, UsedCPUs: ni.AllocCPUs},
			Lost:    ni.Lost(),
			Running: r.Running[n.Name],
		}
		if ns.CPUs == 0 {
			ns.CPUs = ni.TotalCPUs
		}
		if ns.MemoryMiB == 0 && ni.MemoryMiB > 1 { // SLURM's default RealMemory is 1
			ns.MemoryMiB = ni.MemoryMiB
		}
		if idle != nil {
			seen[n.MemberID] = true
			ns.IdleFor = idle.observe(r.Time, n.MemberID, !ns.Lost && ns.Running == 0 && ni.AllocCPUs == 0)
		}
		if !ns.Lost && ni.Flags&(Drain|Fail|Invalid) == 0 {
			ss.FreeSlots += ni.IdleCPUs
		}
		ss.RunningJobs += ns.Running
		ss.Nodes = append(ss.Nodes, ns)
	}
	if idle != nil {
		for id := range idle.since {
			if !seen[id] {
				delete(idle.since, id)
			}
		}
	}
	sort.Strings(siteNames)
	for _, s := range siteNames {
		ss := sites[s]
		sort.Slice(ss.Nodes, func(a, b int) bool { return ss.Nodes[a].ID < ss.Nodes[b].ID })
		out.Sites = append(out.Sites, *ss)
	}
	out.Waiting = demand(r, nodes)
	return out
}

// demand groups the pending jobs by what each of their nodes needs and
// where they are pinned.
func demand(r Reading, nodes []Node) scheduler.SiteSignals {
	partSite := map[string]string{}
	featSite := map[string]string{}
	featLabel := map[string][2]string{}
	for _, n := range nodes {
		for _, s := range siteAndParents(n.Site) {
			partSite[PartitionName(s)] = s
			featSite[SiteFeature(s)] = s
		}
		keys := make([]string, 0, len(n.Labels))
		for k := range n.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if f := LabelFeature(k, n.Labels[k]); featLabel[f] == [2]string{} {
				featLabel[f] = [2]string{k, n.Labels[k]}
			}
		}
	}
	ws := scheduler.SiteSignals{}
	groups := map[string]*scheduler.DemandGroup{}
	var keys []string
	for _, p := range r.Pending {
		if p.Blocked() {
			continue
		}
		site := ""
		for i, part := range p.Partitions {
			s, ok := partSite[part]
			if !ok || i > 0 && s != site {
				site = ""
				break
			}
			site = s
		}
		var labels map[string]string
		for _, f := range andFeatures(p.Features) {
			if s, ok := featSite[f]; ok && within(s, site) {
				site = s
			}
			if kv, ok := featLabel[f]; ok {
				if labels == nil {
					labels = map[string]string{}
				}
				labels[kv[0]] = kv[1]
			}
		}
		res := scheduler.Resources{CPUs: (p.CPUs + p.Nodes - 1) / p.Nodes, MemoryMiB: p.MemoryMiB, Labels: labels}
		since := p.Submitted
		if since.IsZero() {
			since = r.Time
		}
		ws.PendingJobs++
		ws.PendingSlots += p.CPUs
		k := fmt.Sprint(res.CPUs, res.MemoryMiB, res.Labels, site)
		g := groups[k]
		if g == nil {
			g = &scheduler.DemandGroup{Resources: res, Oldest: since, Site: site}
			groups[k] = g
			keys = append(keys, k)
		}
		g.Count += p.Nodes
		if since.Before(g.Oldest) {
			g.Oldest = since
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		ws.Demand = append(ws.Demand, *groups[k])
	}
	return ws
}

// andFeatures splits a constraint made only of features joined by '&'
// (or ','); anything richer (|, [], (), counts, negation) gives nil.
func andFeatures(expr string) []string {
	if expr == "" || strings.ContainsAny(expr, "|[]()*!") {
		return nil
	}
	return strings.FieldsFunc(expr, func(r rune) bool { return r == '&' || r == ',' })
}

// within reports whether site is parent or under it ("" holds every site).
func within(site, parent string) bool {
	return parent == "" || site == parent || strings.HasPrefix(site, parent+".")
}

// siteAndParents is "cloud.zone-a" → cloud.zone-a, cloud.
func siteAndParents(site string) []string {
	out := []string{site}
	for i := len(site) - 1; i > 0; i-- {
		if site[i] == '.' {
			out = append(out, site[:i])
		}
	}
	return out
}
