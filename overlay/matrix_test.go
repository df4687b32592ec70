package overlay_test

import (
	"math/rand/v2"
	"testing"

	"github.com/hvctl/hvctl/overlay/overlaytest"
)

// matrixSeed draws the generated topology matrix; a failure names the
// seed and tree number that reproduce it.
const (
	matrixSeed  = 20261302
	matrixTrees = 300
)

// TestGeneratedMatrix draws matrixTrees random site trees (up to three
// levels, public and NAT'd sites, nested sites with and without gateways
// and networks of their own) and checks, for each in star, mesh and
// hierarchical, that every ordered pair of nodes has a path through the
// forwarding simulator with the planned endpoints: NATs drop unsolicited
// packets and do not hairpin.
func TestGeneratedMatrix(t *testing.T) {
	t.Logf("seed %d, %d trees", matrixSeed, matrixTrees)
	for _, topo := range topologies {
		for i := uint64(0); i < matrixTrees; i++ {
			sp := overlaytest.Random(rand.New(rand.NewPCG(matrixSeed, i)), topo)
			b, tp, sets := plan(t, sp)
			n := newNet(b, tp, sets)
			fails := 0
			for _, src := range b.Members {
				sa, _ := tp.Address(src.ID)
				for _, dst := range b.Members {
					if src.ID == dst.ID {
						continue
					}
					da, _ := tp.Address(dst.ID)
					if err := n.send(src.ID, sa, da); err != nil {
						if fails++; fails <= 3 {
							t.Errorf("%s seed %d tree %d: %s -> %s: %v", topo, matrixSeed, i, src.ID, dst.ID, err)
						}
					}
				}
			}
			if fails > 3 {
				t.Errorf("%s seed %d tree %d: %d pairs without a path in all", topo, matrixSeed, i, fails)
			}
		}
	}
}
