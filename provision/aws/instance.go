package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hvctl/hvctl/provision"
)

// TagGateway is on a site gateway instance: "ROUTE-TABLE-ID" or
// "ROUTE-TABLE-ID OVERLAY-CIDR" — the table holding the overlay route
// through its interface.
const TagGateway = "hvctl:gateway"

// instanceTypes are the general-purpose types hvctl picks from when an
// instance block gives cpus and memory but no type: the smallest that
// fits.
var instanceTypes = []struct {
	name   string
	cpus   int64
	memMiB int64
}{
	{"t3.micro", 2, 1024}, {"t3.small", 2, 2048}, {"t3.medium", 2, 4096}, {"t3.large", 2, 8192},
	{"t3.xlarge", 4, 16384}, {"t3.2xlarge", 8, 32768}, {"m6i.4xlarge", 16, 65536},
	{"m6i.8xlarge", 32, 131072}, {"m6i.12xlarge", 48, 196608}, {"m6i.16xlarge", 64, 262144},
	{"m6i.24xlarge", 96, 393216}, {"m6i.32xlarge", 128, 524288},
}

// InstanceType returns the EC2 instance type for an instance's
// attributes: instance_type when given, else the smallest
// general-purpose type with at least cpus and memory_mib.
func InstanceType(a provision.Attrs) (string, error) {
	if t := a.Str("instance_type"); t != "" {
		return t, nil
	}
	if a.Int("gpus") > 0 {
		return "", errors.New("an instance with gpus needs an explicit type on AWS: set instance.type, like \"g5.xlarge\"")
	}
	cpus, mem := a.Int("cpus"), a.Int("memory_mib")
	for _, t := range instanceTypes {
		if t.cpus >= cpus && t.memMiB >= mem {
			return t.name, nil
		}
	}
	return "", fmt.Errorf("no general-purpose instance type has %d CPUs and %d MiB: set instance.type", cpus, mem)
}

