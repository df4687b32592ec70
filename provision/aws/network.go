package aws

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hvctl/hvctl/provision"
)

// DefaultOverlayPort is the overlay's UDP port when no overlay_port
// attribute says otherwise.
const DefaultOverlayPort = 51820

// netInfo is a site network's EC2 parts.
type netInfo struct {
	ID           string // the provision ID: the subnet, or for an existing subnet the group hvctl made
	VpcID        string
	SubnetID     string
	SGID         string
	RouteTableID string
	CIDR         string // the subnet's
	Existing     bool   // the subnet is not hvctl's (network.existing_id)
}

// createNetwork makes a site's network: a VPC with an internet gateway,
// a subnet for the site's cidr whose route table sends 0.0.0.0/0 to the
// gateway, and a security group. A nested site (a zone) gets a subnet in
// its parent's VPC that shares the parent's route table. An existing
// subnet (network.existing_id, or the provider's subnet_id) only gets
// the security group.
//
// Each part is looked up by the hvctl:token tag before it is made, so a
// Create retried after a crash or a lost response finishes the network
// instead of making a second one. A Create that fails for good removes
// what it made.
func (p *Provider) createNetwork(ctx context.Context, req *provision.CreateRequest) (resp *provision.CreateResponse, err error) {
	existing := req.Attrs.Str("existing_id")
	if existing == "" {
		existing = p.settings.SubnetID
	}
	if existing != "" {
		return p.adoptSubnet(ctx, req, existing)
	}
	cidr, perr := netip.ParsePrefix(req.Attrs.Str("cidr"))
	if perr != nil {
		return nil, fmt.Errorf("aws: network %s: cidr %q: %v", req.Address, req.Attrs.Str("cidr"), perr)
	}
	if !cidr.Addr().Is4() || cidr.Bits() < 16 || cidr.Bits() > 28 {
		return nil, fmt.Errorf("aws: network %s: cidr %s: an EC2 subnet is an IPv4 block from /16 to /28", req.Address, cidr)
	}
	var parent *netInfo
	for addr, id := range req.Deps {
		if strings.HasSuffix(addr, ".network") && id != "" {
			if parent, err = p.resolveNetwork(ctx, id); err != nil {
				return nil, err
			}
			if parent == nil {
				return nil, fmt.Errorf("aws: network %s: its parent network %s (%s) does not exist", req.Address, addr, id)
			}
		}
	}
	defer func() {
		if err != nil && !provision.IsRetryable(err) && ctx.Err() == nil {
			// Leave nothing half-made behind a permanent failure.
			_ = p.deleteByToken(context.WithoutCancel(ctx), req.ClientToken)
		}
	}()
	tags := p.baseTags(req, nameTag(req.Cluster, req.Attrs.Str("site")))
	info := &netInfo{CIDR: cidr.String()}

	// The VPC: the parent's, or one of its own.
	if parent != nil {
		info.VpcID, info.RouteTableID = parent.VpcID, parent.RouteTableID
		if err := p.nestedCIDR(ctx, req, parent, cidr); err != nil {
			return nil, err
		}
	} else {
		out, err := p.client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{tokenFilter(req.ClientToken)}})
		if err != nil {
			return nil, p.mapErr("DescribeVpcs", err)
		}
		if len(out.Vpcs) > 0 {
			info.VpcID = aws.ToString(out.Vpcs[0].VpcId)
		} else {
			c, err := p.client.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String(cidr.String()),
				TagSpecifications: tagSpecs(tags, types.ResourceTypeVpc)})
			if err != nil {
				return nil, p.mapErr("CreateVpc", err)
			}
			info.VpcID = aws.ToString(c.Vpc.VpcId)
		}
	}

	// The subnet.
	sn, err := p.client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{tokenFilter(req.ClientToken)}})
	if err != nil {
		return nil, p.mapErr("DescribeSubnets", err)
	}
	if len(sn.Subnets) > 0 {
		info.SubnetID = aws.ToString(sn.Subnets[0].SubnetId)
	} else {
		in := &ec2.CreateSubnetInput{VpcId: aws.String(info.VpcID), CidrBlock: aws.String(cidr.String()),
			TagSpecifications: tagSpecs(tags, types.ResourceTypeSubnet)}
		if p.settings.AvailabilityZone != "" {
			in.AvailabilityZone = aws.String(p.settings.AvailabilityZone)
		}
		c, err := p.client.CreateSubnet(ctx, in)
		if err != nil {
			return nil, p.mapErr("CreateSubnet", err)
		}
		info.SubnetID = aws.ToString(c.Subnet.SubnetId)
	}
	info.ID = info.SubnetID

	// A top-level site's internet gateway and route table.
	if parent == nil {
		igws, err := p.client.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{Filters: []types.Filter{tokenFilter(req.ClientToken)}})
		if err != nil {
			return nil, p.mapErr("DescribeInternetGateways", err)
		}
		var igw types.InternetGateway
		if len(igws.InternetGateways) > 0 {
			igw = igws.InternetGateways[0]
		} else {
			c, err := p.client.CreateInternetGateway(ctx, &ec2.CreateInternetGatewayInput{TagSpecifications: tagSpecs(tags, types.ResourceTypeInternetGateway)})
			if err != nil {
				return nil, p.mapErr("CreateInternetGateway", err)
			}
			igw = *c.InternetGateway
		}
		igwID := aws.ToString(igw.InternetGatewayId)
		if len(igw.Attachments) == 0 {
			if _, err := p.client.AttachInternetGateway(ctx, &ec2.AttachInternetGatewayInput{InternetGatewayId: aws.String(igwID), VpcId: aws.String(info.VpcID)}); err != nil && errorCode(err) != "Resource.AlreadyAssociated" {
				return nil, p.mapErr("AttachInternetGateway", err)
			}
		}
		rts, err := p.client.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{tokenFilter(req.ClientToken)}})
		if err != nil {
			return nil, p.mapErr("DescribeRouteTables", err)
		}
		var rt types.RouteTable
		if len(rts.RouteTables) > 0 {
			rt = rts.RouteTables[0]
		} else {
			c, err := p.client.CreateRouteTable(ctx, &ec2.CreateRouteTableInput{VpcId: aws.String(info.VpcID),
				TagSpecifications: tagSpecs(tags, types.ResourceTypeRouteTable)})
			if err != nil {
				return nil, p.mapErr("CreateRouteTable", err)
			}
			rt = *c.RouteTable
		}
		info.RouteTableID = aws.ToString(rt.RouteTableId)
		if !hasRoute(rt, "0.0.0.0/0") {
			if _, err := p.client.CreateRoute(ctx, &ec2.CreateRouteInput{RouteTableId: aws.String(info.RouteTableID),
				DestinationCidrBlock: aws.String("0.0.0.0/0"), GatewayId: aws.String(igwID)}); err != nil && errorCode(err) != "RouteAlreadyExists" {
				return nil, p.mapErr("CreateRoute", err)
			}
		}
	}
	if info.RouteTableID != "" {
		rts, err := p.client.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{filter("association.subnet-id", info.SubnetID)}})
		if err != nil {
			return nil, p.mapErr("DescribeRouteTables", err)
		}
		if len(rts.RouteTables) == 0 {
			if _, err := p.client.AssociateRouteTable(ctx, &ec2.AssociateRouteTableInput{RouteTableId: aws.String(info.RouteTableID), SubnetId: aws.String(info.SubnetID)}); err != nil {
				return nil, p.mapErr("AssociateRouteTable", err)
			}
		}
	}

	// The security group.
	if info.SGID, err = p.ensureGroup(ctx, req, info, tags); err != nil {
		return nil, err
	}
	p.remember(info)
	return &provision.CreateResponse{ID: info.ID, Attrs: provision.Attrs{}}, nil
}

