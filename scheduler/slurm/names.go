package slurm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hvctl/hvctl/templates"
)

// AllPartition is the default partition: every compute node.
const AllPartition = "all"

// Node is one SLURM compute node of a cluster: a slot of a pool or a named
// node with the worker role.
type Node struct {
	// MemberID is the overlay member ID: "onprem.frontend",
	// "cloud.burst[3]" (what manager.MemberID returns for the node's
	// address).
	MemberID string
	// Name is the SLURM node name, NodeName(MemberID). It is not the
	// machine's hostname: the node's slurmd must be started with
	// -N Name.
	Name string
	// Site is the site path ("cloud.zone-a"); Pool the pool path
	// ("cloud.burst"), "" for a named node.
	Site, Pool string
	CPUs       int
	MemoryMiB  int64
	GPUs       int
	// GPUType is the instance's gpu_type ("a100"), "" when untyped.
	GPUType string
	Labels  map[string]string
	// Cloud is true for the slots of an elastic pool: SLURM knows them
	// before they exist (State=CLOUD).
	Cloud bool
}

// NodeName maps a member ID to a SLURM node name: lowercase letters,
// digits and single dashes, "cloud.zone-a.burst[3]" → "cloud-zone-a-burst-3".
// Different member IDs can map to one name ("a_b.x" and "a-b.x"); Nodes
// reports that as an error.
func NodeName(memberID string) string { return hostname(memberID) }

// PartitionName is the partition holding the compute nodes of a site and
// of its sub-sites: "cloud.zone-a" → "cloud-zone-a".
func PartitionName(sitePath string) string { return hostname(sitePath) }

// SiteFeature is the node feature every compute node of a site and of
// its sub-sites has: "cloud.zone-a" → "cloud_zone_a". Jobs pin themselves
// to a site with --constraint=FEATURE or with --partition.
func SiteFeature(sitePath string) string { return feature(sitePath) }

// LabelFeature is the node feature for a pool label: arch=x86_64 →
// "arch_x86_64".
func LabelFeature(key, value string) string { return feature(key + "_" + value) }

// hostname lowercases s and turns every run of characters other than
// [a-z0-9] into one dash, trimming dashes at the ends.
func hostname(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	return b.String()
}

// feature turns every character other than [A-Za-z0-9_] into '_'.
func feature(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Nodes lists the cluster's SLURM compute nodes: every slot 0..Max-1 of
// every pool, and every named node with the worker role (nodes without
// roles are workers). The order is the template's: sites depth first,
// a site's named nodes, then its pools slot by slot. Two members with one
// SLURM name are an error naming both.
func Nodes(c *templates.Cluster) ([]Node, error) {
	var out []Node
	for _, s := range c.AllSites() {
		for _, n := range s.Nodes {
			if !n.HasRole(templates.RoleWorker) {
				continue
			}
			out = append(out, Node{MemberID: n.Path(), Site: s.Path,
				CPUs: n.Instance.CPUs, MemoryMiB: n.Instance.Memory >> 20, GPUs: n.Instance.GPUs, GPUType: n.Instance.GPUType})
		}
		for _, p := range s.Pools {
			for i := 0; i < p.Max; i++ {
				out = append(out, Node{MemberID: poolMemberID(p, i), Site: s.Path, Pool: p.Path(),
					CPUs: p.Instance.CPUs, MemoryMiB: p.Instance.Memory >> 20, GPUs: p.Instance.GPUs, GPUType: p.Instance.GPUType,
					Labels: p.Labels, Cloud: p.Elastic()})
			}
		}
	}
	owner := map[string]string{}
	for i := range out {
		n := &out[i]
		n.Name = NodeName(n.MemberID)
		if n.Name == "" {
			return nil, fmt.Errorf("member %s has no usable SLURM node name", n.MemberID)
		}
		if prev, ok := owner[n.Name]; ok {
			return nil, fmt.Errorf("members %s and %s both map to SLURM node name %s: rename one", prev, n.MemberID, n.Name)
		}
		owner[n.Name] = n.MemberID
	}
	return out, nil
}

// poolMemberID is the member ID of a pool's i-th slot, as manager.MemberID
// returns it for provision.PoolNodeAddress(p, i): "cloud.zone-a.gpu[0]".
// It is spelled out here rather than imported so that the manager can
// import this package.
func poolMemberID(p *templates.Pool, i int) string {
	return p.Path() + "[" + strconv.Itoa(i) + "]"
}

// MemberOf returns the member ID of a SLURM node name of the cluster.
func MemberOf(c *templates.Cluster, slurmName string) (memberID string, ok bool) {
	nodes, err := Nodes(c)
	if err != nil {
		return "", false
	}
	for _, n := range nodes {
		if n.Name == slurmName {
			return n.MemberID, true
		}
	}
	return "", false
}

// sitePartitions maps each site that has compute nodes, itself or in a
// sub-site, to its partition name, and checks that no two sites share one
// and none is called "all".
func sitePartitions(nodes []Node) (map[string]string, error) {
	parts := map[string]string{}
	owner := map[string]string{}
	for _, n := range nodes {
		for _, site := range siteAndParents(n.Site) {
			if _, ok := parts[site]; ok {
				continue
			}
			p := PartitionName(site)
			parts[site] = p
			switch prev, ok := owner[p]; {
			case p == "" || p == AllPartition:
				return nil, fmt.Errorf("site %s cannot have a SLURM partition: its name %q is reserved", site, p)
			case ok:
				return nil, fmt.Errorf("sites %s and %s both map to SLURM partition %s: rename one", prev, site, p)
			}
			owner[p] = site
		}
	}
	return parts, nil
}
