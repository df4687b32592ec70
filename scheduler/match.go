package scheduler

import (
	"sort"
)

// Node is a worker as a local manager sees it: what it has and what its
// running jobs use.
type Node struct {
	ID        string            `json:"id"`
	Site      string            `json:"site"`
	Pool      string            `json:"pool,omitempty"`
	CPUs      int               `json:"cpus"`
	MemoryMiB int64             `json:"memory_mib"`
	GPUs      int               `json:"gpus,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	UsedCPUs  int               `json:"used_cpus"`
	UsedMiB   int64             `json:"used_memory_mib"`
	UsedGPUs  int               `json:"used_gpus"`
	// Cached are the datasets in the node's cache.
	Cached map[string]bool `json:"-"`
}

// slots is the node's CPU slots (at least one).
func (n *Node) slots() int {
	if n.CPUs < 1 {
		return 1
	}
	return n.CPUs
}

// FreeSlots is how many one-CPU jobs would still fit.
func (n *Node) FreeSlots() int { return n.slots() - n.UsedCPUs }

// Capable reports whether the node could ever run r (empty).
func (n *Node) Capable(r Resources) bool {
	if r.CPUSlots() > n.slots() || (n.MemoryMiB > 0 && r.MemoryMiB > n.MemoryMiB) || r.GPUs > n.GPUs {
		return false
	}
	for k, v := range r.Labels {
		if n.Labels[k] != v {
			return false
		}
	}
	return true
}

// Fits reports whether r fits in what the node has free now.
func (n *Node) Fits(r Resources) bool {
	if !n.Capable(r) {
		return false
	}
	return r.CPUSlots() <= n.slots()-n.UsedCPUs &&
		(n.MemoryMiB == 0 || r.MemoryMiB <= n.MemoryMiB-n.UsedMiB) &&
		r.GPUs <= n.GPUs-n.UsedGPUs
}

func (n *Node) take(r Resources) {
	n.UsedCPUs += r.CPUSlots()
	n.UsedMiB += r.MemoryMiB
	n.UsedGPUs += r.GPUs
}

// Release gives back what a job of r used.
func (n *Node) Release(r Resources) {
	n.UsedCPUs -= r.CPUSlots()
	n.UsedMiB -= r.MemoryMiB
	n.UsedGPUs -= r.GPUs
	if n.UsedCPUs < 0 {
		n.UsedCPUs = 0
	}
	if n.UsedMiB < 0 {
		n.UsedMiB = 0
	}
	if n.UsedGPUs < 0 {
		n.UsedGPUs = 0
	}
}

// Assignment places a job on a node.
type Assignment struct {
	Job  *Job
	Node *Node
}

// QueueOrder sorts jobs the way they are served: higher priority first,
// then earlier submission, then array index.
func QueueOrder(jobs []*Job) {
	sort.Slice(jobs, func(i, j int) bool {
		a, b := jobs[i], jobs[j]
		if a.Spec.Priority != b.Spec.Priority {
			return a.Spec.Priority > b.Spec.Priority
		}
		if !a.Submitted.Equal(b.Submitted) {
			return a.Submitted.Before(b.Submitted)
		}
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		return a.ID < b.ID
	})
}

// Match places queued jobs (in QueueOrder) on nodes. A job goes to the
// node that has the most of its inputs cached, then the busiest node it
// fits on (packing leaves whole nodes free to power off). A job that fits
// nowhere now does not block smaller ones behind it (backfill). Nodes'
// usage is updated in place.
func Match(queue []*Job, nodes []*Node) []Assignment {
	var out []Assignment
	free := 0
	for _, n := range nodes {
		free += max(0, n.FreeSlots())
	}
	for _, j := range queue {
		if free <= 0 {
			break // nothing more fits anywhere
		}
		var best *Node
		bestScore := [2]int{-1, -1}
		for _, n := range nodes {
			if !n.Fits(j.Spec.Resources) {
				continue
			}
			cached := 0
			for _, in := range j.Spec.Inputs {
				if n.Cached[in] {
					cached++
				}
			}
			score := [2]int{cached, n.UsedCPUs}
			if score[0] > bestScore[0] || (score[0] == bestScore[0] && score[1] > bestScore[1]) ||
				(score == bestScore && best != nil && n.ID < best.ID) {
				best, bestScore = n, score
			}
		}
		if best != nil {
			best.take(j.Spec.Resources)
			free -= j.Spec.Resources.CPUSlots()
			out = append(out, Assignment{Job: j, Node: best})
		}
	}
	return out
}

// SiteView is what the global manager knows of a site when routing.
type SiteView struct {
	Name string
	Tier int
	// Nodes are the site's joined nodes with their current use.
	Nodes []*Node
	// Shapes are the node shapes the site can still add (elastic pools
	// below max): a job that fits one can be routed here and wait for
	// the pool to grow.
	Shapes []*Node
	// Pending is the work already queued there, in CPU slots.
	Pending int
	// Cached are the datasets in the site's cache.
	Cached map[string]bool
}

func (s *SiteView) free() int {
	f := 0
	for _, n := range s.Nodes {
		f += n.FreeSlots()
	}
	return f
}

func (s *SiteView) capable(r Resources) bool {
	for _, n := range s.Nodes {
		if n.Capable(r) {
			return true
		}
	}
	for _, n := range s.Shapes {
		if n.Capable(r) {
			return true
		}
	}
	return false
}

// Route picks the site for a job: one able to run it (a node or an
// elastic shape that fits; the job's own site when pinned), preferring a
// site with room now (free slots beyond what is already queued), then the
// most of its inputs cached, then the lowest tier, then the shortest
// queue. "" when no site can run it.
func Route(j *Job, sites []*SiteView) string {
	var best *SiteView
	var bestKey [4]int
	for _, s := range sites {
		if j.Spec.Site != "" && s.Name != j.Spec.Site {
			continue
		}
		if !s.capable(j.Spec.Resources) {
			continue
		}
		room := 0
		if s.free()-s.Pending >= j.Spec.Resources.CPUSlots() {
			room = 1
		}
		cached := 0
		for _, in := range j.Spec.Inputs {
			if s.Cached[in] {
				cached++
			}
		}
		// Larger is better in every position.
		key := [4]int{room, cached, -s.Tier, -(s.Pending - s.free())}
		if best == nil || less(bestKey, key) {
			best, bestKey = s, key
		}
	}
	if best == nil {
		return ""
	}
	return best.Name
}

func less(a, b [4]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}
