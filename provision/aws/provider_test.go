package aws

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/aws/awsfake"
	"github.com/hvctl/hvctl/scheduler/agent"
)

func TestRegistered(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	if !p.RunsAgents() {
		t.Error("RunsAgents() = false; aws machines run hvctl agent")
	}
	if l := p.Limits(); l != limits {
		t.Errorf("Limits() = %+v, want %+v", l, limits)
	}
}

// TestSiteLifecycle creates a whole site directly through the provider
// (network, a public hub, a worker, a gateway) and deletes it.
func TestSiteLifecycle(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	ctx := context.Background()
	expires := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

	nreq := networkReq("c1", "cloud", "10.4.0.0/16", nil)
	nreq.ExpiresAt = expires
	n := mustCreate(t, p, nreq)
	if !strings.HasPrefix(n.ID, "subnet-") {
		t.Errorf("network ID %q, want the subnet's ID", n.ID)
	}
	if len(n.Attrs) != 0 {
		t.Errorf("network attrs %v: a network has no computed attributes the engine would diff", n.Attrs)
	}
	again := mustCreate(t, p, nreq)
	if again.ID != n.ID {
		t.Errorf("a second Create with the same token made %s, want %s", again.ID, n.ID)
	}
	want := map[string]int{"vpc": 1, "subnet": 1, "internet-gateway": 1, "route-table": 1, "security-group": 1}
	for k, v := range want {
		if got := fake.Counts()[k]; got != v {
			t.Errorf("after creating the network: %d %s, want %d", got, k, v)
		}
	}

	hubReq := instanceReq("c1", "cloud", "hub", n.ID, provision.Attrs{"public_ip": true, "roles": []string{"hub", "manager"},
		"cluster_secret": testClusterSecret, "manager_url": "http://127.0.0.1:51821", "template": `{"files":{}}`})
	hubReq.ExpiresAt = expires
	hub := mustCreate(t, p, hubReq)
	if hub.Attrs["public_address"] == nil || hub.Attrs["private_ip"] == nil || hub.Attrs["state"] != "pending" {
		t.Errorf("hub create attrs %v: want public_address, private_ip and state pending", hub.Attrs)
	}
	gwReq := instanceReq("c1", "cloud", "router", n.ID, provision.Attrs{"roles": []string{"gateway"}, "overlay_cidr": "10.200.0.0/16"})
	gw := mustCreate(t, p, gwReq)
	wk := mustCreate(t, p, instanceReq("c1", "cloud", "wn-0", n.ID, nil))

	for _, id := range []string{hub.ID, gw.ID, wk.ID} {
		rr := mustWait(t, p, id)
		if rr.Attrs["state"] != "running" {
			t.Errorf("%s: state %v after WaitReady", id, rr.Attrs["state"])
		}
	}
	insts := map[string]awsfake.Instance{}
	for _, in := range fake.Instances() {
		insts[in.ID] = in
	}
	// The hub: Elastic IP associated, tags, user data.
	h := insts[hub.ID]
	if h.PublicIP != hub.Attrs["public_address"] {
		t.Errorf("hub public IP %q, want its Elastic IP %v", h.PublicIP, hub.Attrs["public_address"])
	}
	for k, v := range map[string]string{TagCluster: "c1", TagAddress: "site.cloud.node.hub", TagLineage: "lin-c1",
		TagExpiresAt: "2031-05-06T07:08:09Z", "Name": "c1-hub"} {
		if h.Tags[k] != v {
			t.Errorf("hub tag %s = %q, want %q", k, h.Tags[k], v)
		}
	}
	if _, ok := insts[wk.ID].Tags[TagExpiresAt]; ok {
		t.Errorf("worker has %s without a ttl", TagExpiresAt)
	}
	if !strings.HasPrefix(h.UserData, "#cloud-config\n") || !strings.Contains(h.UserData, "permissions: '0600'") {
		t.Errorf("hub user data is not a cloud-config writing a 0600 file:\n%s", h.UserData)
	}
	cfgJSON := agentConfigOf(t, h.UserData)
	if !strings.Contains(string(cfgJSON), testClusterSecret) || !strings.Contains(string(cfgJSON), testJoinToken) {
		t.Error("the hub's agent configuration lacks its join token or cluster secret")
	}
	// hvctl agent reads it.
	path := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(path, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	ac, err := agent.LoadConfig(path)
	if err != nil {
		t.Fatalf("agent.LoadConfig: %v", err)
	}
	if ac.Cluster != "c1" || ac.Address != "site.cloud.node.hub" || !ac.IsHub() || ac.PublicAddress != h.PublicIP || ac.Dir != AgentDir {
		t.Errorf("agent config %+v", ac)
	}
	// Security group: overlay port from anywhere, the manager API, the site itself.
	rules := strings.Join(fake.SecurityGroupRules(h.Groups[0]), "; ")
	for _, r := range []string{"udp 51820-51820 0.0.0.0/0", "tcp 51821-51821 0.0.0.0/0", "udp 0-65535 " + h.Groups[0]} {
		if !strings.Contains(rules, r) {
			t.Errorf("security group rules %q lack %q", rules, r)
		}
	}
	if strings.Contains(rules, "tcp 22") {
		t.Errorf("SSH is open: %s", rules)
	}
	// The gateway: source/dest check off, overlay route through its ENI.
	g := insts[gw.ID]
	if g.SourceDestCheck {
		t.Error("gateway has SourceDestCheck on")
	}
	rtb := strings.Fields(g.Tags[TagGateway])[0]
	if routes := strings.Join(fake.Routes(rtb), "; "); !strings.Contains(routes, "10.200.0.0/16 "+g.ENI) || !strings.Contains(routes, "0.0.0.0/0 igw-") {
		t.Errorf("routes %q: want the overlay through %s and the default route through the internet gateway", routes, g.ENI)
	}
	// A worker has no Elastic IP and no public_address.
	if a := insts[wk.ID]; a.Tags[TagEIP] != "" {
		t.Errorf("worker got an Elastic IP: %v", a.Tags)
	}
	if rr, _ := p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: wk.ID}); rr.Attrs["public_address"] != nil {
		t.Errorf("worker attrs %v: no public_address without public_ip", rr.Attrs)
	}
	if got := fake.Counts()["address"]; got != 1 {
		t.Errorf("%d Elastic IPs, want 1", got)
	}

	// Delete everything; deleting twice is fine.
	for i := 0; i < 2; i++ {
		for _, id := range []string{hub.ID, gw.ID, wk.ID} {
			if err := p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindInstance, ID: id}); err != nil {
				t.Fatalf("delete %s: %v", id, err)
			}
		}
		if err := p.Delete(ctx, &provision.DeleteRequest{Kind: provision.KindNetwork, ID: n.ID}); err != nil {
			t.Fatalf("delete network: %v", err)
		}
	}
	for k, v := range fake.Counts() {
		if v != 0 {
			t.Errorf("after delete: %d %s left", v, k)
		}
	}
	rr, err := p.Read(ctx, &provision.ReadRequest{Kind: provision.KindNetwork, ID: n.ID})
	if err != nil || rr.Exists {
		t.Errorf("read deleted network: %+v, %v", rr, err)
	}
}

