package aws

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hvctl/hvctl/provision"
)

// Owned lists what hvctl made in this provider's region, whatever the
// cluster, by the hvctl:cluster tag (provision.Collector):
//   - live instances (ID i-...);
//   - networks: subnets hvctl made (subnet-...), security groups it made
//     in existing subnets (sg-...), and VPCs left without their subnet by
//     an interrupted create (vpc-...);
//   - Elastic IPs no instance uses (eipalloc-..., kind instance): left by
//     a create that never launched its instance.
//
// Delete accepts every ID it reports.
func (p *Provider) Owned(ctx context.Context) ([]provision.Owned, error) {
	hv := []types.Filter{filter("tag-key", TagCluster)}
	var out []provision.Owned

	tokens := map[string]bool{} // client tokens of live instances
	pg := ec2.NewDescribeInstancesPaginator(p.client, &ec2.DescribeInstancesInput{Filters: append(hv,
		filter("instance-state-name", "pending", "running", "stopping", "stopped"))})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, p.mapErr("DescribeInstances", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				if gone(in) {
					continue
				}
				out = append(out, owned(aws.ToString(in.InstanceId), provision.KindInstance, in.Tags))
				tokens[tagValue(in.Tags, TagToken)] = true
			}
		}
	}

	nets := map[string]bool{} // tokens of networks reported
	sns, err := p.client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: hv})
	if err != nil {
		return nil, p.mapErr("DescribeSubnets", err)
	}
	for _, s := range sns.Subnets {
		out = append(out, owned(aws.ToString(s.SubnetId), provision.KindNetwork, s.Tags))
		nets[tagValue(s.Tags, TagToken)] = true
	}
	sgs, err := p.client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: hv})
	if err != nil {
		return nil, p.mapErr("DescribeSecurityGroups", err)
	}
	for _, g := range sgs.SecurityGroups {
		if tok := tagValue(g.Tags, TagToken); !nets[tok] {
			// A group in an existing subnet, or one whose subnet is gone.
			out = append(out, owned(aws.ToString(g.GroupId), provision.KindNetwork, g.Tags))
			nets[tok] = true
		}
	}
	vpcs, err := p.client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: hv})
	if err != nil {
		return nil, p.mapErr("DescribeVpcs", err)
	}
	for _, v := range vpcs.Vpcs {
		if tok := tagValue(v.Tags, TagToken); !nets[tok] {
			out = append(out, owned(aws.ToString(v.VpcId), provision.KindNetwork, v.Tags))
			nets[tok] = true
		}
	}
	addrs, err := p.client.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: hv})
	if err != nil {
		return nil, p.mapErr("DescribeAddresses", err)
	}
	for _, a := range addrs.Addresses {
		if a.InstanceId == nil && !tokens[tagValue(a.Tags, TagToken)] {
			out = append(out, owned(aws.ToString(a.AllocationId), provision.KindInstance, a.Tags))
		}
	}
	return out, nil
}