// nestedCIDR makes room for a nested site's subnet in its parent's VPC:
// the parent site's own subnet holds the VPC's primary block, so the
// nested site's cidr must lie outside it and becomes a secondary CIDR
// block of the VPC (unless a block already holds it).
func (p *Provider) nestedCIDR(ctx context.Context, req *provision.CreateRequest, parent *netInfo, cidr netip.Prefix) error {
	if pc, err := netip.ParsePrefix(parent.CIDR); err == nil && pc.Overlaps(cidr) {
		return fmt.Errorf("aws: network %s: cidr %s overlaps its parent site's subnet %s (%s). On AWS a nested site is another subnet of its parent's VPC, so its cidr must lie outside the parent site's own network cidr; hvctl adds it to the VPC as a secondary CIDR block", req.Address, cidr, pc, parent.SubnetID)
	}
	out, err := p.client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{parent.VpcID}})
	if err != nil {
		return p.mapErr("DescribeVpcs", err)
	}
	if len(out.Vpcs) == 0 {
		return fmt.Errorf("aws: network %s: its parent's VPC %s does not exist", req.Address, parent.VpcID)
	}
	for _, a := range out.Vpcs[0].CidrBlockAssociationSet {
		b, err := netip.ParsePrefix(aws.ToString(a.CidrBlock))
		if err != nil || (a.CidrBlockState != nil && (a.CidrBlockState.State == types.VpcCidrBlockStateCodeDisassociated || a.CidrBlockState.State == types.VpcCidrBlockStateCodeFailed)) {
			continue
		}
		if b.Overlaps(cidr) {
			if b.Bits() <= cidr.Bits() {
				return nil // inside a block already
			}
			return fmt.Errorf("aws: network %s: cidr %s overlaps the VPC %s block %s without fitting in it", req.Address, cidr, parent.VpcID, b)
		}
	}
	if _, err := p.client.AssociateVpcCidrBlock(ctx, &ec2.AssociateVpcCidrBlockInput{VpcId: aws.String(parent.VpcID), CidrBlock: aws.String(cidr.String())}); err != nil {
		return p.mapErr("AssociateVpcCidrBlock", err)
	}
	return nil
}

