package sim

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkCreate measures one locked, fsynced Create in a world that
// grows to b.N machines, from parallel goroutines.
func BenchmarkCreate(b *testing.B) {
	p := newSim(b, b.TempDir(), nil, nil)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := instanceReq(fmt.Sprintf("node[%d]", n.Add(1)), "s", nil)
			if _, err := p.Create(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
