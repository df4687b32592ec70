package local

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/providertest"
)

// TestContract runs the provider contract suite against the local
// provider (root: real namespaces); machines are counted as the
// cluster's network namespaces.
func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) *providertest.Target {
		tc := newTestCluster(t, "ct", Settings{})
		net := tc.network("a", "10.231.9.0/24")
		return &providertest.Target{
			Provider: tc.p,
			Instance: func(t *testing.T, n int) *provision.CreateRequest {
				return tc.nodeReq("a", fmt.Sprintf("n%d", n), net, false)
			},
			Machines: func(t *testing.T) int {
				out, err := exec.Command("ip", "netns", "list").Output()
				if err != nil {
					t.Fatalf("ip netns list: %v", err)
				}
				n := 0
				for _, l := range strings.Split(string(out), "\n") {
					if strings.HasPrefix(l, netnsName(tc.name, "a")+"-n") {
						n++
					}
				}
				return n
			},
		}
	})
}
