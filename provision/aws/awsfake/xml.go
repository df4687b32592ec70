package awsfake

import (
	"bytes"
	"encoding/xml"
	"sort"
)

// The EC2 API reference's response shapes (2016-11-15), as far as hvctl
// reads them. Lists are <xxxSet><item>...</item></xxxSet>.

// Namespace is the EC2 API's XML namespace.
const Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// APIVersion is the Query API version the SDK sends.
const APIVersion = "2016-11-15"

type items[T any] struct {
	Item []T `xml:"item"`
}

func set[T any](v []T) *items[T] { return &items[T]{Item: v} }

type xTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagSet(m map[string]string) *items[xTag] {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := &items[xTag]{}
	for _, k := range keys {
		out.Item = append(out.Item, xTag{k, m[k]})
	}
	return out
}

type xCidrState struct {
	State string `xml:"state"`
}

type xCidrAssoc struct {
	AssociationID  string     `xml:"associationId"`
	CidrBlock      string     `xml:"cidrBlock"`
	CidrBlockState xCidrState `xml:"cidrBlockState"`
}

type xVpc struct {
	VpcID           string             `xml:"vpcId"`
	OwnerID         string             `xml:"ownerId"`
	State           string             `xml:"state"`
	CidrBlock       string             `xml:"cidrBlock"`
	CidrAssocs      *items[xCidrAssoc] `xml:"cidrBlockAssociationSet"`
	DhcpOptionsID   string             `xml:"dhcpOptionsId"`
	InstanceTenancy string             `xml:"instanceTenancy"`
	IsDefault       bool               `xml:"isDefault"`
	TagSet          *items[xTag]       `xml:"tagSet,omitempty"`
}

type xSubnet struct {
	SubnetID                string       `xml:"subnetId"`
	State                   string       `xml:"state"`
	OwnerID                 string       `xml:"ownerId"`
	VpcID                   string       `xml:"vpcId"`
	CidrBlock               string       `xml:"cidrBlock"`
	AvailableIPAddressCount int          `xml:"availableIpAddressCount"`
	AvailabilityZone        string       `xml:"availabilityZone"`
	DefaultForAz            bool         `xml:"defaultForAz"`
	MapPublicIPOnLaunch     bool         `xml:"mapPublicIpOnLaunch"`
	TagSet                  *items[xTag] `xml:"tagSet,omitempty"`
}

type xAttachment struct {
	VpcID string `xml:"vpcId"`
	State string `xml:"state"`
}

type xIGW struct {
	InternetGatewayID string              `xml:"internetGatewayId"`
	OwnerID           string              `xml:"ownerId"`
	AttachmentSet     *items[xAttachment] `xml:"attachmentSet"`
	TagSet            *items[xTag]        `xml:"tagSet,omitempty"`
}

type xRoute struct {
	DestinationCidrBlock string `xml:"destinationCidrBlock"`
	GatewayID            string `xml:"gatewayId,omitempty"`
	NetworkInterfaceID   string `xml:"networkInterfaceId,omitempty"`
	InstanceID           string `xml:"instanceId,omitempty"`
	State                string `xml:"state"`
	Origin               string `xml:"origin"`
}

type xAssocState struct {
	State string `xml:"state"`
}

type xRTAssoc struct {
	RouteTableAssociationID string      `xml:"routeTableAssociationId"`
	RouteTableID            string      `xml:"routeTableId"`
	SubnetID                string      `xml:"subnetId,omitempty"`
	Main                    bool        `xml:"main"`
	AssociationState        xAssocState `xml:"associationState"`
}

type xRouteTable struct {
	RouteTableID   string           `xml:"routeTableId"`
	VpcID          string           `xml:"vpcId"`
	OwnerID        string           `xml:"ownerId"`
	RouteSet       *items[xRoute]   `xml:"routeSet"`
	AssociationSet *items[xRTAssoc] `xml:"associationSet"`
	TagSet         *items[xTag]     `xml:"tagSet,omitempty"`
}

