package slurm_test

import (
	"testing"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/scheduler/slurm"
)

// The package spells member IDs out instead of importing the manager (so
// the manager can import it); they must stay what manager.MemberID says.
func TestMemberIDsMatchManager(t *testing.T) {
	c := slurm.Load(t, slurm.LabTemplate)
	nodes, err := slurm.Nodes(c)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range c.AllSites() {
		for _, n := range s.Nodes {
			if n.Name == "login" {
				want = append(want, manager.MemberID(provision.NodeAddress(n)))
			}
		}
		for _, p := range s.Pools {
			for i := 0; i < p.Max; i++ {
				want = append(want, manager.MemberID(provision.PoolNodeAddress(p, i)))
			}
		}
	}
	if len(want) != len(nodes) {
		t.Fatalf("%d nodes, want %d", len(nodes), len(want))
	}
	for i, n := range nodes {
		if n.MemberID != want[i] {
			t.Errorf("node %d: member ID %s, manager says %s", i, n.MemberID, want[i])
		}
	}
}
