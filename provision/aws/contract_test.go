package aws

import (
	"fmt"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/providertest"
)

// TestContract runs the provider contract suite against the aws
// provider over the fake EC2 endpoint (the real SDK and wire protocol).
func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) *providertest.Target {
		fake := newFake(t)
		// stop_idle on: the suite's Stopper cases run.
		p := newProvider(t, fake, map[string]cty.Value{"stop_idle": cty.True})
		net := mustCreate(t, p, networkReq("c1", "cloud", "10.4.0.0/16", nil))
		return &providertest.Target{
			Provider: p,
			Instance: func(t *testing.T, n int) *provision.CreateRequest {
				return instanceReq("c1", "cloud", fmt.Sprintf("wn-%d", n), net.ID, nil)
			},
			Machines:     func(t *testing.T) int { return fake.Counts()["instance"] },
			LoseResponse: func(t *testing.T) { fake.DropResponses("RunInstances", 1) },
			NoCapacity:   func(t *testing.T) { fake.Capacity("t3.medium", true) },
			Throttle: func(t *testing.T) func() {
				fake.Throttle(1000)
				return func() { fake.Throttle(0) }
			},
		}
	})
}