func TestExistingSubnet(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	ctx := context.Background()
	// Someone else's VPC and subnet.
	v, err := p.Client().CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: awssdk.String("172.31.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := p.Client().CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: v.Vpc.VpcId, CidrBlock: awssdk.String("172.31.1.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	subnet := awssdk.ToString(sn.Subnet.SubnetId)
	n := mustCreate(t, p, networkReq("c1", "cloud", "10.9.0.0/24", provision.Attrs{"existing_id": subnet}))
	if !strings.HasPrefix(n.ID, "sg-") {
		t.Fatalf("network ID %q: want the security group hvctl made", n.ID)
	}
	if tags := fake.Tags(n.ID); tags[TagSubnet] != subnet || tags[TagCluster] != "c1" {
		t.Errorf("group tags %v", tags)
	}
	in := mustCreate(t, p, instanceReq("c1", "cloud", "wn-0", n.ID, nil))
	mustWait(t, p, in.ID)
	if got := fake.Instances()[0].SubnetID; got != subnet {
		t.Errorf("instance in %s, want the existing subnet %s", got, subnet)
	}
	for _, id := range []string{in.ID, n.ID} {
		if err := p.Delete(ctx, &provision.DeleteRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	c := fake.Counts()
	if c["subnet"] != 1 || c["vpc"] != 1 || c["security-group"] != 0 || c["instance"] != 0 {
		t.Errorf("after delete: %v; want the existing subnet and VPC kept, hvctl's group gone", c)
	}
}

// TestCreateLostResponse: RunInstances does its work but every response
// is lost (the SDK retries it with the same ClientToken), then hvctl
// tries again: still one instance.
func TestCreateLostResponse(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	n := mustCreate(t, p, networkReq("c1", "cloud", "10.4.0.0/16", nil))
	req := instanceReq("c1", "cloud", "wn-0", n.ID, nil)

	fake.DropResponses("RunInstances", 100)
	_, err := p.Create(context.Background(), req)
	if err == nil || !provision.IsRetryable(err) {
		t.Fatalf("create with lost responses: %v, want a retryable error", err)
	}
	if calls := fake.Calls("RunInstances"); calls != DefaultMaxRetries+1 {
		t.Errorf("RunInstances called %d times, want %d (the SDK retries)", calls, DefaultMaxRetries+1)
	}
	if got := fake.Counts()["instance"]; got != 1 {
		t.Fatalf("%d instances after retried RunInstances with one token, want 1", got)
	}
	rr, err := p.Read(context.Background(), &provision.ReadRequest{Kind: provision.KindInstance, ClientToken: req.ClientToken})
	if err != nil || !rr.Exists {
		t.Fatalf("read by client token: %+v, %v", rr, err)
	}
	fake.DropResponses("RunInstances", 0)
	resp := mustCreate(t, p, req)
	if resp.ID != rr.ID {
		t.Errorf("create again made %s, want the first instance %s", resp.ID, rr.ID)
	}
	if got := fake.Counts()["instance"]; got != 1 {
		t.Errorf("%d instances, want 1", got)
	}
}

func TestThrottling(t *testing.T) {
	tests := []struct {
		name      string
		throttles int
		wantErr   bool
	}{
		{"absorbed by the SDK", 3, false},
		{"given back as retryable", 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			p := newProvider(t, fake, nil)
			fake.Throttle(tt.throttles)
			_, err := p.Create(context.Background(), networkReq("c1", "cloud", "10.4.0.0/16", nil))
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("create after %d throttles: %v", tt.throttles, err)
				}
				if c := fake.Counts(); c["vpc"] != 1 || c["subnet"] != 1 {
					t.Errorf("counts %v, want one network", c)
				}
				return
			}
			if err == nil || !provision.IsRetryable(err) || !strings.Contains(err.Error(), "RequestLimitExceeded") {
				t.Fatalf("create while throttled: %v, want a retryable RequestLimitExceeded", err)
			}
			// The engine retries: the network is finished, not doubled.
			fake.Throttle(0)
			mustCreate(t, p, networkReq("c1", "cloud", "10.4.0.0/16", nil))
			if c := fake.Counts(); c["vpc"] != 1 || c["subnet"] != 1 || c["security-group"] != 1 {
				t.Errorf("counts %v, want one network", c)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(f *awsfake.Server)
		public   bool
		attrs    provision.Attrs
		check    func(t *testing.T, err error)
		wantLeft map[string]int
	}{
		{
			name:   "capacity",
			setup:  func(f *awsfake.Server) { f.Capacity("t3.medium", true) },
			public: true,
			check: func(t *testing.T, err error) {
				var ce *provision.CapacityError
				if !errors.As(err, &ce) || !strings.Contains(ce.Detail, "InsufficientInstanceCapacity") {
					t.Errorf("error %v (%T), want a *provision.CapacityError", err, err)
				}
			},
			wantLeft: map[string]int{"instance": 0, "address": 0},
		},
		{
			name: "vcpu quota",
			setup: func(f *awsfake.Server) {
				f.Fail("RunInstances", "VcpuLimitExceeded", "You have requested more vCPU capacity than your current vCPU limit of 32 allows.", 1)
			},
			check: func(t *testing.T, err error) {
				var qe *QuotaError
				if !errors.As(err, &qe) || qe.QuotaID != "L-1216C47A" {
					t.Fatalf("error %v (%T), want a *QuotaError for L-1216C47A", err, err)
				}
				for _, s := range []string{"Running On-Demand Standard", "service-quotas request-service-quota-increase", "us-east-1", "VcpuLimitExceeded"} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("quota error %q does not say %q", err, s)
					}
				}
			},
			wantLeft: map[string]int{"instance": 0},
		},
		{
			name: "address quota",
			setup: func(f *awsfake.Server) {
				f.Fail("AllocateAddress", "AddressLimitExceeded", "The maximum number of addresses has been reached.", 1)
			},
			public: true,
			check: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "EC2-VPC Elastic IPs") || !strings.Contains(err.Error(), "L-0263D0A3") {
					t.Errorf("error %q does not name the Elastic IP quota", err)
				}
			},
			wantLeft: map[string]int{"instance": 0, "address": 0},
		},
		{
			name:  "no image",
			attrs: provision.Attrs{"image": nil},
			check: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "instance.image is required") {
					t.Errorf("error %q does not name instance.image", err)
				}
			},
			wantLeft: map[string]int{"instance": 0},
		},
		{
			name: "bad image",
			setup: func(f *awsfake.Server) {
				f.Fail("RunInstances", "InvalidAMIID.NotFound", "The image id '[ami-0123456789abcdef0]' does not exist", 1)
			},
			check: func(t *testing.T, err error) {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Code != "InvalidAMIID.NotFound" || provision.IsRetryable(err) {
					t.Errorf("error %v, want a permanent *APIError", err)
				}
			},
			wantLeft: map[string]int{"instance": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			p := newProvider(t, fake, nil)
			n := mustCreate(t, p, networkReq("c1", "cloud", "10.4.0.0/16", nil))
			if tt.setup != nil {
				tt.setup(fake)
			}
			attrs := provision.Attrs{"public_ip": tt.public, "cluster_secret": testClusterSecret}
			for k, v := range tt.attrs {
				attrs[k] = v
			}
			_, err := p.Create(context.Background(), instanceReq("c1", "cloud", "hub", n.ID, attrs))
			if err == nil {
				t.Fatal("create succeeded")
			}
			tt.check(t, err)
			checkNoSecrets(t, "error", err.Error())
			for k, v := range tt.wantLeft {
				if got := fake.Counts()[k]; got != v {
					t.Errorf("%d %s left, want %d", got, k, v)
				}
			}
		})
	}
}

