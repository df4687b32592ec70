package sim

import (
	"context"
	"fmt"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/providertest"
)

// TestContract runs the provider contract suite against the sim, with
// boot time so that WaitReady is exercised.
func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) *providertest.Target {
		dir := t.TempDir()
		boot := map[string]cty.Value{"boot_time": cty.StringVal("10ms"), "start_time": cty.StringVal("10ms")}
		p := newSim(t, dir, boot, nil)
		net, err := p.Create(context.Background(), networkReq("a", "10.1.0.0/16"))
		if err != nil {
			t.Fatal(err)
		}
		tg := &providertest.Target{Provider: p}
		tg.Instance = func(t *testing.T, n int) *provision.CreateRequest {
			req := instanceReq(fmt.Sprintf("site.a.node.n%d", n), "a", nil)
			req.Deps = map[string]string{"site.a.network": net.ID}
			return req
		}
		tg.Machines = func(t *testing.T) int {
			return len(mustItems(t, dir, Filter{Kind: provision.KindInstance, Live: true}))
		}
		tg.NoCapacity = func(t *testing.T) {
			tg.Provider = newSim(t, dir, map[string]cty.Value{"capacity": cty.NumberIntVal(0)}, nil)
		}
		tg.Throttle = func(t *testing.T) func() {
			tg.Provider = newSim(t, dir, map[string]cty.Value{"fail_rate": cty.NumberIntVal(1)}, nil)
			return func() { tg.Provider = p }
		}
		return tg
	})
}