// createInstance launches one instance with RunInstances, idempotent on
// the client token. A node with public_ip gets an Elastic IP, allocated
// first (found again by its hvctl:token tag) so its address can go into
// the agent configuration; it is associated once the instance runs
// (WaitReady). Other nodes get an ephemeral public IPv4 for outbound
// traffic only (the security group admits nothing but the overlay), as
// the site has an internet gateway and no NAT gateway.
func (p *Provider) createInstance(ctx context.Context, req *provision.CreateRequest) (*provision.CreateResponse, error) {
	image := req.Attrs.Str("image")
	if image == "" {
		return nil, fmt.Errorf("aws: %s: instance.image is required on AWS: set image = \"ami-...\" (or \"resolve:ssm:/aws/service/debian/release/12/latest/amd64\") in its instance block; the image must have hvctl installed at %s, or user_data must install it", req.Address, AgentPath)
	}
	typ, err := InstanceType(req.Attrs)
	if err != nil {
		return nil, fmt.Errorf("aws: %s: %v", req.Address, err)
	}
	var netAddr, netID string
	for addr, id := range req.Deps {
		if strings.HasSuffix(addr, ".network") {
			netAddr, netID = addr, id
		}
	}
	if netID == "" {
		return nil, fmt.Errorf("aws: %s: no site network among its dependencies", req.Address)
	}
	net, err := p.resolveNetwork(ctx, netID)
	if err != nil {
		return nil, err
	}
	if net == nil {
		return nil, fmt.Errorf("aws: %s: its network %s (%s) does not exist", req.Address, netAddr, netID)
	}

	// Ingress the node needs beyond the network's defaults: the overlay
	// port the engine passes, and on the manager node the manager API.
	var perms []types.IpPermission
	if port := req.Attrs.Int("overlay_port"); port > 0 && port != DefaultOverlayPort {
		perms = append(perms, types.IpPermission{IpProtocol: aws.String("udp"), FromPort: aws.Int32(int32(port)), ToPort: aws.Int32(int32(port)),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0"), Description: aws.String("hvctl overlay")}}})
	}
	if req.Attrs.Str("cluster_secret") != "" {
		port := managerPort(req.Attrs.Str("manager_url"))
		perms = append(perms, types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(int32(port)), ToPort: aws.Int32(int32(port)),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0"), Description: aws.String("hvctl manager API (joins)")}}})
	}
	if err := p.authorize(ctx, net.SGID, perms...); err != nil {
		return nil, err
	}

	public, _ := req.Attrs["public_ip"].(bool)
	tags := p.baseTags(req, nameTag(req.Cluster, req.Attrs.Str("name")))
	var eip *types.Address
	if public {
		if eip, err = p.ensureAddress(ctx, req); err != nil {
			return nil, err
		}
		tags[TagEIP] = aws.ToString(eip.AllocationId) + " " + aws.ToString(eip.PublicIp)
	}
	if provision.InstanceOf(req.Attrs).HasRole("gateway") && net.RouteTableID != "" {
		v := net.RouteTableID
		if c := req.Attrs.Str("overlay_cidr"); c != "" {
			if pfx, err := netip.ParsePrefix(c); err == nil && pfx.Addr().Is4() {
				v += " " + pfx.Masked().String()
			}
		}
		tags[TagGateway] = v
	}
	ud, err := UserData(req, aws.ToString(eipAddr(eip)))
	if err != nil {
		return nil, fmt.Errorf("aws: %s: %v", req.Address, err)
	}
	groups := append([]string{net.SGID}, p.settings.SecurityGroupIDs...)
	in := &ec2.RunInstancesInput{
		ClientToken:  aws.String(req.ClientToken),
		ImageId:      aws.String(image),
		InstanceType: types.InstanceType(typ),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		UserData:     aws.String(base64.StdEncoding.EncodeToString(ud)),
		NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{{
			DeviceIndex:              aws.Int32(0),
			SubnetId:                 aws.String(net.SubnetID),
			Groups:                   groups,
			AssociatePublicIpAddress: aws.Bool(!public),
			DeleteOnTermination:      aws.Bool(true),
		}},
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:   types.HttpTokensStateRequired,
			HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
		},
		TagSpecifications: append(tagSpecs(tags, types.ResourceTypeInstance),
			tagSpecs(p.baseTags(req, tags["Name"]), types.ResourceTypeVolume)...),
	}
	if p.settings.KeyName != "" {
		in.KeyName = aws.String(p.settings.KeyName)
	}
	if ip := p.settings.IAMInstanceProfile; ip != "" {
		if strings.HasPrefix(ip, "arn:") {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Arn: aws.String(ip)}
		} else {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(ip)}
		}
	}
	if spot, _ := req.Attrs["spot"].(bool); spot {
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot,
			SpotOptions: &types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypeOneTime,
				InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate}}
	}
	out, err := p.client.RunInstances(ctx, in)
	if err != nil {
		err = p.mapErr("RunInstances", err)
		if eip != nil && !provision.IsRetryable(err) && ctx.Err() == nil {
			// No instance will use the address (capacity, quota, a bad
			// image): do not leave it allocated (and billed).
			if rr, rerr := p.readInstance(ctx, &provision.ReadRequest{ClientToken: req.ClientToken}); rerr == nil && !rr.Exists {
				_ = p.releaseAddress(context.WithoutCancel(ctx), aws.ToString(eip.AllocationId))
			}
		}
		return nil, fmt.Errorf("%s: %w", req.Address, err)
	}
	if len(out.Instances) == 0 {
		return nil, fmt.Errorf("aws: RunInstances for %s returned no instance", req.Address)
	}
	inst := out.Instances[0]
	return &provision.CreateResponse{ID: aws.ToString(inst.InstanceId), Attrs: instanceAttrs(inst)}, nil
}

// ensureAddress finds or allocates the Elastic IP of an instance,
// tagged with its client token.
func (p *Provider) ensureAddress(ctx context.Context, req *provision.CreateRequest) (*types.Address, error) {
	out, err := p.client.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{tokenFilter(req.ClientToken)}})
	if err != nil {
		return nil, p.mapErr("DescribeAddresses", err)
	}
	if len(out.Addresses) > 0 {
		return &out.Addresses[0], nil
	}
	a, err := p.client.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc,
		TagSpecifications: tagSpecs(p.baseTags(req, nameTag(req.Cluster, req.Attrs.Str("name"))), types.ResourceTypeElasticIp)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Address, p.mapErr("AllocateAddress", err))
	}
	return &types.Address{AllocationId: a.AllocationId, PublicIp: a.PublicIp}, nil
}

func eipAddr(a *types.Address) *string {
	if a == nil {
		return nil
	}
	return a.PublicIp
}

// eipOf parses an instance's hvctl:eip tag.
func eipOf(inst types.Instance) (alloc, ip string) {
	v := tagValue(inst.Tags, TagEIP)
	alloc, ip, _ = strings.Cut(v, " ")
	return alloc, ip
}