type xIPRange struct {
	CidrIP      string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type xGroupPair struct {
	UserID  string `xml:"userId"`
	GroupID string `xml:"groupId"`
}

type xIPPermission struct {
	IPProtocol string             `xml:"ipProtocol"`
	FromPort   int                `xml:"fromPort"`
	ToPort     int                `xml:"toPort"`
	Groups     *items[xGroupPair] `xml:"groups"`
	IPRanges   *items[xIPRange]   `xml:"ipRanges"`
}

type xSecurityGroup struct {
	OwnerID          string                `xml:"ownerId"`
	GroupID          string                `xml:"groupId"`
	GroupName        string                `xml:"groupName"`
	GroupDescription string                `xml:"groupDescription"`
	VpcID            string                `xml:"vpcId"`
	IPPermissions    *items[xIPPermission] `xml:"ipPermissions"`
	TagSet           *items[xTag]          `xml:"tagSet,omitempty"`
}

type xState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type xPlacement struct {
	AvailabilityZone string `xml:"availabilityZone"`
	Tenancy          string `xml:"tenancy"`
}

type xStateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xENIAssoc struct {
	PublicIP string `xml:"publicIp"`
	IPOwner  string `xml:"ipOwnerId"`
}

type xENI struct {
	NetworkInterfaceID string     `xml:"networkInterfaceId"`
	SubnetID           string     `xml:"subnetId"`
	VpcID              string     `xml:"vpcId"`
	OwnerID            string     `xml:"ownerId"`
	Status             string     `xml:"status"`
	PrivateIPAddress   string     `xml:"privateIpAddress"`
	SourceDestCheck    bool       `xml:"sourceDestCheck"`
	Association        *xENIAssoc `xml:"association,omitempty"`
}

type xInstance struct {
	InstanceID          string         `xml:"instanceId"`
	ImageID             string         `xml:"imageId"`
	InstanceState       xState         `xml:"instanceState"`
	PrivateDNSName      string         `xml:"privateDnsName"`
	DNSName             string         `xml:"dnsName"`
	Reason              string         `xml:"reason"`
	KeyName             string         `xml:"keyName,omitempty"`
	AmiLaunchIndex      int            `xml:"amiLaunchIndex"`
	InstanceType        string         `xml:"instanceType"`
	LaunchTime          string         `xml:"launchTime"`
	Placement           xPlacement     `xml:"placement"`
	SubnetID            string         `xml:"subnetId"`
	VpcID               string         `xml:"vpcId"`
	PrivateIPAddress    string         `xml:"privateIpAddress"`
	IPAddress           string         `xml:"ipAddress,omitempty"`
	SourceDestCheck     bool           `xml:"sourceDestCheck"`
	GroupSet            *items[xGroup] `xml:"groupSet"`
	StateReason         *xStateReason  `xml:"stateReason,omitempty"`
	Architecture        string         `xml:"architecture"`
	RootDeviceType      string         `xml:"rootDeviceType"`
	InstanceLifecycle   string         `xml:"instanceLifecycle,omitempty"` // "spot"; absent for on-demand
	ClientToken         string         `xml:"clientToken"`
	TagSet              *items[xTag]   `xml:"tagSet,omitempty"`
	NetworkInterfaceSet *items[xENI]   `xml:"networkInterfaceSet"`
}

type xReservation struct {
	ReservationID string            `xml:"reservationId"`
	OwnerID       string            `xml:"ownerId"`
	GroupSet      *items[xGroup]    `xml:"groupSet"`
	InstancesSet  *items[xInstance] `xml:"instancesSet"`
}

type xStateChange struct {
	InstanceID    string `xml:"instanceId"`
	CurrentState  xState `xml:"currentState"`
	PreviousState xState `xml:"previousState"`
}

type xAddress struct {
	PublicIP           string       `xml:"publicIp"`
	AllocationID       string       `xml:"allocationId"`
	Domain             string       `xml:"domain"`
	InstanceID         string       `xml:"instanceId,omitempty"`
	AssociationID      string       `xml:"associationId,omitempty"`
	NetworkInterfaceID string       `xml:"networkInterfaceId,omitempty"`
	PrivateIPAddress   string       `xml:"privateIpAddress,omitempty"`
	TagSet             *items[xTag] `xml:"tagSet,omitempty"`
}

// el encodes v as an element named name.
func el(name string, v any) []byte {
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if err := e.EncodeElement(v, xml.StartElement{Name: xml.Name{Local: name}}); err != nil {
		panic(err)
	}
	e.Flush()
	return b.Bytes()
}

type response struct {
	XMLName   xml.Name
	Xmlns     string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
	Inner     []byte `xml:",innerxml"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Errors    []xError `xml:"Errors>Error"`
	RequestID string   `xml:"RequestID"`
}

type xError struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}
