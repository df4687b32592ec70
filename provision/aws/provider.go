package aws

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hvctl/hvctl/provision"
)

// Tags hvctl puts on every resource it makes.
const (
	TagCluster   = "hvctl:cluster"    // the cluster name
	TagAddress   = "hvctl:address"    // the hvctl address (site.aws.node.hub)
	TagLineage   = "hvctl:lineage"    // the state's lineage
	TagExpiresAt = "hvctl:expires-at" // RFC 3339, when the cluster has a ttl
	// TagToken is the client token of the hvctl resource a cloud
	// resource belongs to: the VPC, subnet, gateway, route table and
	// security group of one network share it, as an instance and its
	// Elastic IP do. Creation looks resources up by it (EC2 has client
	// tokens only for RunInstances), and Delete removes everything
	// carrying it.
	TagToken = "hvctl:token"
	// TagSubnet is on a security group hvctl made in an existing subnet
	// (network.existing_id): that subnet's ID.
	TagSubnet = "hvctl:subnet"
	// TagEIP is on an instance with public_ip: its Elastic IP's
	// allocation ID.
	TagEIP = "hvctl:eip"
	// TagRoute is on a site gateway: "ROUTE-TABLE-ID CIDR", the route it
	// is the target of.
	TagRoute = "hvctl:route"
)

// Provider is an aws provider configuration: one region, one set of
// credentials. It is safe for concurrent use.
type Provider struct {
	settings Settings
	env      *provision.Env
	client   *ec2.Client

	// pollInterval is how often WaitReady and Delete poll EC2.
	pollInterval time.Duration

	mu   sync.Mutex
	nets map[string]*netInfo // resolved networks by provider ID
}

var (
	_ provision.Provider  = (*Provider)(nil)
	_ provision.Waiter    = (*Provider)(nil)
	_ provision.Lister    = (*Provider)(nil)
	_ provision.AgentHost = (*Provider)(nil)
	_ provision.Collector = (*Provider)(nil)
)

// Open builds a provider from checked settings. It reads the shared
// configuration files but makes no API call.
func Open(s Settings, env *provision.Env) (*Provider, error) {
	if env == nil {
		env = &provision.Env{}
	}
	cfg, err := loadConfig(context.Background(), s)
	if err != nil {
		return nil, err
	}
	return &Provider{settings: s, env: env, client: newClient(cfg, s), pollInterval: defaultPollInterval, nets: map[string]*netInfo{}}, nil
}

// defaultPollInterval is how often the provider polls EC2 while it waits.
var defaultPollInterval = 5 * time.Second

// Settings returns the provider's settings.
func (p *Provider) Settings() Settings { return p.settings }

// Client returns the EC2 client (for tools and tests).
func (p *Provider) Client() *ec2.Client { return p.client }

// SetPollInterval changes how often WaitReady and Delete poll EC2.
func (p *Provider) SetPollInterval(d time.Duration) { p.pollInterval = d }

// Limits paces the engine under EC2's request-rate buckets (mutating
// calls refill at about 5 per second, RunInstances slower), and one
// hvctl operation is several calls. The SDK's adaptive retryer absorbs
// the rest.
func (p *Provider) Limits() provision.Limits { return limits }

// limits are what Limits reports; tests lift them.
var limits = provision.Limits{APIRate: 5, Burst: 20}

// RunsAgents is true: every instance runs hvctl agent (provision.AgentHost).
func (p *Provider) RunsAgents() bool { return true }

// Create makes a site network or an instance. Both are idempotent on
// req.ClientToken: an instance through RunInstances' ClientToken, a
// network's parts through the hvctl:token tag they carry.
func (p *Provider) Create(ctx context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	if req.ClientToken == "" {
		return nil, fmt.Errorf("aws: create %s: no client token", req.Address)
	}
	switch req.Kind {
	case provision.KindNetwork:
		return p.createNetwork(ctx, req)
	case provision.KindInstance:
		return p.createInstance(ctx, req)
	}
	return nil, fmt.Errorf("aws: unsupported resource kind %q", req.Kind)
}

// Read reports a resource by ID, or by ClientToken when ID is empty.
// Terminated instances and deleted networks have Exists = false.
func (p *Provider) Read(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	if req.ID == "" && req.ClientToken == "" {
		return nil, fmt.Errorf("aws: read %s: neither an ID nor a client token", req.Address)
	}
	switch req.Kind {
	case provision.KindNetwork:
		return p.readNetwork(ctx, req)
	case provision.KindInstance:
		return p.readInstance(ctx, req)
	}
	return nil, fmt.Errorf("aws: unsupported resource kind %q", req.Kind)
}

// Delete removes a resource and everything hvctl made for it; what is
// already gone is fine. It accepts every ID that Owned reports.
func (p *Provider) Delete(ctx context.Context, req *provision.DeleteRequest) error {
	if req.ID == "" {
		return fmt.Errorf("aws: delete %s: no ID", req.Address)
	}
	switch {
	case strings.HasPrefix(req.ID, "i-"):
		return p.deleteInstance(ctx, req.ID)
	case strings.HasPrefix(req.ID, "eipalloc-"):
		return p.releaseAddress(ctx, req.ID)
	case strings.HasPrefix(req.ID, "subnet-"), strings.HasPrefix(req.ID, "sg-"), strings.HasPrefix(req.ID, "vpc-"):
		return p.deleteNetwork(ctx, req.ID)
	}
	return fmt.Errorf("aws: delete %s: unknown ID %q", req.Address, req.ID)
}

// baseTags are the tags of every resource made for req.
func (p *Provider) baseTags(req *provision.CreateRequest, name string) map[string]string {
	t := map[string]string{}
	for k, v := range p.settings.Tags {
		t[k] = v
	}
	t[TagCluster] = req.Cluster
	t[TagAddress] = req.Address
	t[TagLineage] = req.Lineage
	t[TagToken] = req.ClientToken
	if !req.ExpiresAt.IsZero() {
		t[TagExpiresAt] = req.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if name != "" {
		t["Name"] = name
	}
	return t
}

func ec2Tags(m map[string]string) []types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

func tagSpecs(tags map[string]string, rts ...types.ResourceType) []types.TagSpecification {
	var out []types.TagSpecification
	for _, rt := range rts {
		out = append(out, types.TagSpecification{ResourceType: rt, Tags: ec2Tags(tags)})
	}
	return out
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func tokenFilter(token string) types.Filter { return filter("tag:"+TagToken, token) }

// owned converts the hvctl tags of a resource to a provision.Owned.
func owned(id string, kind provision.Kind, tags []types.Tag) provision.Owned {
	o := provision.Owned{ID: id, Kind: kind, Address: tagValue(tags, TagAddress),
		Cluster: tagValue(tags, TagCluster), Lineage: tagValue(tags, TagLineage)}
	if s := tagValue(tags, TagExpiresAt); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			o.ExpiresAt = t.UTC()
		}
	}
	return o
}

// nameTag is the Name tag of a resource: cluster-name.
func nameTag(cluster, name string) string {
	if name == "" {
		return cluster
	}
	return cluster + "-" + name
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