// gatewayOf parses an instance's hvctl:gateway tag.
func gatewayOf(inst types.Instance) (isGateway bool, routeTable, cidr string) {
	v := tagValue(inst.Tags, TagGateway)
	if v == "" {
		return false, "", ""
	}
	routeTable, cidr, _ = strings.Cut(v, " ")
	return true, routeTable, cidr
}

func managerPort(url string) int {
	if i := strings.LastIndex(url, ":"); i > 0 {
		if n, err := strconv.Atoi(strings.TrimSuffix(url[i+1:], "/")); err == nil && n > 0 && n < 65536 {
			return n
		}
	}
	return 51821
}

// state maps an EC2 instance state to hvctl's: pending, running,
// stopped, terminated.
func state(inst types.Instance) string {
	if inst.State == nil {
		return "pending"
	}
	switch inst.State.Name {
	case types.InstanceStateNamePending:
		return "pending"
	case types.InstanceStateNameRunning:
		return "running"
	case types.InstanceStateNameStopping, types.InstanceStateNameStopped:
		return "stopped"
	}
	return "terminated"
}

func gone(inst types.Instance) bool {
	return inst.State != nil && (inst.State.Name == types.InstanceStateNameTerminated || inst.State.Name == types.InstanceStateNameShuttingDown)
}

// ready reports whether a running instance is fully set up: its Elastic
// IP associated and, for a gateway, source/destination checks off.
func ready(inst types.Instance) bool {
	if state(inst) != "running" {
		return false
	}
	if _, ip := eipOf(inst); ip != "" && aws.ToString(inst.PublicIpAddress) != ip {
		return false
	}
	if gw, _, _ := gatewayOf(inst); gw && aws.ToBool(inst.SourceDestCheck) {
		return false
	}
	return true
}

// instanceAttrs are the computed attributes of an instance: state
// (running only once ready), private_ip, and public_address for a node
// with an Elastic IP.
func instanceAttrs(inst types.Instance) provision.Attrs {
	s := state(inst)
	if s == "running" && !ready(inst) {
		s = "pending"
	}
	a := provision.Attrs{"state": s}
	if ip := aws.ToString(inst.PrivateIpAddress); ip != "" {
		a["private_ip"] = ip
	}
	if _, ip := eipOf(inst); ip != "" {
		a["public_address"] = ip
	}
	return a
}

// describe returns the instance with id, or by client token the live
// one it made (else the last one); nil when there is none.
func (p *Provider) describe(ctx context.Context, id, token string) (*types.Instance, error) {
	in := &ec2.DescribeInstancesInput{}
	if id != "" {
		in.InstanceIds = []string{id}
	} else {
		in.Filters = []types.Filter{filter("client-token", token)}
	}
	var found []types.Instance
	pg := ec2.NewDescribeInstancesPaginator(p.client, in)
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			if isNotFound(err) {
				return nil, nil
			}
			return nil, p.mapErr("DescribeInstances", err)
		}
		for _, r := range out.Reservations {
			found = append(found, r.Instances...)
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	sort.SliceStable(found, func(i, j int) bool { return !gone(found[i]) && gone(found[j]) })
	return &found[0], nil
}

// readInstance reports an instance; one terminated (in hvctl or outside
// it) does not exist, so the next plan creates it again.
func (p *Provider) readInstance(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	inst, err := p.describe(ctx, req.ID, req.ClientToken)
	if err != nil {
		return nil, err
	}
	if inst == nil {
		return &provision.ReadResponse{ID: req.ID}, nil
	}
	id := aws.ToString(inst.InstanceId)
	if gone(*inst) {
		return &provision.ReadResponse{ID: id}, nil
	}
	return &provision.ReadResponse{Exists: true, ID: id, Attrs: instanceAttrs(*inst)}, nil
}

// listPageSize is the MaxResults of a listing: EC2's largest page.
const listPageSize = 1000

// List is one page of the cluster's instances: DescribeInstances
// filtered by the cluster tag, MaxResults 1000. Networks (a subnet, a
// security group, maybe a VPC each) are read one by one.
func (p *Provider) List(ctx context.Context, req *provision.ListRequest) (*provision.ListPage, error) {
	in := &ec2.DescribeInstancesInput{
		Filters:    []types.Filter{filter("tag:"+TagCluster, req.Cluster)},
		MaxResults: aws.Int32(listPageSize),
	}
	if req.PageToken != "" {
		in.NextToken = aws.String(req.PageToken)
	}
	out, err := p.client.DescribeInstances(ctx, in)
	if err != nil {
		return nil, p.mapErr("DescribeInstances", err)
	}
	page := &provision.ListPage{Kinds: []provision.Kind{provision.KindInstance}, NextPageToken: aws.ToString(out.NextToken)}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if gone(inst) {
				continue
			}
			page.Items = append(page.Items, provision.Listed{Kind: provision.KindInstance, ID: aws.ToString(inst.InstanceId),
				ClientToken: aws.ToString(inst.ClientToken), Attrs: instanceAttrs(inst)})
		}
	}
	return page, nil
}