// releaseCIDR disassociates a VPC's secondary block that is exactly
// cidr (a nested site's, once its subnet is gone).
func (p *Provider) releaseCIDR(ctx context.Context, vpcID, cidr string) error {
	out, err := p.client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{vpcID}})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return p.mapErr("DescribeVpcs", err)
	}
	for _, v := range out.Vpcs {
		for _, a := range v.CidrBlockAssociationSet {
			if aws.ToString(a.CidrBlock) == cidr && cidr != aws.ToString(v.CidrBlock) {
				if _, err := p.client.DisassociateVpcCidrBlock(ctx, &ec2.DisassociateVpcCidrBlockInput{AssociationId: a.AssociationId}); err != nil && !isNotFound(err) {
					return p.mapErr("DisassociateVpcCidrBlock", err)
				}
			}
		}
	}
	return nil
}

// adoptSubnet uses an existing subnet for a site: hvctl makes only a
// security group in it, tagged with the subnet's ID; the network's ID is
// that group's. The subnet, its VPC and its routes are left alone.
func (p *Provider) adoptSubnet(ctx context.Context, req *provision.CreateRequest, subnetID string) (*provision.CreateResponse, error) {
	out, err := p.client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{subnetID}})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("aws: network %s: the existing subnet %s does not exist in %s", req.Address, subnetID, p.settings.Region)
		}
		return nil, p.mapErr("DescribeSubnets", err)
	}
	if len(out.Subnets) == 0 {
		return nil, fmt.Errorf("aws: network %s: the existing subnet %s does not exist in %s", req.Address, subnetID, p.settings.Region)
	}
	sn := out.Subnets[0]
	info := &netInfo{VpcID: aws.ToString(sn.VpcId), SubnetID: subnetID, CIDR: aws.ToString(sn.CidrBlock), Existing: true}
	tags := p.baseTags(req, nameTag(req.Cluster, req.Attrs.Str("site")))
	tags[TagSubnet] = subnetID
	if info.SGID, err = p.ensureGroup(ctx, req, info, tags); err != nil {
		return nil, err
	}
	info.ID = info.SGID
	if info.RouteTableID, err = p.subnetRouteTable(ctx, info.VpcID, subnetID); err != nil {
		return nil, err
	}
	p.remember(info)
	return &provision.CreateResponse{ID: info.ID, Attrs: provision.Attrs{}}, nil
}