// TestCapacityNotRetried: capacity errors come back at once for the
// elastic daemon to fail over (EC2 sends them as 500s, which the SDK
// would otherwise retry).
func TestCapacityNotRetried(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	n := mustCreate(t, p, networkReq("c1", "cloud", "10.4.0.0/16", nil))
	fake.Capacity("t3.medium", true)
	_, err := p.Create(context.Background(), instanceReq("c1", "cloud", "wn-0", n.ID, nil))
	var ce *provision.CapacityError
	if !errors.As(err, &ce) {
		t.Fatalf("%v, want a capacity error", err)
	}
	if c := fake.Calls("RunInstances"); c != 1 {
		t.Errorf("RunInstances called %d times, want 1", c)
	}
	if provision.IsRetryable(err) {
		t.Error("a capacity error is retryable")
	}
}

func TestNetworkQuotaRollsBack(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	fake.Fail("CreateInternetGateway", "InternetGatewayLimitExceeded", "The maximum number of internet gateways has been reached.", 1)
	_, err := p.Create(context.Background(), networkReq("c1", "cloud", "10.4.0.0/16", nil))
	var qe *QuotaError
	if !errors.As(err, &qe) || !strings.Contains(err.Error(), "Internet gateways per Region") {
		t.Fatalf("error %v, want the internet gateway quota", err)
	}
	for k, v := range fake.Counts() {
		if v != 0 {
			t.Errorf("after a failed create: %d %s left", v, k)
		}
	}
}