// notFoundGrace is how long WaitReady keeps looking for an instance
// DescribeInstances does not know yet.
var notFoundGrace = 2 * time.Minute

// WaitReady polls until an instance runs, then associates its Elastic
// IP and, on a site gateway, turns source/destination checks off and
// routes the overlay through it. An instance that ends terminated (a
// failed launch, a spot reclaim) is an error: the engine taints it.
func (p *Provider) WaitReady(ctx context.Context, req *provision.ReadRequest) (*provision.ReadResponse, error) {
	if req.Kind == provision.KindNetwork {
		return p.readNetwork(ctx, req)
	}
	var out *provision.ReadResponse
	err := p.poll(ctx, req, func(inst *types.Instance) (bool, error) {
		id := aws.ToString(inst.InstanceId)
		switch state(*inst) {
		case "running":
			rr, err := p.running(ctx, inst)
			out = rr
			return rr != nil || err != nil, err
		case "terminated":
			why := "terminated outside hvctl"
			if inst.StateReason != nil {
				why = aws.ToString(inst.StateReason.Code) + ": " + aws.ToString(inst.StateReason.Message)
			}
			out = &provision.ReadResponse{ID: id, Attrs: provision.Attrs{"state": "failed"}}
			return true, fmt.Errorf("aws: instance %s (%s) failed to boot: %s", id, req.Address, why)
		case "stopped":
			out = &provision.ReadResponse{Exists: true, ID: id, Attrs: instanceAttrs(*inst)}
			return true, fmt.Errorf("aws: instance %s (%s) stopped while booting", id, req.Address)
		}
		return false, nil
	})
	return out, err
}

// running finishes a running instance (finish) and reports it with
// state "running"; nil and no error when a step must be tried again (a
// retryable error).
func (p *Provider) running(ctx context.Context, inst *types.Instance) (*provision.ReadResponse, error) {
	id := aws.ToString(inst.InstanceId)
	if err := p.finish(ctx, inst); err != nil {
		if provision.IsRetryable(err) {
			return nil, nil
		}
		return &provision.ReadResponse{Exists: true, ID: id, Attrs: instanceAttrs(*inst)}, err
	}
	a := instanceAttrs(*inst)
	a["state"] = "running"
	return &provision.ReadResponse{Exists: true, ID: id, Attrs: a}, nil
}

// poll describes an instance (by req.ID, else req.ClientToken) every
// pollInterval until step reports it done or fails. Retryable errors are
// tried again; an instance DescribeInstances does not know is looked for
// up to notFoundGrace, as EC2 is eventually consistent (a new instance
// may be unknown for a little while).
func (p *Provider) poll(ctx context.Context, req *provision.ReadRequest, step func(inst *types.Instance) (done bool, err error)) error {
	start := time.Now()
	for {
		inst, err := p.describe(ctx, req.ID, req.ClientToken)
		switch {
		case err != nil:
			if !provision.IsRetryable(err) {
				return err
			}
		case inst == nil:
			if time.Since(start) > notFoundGrace {
				return fmt.Errorf("aws: instance %s (%s) does not exist", req.ID, req.Address)
			}
		default:
			if done, err := step(inst); done || err != nil {
				return err
			}
		}
		if err := sleep(ctx, p.pollInterval); err != nil {
			return err
		}
	}
}

