package cli_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hvctl/hvctl/overlay/overlaytest"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/templates"
)

// The real generated matrix: trees drawn by the generator the pure
// matrix uses (overlaytest.Random), kept small enough for namespaces,
// each brought up in star, mesh and hierarchical.
const (
	realMatrixSeed  = 13013
	realMatrixTrees = 6
	realMatrixJobs  = 9 // clusters up at once
	maxRealSites    = 5
	maxRealNodes    = 8
)

// realTrees draws trees from the fixed seed until n fit: at most
// maxRealSites sites and maxRealNodes nodes, a network for every site
// (a template needs one; the pure matrix also covers sites without), and
// at least one nested site (the cases that broke); every other tree also
// needs two levels of nesting. It returns them with the draw numbers
// that reproduce them.
func realTrees(n int) ([]int, []overlaytest.Spec) {
	var draws []int
	var out []overlaytest.Spec
	for i := 0; len(out) < n; i++ {
		sp := overlaytest.Random(rand.New(rand.NewPCG(realMatrixSeed, uint64(i))), templates.Star)
		b, err := overlaytest.Build(sp)
		if err != nil || len(b.Cluster.AllSites()) > maxRealSites || len(b.Members) > maxRealNodes {
			continue
		}
		depth, networks := 0, true
		for _, s := range b.Cluster.AllSites() {
			depth = max(depth, strings.Count(s.Path, ".")+1)
			networks = networks && s.Network.CIDR.IsValid()
		}
		if !networks || depth < 2 || (len(out)%2 == 1 && depth < 3) {
			continue
		}
		draws = append(draws, i)
		out = append(out, sp)
	}
	return draws, out
}

// specHCL writes a generated spec as a template for the local provider
// (pool members of a public site become public named nodes; the first
// hub runs the manager).
func specHCL(sp overlaytest.Spec, name string, topo templates.Topology) string {
	var b strings.Builder
	fmt.Fprintf(&b, "provider \"local\" \"lab\" {}\n\ncluster %q {\n  overlay {\n    cidr     = %q\n    topology = %q\n    hubs     = [", name, sp.CIDR, topo)
	for i, h := range sp.Hubs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", h)
	}
	b.WriteString("]\n  }\n")
	var site func(s overlaytest.Site, path, indent string, top bool)
	site = func(s overlaytest.Site, path, indent string, top bool) {
		fmt.Fprintf(&b, "%ssite %q {\n", indent, s.Name)
		in := indent + "  "
		if top {
			fmt.Fprintf(&b, "%sprovider = provider.local.lab\n", in)
		}
		if s.Gateway != "" {
			fmt.Fprintf(&b, "%sgateway = %q\n", in, s.Gateway)
		}
		if s.CIDR != "" {
			fmt.Fprintf(&b, "%snetwork { cidr = %q }\n", in, s.CIDR)
		}
		node := func(name string, roles []templates.Role, public bool) {
			fmt.Fprintf(&b, "%snode %q {\n", in, name)
			if len(roles) > 0 {
				var rs []string
				for _, r := range roles {
					rs = append(rs, fmt.Sprintf("%q", r))
				}
				if len(sp.Hubs) > 0 && sp.Hubs[0] == path+"."+name {
					rs = append(rs, `"manager"`)
				}
				fmt.Fprintf(&b, "%s  roles = [%s]\n", in, strings.Join(rs, ", "))
			}
			if public {
				fmt.Fprintf(&b, "%s  public_ip = true\n", in)
			}
			fmt.Fprintf(&b, "%s}\n", in)
		}
		for _, n := range s.Nodes {
			node(n.Name, n.Roles, n.Public || s.Public)
		}
		for _, p := range s.Pools {
			if s.Public {
				for i := 0; i < p.Count; i++ {
					node(fmt.Sprintf("%s%d", p.Name, i), nil, true)
				}
			} else {
				fmt.Fprintf(&b, "%spool %q { count = %d }\n", in, p.Name, p.Count)
			}
		}
		for _, c := range s.Sites {
			site(c, path+"."+c.Name, in, false)
		}
		fmt.Fprintf(&b, "%s}\n", indent)
	}
	for _, s := range sp.Sites {
		site(s, s.Name, "  ", true)
	}
	b.WriteString("}\n")
	return b.String()
}

// TestGeneratedClusters brings up realMatrixTrees generated trees in each
// topology (realMatrixJobs clusters at a time): every pair of nodes pings
// over the overlay right after up and 60 s later, and a job runs in every
// site.
func TestGeneratedClusters(t *testing.T) {
	requireRoot(t)
	draws, trees := realTrees(realMatrixTrees)
	t.Logf("seed %d: draws %v (overlaytest.Random(rand.NewPCG(%d, draw)))", realMatrixSeed, draws, realMatrixSeed)
	sem := make(chan struct{}, realMatrixJobs)
	var wg sync.WaitGroup
	for i, sp := range trees {
		for _, topo := range []templates.Topology{templates.Star, templates.Mesh, templates.Hierarchical} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				t.Run(fmt.Sprintf("draw-%d/%s", draws[i], topo), func(t *testing.T) {
					prefix := fmt.Sprintf("tg%c%d-", topo[0], draws[i])
					dir, _ := upTemplate(t, prefix, specHCL(sp, "%s", topo))
					nodes := len(localStatus(t, dir).Nodes)
					checkAllPairs(t, dir, nodes)
					checkJobInEverySite(t, dir, workerSites(sp))
					if t.Failed() {
						t.Logf("seed %d draw %d, template:\n%s\n%s", realMatrixSeed, draws[i], specHCL(sp, "x", topo), agentLogs(dir))
					}
				})
			}()
		}
	}
	wg.Wait()
}

// workerSites lists the paths of the sites of sp with a node that runs
// jobs: a node without roles (workers by default) or a pool member. A
// site of gateways and hubs only runs none.
func workerSites(sp overlaytest.Spec) map[string]bool {
	out := map[string]bool{}
	var walk func(s overlaytest.Site, path string)
	walk = func(s overlaytest.Site, path string) {
		for _, n := range s.Nodes {
			if len(n.Roles) == 0 {
				out[path] = true
			}
		}
		for _, p := range s.Pools {
			if p.Count > 0 {
				out[path] = true
			}
		}
		for _, c := range s.Sites {
			walk(c, path+"."+c.Name)
		}
	}
	for _, s := range sp.Sites {
		walk(s, s.Name)
	}
	return out
}

// checkJobInEverySite submits one job to each of sites and checks that
// each ran there and succeeded.
func checkJobInEverySite(t *testing.T, dir string, sites map[string]bool) {
	t.Helper()
	for s := range sites {
		if r := hv(t, dir, "", "submit", "-site", s, "main.hcl", "--", "sh", "-c", "echo in-"+s); r.code != 0 {
			t.Fatalf("submit to %s: %s%s", s, r.stdout, r.stderr)
		}
	}
	jobs := waitJobs(t, dir, len(sites), 2*time.Minute)
	for _, j := range jobs {
		if j.State != scheduler.Done || j.ExitCode == nil || *j.ExitCode != 0 || !sites[j.Site] {
			t.Errorf("job %s in %s: %s exit %v %s", j.ID, j.Site, j.State, j.ExitCode, j.Error)
		}
		delete(sites, j.Site)
	}
	if len(sites) > 0 {
		t.Errorf("no job ran in %v", sites)
	}
}