func TestWaitReady(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	n := mustCreate(t, p, networkReq("c1", "cloud", "10.4.0.0/16", nil))
	fake.BootAfter(3)
	in := mustCreate(t, p, instanceReq("c1", "cloud", "hub", n.ID, provision.Attrs{"public_ip": true}))
	rr, err := p.Read(context.Background(), &provision.ReadRequest{Kind: provision.KindInstance, ID: in.ID})
	if err != nil || rr.Attrs["state"] != "pending" {
		t.Fatalf("read while booting: %v, %v", rr, err)
	}
	rr = mustWait(t, p, in.ID)
	if rr.Attrs["state"] != "running" || fake.Instances()[0].PublicIP != rr.Attrs["public_address"] {
		t.Errorf("after WaitReady: %v, instance %+v", rr.Attrs, fake.Instances()[0])
	}
	if c := fake.Calls("AssociateAddress"); c != 1 {
		t.Errorf("AssociateAddress called %d times", c)
	}
	// A launch that fails ends terminated: WaitReady says why.
	in2 := mustCreate(t, p, instanceReq("c1", "cloud", "wn-1", n.ID, nil))
	if err := fake.TerminateOutside(in2.ID); err != nil {
		t.Fatal(err)
	}
	_, err = p.WaitReady(context.Background(), &provision.ReadRequest{Kind: provision.KindInstance, ID: in2.ID})
	if err == nil || !strings.Contains(err.Error(), "failed to boot") {
		t.Errorf("WaitReady of a terminated instance: %v", err)
	}
}