// finish associates a running instance's Elastic IP and sets a gateway
// up; each step is skipped when already done.
func (p *Provider) finish(ctx context.Context, inst *types.Instance) error {
	id := aws.ToString(inst.InstanceId)
	if alloc, ip := eipOf(*inst); alloc != "" && aws.ToString(inst.PublicIpAddress) != ip {
		_, err := p.client.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(id)})
		if err != nil && errorCode(err) != "Resource.AlreadyAssociated" {
			return p.mapErr("AssociateAddress", err)
		}
		inst.PublicIpAddress = aws.String(ip)
	}
	gw, rt, cidr := gatewayOf(*inst)
	if !gw {
		return nil
	}
	if aws.ToBool(inst.SourceDestCheck) {
		if _, err := p.client.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
			SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)}}); err != nil {
			return p.mapErr("ModifyInstanceAttribute", err)
		}
		inst.SourceDestCheck = aws.Bool(false)
	}
	if cidr == "" || rt == "" || len(inst.NetworkInterfaces) == 0 {
		return nil
	}
	eni := inst.NetworkInterfaces[0].NetworkInterfaceId
	_, err := p.client.CreateRoute(ctx, &ec2.CreateRouteInput{RouteTableId: aws.String(rt), DestinationCidrBlock: aws.String(cidr), NetworkInterfaceId: eni})
	if errorCode(err) == "RouteAlreadyExists" {
		_, err = p.client.ReplaceRoute(ctx, &ec2.ReplaceRouteInput{RouteTableId: aws.String(rt), DestinationCidrBlock: aws.String(cidr), NetworkInterfaceId: eni})
	}
	if err != nil {
		return p.mapErr("CreateRoute", err)
	}
	return nil
}

// deleteInstance removes a gateway's overlay route, terminates the
// instance, waits until it is terminated (so its network can go next),
// and releases its Elastic IP.
func (p *Provider) deleteInstance(ctx context.Context, id string) error {
	inst, err := p.describe(ctx, id, "")
	if err != nil {
		return err
	}
	if inst == nil {
		return nil
	}
	if gw, rt, cidr := gatewayOf(*inst); gw && rt != "" && cidr != "" && len(inst.NetworkInterfaces) > 0 {
		if err := p.deleteRouteVia(ctx, rt, cidr, aws.ToString(inst.NetworkInterfaces[0].NetworkInterfaceId)); err != nil {
			return err
		}
	}
	if inst.State == nil || inst.State.Name != types.InstanceStateNameTerminated {
		if _, err := p.client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil && !isNotFound(err) {
			return p.mapErr("TerminateInstances", err)
		}
		for {
			cur, err := p.describe(ctx, id, "")
			if err != nil && !provision.IsRetryable(err) {
				return err
			}
			if err == nil && (cur == nil || (cur.State != nil && cur.State.Name == types.InstanceStateNameTerminated)) {
				break
			}
			if err := sleep(ctx, p.pollInterval); err != nil {
				return err
			}
		}
	}
	if alloc, _ := eipOf(*inst); alloc != "" {
		if err := p.releaseAddress(ctx, alloc); err != nil {
			return err
		}
	}
	// An address allocated for this instance but never tagged on it.
	if tok := aws.ToString(inst.ClientToken); tok != "" {
		out, err := p.client.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{tokenFilter(tok)}})
		if err != nil {
			return p.mapErr("DescribeAddresses", err)
		}
		for _, a := range out.Addresses {
			if err := p.releaseAddress(ctx, aws.ToString(a.AllocationId)); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteRouteVia deletes the route to cidr in table rt if it still
// goes through interface eni (another gateway may have taken it over).
func (p *Provider) deleteRouteVia(ctx context.Context, rt, cidr, eni string) error {
	out, err := p.client.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{RouteTableIds: []string{rt}})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return p.mapErr("DescribeRouteTables", err)
	}
	for _, t := range out.RouteTables {
		for _, r := range t.Routes {
			if aws.ToString(r.DestinationCidrBlock) == cidr && aws.ToString(r.NetworkInterfaceId) == eni {
				if _, err := p.client.DeleteRoute(ctx, &ec2.DeleteRouteInput{RouteTableId: aws.String(rt), DestinationCidrBlock: aws.String(cidr)}); err != nil && !isNotFound(err) {
					return p.mapErr("DeleteRoute", err)
				}
			}
		}
	}
	return nil
}

// releaseAddress disassociates and releases an Elastic IP; one already
// released is fine.
func (p *Provider) releaseAddress(ctx context.Context, alloc string) error {
	out, err := p.client.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{alloc}})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return p.mapErr("DescribeAddresses", err)
	}
	for _, a := range out.Addresses {
		if a.AssociationId != nil {
			if _, err := p.client.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: a.AssociationId}); err != nil && !isNotFound(err) {
				return p.mapErr("DisassociateAddress", err)
			}
		}
		if _, err := p.client.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: a.AllocationId}); err != nil && !isNotFound(err) {
			return p.mapErr("ReleaseAddress", err)
		}
	}
	return nil
}
