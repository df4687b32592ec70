package manager

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/templates"
)

// siteInfos describes the cluster's sites for routing: tier, and the
// node shapes its pools can add.
func siteInfos(c *templates.Cluster) []scheduler.SiteInfo {
	var out []scheduler.SiteInfo
	for _, s := range c.AllSites() {
		info := scheduler.SiteInfo{Name: s.Path, Tier: s.Tier}
		for _, p := range s.Pools {
			info.Shapes = append(info.Shapes, &scheduler.Node{CPUs: p.Instance.CPUs, MemoryMiB: p.Instance.Memory >> 20,
				GPUs: p.Instance.GPUs, Labels: p.Labels})
		}
		for _, n := range s.Nodes {
			if n.HasRole(templates.RoleWorker) {
				info.Shapes = append(info.Shapes, &scheduler.Node{CPUs: n.Instance.CPUs, MemoryMiB: n.Instance.Memory >> 20, GPUs: n.Instance.GPUs})
			}
		}
		out = append(out, info)
	}
	return out
}

// preferred ranks the nodes that may run a site's local manager: the
// site's gateway, then a manager, then any node (lower is better).
func (m *Manager) preferred(n *Node) int {
	for _, s := range m.cfg.Cluster.AllSites() {
		if s.Path != n.Site {
			continue
		}
		if s.Gateway != "" && n.ID == s.Path+"."+s.Gateway {
			return 0
		}
	}
	for _, r := range n.Roles {
		if r == templates.RoleManager || r == templates.RoleHub {
			return 1
		}
	}
	return 2
}

// designateLocked picks the node that runs n's site's local manager, if
// the site has none or n is a better choice that the current one.
func (m *Manager) designateLocked(n *Node) {
	cur := m.nodes[m.designated[n.Site]]
	if cur != nil && cur.ID != n.ID && m.preferred(cur) <= m.preferred(n) {
		return
	}
	if cur != nil && cur.ID == n.ID {
		m.linkSiteLocked(n.Site)
		return
	}
	m.designated[n.Site] = n.ID
	m.saveLocked()
	m.linkSiteLocked(n.Site)
	m.bumpLocked() // nodes of the site learn where their local manager is
}

// redesignateLocked moves a site's local manager when its node left.
func (m *Manager) redesignateLocked(site, gone string) {
	if m.designated[site] != gone {
		return
	}
	delete(m.designated, site)
	m.global.SetLink(site, nil)
	var best *Node
	for _, n := range m.nodes {
		if n.Site == site && (best == nil || m.preferred(n) < m.preferred(best) || (m.preferred(n) == m.preferred(best) && n.ID < best.ID)) {
			best = n
		}
	}
	if best != nil {
		m.designateLocked(best)
	}
}

// redesignateSilent moves a site's local manager off a node that
// stopped heartbeating to the best live node of the site; the global
// manager seeds the new one from the job table.
func (m *Manager) redesignateSilent() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Clock()
	limit := FailAfter * m.cfg.Heartbeat
	for site, id := range m.designated {
		if n := m.nodes[id]; n != nil && now.Sub(n.LastSeen) <= limit {
			continue
		}
		var best *Node
		for _, n := range m.nodes {
			if n.Site != site || n.ID == id || now.Sub(n.LastSeen) > limit {
				continue
			}
			if best == nil || m.preferred(n) < m.preferred(best) || (m.preferred(n) == m.preferred(best) && n.ID < best.ID) {
				best = n
			}
		}
		if best == nil {
			continue
		}
		m.cfg.Logf("site %s: local manager node %s is silent; %s runs it now", site, id, best.ID)
		m.designated[site] = best.ID
		if err := m.saveLocked(); err != nil {
			m.cfg.Logf("site %s: record the new local manager: %v", site, err)
		}
		m.linkSiteLocked(site)
		m.bumpLocked() // nodes of the site learn where their local manager is
	}
}

func (m *Manager) localURL(id string) string {
	a, ok := m.addrs[id]
	if !ok {
		return ""
	}
	return "http://" + netip.AddrPortFrom(a, LocalManagerPort).String()
}

func (m *Manager) linkSiteLocked(site string) {
	id := m.designated[site]
	url := m.localURL(id)
	if url == "" {
		return
	}
	m.global.SetLink(site, &SiteLink{C: NewClient(ClientConfig{Endpoints: []string{url}, Token: m.cfg.Secret.Site(site).AdminToken()})})
}

func (m *Manager) runtimeLocked(id string) Runtime {
	n := m.nodes[id]
	if n == nil {
		return Runtime{}
	}
	site := m.cfg.Secret.Site(n.Site)
	claims := SiteClaims{Worker: slices.Contains(n.Roles, templates.RoleWorker), CPUs: n.Caps.CPUs, MemoryMiB: n.Caps.MemoryMiB,
		GPUs: n.Caps.GPUs, Labels: n.Caps.Labels}
	rt := Runtime{LocalManager: m.localURL(m.designated[n.Site]), SiteCredential: site.SiteCredential(id, claims),
		NodeCache: m.cfg.Cluster.Cache.Node, GlobalSite: globalSite(m.cfg.Cluster)}
	for _, s := range m.cfg.Cluster.AllSites() {
		if s.Path == n.Site && s.Cache != nil {
			rt.SiteCache = s.Cache.Size
		}
	}
	if m.designated[n.Site] == id {
		rt.RunLocal = site.String()
	}
	if m.cfg.Slurm != nil {
		rt.Slurm = m.cfg.Slurm(id)
	}
	rt.Probe = m.probeTargetsLocked(id)
	if g, ok := m.grants[id]; ok {
		if w := Witness(m.cfg.Cluster); w != nil && w.Path() == id {
			rt.Witness = &g
		}
	}
	return rt
}

func globalSite(c *templates.Cluster) string {
	if c.Cache.Global != "" {
		node, _, _ := strings.Cut(c.Cache.Global, ":")
		if i := strings.LastIndex(node, "."); i > 0 {
			return node[:i]
		}
	}
	if len(c.Overlay.Hubs) > 0 {
		if i := strings.LastIndex(c.Overlay.Hubs[0], "."); i > 0 {
			return c.Overlay.Hubs[0][:i]
		}
	}
	return ""
}

// Run keeps the global manager's view of the sites fresh until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if m.Leading() {
			m.redesignateSilent()
			m.global.Sync()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Global is the job table (for tests and the elastic daemon's signals).
func (m *Manager) Global() *scheduler.Global { return m.global }
