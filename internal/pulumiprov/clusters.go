package pulumiprov

import (
	"context"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Clusters runs hvctl's operations on one cluster. Each call opens the
// cluster (template, providers, state), holds the state lock for its
// whole length, and closes it again; internal/cli implements it on the
// engine (the same code as hvctl plan, up, down).
type Clusters interface {
	// Plan is hvctl plan (with refresh): the changes apply would make.
	Plan(ctx context.Context, s Spec, destroy bool) ([]Change, error)
	// Apply is hvctl up: apply, then wait until the nodes running
	// agents have joined the overlay. progress gets hvctl's output
	// line by line.
	Apply(ctx context.Context, s Spec, progress func(string)) (*Cluster, error)
	// Refresh reads what really exists; nil when the cluster has no
	// resources any more.
	Refresh(ctx context.Context, s Spec) (*Cluster, error)
	// Destroy is hvctl down.
	Destroy(ctx context.Context, s Spec, progress func(string)) error
}

// Change is one resource change of a plan.
type Change struct {
	// Address is hvctl's resource address (site.onprem.pool.wn.node[2]).
	Address string
	// Action is create, update, replace or delete.
	Action string
}

// Node is one machine of a cluster, as Pulumi sees it.
type Node struct {
	Address       string
	Site          string
	Pool          string
	Name          string
	State         string
	OverlayIP     string
	PrivateIP     string
	PublicAddress string
}

// Cluster is what Pulumi keeps of a cluster: nothing secret.
type Cluster struct {
	Name        string
	HubEndpoint string
	OverlayCIDR string
	Nodes       []Node
	// Outputs are the template's outputs that are not sensitive.
	Outputs map[string]any
	// Resources are every resource's hvctl status (ready, created, ...)
	// by address; Diff names changes by these addresses.
	Resources map[string]string
	// StatePath is the local state file ("" for a remote backend).
	StatePath string
}

// properties are a cluster's output properties (without the inputs).
func (c *Cluster) properties() resource.PropertyMap {
	nodes := make([]resource.PropertyValue, 0, len(c.Nodes))
	sorted := append([]Node(nil), c.Nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Address < sorted[j].Address })
	for _, n := range sorted {
		nodes = append(nodes, resource.NewObjectProperty(resource.PropertyMap{
			"address":       resource.NewStringProperty(n.Address),
			"site":          resource.NewStringProperty(n.Site),
			"pool":          resource.NewStringProperty(n.Pool),
			"name":          resource.NewStringProperty(n.Name),
			"state":         resource.NewStringProperty(n.State),
			"overlayIp":     resource.NewStringProperty(n.OverlayIP),
			"privateIp":     resource.NewStringProperty(n.PrivateIP),
			"publicAddress": resource.NewStringProperty(n.PublicAddress),
		}))
	}
	outs := map[string]any{}
	for k, v := range c.Outputs {
		outs[k] = v
	}
	res := map[string]any{}
	for k, v := range c.Resources {
		res[k] = v
	}
	return resource.PropertyMap{
		pClusterName: resource.NewStringProperty(c.Name),
		pHubEndpoint: resource.NewStringProperty(c.HubEndpoint),
		pOverlayCIDR: resource.NewStringProperty(c.OverlayCIDR),
		pNodes:       resource.NewArrayProperty(nodes),
		pOutputs:     resource.NewObjectProperty(resource.NewPropertyMapFromMap(outs)),
		pResources:   resource.NewObjectProperty(resource.NewPropertyMapFromMap(res)),
		pStatePath:   resource.NewStringProperty(c.StatePath),
	}
}

// outputNames are the output properties that are not inputs.
var outputNames = []string{pClusterName, pHubEndpoint, pOverlayCIDR, pNodes, pOutputs, pResources, pStatePath}
