package awsfake

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

type handler func(s *Server, f form) ([]byte, *apiError)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"CreateVpc":                     (*Server).createVpc,
		"DescribeVpcs":                  (*Server).describeVpcs,
		"DeleteVpc":                     (*Server).deleteVpc,
		"AssociateVpcCidrBlock":         (*Server).associateVpcCidr,
		"DisassociateVpcCidrBlock":      (*Server).disassociateVpcCidr,
		"CreateSubnet":                  (*Server).createSubnet,
		"DescribeSubnets":               (*Server).describeSubnets,
		"DeleteSubnet":                  (*Server).deleteSubnet,
		"CreateInternetGateway":         (*Server).createIGW,
		"AttachInternetGateway":         (*Server).attachIGW,
		"DetachInternetGateway":         (*Server).detachIGW,
		"DeleteInternetGateway":         (*Server).deleteIGW,
		"DescribeInternetGateways":      (*Server).describeIGWs,
		"CreateRouteTable":              (*Server).createRouteTable,
		"DescribeRouteTables":           (*Server).describeRouteTables,
		"DeleteRouteTable":              (*Server).deleteRouteTable,
		"AssociateRouteTable":           (*Server).associateRouteTable,
		"DisassociateRouteTable":        (*Server).disassociateRouteTable,
		"CreateRoute":                   (*Server).createRoute,
		"ReplaceRoute":                  (*Server).replaceRoute,
		"DeleteRoute":                   (*Server).deleteRoute,
		"CreateSecurityGroup":           (*Server).createSecurityGroup,
		"DescribeSecurityGroups":        (*Server).describeSecurityGroups,
		"DeleteSecurityGroup":           (*Server).deleteSecurityGroup,
		"AuthorizeSecurityGroupIngress": (*Server).authorizeIngress,
		"RunInstances":                  (*Server).runInstances,
		"DescribeInstances":             (*Server).describeInstances,
		"TerminateInstances":            (*Server).terminateInstances,
		"StopInstances":                 (*Server).stopInstances,
		"StartInstances":                (*Server).startInstances,
		"ModifyInstanceAttribute":       (*Server).modifyInstanceAttribute,
		"AllocateAddress":               (*Server).allocateAddress,
		"AssociateAddress":              (*Server).associateAddress,
		"DisassociateAddress":           (*Server).disassociateAddress,
		"ReleaseAddress":                (*Server).releaseAddress,
		"DescribeAddresses":             (*Server).describeAddresses,
		"CreateTags":                    (*Server).createTags,
	}
}

func notFound(code, id string) *apiError {
	kind := map[string]string{
		"InvalidVpcID.NotFound":             "vpc ID",
		"InvalidSubnetID.NotFound":          "subnet ID",
		"InvalidInternetGatewayID.NotFound": "internetGateway ID",
		"InvalidRouteTableID.NotFound":      "routeTable ID",
		"InvalidGroup.NotFound":             "security group",
		"InvalidInstanceID.NotFound":        "instance ID",
		"InvalidAllocationID.NotFound":      "allocation ID",
		"InvalidAssociationID.NotFound":     "association ID",
	}[code]
	return errf(code, "The %s '%s' does not exist", kind, id)
}

