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
// provider (root: real namespaces), stop_idle on so that its Stopper
// cases run; machines are counted as the cluster's network namespaces
// (a stopped node keeps its namespace).
func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) *providertest.Target {
		tc := newTestCluster(t, "ct", Settings{StopIdle: true})
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
