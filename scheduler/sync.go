package scheduler

import (
	"fmt"
	"strings"
	"time"
)

// DefaultSyncWait is how long Sync waits for the sites' answers.
const DefaultSyncWait = time.Second

// Sync pulls every site's state, each site on its own, and updates the
// job table. It waits for the answers at most SyncWait (default
// DefaultSyncWait): a pull still running after that goes on (bounded by
// its link's own timeout), its answer is applied when it comes, and no
// second pull of that site starts meanwhile, so a slow or dead site
// never delays another. A site whose pull fails is marked unreachable:
// no job is routed there until a pull succeeds. Sync returns the first
// error among the answers it waited for.
func (g *Global) Sync() error {
	type pull struct {
		name  string
		link  SiteLink
		since uint64
		gen   uint64
	}
	g.mu.Lock()
	var pulls []pull
	for n, s := range g.sites {
		if s.link != nil && !s.pulling {
			s.pulling = true
			pulls = append(pulls, pull{n, s.link, s.version, s.gen})
		}
	}
	wait := g.SyncWait
	g.mu.Unlock()
	if wait <= 0 {
		wait = DefaultSyncWait
	}
	done := make(chan error, len(pulls))
	for _, p := range pulls {
		go func() {
			st, err := p.link.State(p.since)
			if err == nil {
				if serr := g.seedIfNew(p.name, p.gen, p.link, p.since, st); serr != nil {
					g.endPull(p.name, p.gen)
					done <- serr
					return
				}
			}
			done <- g.applyPull(p.name, p.gen, st, err)
		}()
	}
	var first error
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
wait:
	for range pulls {
		select {
		case err := <-done:
			if err != nil && first == nil {
				first = err
			}
		case <-deadline.C:
			break wait
		}
	}
	g.dispatch()
	return first
}

// applyPull records the answer of a pull of site through the link of
// generation gen.
func (g *Global) applyPull(site string, gen uint64, st SiteState, err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sites[site]
	if s == nil || s.gen != gen {
		return nil // the link changed meanwhile
	}
	s.pulling = false
	if err != nil {
		g.markDownLocked(s, err)
		return fmt.Errorf("site %s: %w", site, err)
	}
	g.markUpLocked(s)
	jobs := st.Jobs
	st.Jobs = nil
	var apply, changed []*Job
	for _, j := range jobs {
		if cur := g.jobs[j.ID]; cur != nil && (!cur.State.Final() || cur.State == Cancelled) {
			apply = append(apply, j)
			if jobChanged(cur, j) {
				changed = append(changed, j)
			}
		}
	}
	// Recorded before the table moves on: a change the control log did
	// not take is read again from the same version at the next sync.
	if err := g.recordLocked(changed); err != nil {
		return fmt.Errorf("site %s: %w", site, err)
	}
	s.version = st.Version
	s.state = st
	for _, j := range apply {
		*g.jobs[j.ID] = *j
	}
	return nil
}

// endPull ends a pull of site through the link of generation gen whose
// answer is not applied.
func (g *Global) endPull(site string, gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.sites[site]; s != nil && s.gen == gen {
		s.pulling = false
	}
}

// markDownLocked records that s's local manager could not be reached;
// the jobs it holds say so.
func (g *Global) markDownLocked(s *siteRec, err error) {
	if s.down == "" {
		s.downSince = g.Clock()
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	s.down = msg
	reason := g.downReasonLocked(s)
	for _, j := range g.jobs {
		if j.Site == s.info.Name && !j.State.Final() {
			j.Reason = reason
		}
	}
}

// markUpLocked records that s answered.
func (g *Global) markUpLocked(s *siteRec) {
	if s.down == "" {
		return
	}
	s.down, s.downSince = "", time.Time{}
	for _, j := range g.jobs {
		if j.Site == s.info.Name && strings.HasPrefix(j.Reason, "site ") {
			j.Reason = ""
		}
	}
}

func (g *Global) downReasonLocked(s *siteRec) string {
	return fmt.Sprintf("site %s: local manager unreachable since %s (%s)", s.info.Name, s.downSince.UTC().Format(time.TimeOnly), s.down)
}

// waitReasonLocked says why waiting job j is not given to a site: only
// an unreachable site can run it.
func (g *Global) waitReasonLocked(j *Job, up, down []*SiteView) string {
	if Route(j, up) != "" {
		return "" // a reachable site can: it waits for room
	}
	for _, v := range down {
		if Route(j, []*SiteView{v}) != "" {
			return g.downReasonLocked(g.sites[v.Name])
		}
	}
	return ""
}

// Unreachable returns the sites whose local manager cannot be reached,
// with why.
func (g *Global) Unreachable() map[string]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]string{}
	for n, s := range g.sites {
		if s.down != "" {
			out[n] = g.downReasonLocked(s)
		}
	}
	return out
}