func TestUserData(t *testing.T) {
	req := instanceReq("c1", "cloud", "wn-0", "subnet-0", provision.Attrs{"user_data": "#!/bin/sh\ncurl -o /usr/local/bin/hvctl https://example.com/hvctl\n",
		"labels": map[string]string{"arch": "x86_64"}, "pool": "cloud.wn"})
	ud, err := UserData(req, "")
	if err != nil {
		t.Fatal(err)
	}
	s := string(ud)
	for _, want := range []string{"#cloud-config\n", "path: " + AgentConfigPath, "permissions: '0600'", "encoding: gz+b64",
		"ExecStart=" + AgentPath + " agent -config " + AgentConfigPath, "[systemctl, enable, --now, hvctl-agent.service]",
		"path: " + UserScriptPath, "[sh, " + UserScriptPath + "]", "169.254.169.254/latest/api/token"} {
		if !strings.Contains(s, want) {
			t.Errorf("user data lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, testJoinToken) {
		t.Error("the join token is in clear in the user data (it belongs in the gzip'd config)")
	}
	var c AgentConfig
	if err := json.Unmarshal(agentConfigOf(t, s), &c); err != nil {
		t.Fatal(err)
	}
	if c.Attrs["join_token"] != testJoinToken || c.Attrs["user_data"] != nil || c.Pool != "cloud.wn" || c.Labels["arch"] != "x86_64" ||
		c.PrivateIP != privateIPPlaceholder || c.PublicAddress != "" || len(c.Roles) != 1 {
		t.Errorf("agent config %+v", c)
	}
	big := instanceReq("c1", "cloud", "hub", "subnet-0", provision.Attrs{"template": strings.Repeat("x", 1<<20)})
	big.Attrs["template"] = randomText(40 << 10)
	if _, err := UserData(big, ""); err == nil || !strings.Contains(err.Error(), "16384") {
		t.Errorf("oversized user data: %v", err)
	}
}

// randomText is incompressible text.
func randomText(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return string(b)
}

func TestInstanceType(t *testing.T) {
	tests := []struct {
		attrs   provision.Attrs
		want    string
		wantErr bool
	}{
		{provision.Attrs{"instance_type": "c7g.large"}, "c7g.large", false},
		{provision.Attrs{"cpus": int64(2), "memory_mib": int64(4096)}, "t3.medium", false},
		{provision.Attrs{"cpus": int64(3), "memory_mib": int64(1024)}, "t3.xlarge", false},
		{provision.Attrs{"cpus": int64(1), "memory_mib": int64(512)}, "t3.micro", false},
		{provision.Attrs{"gpus": int64(1)}, "", true},
		{provision.Attrs{"cpus": int64(1000)}, "", true},
	}
	for _, tt := range tests {
		got, err := InstanceType(tt.attrs)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("InstanceType(%v) = %q, %v", tt.attrs, got, err)
		}
	}
}

// TestCollector: Owned finds every cluster's resources by tag, with
// their expiry; deleting what it reports for an expired cluster leaves
// the others alone, including half-made networks.
func TestCollector(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	ctx := context.Background()
	past, future := time.Now().Add(-time.Hour).UTC().Truncate(time.Second), time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	mk := func(cluster, cidr string, exp time.Time) {
		nr := networkReq(cluster, "cloud", cidr, nil)
		nr.ExpiresAt = exp
		n := mustCreate(t, p, nr)
		for _, name := range []string{"hub", "wn-0"} {
			ir := instanceReq(cluster, "cloud", name, n.ID, provision.Attrs{"public_ip": name == "hub"})
			ir.ExpiresAt = exp
			mustWait(t, p, mustCreate(t, p, ir).ID)
		}
	}
	mk("expired", "10.1.0.0/16", past)
	mk("live", "10.2.0.0/16", future)
	mk("forever", "10.3.0.0/16", time.Time{})
	// A network whose create was interrupted: VPC, subnet, gateway and
	// route table, no security group.
	fake.Fail("CreateSecurityGroup", "InternalError", "An internal error has occurred", 100)
	half := networkReq("expired", "other", "10.9.0.0/16", nil)
	half.ExpiresAt = past
	if _, err := p.Create(ctx, half); !provision.IsRetryable(err) {
		t.Fatalf("interrupted create: %v", err)
	}
	fake.Fail("CreateSecurityGroup", "", "", 0)
	// An Elastic IP whose instance was never launched.
	orphan := instanceReq("expired", "cloud", "wn-9", "subnet-x", provision.Attrs{"public_ip": true})
	orphan.ExpiresAt = past
	if _, err := p.ensureAddress(ctx, orphan); err != nil {
		t.Fatal(err)
	}

	owned, err := p.Owned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byCluster := map[string][]provision.Owned{}
	for _, o := range owned {
		byCluster[o.Cluster] = append(byCluster[o.Cluster], o)
	}
	if len(byCluster["live"]) != 3 || len(byCluster["forever"]) != 3 || len(byCluster["expired"]) != 5 {
		t.Fatalf("owned by cluster: %+v", byCluster)
	}
	for _, o := range byCluster["live"] {
		if !o.ExpiresAt.Equal(future) || o.Lineage != "lin-live" || o.Address == "" {
			t.Errorf("owned %+v: want expires-at %v, lineage, address", o, future)
		}
	}
	for _, o := range byCluster["forever"] {
		if !o.ExpiresAt.IsZero() {
			t.Errorf("owned %+v has an expiry", o)
		}
	}
	// gc: destroy the expired cluster, instances first.
	now := time.Now()
	for _, kind := range []provision.Kind{provision.KindInstance, provision.KindNetwork} {
		for _, o := range owned {
			if o.Kind == kind && !o.ExpiresAt.IsZero() && o.ExpiresAt.Before(now) {
				if err := p.Delete(ctx, &provision.DeleteRequest{Kind: o.Kind, ID: o.ID, Address: o.Address}); err != nil {
					t.Fatalf("delete %s: %v", o.ID, err)
				}
			}
		}
	}
	owned, err = p.Owned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]int{}
	for _, o := range owned {
		left[o.Cluster]++
	}
	if left["expired"] != 0 || left["live"] != 3 || left["forever"] != 3 {
		t.Errorf("after gc: %v", left)
	}
	if c := fake.Counts(); c["vpc"] != 2 || c["instance"] != 4 || c["address"] != 2 {
		t.Errorf("after gc: %v", c)
	}
}

