package cluster

import (
	"context"
	"fmt"
	"sort"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/addrs"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/scheduler/slurm"
	"github.com/hvctl/hvctl/templates"
)

// Slot is one slot of an elastic pool.
type Slot struct {
	Pool  *templates.Pool
	Index int
}

// Address is the slot's resource address.
func (s Slot) Address() string { return provision.PoolNodeAddress(s.Pool, s.Index) }

// ElasticPools are the template's elastic pools (min < max) by path
// ("cloud.burst").
func (c *Cluster) ElasticPools() map[string]*templates.Pool {
	out := map[string]*templates.Pool{}
	for _, s := range c.Config.Cluster.AllSites() {
		for _, pl := range s.Pools {
			if pl.Elastic() {
				out[pl.Path()] = pl
			}
		}
	}
	return out
}

// ApplyPool applies changes made outside a plan (provision.Engine's
// PoolCreate and provision.DeleteChange) through the engine, as a plan's
// would be: nodes created get their join tokens. Where one address is
// both deleted and created (a failed node made again) the deletes go
// first, in their own apply.
func (c *Cluster) ApplyPool(ctx context.Context, changes []*provision.Change) error {
	if len(changes) == 0 {
		return nil
	}
	if err := c.prepare(c.State); err != nil {
		return err
	}
	seen := map[string]bool{}
	twice := false
	for _, ch := range changes {
		twice = twice || seen[ch.Address]
		seen[ch.Address] = true
	}
	batches := [][]*provision.Change{changes}
	if twice {
		var dels, creates []*provision.Change
		for _, ch := range changes {
			if ch.Action == provision.ActionDelete {
				dels = append(dels, ch)
			} else {
				creates = append(creates, ch)
			}
		}
		batches = [][]*provision.Change{dels, creates}
	}
	for _, b := range batches {
		if len(b) == 0 {
			continue
		}
		if res := c.Engine.Apply(ctx, c.State, c.Engine.PoolPlan(c.State, b)); res.Err() != nil {
			return res.Err()
		}
	}
	return nil
}

// Resume creates the slots that do not exist and makes again those
// whose machine failed to boot (SLURM's ResumeProgram). It returns how
// many changes it applied (0: all exist already).
func (c *Cluster) Resume(ctx context.Context, slots []Slot) (int, error) {
	var changes []*provision.Change
	for _, sl := range slots {
		r := c.State.Resource(sl.Address())
		if r != nil && r.Status != provision.StatusTainted {
			continue
		}
		if r != nil {
			changes = append(changes, provision.DeleteChange(r)) // a failed boot: make it again
		}
		ch, err := c.Engine.PoolCreate(c.State, sl.Pool, sl.Index, nil)
		if err != nil {
			return 0, err
		}
		changes = append(changes, ch)
	}
	return len(changes), c.ApplyPool(ctx, changes)
}

// Suspend destroys the slots that exist (SLURM's SuspendProgram),
// telling the manager first. It returns how many it destroys (0: all
// are gone already).
func (c *Cluster) Suspend(ctx context.Context, slots []Slot) (int, error) {
	var changes []*provision.Change
	mc := c.Manager(c.State)
	for _, sl := range slots {
		if r := c.State.Resource(sl.Address()); r != nil {
			forget(ctx, mc, manager.MemberID(r.Address))
			changes = append(changes, provision.DeleteChange(r))
		}
	}
	return len(changes), c.ApplyPool(ctx, changes)
}

// SlurmSlots maps SLURM node names to elastic pool slots, sorted by
// name; bad lists the names that are not one (nothing to act on).
func (c *Cluster) SlurmSlots(names []string) (slots []Slot, bad []string) {
	nodes, err := slurm.Nodes(c.Config.Cluster)
	if err != nil {
		return nil, names
	}
	pools := map[string]*templates.Pool{}
	for _, s := range c.Config.Cluster.AllSites() {
		for _, p := range s.Pools {
			pools[p.Path()] = p
		}
	}
	byName := map[string]slurm.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	names = append([]string(nil), names...)
	sort.Strings(names)
	for _, name := range names {
		n, ok := byName[name]
		pl := pools[n.Pool]
		m, err := addrs.ParseMember(n.MemberID)
		if !ok || !n.Cloud || pl == nil || err != nil || m.Kind != addrs.Slot {
			bad = append(bad, name)
			continue
		}
		slots = append(slots, Slot{Pool: pl, Index: m.Index})
	}
	return slots, bad
}

// freeSlot is the first slot of pl that neither st nor taken holds.
func freeSlot(st *provision.State, pl *templates.Pool, taken map[string]bool) (int, error) {
	used := map[int]bool{}
	for _, r := range st.Resources {
		if i, ok := provision.PoolIndex(provision.PoolPrefix(pl), r.Address); ok {
			used[i] = true
		}
	}
	for i := 0; i < pl.Max; i++ {
		if !used[i] && !taken[provision.PoolNodeAddress(pl, i)] {
			return i, nil
		}
	}
	return -1, fmt.Errorf("pool %s is at its max of %d", pl.Path(), pl.Max)
}
