package overlay_test

import (
	"fmt"
	"testing"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/overlay/overlaytest"
)

// BenchmarkPlan times Plan plus computing every node's peer set, for
// 10,000 nodes in 100 sites (and 1,000 in 100 for comparison). A mesh of
// 10,000 holds 10^8 peers: its peer sets are computed one node at a time
// and dropped, as a node agent would, so memory stays O(n).
func BenchmarkPlan(b *testing.B) {
	for _, topo := range topologies {
		for _, n := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s/n=%d", topo, n), func(b *testing.B) {
				built, err := overlaytest.Build(overlaytest.Large(topo, 100, n/100))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				peers := 0
				for i := 0; i < b.N; i++ {
					tp, err := overlay.Plan(built.Cluster, built.Members, built.Addrs)
					if err != nil {
						b.Fatal(err)
					}
					peers = 0
					for _, id := range tp.Nodes() {
						ps, _ := tp.PeersFor(id)
						peers += len(ps.Peers)
					}
				}
				b.ReportMetric(float64(peers), "peers")
			})
		}
	}
}

// BenchmarkAllocate times allocating 10,000 addresses, then re-allocating
// after 10% of the nodes are replaced.
func BenchmarkAllocate(b *testing.B) {
	built, err := overlaytest.Build(overlaytest.Large("star", 100, 100))
	if err != nil {
		b.Fatal(err)
	}
	nodes := make([]string, 0, len(built.Members))
	for _, m := range built.Members {
		nodes = append(nodes, m.ID)
	}
	next := append(nodes[len(nodes)/10:len(nodes):len(nodes)], ids("new", 0, len(nodes)/10)...)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		prev, _ := overlay.Allocate(built.Cluster.Overlay.CIDR, nil, nodes)
		if _, err := overlay.Allocate(built.Cluster.Overlay.CIDR, prev, next); err != nil {
			b.Fatal(err)
		}
	}
}