func TestReadByToken(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	ctx := context.Background()
	nreq := networkReq("c1", "cloud", "10.4.0.0/16", nil)
	rr, err := p.Read(ctx, &provision.ReadRequest{Kind: provision.KindNetwork, ClientToken: nreq.ClientToken})
	if err != nil || rr.Exists {
		t.Fatalf("read before create: %+v, %v", rr, err)
	}
	n := mustCreate(t, p, nreq)
	rr, err = p.Read(ctx, &provision.ReadRequest{Kind: provision.KindNetwork, ClientToken: nreq.ClientToken})
	if err != nil || !rr.Exists || rr.ID != n.ID {
		t.Fatalf("read network by token: %+v, %v; want %s", rr, err, n.ID)
	}
	ireq := instanceReq("c1", "cloud", "wn-0", n.ID, nil)
	in := mustCreate(t, p, ireq)
	rr, err = p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ClientToken: ireq.ClientToken})
	if err != nil || !rr.Exists || rr.ID != in.ID {
		t.Fatalf("read instance by token: %+v, %v; want %s", rr, err, in.ID)
	}
	if err := fake.TerminateOutside(in.ID); err != nil {
		t.Fatal(err)
	}
	for _, req := range []*provision.ReadRequest{{Kind: provision.KindInstance, ID: in.ID}, {Kind: provision.KindInstance, ClientToken: ireq.ClientToken}} {
		rr, err = p.Read(ctx, req)
		if err != nil || rr.Exists {
			t.Errorf("read %+v of a terminated instance: %+v, %v", req, rr, err)
		}
	}
	rr, err = p.Read(ctx, &provision.ReadRequest{Kind: provision.KindInstance, ID: "i-0000000000000dead"})
	if err != nil || rr.Exists {
		t.Errorf("read of an unknown instance: %+v, %v", rr, err)
	}
}