// ensureGroup finds or makes the network's security group and gives it
// its rules: the overlay's UDP port from anywhere, any UDP from the
// group itself (NAT'd nodes of a site listen on ports the manager picks
// from overlay_port up), and SSH from the hub's overlay address when the
// engine passes it (hub_overlay_address).
func (p *Provider) ensureGroup(ctx context.Context, req *provision.CreateRequest, info *netInfo, tags map[string]string) (string, error) {
	out, err := p.client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{tokenFilter(req.ClientToken)}})
	if err != nil {
		return "", p.mapErr("DescribeSecurityGroups", err)
	}
	var id string
	if len(out.SecurityGroups) > 0 {
		id = aws.ToString(out.SecurityGroups[0].GroupId)
	} else {
		name := "hvctl-" + sanitize(req.Cluster) + "-" + sanitize(req.Attrs.Str("site")) + "-" + shortToken(req.ClientToken)
		c, err := p.client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
			GroupName:         aws.String(name),
			Description:       aws.String(fmt.Sprintf("hvctl %s %s: overlay (WireGuard) traffic", req.Cluster, req.Address)),
			VpcId:             aws.String(info.VpcID),
			TagSpecifications: tagSpecs(tags, types.ResourceTypeSecurityGroup),
		})
		if err != nil {
			return "", p.mapErr("CreateSecurityGroup", err)
		}
		id = aws.ToString(c.GroupId)
	}
	port := int32(DefaultOverlayPort)
	if n := req.Attrs.Int("overlay_port"); n > 0 {
		port = int32(n)
	}
	perms := []types.IpPermission{
		{IpProtocol: aws.String("udp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0"), Description: aws.String("hvctl overlay")}}},
		{IpProtocol: aws.String("udp"), FromPort: aws.Int32(0), ToPort: aws.Int32(65535),
			UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(id), Description: aws.String("hvctl overlay within the site")}}},
	}
	if hub := req.Attrs.Str("hub_overlay_address"); hub != "" {
		if a, err := netip.ParseAddr(hub); err == nil && a.Is4() {
			perms = append(perms, types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
				IpRanges: []types.IpRange{{CidrIp: aws.String(a.String() + "/32"), Description: aws.String("hvctl hub SSH")}}})
		}
	}
	if err := p.authorize(ctx, id, perms...); err != nil {
		return "", err
	}
	return id, nil
}

// authorize adds ingress rules one by one; a rule that exists is fine.
func (p *Provider) authorize(ctx context.Context, sg string, perms ...types.IpPermission) error {
	for _, perm := range perms {
		_, err := p.client.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
			GroupId: aws.String(sg), IpPermissions: []types.IpPermission{perm}})
		if err != nil && errorCode(err) != "InvalidPermission.Duplicate" {
			return p.mapErr("AuthorizeSecurityGroupIngress", err)
		}
	}
	return nil
}

func hasRoute(rt types.RouteTable, dest string) bool {
	for _, r := range rt.Routes {
		if aws.ToString(r.DestinationCidrBlock) == dest {
			return true
		}
	}
	return false
}

// subnetRouteTable is the route table a subnet uses: its own
// association, else its VPC's main table.
func (p *Provider) subnetRouteTable(ctx context.Context, vpcID, subnetID string) (string, error) {
	out, err := p.client.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{filter("association.subnet-id", subnetID)}})
	if err != nil {
		return "", p.mapErr("DescribeRouteTables", err)
	}
	if len(out.RouteTables) > 0 {
		return aws.ToString(out.RouteTables[0].RouteTableId), nil
	}
	out, err = p.client.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{
		filter("vpc-id", vpcID), filter("association.main", "true")}})
	if err != nil {
		return "", p.mapErr("DescribeRouteTables", err)
	}
	if len(out.RouteTables) > 0 {
		return aws.ToString(out.RouteTables[0].RouteTableId), nil
	}
	return "", nil
}

func (p *Provider) remember(info *netInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nets[info.ID] = info
}

func (p *Provider) forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.nets, id)
}