func dependency(format string, args ...any) *apiError {
	return errf("DependencyViolation", format, args...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// --- VPCs ---

func (s *Server) createVpc(f form) ([]byte, *apiError) {
	cidr, ok := parsePrefix(f.get("CidrBlock"))
	if !ok || cidr.Bits() < 16 || cidr.Bits() > 28 {
		return nil, errf("InvalidVpc.Range", "The CIDR '%s' is invalid.", f.get("CidrBlock"))
	}
	v := &VPC{ID: s.id("vpc"), CIDR: cidr.String(), Secondary: map[string]string{}, Tags: f.tags("vpc")}
	s.vpcs[v.ID] = v
	main := &RouteTable{ID: s.id("rtb"), VpcID: v.ID, Routes: []Route{{Destination: v.CIDR, GatewayID: "local"}}, main: true, Associations: map[string]string{}}
	main.mainAssoc = s.id("rtbassoc")
	s.rts[main.ID] = main
	def := &SecurityGroup{ID: s.id("sg"), Name: "default", Description: "default VPC security group", VpcID: v.ID}
	s.sgs[def.ID] = def
	return el("vpc", s.xVpc(v)), nil
}

func (s *Server) xVpc(v *VPC) xVpc {
	x := xVpc{VpcID: v.ID, OwnerID: OwnerID, State: "available", CidrBlock: v.CIDR, DhcpOptionsID: "dopt-0default",
		InstanceTenancy: "default", TagSet: tagSet(v.Tags),
		CidrAssocs: set([]xCidrAssoc{{AssociationID: v.ID + "-cidr0", CidrBlock: v.CIDR, CidrBlockState: xCidrState{"associated"}}})}
	for _, a := range sortedKeys(v.Secondary) {
		x.CidrAssocs.Item = append(x.CidrAssocs.Item, xCidrAssoc{AssociationID: a, CidrBlock: v.Secondary[a], CidrBlockState: xCidrState{"associated"}})
	}
	return x
}

func (s *Server) associateVpcCidr(f form) ([]byte, *apiError) {
	v := s.vpcs[f.get("VpcId")]
	if v == nil {
		return nil, notFound("InvalidVpcID.NotFound", f.get("VpcId"))
	}
	cidr, ok := parsePrefix(f.get("CidrBlock"))
	if !ok || cidr.Bits() < 16 || cidr.Bits() > 28 {
		return nil, errf("InvalidVpc.Range", "The CIDR '%s' is invalid.", f.get("CidrBlock"))
	}
	for _, c := range v.cidrs() {
		if c.Overlaps(cidr) {
			return nil, errf("InvalidVpc.Range", "The CIDR '%s' overlaps with the CIDR block '%s' of %s", cidr, c, v.ID)
		}
	}
	if len(v.Secondary) >= 4 {
		return nil, errf("CidrLimitExceeded", "This network '%s' has met its maximum number of allowed CIDRs: 5", v.ID)
	}
	a := s.id("vpc-cidr-assoc")
	v.Secondary[a] = cidr.String()
	return cat(el("cidrBlockAssociation", xCidrAssoc{AssociationID: a, CidrBlock: cidr.String(), CidrBlockState: xCidrState{"associating"}}), el("vpcId", v.ID)), nil
}

func (s *Server) disassociateVpcCidr(f form) ([]byte, *apiError) {
	a := f.get("AssociationId")
	for _, v := range s.vpcs {
		if c, ok := v.Secondary[a]; ok {
			cp := netip.MustParsePrefix(c)
			for _, sn := range s.subnets {
				if sn.VpcID == v.ID && cp.Overlaps(netip.MustParsePrefix(sn.CIDR)) {
					return nil, errf("InvalidCidrBlock.InUse", "The vpc %s currently has a subnet within CIDR block %s", v.ID, c)
				}
			}
			delete(v.Secondary, a)
			return cat(el("cidrBlockAssociation", xCidrAssoc{AssociationID: a, CidrBlock: c, CidrBlockState: xCidrState{"disassociating"}}), el("vpcId", v.ID)), nil
		}
		if a == v.ID+"-cidr0" {
			return nil, errf("InvalidParameterValue", "The vpc CIDR block with association ID %s may not be disassociated. It is the primary IPv4 CIDR block of the VPC", a)
		}
	}
	return nil, errf("InvalidVpcCidrBlockAssociationId.NotFound", "The vpc CIDR block association ID '%s' does not exist", a)
}

func (s *Server) describeVpcs(f form) ([]byte, *apiError) {
	ids := f.list("VpcId")
	for _, id := range ids {
		if s.vpcs[id] == nil {
			return nil, notFound("InvalidVpcID.NotFound", id)
		}
	}
	var out []xVpc
	for _, id := range sortedKeys(s.vpcs) {
		v := s.vpcs[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		ok, err := match(f.filters(), v.Tags, func(n string) ([]string, bool) {
			switch n {
			case "vpc-id":
				return []string{v.ID}, true
			case "cidr":
				return []string{v.CIDR}, true
			case "cidr-block-association.cidr-block":
				var out []string
				for _, c := range v.cidrs() {
					out = append(out, c.String())
				}
				return out, true
			case "state":
				return []string{"available"}, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s.xVpc(v))
		}
	}
	return el("vpcSet", set(out)), nil
}

func (s *Server) deleteVpc(f form) ([]byte, *apiError) {
	id := f.get("VpcId")
	v := s.vpcs[id]
	if v == nil {
		return nil, notFound("InvalidVpcID.NotFound", id)
	}
	for _, sn := range s.subnets {
		if sn.VpcID == id {
			return nil, dependency("The vpc '%s' has dependencies and cannot be deleted.", id)
		}
	}
	for _, g := range s.igws {
		if g.VpcID == id {
			return nil, dependency("The vpc '%s' has dependencies and cannot be deleted.", id)
		}
	}
	for _, rt := range s.rts {
		if rt.VpcID == id && !rt.main {
			return nil, dependency("The vpc '%s' has dependencies and cannot be deleted.", id)
		}
	}
	for _, g := range s.sgs {
		if g.VpcID == id && g.Name != "default" {
			return nil, dependency("The vpc '%s' has dependencies and cannot be deleted.", id)
		}
	}
	for rid, rt := range s.rts {
		if rt.VpcID == id {
			delete(s.rts, rid)
		}
	}
	for gid, g := range s.sgs {
		if g.VpcID == id {
			delete(s.sgs, gid)
		}
	}
	delete(s.vpcs, id)
	return ret(), nil
}

// --- subnets ---

func (s *Server) createSubnet(f form) ([]byte, *apiError) {
	v := s.vpcs[f.get("VpcId")]
	if v == nil {
		return nil, notFound("InvalidVpcID.NotFound", f.get("VpcId"))
	}
	cidr, ok := parsePrefix(f.get("CidrBlock"))
	inside := false
	for _, vc := range v.cidrs() {
		if ok && cidr.Bits() >= vc.Bits() && vc.Contains(cidr.Addr()) {
			inside = true
		}
	}
	if !ok || cidr.Bits() > 28 || !inside {
		return nil, errf("InvalidSubnet.Range", "The CIDR '%s' is invalid.", f.get("CidrBlock"))
	}
	for _, o := range s.subnets {
		if o.VpcID == v.ID && overlaps(netip.MustParsePrefix(o.CIDR), cidr) {
			return nil, errf("InvalidSubnet.Conflict", "The CIDR '%s' conflicts with another subnet", cidr)
		}
	}
	az := f.get("AvailabilityZone")
	if az == "" {
		az = s.Region + "a"
	}
	sn := &Subnet{ID: s.id("subnet"), VpcID: v.ID, CIDR: cidr.String(), AZ: az, Tags: f.tags("subnet"), next: 4}
	s.subnets[sn.ID] = sn
	return el("subnet", s.xSubnet(sn)), nil
}

func (s *Server) xSubnet(sn *Subnet) xSubnet {
	size := 1<<(32-netip.MustParsePrefix(sn.CIDR).Bits()) - 5
	return xSubnet{SubnetID: sn.ID, State: "available", OwnerID: OwnerID, VpcID: sn.VpcID, CidrBlock: sn.CIDR,
		AvailableIPAddressCount: size, AvailabilityZone: sn.AZ, TagSet: tagSet(sn.Tags)}
}

func (s *Server) describeSubnets(f form) ([]byte, *apiError) {
	ids := f.list("SubnetId")
	for _, id := range ids {
		if s.subnets[id] == nil {
			return nil, notFound("InvalidSubnetID.NotFound", id)
		}
	}
	var out []xSubnet
	for _, id := range sortedKeys(s.subnets) {
		sn := s.subnets[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		ok, err := match(f.filters(), sn.Tags, func(n string) ([]string, bool) {
			switch n {
			case "subnet-id":
				return []string{sn.ID}, true
			case "vpc-id":
				return []string{sn.VpcID}, true
			case "cidr-block":
				return []string{sn.CIDR}, true
			case "availability-zone":
				return []string{sn.AZ}, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s.xSubnet(sn))
		}
	}
	return el("subnetSet", set(out)), nil
}

func (s *Server) deleteSubnet(f form) ([]byte, *apiError) {
	id := f.get("SubnetId")
	if s.subnets[id] == nil {
		return nil, notFound("InvalidSubnetID.NotFound", id)
	}
	for _, in := range s.instances {
		if in.SubnetID == id && in.State != "terminated" {
			return nil, dependency("The subnet '%s' has dependencies and cannot be deleted.", id)
		}
	}
	for _, rt := range s.rts {
		for a, sub := range rt.Associations {
			if sub == id {
				delete(rt.Associations, a)
			}
		}
	}
	delete(s.subnets, id)
	return ret(), nil
}

// --- internet gateways ---

func (s *Server) createIGW(f form) ([]byte, *apiError) {
	g := &InternetGateway{ID: s.id("igw"), Tags: f.tags("internet-gateway")}
	s.igws[g.ID] = g
	return el("internetGateway", s.xIGW(g)), nil
}

func (s *Server) xIGW(g *InternetGateway) xIGW {
	x := xIGW{InternetGatewayID: g.ID, OwnerID: OwnerID, AttachmentSet: set([]xAttachment{}), TagSet: tagSet(g.Tags)}
	if g.VpcID != "" {
		x.AttachmentSet = set([]xAttachment{{VpcID: g.VpcID, State: "available"}})
	}
	return x
}

func (s *Server) attachIGW(f form) ([]byte, *apiError) {
	g := s.igws[f.get("InternetGatewayId")]
	if g == nil {
		return nil, notFound("InvalidInternetGatewayID.NotFound", f.get("InternetGatewayId"))
	}
	if s.vpcs[f.get("VpcId")] == nil {
		return nil, notFound("InvalidVpcID.NotFound", f.get("VpcId"))
	}
	if g.VpcID != "" {
		return nil, errf("Resource.AlreadyAssociated", "resource %s is already attached to network %s", g.ID, g.VpcID)
	}
	g.VpcID = f.get("VpcId")
	return ret(), nil
}

func (s *Server) detachIGW(f form) ([]byte, *apiError) {
	g := s.igws[f.get("InternetGatewayId")]
	if g == nil {
		return nil, notFound("InvalidInternetGatewayID.NotFound", f.get("InternetGatewayId"))
	}
	if g.VpcID != f.get("VpcId") {
		return nil, errf("Gateway.NotAttached", "resource %s is not attached to network %s", g.ID, f.get("VpcId"))
	}
	for _, a := range s.addresses {
		if in := s.instances[a.InstanceID]; in != nil && in.VpcID == g.VpcID {
			return nil, dependency("Network %s has some mapped public address(es). Please unmap those public address(es) before detaching the gateway.", g.VpcID)
		}
	}
	g.VpcID = ""
	return ret(), nil
}

func (s *Server) deleteIGW(f form) ([]byte, *apiError) {
	g := s.igws[f.get("InternetGatewayId")]
	if g == nil {
		return nil, notFound("InvalidInternetGatewayID.NotFound", f.get("InternetGatewayId"))
	}
	if g.VpcID != "" {
		return nil, dependency("The internetGateway '%s' has dependencies and cannot be deleted.", g.ID)
	}
	delete(s.igws, g.ID)
	return ret(), nil
}

func (s *Server) describeIGWs(f form) ([]byte, *apiError) {
	ids := f.list("InternetGatewayId")
	for _, id := range ids {
		if s.igws[id] == nil {
			return nil, notFound("InvalidInternetGatewayID.NotFound", id)
		}
	}
	var out []xIGW
	for _, id := range sortedKeys(s.igws) {
		g := s.igws[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		ok, err := match(f.filters(), g.Tags, func(n string) ([]string, bool) {
			switch n {
			case "internet-gateway-id":
				return []string{g.ID}, true
			case "attachment.vpc-id":
				return []string{g.VpcID}, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s.xIGW(g))
		}
	}
	return el("internetGatewaySet", set(out)), nil
}

// --- route tables ---

func (s *Server) createRouteTable(f form) ([]byte, *apiError) {
	v := s.vpcs[f.get("VpcId")]
	if v == nil {
		return nil, notFound("InvalidVpcID.NotFound", f.get("VpcId"))
	}
	rt := &RouteTable{ID: s.id("rtb"), VpcID: v.ID, Routes: []Route{{Destination: v.CIDR, GatewayID: "local"}},
		Associations: map[string]string{}, Tags: f.tags("route-table")}
	s.rts[rt.ID] = rt
	return el("routeTable", s.xRouteTable(rt)), nil
}

func (s *Server) xRouteTable(rt *RouteTable) xRouteTable {
	x := xRouteTable{RouteTableID: rt.ID, VpcID: rt.VpcID, OwnerID: OwnerID, RouteSet: set([]xRoute{}),
		AssociationSet: set([]xRTAssoc{}), TagSet: tagSet(rt.Tags)}
	for _, r := range rt.Routes {
		xr := xRoute{DestinationCidrBlock: r.Destination, GatewayID: r.GatewayID, NetworkInterfaceID: r.NetworkInterfaceID,
			InstanceID: r.InstanceID, State: "active", Origin: "CreateRoute"}
		if r.GatewayID == "local" {
			xr.Origin = "CreateRouteTable"
		}
		if r.NetworkInterfaceID != "" && !s.eniLive(r.NetworkInterfaceID) {
			xr.State = "blackhole"
		}
		x.RouteSet.Item = append(x.RouteSet.Item, xr)
	}
	if rt.main {
		x.AssociationSet.Item = append(x.AssociationSet.Item, xRTAssoc{RouteTableAssociationID: rt.mainAssoc, RouteTableID: rt.ID,
			Main: true, AssociationState: xAssocState{"associated"}})
	}
	for _, a := range sortedKeys(rt.Associations) {
		x.AssociationSet.Item = append(x.AssociationSet.Item, xRTAssoc{RouteTableAssociationID: a, RouteTableID: rt.ID,
			SubnetID: rt.Associations[a], AssociationState: xAssocState{"associated"}})
	}
	return x
}

func (s *Server) eniLive(eni string) bool {
	for _, in := range s.instances {
		if in.ENI == eni && in.State != "terminated" {
			return true
		}
	}
	return false
}

func (s *Server) describeRouteTables(f form) ([]byte, *apiError) {
	ids := f.list("RouteTableId")
	for _, id := range ids {
		if s.rts[id] == nil {
			return nil, notFound("InvalidRouteTableID.NotFound", id)
		}
	}
	var out []xRouteTable
	for _, id := range sortedKeys(s.rts) {
		rt := s.rts[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		ok, err := match(f.filters(), rt.Tags, func(n string) ([]string, bool) {
			switch n {
			case "route-table-id":
				return []string{rt.ID}, true
			case "vpc-id":
				return []string{rt.VpcID}, true
			case "association.subnet-id":
				var subs []string
				for _, sub := range rt.Associations {
					subs = append(subs, sub)
				}
				return subs, true
			case "association.main":
				return []string{strconv.FormatBool(rt.main)}, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s.xRouteTable(rt))
		}
	}
	return el("routeTableSet", set(out)), nil
}

func (s *Server) deleteRouteTable(f form) ([]byte, *apiError) {
	rt := s.rts[f.get("RouteTableId")]
	if rt == nil {
		return nil, notFound("InvalidRouteTableID.NotFound", f.get("RouteTableId"))
	}
	if rt.main || len(rt.Associations) > 0 {
		return nil, dependency("The routeTable '%s' has dependencies and cannot be deleted.", rt.ID)
	}
	delete(s.rts, rt.ID)
	return ret(), nil
}

func (s *Server) associateRouteTable(f form) ([]byte, *apiError) {
	rt := s.rts[f.get("RouteTableId")]
	if rt == nil {
		return nil, notFound("InvalidRouteTableID.NotFound", f.get("RouteTableId"))
	}
	sn := s.subnets[f.get("SubnetId")]
	if sn == nil {
		return nil, notFound("InvalidSubnetID.NotFound", f.get("SubnetId"))
	}
	if sn.VpcID != rt.VpcID {
		return nil, errf("InvalidParameterValue", "route table %s and subnet %s belong to different networks", rt.ID, sn.ID)
	}
	for _, o := range s.rts {
		for _, sub := range o.Associations {
			if sub == sn.ID {
				return nil, errf("Resource.AlreadyAssociated", "the specified association for route table %s conflicts with an existing association", rt.ID)
			}
		}
	}
	a := s.id("rtbassoc")
	rt.Associations[a] = sn.ID
	return cat(el("associationId", a), el("associationState", xAssocState{"associated"})), nil
}

func (s *Server) disassociateRouteTable(f form) ([]byte, *apiError) {
	a := f.get("AssociationId")
	for _, rt := range s.rts {
		if _, ok := rt.Associations[a]; ok {
			delete(rt.Associations, a)
			return ret(), nil
		}
	}
	return nil, notFound("InvalidAssociationID.NotFound", a)
}

func (s *Server) routeArgs(f form) (*RouteTable, Route, *apiError) {
	rt := s.rts[f.get("RouteTableId")]
	if rt == nil {
		return nil, Route{}, notFound("InvalidRouteTableID.NotFound", f.get("RouteTableId"))
	}
	dest, ok := parsePrefix(f.get("DestinationCidrBlock"))
	if !ok {
		return nil, Route{}, errf("InvalidParameterValue", "Value (%s) for parameter destinationCidrBlock is invalid.", f.get("DestinationCidrBlock"))
	}
	r := Route{Destination: dest.String(), GatewayID: f.get("GatewayId"), NetworkInterfaceID: f.get("NetworkInterfaceId"), InstanceID: f.get("InstanceId")}
	switch {
	case r.GatewayID != "":
		if g := s.igws[r.GatewayID]; g == nil {
			return nil, Route{}, notFound("InvalidInternetGatewayID.NotFound", r.GatewayID)
		} else if g.VpcID != rt.VpcID {
			return nil, Route{}, errf("InvalidParameterValue", "route table %s and network gateway %s belong to different networks", rt.ID, g.ID)
		}
	case r.NetworkInterfaceID != "":
		if !s.eniLive(r.NetworkInterfaceID) {
			return nil, Route{}, errf("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", r.NetworkInterfaceID)
		}
	default:
		return nil, Route{}, errf("InvalidParameterCombination", "No route target given")
	}
	return rt, r, nil
}

func (s *Server) createRoute(f form) ([]byte, *apiError) {
	rt, r, err := s.routeArgs(f)
	if err != nil {
		return nil, err
	}
	for _, o := range rt.Routes {
		if o.Destination == r.Destination {
			return nil, errf("RouteAlreadyExists", "The route identified by %s already exists.", r.Destination)
		}
	}
	rt.Routes = append(rt.Routes, r)
	return ret(), nil
}

func (s *Server) replaceRoute(f form) ([]byte, *apiError) {
	rt, r, err := s.routeArgs(f)
	if err != nil {
		return nil, err
	}
	for i, o := range rt.Routes {
		if o.Destination == r.Destination {
			rt.Routes[i] = r
			return ret(), nil
		}
	}
	return nil, errf("InvalidRoute.NotFound", "no route with destination-cidr-block %s in route table %s", r.Destination, rt.ID)
}

func (s *Server) deleteRoute(f form) ([]byte, *apiError) {
	rt := s.rts[f.get("RouteTableId")]
	if rt == nil {
		return nil, notFound("InvalidRouteTableID.NotFound", f.get("RouteTableId"))
	}
	for i, o := range rt.Routes {
		if o.Destination == f.get("DestinationCidrBlock") && o.GatewayID != "local" {
			rt.Routes = append(rt.Routes[:i], rt.Routes[i+1:]...)
			return ret(), nil
		}
	}
	return nil, errf("InvalidRoute.NotFound", "no route with destination-cidr-block %s in route table %s", f.get("DestinationCidrBlock"), rt.ID)
}

// --- security groups ---

func (s *Server) createSecurityGroup(f form) ([]byte, *apiError) {
	v := s.vpcs[f.get("VpcId")]
	if v == nil {
		return nil, notFound("InvalidVpcID.NotFound", f.get("VpcId"))
	}
	name := f.get("GroupName")
	if name == "" || f.get("GroupDescription") == "" {
		return nil, errf("MissingParameter", "The request must contain the parameters GroupName and GroupDescription")
	}
	for _, g := range s.sgs {
		if g.VpcID == v.ID && g.Name == name {
			return nil, errf("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, v.ID)
		}
	}
	g := &SecurityGroup{ID: s.id("sg"), Name: name, Description: f.get("GroupDescription"), VpcID: v.ID, Tags: f.tags("security-group")}
	s.sgs[g.ID] = g
	return cat(el("groupId", g.ID), el("tagSet", tagSet(g.Tags))), nil
}

func (s *Server) xSecurityGroup(g *SecurityGroup) xSecurityGroup {
	x := xSecurityGroup{OwnerID: OwnerID, GroupID: g.ID, GroupName: g.Name, GroupDescription: g.Description, VpcID: g.VpcID,
		IPPermissions: set([]xIPPermission{}), TagSet: tagSet(g.Tags)}
	for _, p := range g.Ingress {
		xp := xIPPermission{IPProtocol: p.Protocol, FromPort: p.From, ToPort: p.To, Groups: set([]xGroupPair{}), IPRanges: set([]xIPRange{})}
		if p.CIDR != "" {
			xp.IPRanges.Item = append(xp.IPRanges.Item, xIPRange{CidrIP: p.CIDR, Description: p.Descriptor})
		}
		if p.SourceSG != "" {
			xp.Groups.Item = append(xp.Groups.Item, xGroupPair{UserID: OwnerID, GroupID: p.SourceSG})
		}
		x.IPPermissions.Item = append(x.IPPermissions.Item, xp)
	}
	return x
}

func (s *Server) describeSecurityGroups(f form) ([]byte, *apiError) {
	ids := f.list("GroupId")
	for _, id := range ids {
		if s.sgs[id] == nil {
			return nil, notFound("InvalidGroup.NotFound", id)
		}
	}
	var out []xSecurityGroup
	for _, id := range sortedKeys(s.sgs) {
		g := s.sgs[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		ok, err := match(f.filters(), g.Tags, func(n string) ([]string, bool) {
			switch n {
			case "group-id":
				return []string{g.ID}, true
			case "group-name":
				return []string{g.Name}, true
			case "vpc-id":
				return []string{g.VpcID}, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s.xSecurityGroup(g))
		}
	}
	return el("securityGroupInfo", set(out)), nil
}

func (s *Server) deleteSecurityGroup(f form) ([]byte, *apiError) {
	g := s.sgs[f.get("GroupId")]
	if g == nil {
		return nil, notFound("InvalidGroup.NotFound", f.get("GroupId"))
	}
	if g.Name == "default" {
		return nil, errf("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", g.ID)
	}
	for _, in := range s.instances {
		if in.State != "terminated" && contains(in.Groups, g.ID) {
			return nil, dependency("resource %s has a dependent object", g.ID)
		}
	}
	delete(s.sgs, g.ID)
	return ret(), nil
}

func (s *Server) authorizeIngress(f form) ([]byte, *apiError) {
	g := s.sgs[f.get("GroupId")]
	if g == nil {
		return nil, notFound("InvalidGroup.NotFound", f.get("GroupId"))
	}
	var add []Permission
	for i := 1; i <= f.count("IpPermissions"); i++ {
		p := "IpPermissions." + strconv.Itoa(i)
		proto := f.get(p + ".IpProtocol")
		from, _ := strconv.Atoi(f.get(p + ".FromPort"))
		to, _ := strconv.Atoi(f.get(p + ".ToPort"))
		if proto != "tcp" && proto != "udp" && proto != "icmp" && proto != "-1" {
			return nil, errf("InvalidParameterValue", "Invalid value '%s' for IP protocol.", proto)
		}
		for j := 1; j <= f.count(p+".IpRanges"); j++ {
			q := p + ".IpRanges." + strconv.Itoa(j)
			if _, ok := parsePrefix(f.get(q + ".CidrIp")); !ok {
				return nil, errf("InvalidParameterValue", "CIDR block %s is malformed", f.get(q+".CidrIp"))
			}
			add = append(add, Permission{Protocol: proto, From: from, To: to, CIDR: f.get(q + ".CidrIp"), Descriptor: f.get(q + ".Description")})
		}
		for j := 1; j <= f.count(p+".Groups"); j++ {
			q := p + ".Groups." + strconv.Itoa(j)
			if s.sgs[f.get(q+".GroupId")] == nil {
				return nil, notFound("InvalidGroup.NotFound", f.get(q+".GroupId"))
			}
			add = append(add, Permission{Protocol: proto, From: from, To: to, SourceSG: f.get(q + ".GroupId"), Descriptor: f.get(q + ".Description")})
		}
	}
	if len(add) == 0 {
		return nil, errf("MissingParameter", "No IpPermissions given")
	}
	for _, a := range add {
		for _, o := range g.Ingress {
			if o.Protocol == a.Protocol && o.From == a.From && o.To == a.To && o.CIDR == a.CIDR && o.SourceSG == a.SourceSG {
				return nil, errf("InvalidPermission.Duplicate", "the specified rule \"peer: %s, %s, from port: %d, to port: %d, ALLOW\" already exists", a.CIDR+a.SourceSG, strings.ToUpper(a.Protocol), a.From, a.To)
			}
		}
	}
	g.Ingress = append(g.Ingress, add...)
	return ret(), nil
}

// --- instances ---

func (s *Server) runInstances(f form) ([]byte, *apiError) {
	if tok := f.get("ClientToken"); tok != "" {
		if id, ok := s.tokens[tok]; ok {
			// Idempotent: the same reservation again, whatever its state.
			in := s.instances[id]
			return s.reservation(in), nil
		}
	}
	image, typ := f.get("ImageId"), f.get("InstanceType")
	if image == "" {
		return nil, errf("MissingParameter", "The request must contain the parameter ImageId")
	}
	if !strings.HasPrefix(image, "ami-") && !strings.HasPrefix(image, "resolve:ssm:") {
		return nil, errf("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", image)
	}
	if typ == "" {
		typ = "m1.small"
	}
	if f.get("MinCount") != "1" || f.get("MaxCount") != "1" {
		return nil, errf("InvalidParameterValue", "the fake launches one instance at a time (MinCount = MaxCount = 1)")
	}
	subnetID := f.get("SubnetId")
	groups := f.list("SecurityGroupId")
	public := false
	if f.count("NetworkInterface") > 0 {
		subnetID = f.get("NetworkInterface.1.SubnetId")
		groups = f.list("NetworkInterface.1.SecurityGroupId")
		public = f.get("NetworkInterface.1.AssociatePublicIpAddress") == "true"
	}
	sn := s.subnets[subnetID]
	if sn == nil {
		return nil, notFound("InvalidSubnetID.NotFound", subnetID)
	}
	for _, g := range groups {
		sg := s.sgs[g]
		if sg == nil {
			return nil, notFound("InvalidGroup.NotFound", g)
		}
		if sg.VpcID != sn.VpcID {
			return nil, errf("InvalidParameter", "Security group %s and subnet %s belong to different networks.", g, sn.ID)
		}
	}
	if s.capacity[typ] {
		return nil, &apiError{http.StatusInternalServerError, "InsufficientInstanceCapacity",
			"We currently do not have sufficient " + typ + " capacity in the Availability Zone you requested (" + sn.AZ + "). Our system will be working on provisioning additional capacity. You can currently get " + typ + " capacity by not specifying an Availability Zone in your request or choosing a different Availability Zone."}
	}
	if len(f.get("UserData")) > 22000 { // 16 KiB before base64
		return nil, errf("InvalidParameterValue", "User data is limited to 16384 bytes")
	}
	pfx := netip.MustParsePrefix(sn.CIDR)
	ip := pfx.Addr()
	for i := 0; i < sn.next; i++ {
		ip = ip.Next()
	}
	if !pfx.Contains(ip) {
		return nil, errf("InsufficientFreeAddressesInSubnet", "There are not enough free addresses in subnet '%s' to satisfy the requested number of instances.", sn.ID)
	}
	sn.next++
	in := &Instance{
		ID: s.id("i"), ImageID: image, Type: typ, KeyName: f.get("KeyName"), SubnetID: sn.ID, VpcID: sn.VpcID,
		ENI: s.id("eni"), PrivateIP: ip.String(), ClientToken: f.get("ClientToken"), State: "pending",
		SourceDestCheck: true, Groups: groups, Tags: f.tags("instance"), UserData: decodeUserData(f.get("UserData")),
		Spot: f.get("InstanceMarketOptions.MarketType") == "spot", IamInstanceProfile: f.get("IamInstanceProfile.Name") + f.get("IamInstanceProfile.Arn"),
		Launched: time.Now().UTC(),
	}
	if public {
		in.publicAtLaunch = true
		in.ephemeralIP = "198.51.100." + strconv.Itoa(s.seq%250+1)
		in.PublicIP = in.ephemeralIP
	}
	if in.ClientToken == "" {
		in.ClientToken = s.id("token")
	}
	s.instances[in.ID] = in
	s.tokens[in.ClientToken] = in.ID
	return s.reservation(in), nil
}

func (s *Server) reservation(in *Instance) []byte {
	x := s.xInstance(in)
	return cat(el("reservationId", "r-"+strings.TrimPrefix(in.ID, "i-")), el("ownerId", OwnerID),
		el("groupSet", set([]xGroup{})), el("instancesSet", set([]xInstance{x})))
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

func (s *Server) xInstance(in *Instance) xInstance {
	x := xInstance{
		InstanceID: in.ID, ImageID: in.ImageID, InstanceState: xState{stateCodes[in.State], in.State},
		PrivateDNSName: "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + ".ec2.internal",
		KeyName:        in.KeyName, InstanceType: in.Type, LaunchTime: in.Launched.Format("2006-01-02T15:04:05.000Z"),
		Placement: xPlacement{AvailabilityZone: s.Region + "a", Tenancy: "default"}, SubnetID: in.SubnetID, VpcID: in.VpcID,
		PrivateIPAddress: in.PrivateIP, SourceDestCheck: in.SourceDestCheck, GroupSet: set([]xGroup{}),
		Architecture: "x86_64", RootDeviceType: "ebs", ClientToken: in.ClientToken, TagSet: tagSet(in.Tags),
	}
	if in.Spot {
		x.InstanceLifecycle = "spot"
	}
	if sn := s.subnets[in.SubnetID]; sn != nil {
		x.Placement.AvailabilityZone = sn.AZ
	}
	for _, g := range in.Groups {
		name := ""
		if sg := s.sgs[g]; sg != nil {
			name = sg.Name
		}
		x.GroupSet.Item = append(x.GroupSet.Item, xGroup{g, name})
	}
	if in.State == "terminated" || in.State == "shutting-down" {
		x.SubnetID, x.VpcID, x.PrivateIPAddress = "", "", ""
		x.NetworkInterfaceSet = set([]xENI{})
	} else {
		eni := xENI{NetworkInterfaceID: in.ENI, SubnetID: in.SubnetID, VpcID: in.VpcID, OwnerID: OwnerID, Status: "in-use",
			PrivateIPAddress: in.PrivateIP, SourceDestCheck: in.SourceDestCheck}
		if in.PublicIP != "" {
			x.IPAddress = in.PublicIP
			eni.Association = &xENIAssoc{PublicIP: in.PublicIP, IPOwner: "amazon"}
		}
		x.NetworkInterfaceSet = set([]xENI{eni})
	}
	if in.StateReasonCode != "" {
		x.StateReason = &xStateReason{in.StateReasonCode, in.StateReasonMessage}
	}
	return x
}

func (s *Server) describeInstances(f form) ([]byte, *apiError) {
	ids := f.list("InstanceId")
	// Pagination as EC2 does it: MaxResults 5..1000, not with
	// InstanceId; NextToken continues where the last page stopped.
	maxResults, start := 0, 0
	if v := f.get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 1000 {
			return nil, errf("InvalidParameterValue", "MaxResults %q: must be between 5 and 1000", v)
		}
		if len(ids) > 0 {
			return nil, errf("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		}
		maxResults = n
	}
	if v := f.get("NextToken"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "page-"))
		if err != nil || !strings.HasPrefix(v, "page-") || n < 0 {
			return nil, errf("InvalidParameterValue", "NextToken %q is not valid", v)
		}
		start = n
	}
	for _, id := range ids {
		if s.instances[id] == nil {
			return nil, notFound("InvalidInstanceID.NotFound", id)
		}
	}
	var res []xReservation
	for _, id := range sortedKeys(s.instances) {
		in := s.instances[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		// Time passes for the instances a client looks at.
		switch in.State {
		case "pending":
			if in.describes >= s.bootDescribes {
				in.State = "running"
				in.ran = true
			}
			in.describes++
		case "shutting-down":
			in.State = "terminated"
		case "stopping":
			in.State = "stopped"
		}
		ok, err := match(f.filters(), in.Tags, func(n string) ([]string, bool) {
			switch n {
			case "instance-id":
				return []string{in.ID}, true
			case "client-token":
				return []string{in.ClientToken}, true
			case "instance-state-name":
				return []string{in.State}, true
			case "subnet-id":
				return []string{in.SubnetID}, true
			case "vpc-id":
				return []string{in.VpcID}, true
			case "instance-type":
				return []string{in.Type}, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			res = append(res, xReservation{ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"), OwnerID: OwnerID,
				GroupSet: set([]xGroup{}), InstancesSet: set([]xInstance{s.xInstance(in)})})
		}
	}
	if maxResults == 0 && start == 0 {
		return el("reservationSet", set(res)), nil
	}
	start = min(start, len(res))
	end := len(res)
	if maxResults > 0 {
		end = min(start+maxResults, len(res))
	}
	out := el("reservationSet", set(res[start:end]))
	if end < len(res) {
		out = cat(out, el("nextToken", fmt.Sprintf("page-%d", end)))
	}
	return out, nil
}

// terminate releases what a terminating instance holds.
func (s *Server) terminate(in *Instance) {
	for _, a := range s.addresses {
		if a.InstanceID == in.ID {
			a.InstanceID, a.AssociationID = "", ""
		}
	}
	in.PublicIP, in.ephemeralIP = "", ""
}

// changeStates is EC2's shape of TerminateInstances, StopInstances and
// StartInstances: every instance is checked first (check answers why
// one cannot change, an unknown ID is InvalidInstanceID.NotFound) and
// the whole call fails on the first refusal, changing nothing; then
// change acts on each, and each instance's previous and current state
// are answered.
func (s *Server) changeStates(f form, need bool, check func(id string, in *Instance) *apiError, change func(in *Instance)) ([]byte, *apiError) {
	ids := f.list("InstanceId")
	if need && len(ids) == 0 {
		return nil, errf("MissingParameter", "The request must contain the parameter InstanceId")
	}
	for _, id := range ids {
		in := s.instances[id]
		if in == nil {
			return nil, notFound("InvalidInstanceID.NotFound", id)
		}
		if err := check(id, in); err != nil {
			return nil, err
		}
	}
	var out []xStateChange
	for _, id := range ids {
		in := s.instances[id]
		prev := in.State
		change(in)
		out = append(out, xStateChange{InstanceID: id, CurrentState: xState{stateCodes[in.State], in.State}, PreviousState: xState{stateCodes[prev], prev}})
	}
	return el("instancesSet", set(out)), nil
}

func (s *Server) terminateInstances(f form) ([]byte, *apiError) {
	return s.changeStates(f, false, func(string, *Instance) *apiError { return nil }, func(in *Instance) {
		if in.State != "terminated" {
			s.terminate(in)
			in.State = "shutting-down"
			in.StateReasonCode, in.StateReasonMessage = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
		}
	})
}

// stopInstances stops EBS-backed instances as EC2 does: running →
// stopping (→ stopped at the next describe), the ephemeral public IP
// released, an Elastic IP kept associated, the private IP and network
// interface kept. Stopping a stopping or stopped instance succeeds and
// changes nothing. A pending, terminated or one-time spot instance
// cannot stop: the whole call fails and nothing changes.
func (s *Server) stopInstances(f form) ([]byte, *apiError) {
	return s.changeStates(f, true, func(id string, in *Instance) *apiError {
		switch {
		case in.State == "pending" && !in.ran:
			return errf("IncorrectInstanceState", "Instance '%s' cannot be stopped as it has never reached the 'running' state.", id)
		case in.State != "running" && in.State != "stopping" && in.State != "stopped":
			return errf("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", id)
		case in.Spot:
			return errf("UnsupportedOperation", "You can't stop the Spot Instance '%s' because it is associated with a one-time Spot Instance request. You can only stop Spot Instances associated with persistent Spot Instance requests.", id)
		}
		return nil
	}, func(in *Instance) {
		if in.State != "running" {
			return
		}
		in.State = "stopping"
		in.ephemeralIP = ""
		in.PublicIP = ""
		for _, a := range s.addresses {
			if a.InstanceID == in.ID {
				in.PublicIP = a.PublicIP
			}
		}
		in.StateReasonCode, in.StateReasonMessage = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
	})
}

// startInstances starts stopped instances: stopped → pending (→ running
// after BootAfter describes, as a launch), with a new ephemeral public
// IP for an instance launched with one. Starting a pending or running
// instance succeeds and changes nothing; a stopping, shutting-down or
// terminated one is IncorrectInstanceState, and a type without capacity
// InsufficientInstanceCapacity, failing the whole call.
func (s *Server) startInstances(f form) ([]byte, *apiError) {
	return s.changeStates(f, true, func(id string, in *Instance) *apiError {
		switch {
		case in.State != "stopped" && in.State != "pending" && in.State != "running":
			return errf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", id)
		case in.State == "stopped" && s.capacity[in.Type]:
			return &apiError{http.StatusInternalServerError, "InsufficientInstanceCapacity",
				"We currently do not have sufficient " + in.Type + " capacity in the Availability Zone you requested. Our system will be working on provisioning additional capacity."}
		}
		return nil
	}, func(in *Instance) {
		if in.State != "stopped" {
			return
		}
		in.State = "pending"
		in.describes = 0
		in.StateReasonCode, in.StateReasonMessage = "", ""
		if in.publicAtLaunch {
			in.ephemeralIP = "198.51.100." + strconv.Itoa(s.seq%250+1)
			if in.PublicIP == "" {
				in.PublicIP = in.ephemeralIP
			}
		}
	})
}

func (s *Server) modifyInstanceAttribute(f form) ([]byte, *apiError) {
	in := s.instances[f.get("InstanceId")]
	if in == nil {
		return nil, notFound("InvalidInstanceID.NotFound", f.get("InstanceId"))
	}
	if in.State == "terminated" || in.State == "shutting-down" {
		return nil, errf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be modified.", in.ID)
	}
	v, ok := f["SourceDestCheck.Value"]
	if !ok {
		return nil, errf("InvalidParameterCombination", "the fake supports only SourceDestCheck")
	}
	in.SourceDestCheck = v == "true"
	return ret(), nil
}

// --- addresses ---

func (s *Server) allocateAddress(f form) ([]byte, *apiError) {
	if d := f.get("Domain"); d != "" && d != "vpc" {
		return nil, errf("InvalidParameterValue", "Invalid value '%s' for domain.", d)
	}
	n := len(s.addresses)
	a := &Address{AllocationID: s.id("eipalloc"), PublicIP: "203.0.113." + strconv.Itoa(n%250+1), Tags: f.tags("elastic-ip")}
	for s.ipTaken(a.PublicIP) {
		n++
		a.PublicIP = "203.0.113." + strconv.Itoa(n%250+1)
	}
	s.addresses[a.AllocationID] = a
	return cat(el("publicIp", a.PublicIP), el("domain", "vpc"), el("allocationId", a.AllocationID)), nil
}

func (s *Server) ipTaken(ip string) bool {
	for _, a := range s.addresses {
		if a.PublicIP == ip {
			return true
		}
	}
	return false
}

func (s *Server) associateAddress(f form) ([]byte, *apiError) {
	a := s.addresses[f.get("AllocationId")]
	if a == nil {
		return nil, notFound("InvalidAllocationID.NotFound", f.get("AllocationId"))
	}
	in := s.instances[f.get("InstanceId")]
	if in == nil {
		return nil, notFound("InvalidInstanceID.NotFound", f.get("InstanceId"))
	}
	if in.State != "running" {
		return nil, errf("IncorrectInstanceState", "The instance '%s' is not in a valid state for this operation.", in.ID)
	}
	if a.InstanceID != "" && a.InstanceID != in.ID && f.get("AllowReassociation") != "true" {
		return nil, errf("Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s", a.AllocationID, a.AssociationID)
	}
	if a.InstanceID != in.ID {
		if old := s.instances[a.InstanceID]; old != nil {
			old.PublicIP = old.ephemeralIP
		}
		a.InstanceID, a.AssociationID = in.ID, s.id("eipassoc")
	}
	in.PublicIP = a.PublicIP
	return el("associationId", a.AssociationID), nil
}

func (s *Server) disassociateAddress(f form) ([]byte, *apiError) {
	for _, a := range s.addresses {
		if a.AssociationID != "" && a.AssociationID == f.get("AssociationId") {
			if in := s.instances[a.InstanceID]; in != nil {
				in.PublicIP = in.ephemeralIP
			}
			a.InstanceID, a.AssociationID = "", ""
			return ret(), nil
		}
	}
	return nil, notFound("InvalidAssociationID.NotFound", f.get("AssociationId"))
}

func (s *Server) releaseAddress(f form) ([]byte, *apiError) {
	a := s.addresses[f.get("AllocationId")]
	if a == nil {
		return nil, notFound("InvalidAllocationID.NotFound", f.get("AllocationId"))
	}
	if a.AssociationID != "" {
		return nil, errf("InvalidIPAddress.InUse", "Address %s is in use.", a.PublicIP)
	}
	delete(s.addresses, a.AllocationID)
	return ret(), nil
}

func (s *Server) describeAddresses(f form) ([]byte, *apiError) {
	ids := f.list("AllocationId")
	for _, id := range ids {
		if s.addresses[id] == nil {
			return nil, notFound("InvalidAllocationID.NotFound", id)
		}
	}
	var out []xAddress
	for _, id := range sortedKeys(s.addresses) {
		a := s.addresses[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		ok, err := match(f.filters(), a.Tags, func(n string) ([]string, bool) {
			switch n {
			case "allocation-id":
				return []string{a.AllocationID}, true
			case "instance-id":
				return []string{a.InstanceID}, true
			case "public-ip":
				return []string{a.PublicIP}, true
			case "domain":
				return []string{"vpc"}, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			x := xAddress{PublicIP: a.PublicIP, AllocationID: a.AllocationID, Domain: "vpc", InstanceID: a.InstanceID,
				AssociationID: a.AssociationID, TagSet: tagSet(a.Tags)}
			if in := s.instances[a.InstanceID]; in != nil {
				x.NetworkInterfaceID, x.PrivateIPAddress = in.ENI, in.PrivateIP
			}
			out = append(out, x)
		}
	}
	return el("addressesSet", set(out)), nil
}

// --- tags ---

func (s *Server) createTags(f form) ([]byte, *apiError) {
	ids := f.list("ResourceId")
	for _, id := range ids {
		if s.tagsOf(id) == nil {
			return nil, errf("InvalidID", "The ID '%s' is not valid", id)
		}
	}
	for _, id := range ids {
		t := s.tagsOf(id)
		if *t == nil {
			*t = map[string]string{}
		}
		for j := 1; j <= f.count("Tag"); j++ {
			q := "Tag." + strconv.Itoa(j)
			(*t)[f.get(q+".Key")] = f.get(q + ".Value")
		}
	}
	return ret(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