func TestSecretsStayInUserData(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	n := mustCreate(t, p, networkReq("c1", "cloud", "10.4.0.0/16", nil))
	in := mustCreate(t, p, instanceReq("c1", "cloud", "hub", n.ID, provision.Attrs{"public_ip": true, "cluster_secret": testClusterSecret}))
	mustWait(t, p, in.ID)
	for _, r := range fake.Requests() {
		for k, v := range r.Params {
			if k == "UserData" {
				continue
			}
			checkNoSecrets(t, r.Action+" "+k, v)
		}
	}
	if !strings.Contains(string(agentConfigOf(t, fake.Instances()[0].UserData)), testClusterSecret) {
		t.Error("the cluster secret is not in the hub's user data")
	}
}

func TestStaticCredentials(t *testing.T) {
	fake := newFake(t)
	fake.AccessKeyID = "AKIDFROMTEMPLATE0001"
	fake.Credentials["AKIDFROMTEMPLATE0001"] = "s3cr3t"
	// Environment credentials are refused by the fake; the block's win.
	p := newProvider(t, fake, map[string]cty.Value{"access_key": cty.StringVal("AKIDFROMTEMPLATE0001"), "secret_key": cty.StringVal("s3cr3t")})
	if _, err := p.Create(context.Background(), networkReq("c1", "cloud", "10.4.0.0/16", nil)); err != nil {
		t.Fatal(err)
	}
	// The right key with a wrong secret fails as on AWS (the fake checks
	// the signature), and the error does not show the secret.
	w := newProvider(t, fake, map[string]cty.Value{"access_key": cty.StringVal("AKIDFROMTEMPLATE0001"), "secret_key": cty.StringVal("not-s3cr3t")})
	if _, err := w.Create(context.Background(), networkReq("c3", "cloud", "10.6.0.0/16", nil)); err == nil || !strings.Contains(err.Error(), "AuthFailure") || strings.Contains(err.Error(), "not-s3cr3t") {
		t.Errorf("create with a wrong secret: %v", err)
	}
	q := newProvider(t, fake, nil)
	_, err := q.Create(context.Background(), networkReq("c2", "cloud", "10.5.0.0/16", nil))
	if err == nil || !strings.Contains(err.Error(), "AuthFailure") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("create with the wrong key: %v", err)
	}
}