// resolveNetwork finds a network's parts from its provision ID (a
// subnet hvctl made, or the security group hvctl made in an existing
// subnet). nil means it no longer exists.
func (p *Provider) resolveNetwork(ctx context.Context, id string) (*netInfo, error) {
	p.mu.Lock()
	cached := p.nets[id]
	p.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	info := &netInfo{ID: id}
	var token string
	switch {
	case strings.HasPrefix(id, "subnet-"):
		info.SubnetID = id
	case strings.HasPrefix(id, "sg-"):
		out, err := p.client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
		if err != nil {
			if isNotFound(err) {
				return nil, nil
			}
			return nil, p.mapErr("DescribeSecurityGroups", err)
		}
		if len(out.SecurityGroups) == 0 {
			return nil, nil
		}
		info.SGID, info.Existing = id, true
		info.SubnetID = tagValue(out.SecurityGroups[0].Tags, TagSubnet)
		if info.SubnetID == "" {
			return nil, fmt.Errorf("aws: security group %s has no %s tag: it is not an hvctl network", id, TagSubnet)
		}
	default:
		return nil, fmt.Errorf("aws: %q is not an hvctl network ID (subnet-... or sg-...)", id)
	}
	out, err := p.client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{info.SubnetID}})
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, p.mapErr("DescribeSubnets", err)
	}
	if len(out.Subnets) == 0 {
		return nil, nil
	}
	sn := out.Subnets[0]
	info.VpcID, info.CIDR = aws.ToString(sn.VpcId), aws.ToString(sn.CidrBlock)
	if !info.Existing {
		token = tagValue(sn.Tags, TagToken)
		if token == "" {
			return nil, fmt.Errorf("aws: subnet %s has no %s tag: it is not an hvctl network", id, TagToken)
		}
		sgs, err := p.client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{tokenFilter(token)}})
		if err != nil {
			return nil, p.mapErr("DescribeSecurityGroups", err)
		}
		if len(sgs.SecurityGroups) == 0 {
			return nil, nil // half made: not usable
		}
		info.SGID = aws.ToString(sgs.SecurityGroups[0].GroupId)
	}
	if info.RouteTableID, err = p.subnetRouteTable(ctx, info.VpcID, info.SubnetID); err != nil {
		return nil, err
	}
	p.remember(info)
	return info, nil
}

// readNetwork reports whether a network (all its parts) exists. By
// client token it looks for the subnet or group that Create makes last
// among the ones named by the ID.
func (p *Provider) readNetwork(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	id := req.ID
	if id == "" {
		sgs, err := p.client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{tokenFilter(req.ClientToken)}})
		if err != nil {
			return nil, p.mapErr("DescribeSecurityGroups", err)
		}
		if len(sgs.SecurityGroups) == 0 {
			return &provision.ReadResponse{}, nil
		}
		sg := sgs.SecurityGroups[0]
		if sub := tagValue(sg.Tags, TagSubnet); sub != "" {
			id = aws.ToString(sg.GroupId)
		} else {
			sn, err := p.client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{tokenFilter(req.ClientToken)}})
			if err != nil {
				return nil, p.mapErr("DescribeSubnets", err)
			}
			if len(sn.Subnets) == 0 {
				return &provision.ReadResponse{}, nil
			}
			id = aws.ToString(sn.Subnets[0].SubnetId)
		}
	}
	p.forget(id)
	info, err := p.resolveNetwork(ctx, id)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return &provision.ReadResponse{ID: id}, nil
	}
	return &provision.ReadResponse{Exists: true, ID: id, Attrs: provision.Attrs{}}, nil
}

// deleteNetwork removes everything hvctl made for a network, found by the
// hvctl:token of the resource id names.
func (p *Provider) deleteNetwork(ctx context.Context, id string) error {
	p.forget(id)
	var tags []types.Tag
	switch {
	case strings.HasPrefix(id, "subnet-"):
		out, err := p.client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{id}})
		if isNotFound(err) || (err == nil && len(out.Subnets) == 0) {
			return nil
		}
		if err != nil {
			return p.mapErr("DescribeSubnets", err)
		}
		tags = out.Subnets[0].Tags
	case strings.HasPrefix(id, "sg-"):
		out, err := p.client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
		if isNotFound(err) || (err == nil && len(out.SecurityGroups) == 0) {
			return nil
		}
		if err != nil {
			return p.mapErr("DescribeSecurityGroups", err)
		}
		tags = out.SecurityGroups[0].Tags
	case strings.HasPrefix(id, "vpc-"):
		out, err := p.client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{id}})
		if isNotFound(err) || (err == nil && len(out.Vpcs) == 0) {
			return nil
		}
		if err != nil {
			return p.mapErr("DescribeVpcs", err)
		}
		tags = out.Vpcs[0].Tags
	}
	token := tagValue(tags, TagToken)
	if token == "" {
		return fmt.Errorf("aws: %s has no %s tag: hvctl did not make it and will not delete it", id, TagToken)
	}
	return p.deleteByToken(ctx, token)
}

