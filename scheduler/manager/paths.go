package manager

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ProbeTarget is an overlay address a node keeps probing: a hub or
// gateway it needs (every node in a mesh). The manager sends the list
// with the node's runtime; it changes as members come and go.
type ProbeTarget struct {
	Node    string     `json:"node"`
	Address netip.Addr `json:"address"`
}

// PathHealth is what a node knows of its path to one probe target.
type PathHealth struct {
	To      string     `json:"to"`
	Address netip.Addr `json:"address"`
	// OK is true when the last probe was answered.
	OK bool `json:"ok"`
	// LastAnswer is when a probe was last answered (zero: never).
	LastAnswer time.Time `json:"last_answer,omitzero"`
	// Sent and Lost count the probes of the recent window.
	Sent int `json:"sent"`
	Lost int `json:"lost"`
	// Reported is false when the node has not reported this path yet.
	Reported bool `json:"reported"`
}

// Loss is the share of the recent probes that got no answer.
func (p PathHealth) Loss() float64 {
	if p.Sent == 0 {
		return 1
	}
	return float64(p.Lost) / float64(p.Sent)
}

// describe says "a.w -> b.gw (address): why", for lists of dead paths.
func (p PathHealth) describe(from string) string {
	switch {
	case !p.Reported:
		return fmt.Sprintf("%s -> %s (%s): not probed yet", from, p.To, p.Address)
	case p.LastAnswer.IsZero():
		return fmt.Sprintf("%s -> %s (%s): never answered", from, p.To, p.Address)
	default:
		return fmt.Sprintf("%s -> %s (%s): no answer since %s, %d of %d probes lost", from, p.To, p.Address,
			p.LastAnswer.UTC().Format(time.TimeOnly), p.Lost, p.Sent)
	}
}

// DeadPaths lists the node's paths whose last probe went unanswered (or
// that it has not probed yet), as "from -> to (address): why".
func (n *Node) DeadPaths() []string {
	var out []string
	for _, p := range n.Paths {
		if !p.OK {
			out = append(out, p.describe(n.ID))
		}
	}
	return out
}

// probeTargetsLocked lists what node id must reach (overlay.ProbeTargets).
func (m *Manager) probeTargetsLocked(id string) []ProbeTarget {
	if m.topo == nil {
		return nil
	}
	var out []ProbeTarget
	for _, to := range m.topo.ProbeTargets(id) {
		a, _ := m.topo.Address(to)
		out = append(out, ProbeTarget{Node: to, Address: a})
	}
	return out
}

// pathsLocked is node id's path health for every target it must reach
// now: what it reported, and unreported targets as not OK.
func (m *Manager) pathsLocked(id string, reported []PathHealth) []PathHealth {
	targets := m.probeTargetsLocked(id)
	if len(targets) == 0 {
		return nil
	}
	byTo := make(map[string]PathHealth, len(reported))
	for _, p := range reported {
		byTo[p.To] = p
	}
	out := make([]PathHealth, 0, len(targets))
	for _, t := range targets {
		p, ok := byTo[t.Node]
		if !ok || p.Address != t.Address {
			p = PathHealth{To: t.Node, Address: t.Address}
		} else {
			p.Reported = true
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].To < out[j].To })
	return out
}

var (
	descPathUp     = prometheus.NewDesc("hvctl_overlay_path_up", "1 when the node's last probe to the target's overlay address was answered.", []string{"node", "target"}, nil)
	descPathLoss   = prometheus.NewDesc("hvctl_overlay_path_loss_ratio", "Share of the node's recent probes to the target that got no answer.", []string{"node", "target"}, nil)
	descPathBroken = prometheus.NewDesc("hvctl_overlay_paths_broken", "Overlay paths of live nodes whose last probe went unanswered.", nil, nil)
)

// pathCollector exports overlay path health on /metrics.
type pathCollector struct{ m *Manager }

func (c *pathCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPathUp
	ch <- descPathLoss
	ch <- descPathBroken
}

func (c *pathCollector) Collect(ch chan<- prometheus.Metric) {
	broken := 0
	for _, n := range c.m.Nodes() {
		if n.State != StateJoined {
			continue
		}
		for _, p := range n.Paths {
			up := 0.0
			if p.OK {
				up = 1
			} else {
				broken++
			}
			ch <- prometheus.MustNewConstMetric(descPathUp, prometheus.GaugeValue, up, n.ID, p.To)
			ch <- prometheus.MustNewConstMetric(descPathLoss, prometheus.GaugeValue, p.Loss(), n.ID, p.To)
		}
	}
	ch <- prometheus.MustNewConstMetric(descPathBroken, prometheus.GaugeValue, float64(broken))
}
