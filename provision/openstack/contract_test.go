package openstack_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/providertest"
)

// TestContract runs the provider contract suite against the openstack
// provider over the fake cloud (gophercloud and the real API shapes),
// stopping and starting included.
func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) *providertest.Target {
		fake := newCloud(t)
		// stop_idle on, so the Stopper cases run (os-stop, os-start).
		c := newCluster(t, fake, "ct", stopSettings, "", 0, "m1.small")
		p := c.p
		net, err := p.Create(ctx(t), &provision.CreateRequest{Address: "site.a.network", Kind: provision.KindNetwork, Cluster: "ct", Lineage: "L",
			ClientToken: provision.ClientToken("L", "site.a.network", 0), Attrs: provision.Attrs{"site": "a", "cidr": "10.9.0.0/24"}})
		if err != nil {
			t.Fatal(err)
		}
		return &providertest.Target{
			Provider: p,
			Instance: func(t *testing.T, n int) *provision.CreateRequest {
				addr := fmt.Sprintf("site.a.node.n%d", n)
				return &provision.CreateRequest{Address: addr, Kind: provision.KindInstance, Cluster: "ct", Lineage: "L",
					ClientToken: provision.ClientToken("L", addr, 0),
					Attrs: provision.Attrs{"site": "a", "name": fmt.Sprintf("n%d", n), "roles": []string{"worker"}, "instance_type": "m1.small",
						"join_token": "SECRET-J"},
					Deps: map[string]string{"site.a.network": net.ID}}
			},
			Machines:     func(t *testing.T) int { return len(fake.Servers()) },
			LoseResponse: func(t *testing.T) { fake.LoseResponses("POST", "/servers", 1) },
			NoCapacity:   func(t *testing.T) { fake.NoValidHost("m1.small") },
			Throttle: func(t *testing.T) func() {
				fake.Throttle(1000, http.StatusTooManyRequests)
				return func() { fake.Throttle(0, 0) }
			},
		}
	})
}