// deleteByToken deletes the network parts tagged with token, in
// dependency order: security group, subnet, route table, internet
// gateway, VPC. Each step treats "not found" as done. A
// DependencyViolation (instances still releasing their interfaces) is
// retryable.
func (p *Provider) deleteByToken(ctx context.Context, token string) error {
	f := []types.Filter{tokenFilter(token)}
	sgs, err := p.client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: f})
	if err != nil {
		return p.mapErr("DescribeSecurityGroups", err)
	}
	for _, g := range sgs.SecurityGroups {
		if _, err := p.client.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: g.GroupId}); err != nil && !isNotFound(err) {
			return p.mapErr("DeleteSecurityGroup", err)
		}
	}
	sns, err := p.client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: f})
	if err != nil {
		return p.mapErr("DescribeSubnets", err)
	}
	for _, s := range sns.Subnets {
		if _, err := p.client.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: s.SubnetId}); err != nil && !isNotFound(err) {
			return p.mapErr("DeleteSubnet", err)
		}
		if err := p.releaseCIDR(ctx, aws.ToString(s.VpcId), aws.ToString(s.CidrBlock)); err != nil {
			return err
		}
	}
	rts, err := p.client.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: f})
	if err != nil {
		return p.mapErr("DescribeRouteTables", err)
	}
	for _, rt := range rts.RouteTables {
		for _, a := range rt.Associations {
			if aws.ToBool(a.Main) || a.RouteTableAssociationId == nil {
				continue
			}
			if _, err := p.client.DisassociateRouteTable(ctx, &ec2.DisassociateRouteTableInput{AssociationId: a.RouteTableAssociationId}); err != nil && !isNotFound(err) {
				return p.mapErr("DisassociateRouteTable", err)
			}
		}
		if _, err := p.client.DeleteRouteTable(ctx, &ec2.DeleteRouteTableInput{RouteTableId: rt.RouteTableId}); err != nil && !isNotFound(err) {
			return p.mapErr("DeleteRouteTable", err)
		}
	}
	igws, err := p.client.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{Filters: f})
	if err != nil {
		return p.mapErr("DescribeInternetGateways", err)
	}
	for _, g := range igws.InternetGateways {
		for _, a := range g.Attachments {
			if _, err := p.client.DetachInternetGateway(ctx, &ec2.DetachInternetGatewayInput{InternetGatewayId: g.InternetGatewayId, VpcId: a.VpcId}); err != nil && !isNotFound(err) && errorCode(err) != "Gateway.NotAttached" {
				return p.mapErr("DetachInternetGateway", err)
			}
		}
		if _, err := p.client.DeleteInternetGateway(ctx, &ec2.DeleteInternetGatewayInput{InternetGatewayId: g.InternetGatewayId}); err != nil && !isNotFound(err) {
			return p.mapErr("DeleteInternetGateway", err)
		}
	}
	vpcs, err := p.client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: f})
	if err != nil {
		return p.mapErr("DescribeVpcs", err)
	}
	for _, v := range vpcs.Vpcs {
		if _, err := p.client.DeleteVpc(ctx, &ec2.DeleteVpcInput{VpcId: v.VpcId}); err != nil && !isNotFound(err) {
			return p.mapErr("DeleteVpc", err)
		}
	}
	return nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// shortToken is a short, stable suffix from a client token.
func shortToken(token string) string {
	t := strings.TrimPrefix(token, "hvctl-")
	if len(t) > 8 {
		t = t[:8]
	}
	return t
}
