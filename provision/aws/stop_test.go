package aws

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/aws/awsfake"
)

func TestStopCost(t *testing.T) {
	// Attributes as a state file holds them: numbers come back float64.
	fromJSON := func(a provision.Attrs) provision.Attrs {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var out provision.Attrs
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		name     string
		settings map[string]cty.Value
		attrs    provision.Attrs
		ok       bool
		price    float64 // $ per hour while stopped
	}{
		{"stop_idle off (the default)", nil, provision.Attrs{"disk_gib": int64(100)}, false, 0},
		{"stop_idle false", map[string]cty.Value{"stop_idle": cty.False}, provision.Attrs{}, false, 0},
		{"spot", map[string]cty.Value{"stop_idle": cty.True}, provision.Attrs{"spot": true}, false, 0},
		{"no disk: the image's 8 GiB at gp3's price", map[string]cty.Value{"stop_idle": cty.True}, provision.Attrs{"spot": false}, true, 8 * 0.08 / 730},
		{"100 GiB disk", map[string]cty.Value{"stop_idle": cty.True}, provision.Attrs{"disk_gib": int64(100)}, true, 100 * 0.08 / 730},
		{"100 GiB disk from a state file", map[string]cty.Value{"stop_idle": cty.True}, fromJSON(provision.Attrs{"disk_gib": int64(100), "spot": false}), true, 100 * 0.08 / 730},
		{"ebs_price", map[string]cty.Value{"stop_idle": cty.True, "ebs_price": cty.NumberFloatVal(0.125)}, provision.Attrs{"disk_gib": int64(40)}, true, 40 * 0.125 / 730},
		{"free volumes", map[string]cty.Value{"stop_idle": cty.True, "ebs_price": cty.NumberIntVal(0)}, provision.Attrs{"disk_gib": int64(40)}, true, 0},
	}
	fake := newFake(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, fake, tt.settings)
			cost, ok := p.StopCost(tt.attrs)
			if ok != tt.ok {
				t.Fatalf("StopCost(%v) ok = %v, want %v", tt.attrs, ok, tt.ok)
			}
			if !ok {
				if cost != (provision.StopCost{}) {
					t.Errorf("StopCost = %+v with ok false, want the zero cost", cost)
				}
				return
			}
			if cost.StartTime != startTime || math.Abs(cost.StoppedPrice-tt.price) > 1e-12 {
				t.Errorf("StopCost = %+v, want start %v and %g $/h", cost, startTime, tt.price)
			}
		})
	}
	if fake.TotalCalls() != 0 {
		t.Errorf("StopCost made %d API calls, want none", fake.TotalCalls())
	}
}

// stopSite is a provider with stop_idle on over a fake with one site
// network.
func stopSite(t *testing.T) (*awsfake.Server, *Provider, string) {
	t.Helper()
	fake := newFake(t)
	p := newProvider(t, fake, map[string]cty.Value{"stop_idle": cty.True})
	n := mustCreate(t, p, networkReq("c1", "cloud", "10.4.0.0/16", nil))
	return fake, p, n.ID
}

func fakeInstance(t *testing.T, fake *awsfake.Server, id string) awsfake.Instance {
	t.Helper()
	for _, in := range fake.Instances() {
		if in.ID == id {
			return in
		}
	}
	t.Fatalf("the fake has no instance %s", id)
	return awsfake.Instance{}
}

// TestStopStart stops and starts each kind of node through a sequence of
// steps (twice each, to check both are idempotent), checking after each
// what Read, List and EC2 say.
func TestStopStart(t *testing.T) {
	type step struct {
		op        string // "stop" or "start"
		state     string // EC2's state after it
		calls     int    // StopInstances or StartInstances calls so far
		publicIP  bool   // the instance has a public IP in EC2
		hvctlAttr string // Read's attrs state
	}
	twice := []step{
		{"stop", "stopped", 1, false, "stopped"},
		{"stop", "stopped", 1, false, "stopped"}, // stopped already: no call
		{"start", "running", 1, true, "running"},
		{"start", "running", 1, true, "running"}, // running already: no call
		{"stop", "stopped", 2, false, "stopped"},
		{"start", "running", 2, true, "running"},
	}
	tests := []struct {
		name  string
		attrs provision.Attrs
		// A stopped Elastic IP node keeps its address.
		publicWhileStopped bool
	}{
		{"worker", nil, false},
		{"hub with an Elastic IP", provision.Attrs{"public_ip": true, "roles": []string{"hub"}}, true},
		{"gateway", provision.Attrs{"roles": []string{"gateway"}, "overlay_cidr": "10.200.0.0/16"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, p, netID := stopSite(t)
			ctx := context.Background()
			req := instanceReq("c1", "cloud", "n1", netID, tt.attrs)
			// The worker and gateway get an ephemeral public IP for
			// outbound traffic; the hub its Elastic IP.
			created := mustCreate(t, p, req)
			first := mustWait(t, p, created.ID)
			before := fakeInstance(t, fake, created.ID)
			pr := &provision.PowerRequest{Address: req.Address, ID: created.ID, Attrs: first.Attrs}
			for i, st := range twice {
				switch st.op {
				case "stop":
					if err := p.Stop(ctx, pr); err != nil {
						t.Fatalf("step %d: stop: %v", i, err)
					}
				case "start":
					rr, err := p.Start(ctx, pr)
					if err != nil {
						t.Fatalf("step %d: start: %v", i, err)
					}
					if !rr.Exists || rr.ID != created.ID || rr.Attrs["state"] != "running" || rr.Attrs["private_ip"] != first.Attrs["private_ip"] ||
						rr.Attrs["public_address"] != first.Attrs["public_address"] {
						t.Errorf("step %d: Start = %+v, want %s running with attrs %v", i, rr, created.ID, first.Attrs)
					}
				}
				in := fakeInstance(t, fake, created.ID)
				if in.State != st.state {
					t.Errorf("step %d (%s): EC2 state %s, want %s", i, st.op, in.State, st.state)
				}
				action := map[string]string{"stop": "StopInstances", "start": "StartInstances"}[st.op]
				if got := fake.Calls(action); got != st.calls {
					t.Errorf("step %d (%s): %d %s calls, want %d", i, st.op, got, action, st.calls)
				}
				wantPublic := st.publicIP || tt.publicWhileStopped
				if (in.PublicIP != "") != wantPublic {
					t.Errorf("step %d (%s): public IP %q, want one: %v", i, st.op, in.PublicIP, wantPublic)
				}
				if in.PrivateIP != before.PrivateIP || in.ENI != before.ENI {
					t.Errorf("step %d (%s): private IP %s, ENI %s; want them kept (%s, %s)", i, st.op, in.PrivateIP, in.ENI, before.PrivateIP, before.ENI)
				}
				rr, err := p.Read(ctx, &provision.ReadRequest{Address: req.Address, Kind: provision.KindInstance, ID: created.ID})
				if err != nil || !rr.Exists || rr.Attrs["state"] != st.hvctlAttr {
					t.Errorf("step %d (%s): Read = %+v, %v; want it existing with state %s", i, st.op, rr, err, st.hvctlAttr)
				}
				page, err := p.List(ctx, &provision.ListRequest{Cluster: "c1"})
				if err != nil || len(page.Items) != 1 || page.Items[0].Attrs["state"] != st.hvctlAttr {
					t.Errorf("step %d (%s): List = %+v, %v; want the instance with state %s", i, st.op, page, err, st.hvctlAttr)
				}
				if c := fake.Counts()["instance"]; c != 1 {
					t.Errorf("step %d (%s): %d instances, want 1", i, st.op, c)
				}
			}
			// The gateway is still the overlay route's target.
			if in := fakeInstance(t, fake, created.ID); in.Tags[TagGateway] != "" {
				rtb := strings.Fields(in.Tags[TagGateway])[0]
				if routes := strings.Join(fake.Routes(rtb), "; "); !strings.Contains(routes, "10.200.0.0/16 "+in.ENI) || in.SourceDestCheck {
					t.Errorf("gateway after start: routes %q, source/dest check %v; want the overlay through %s, check off", routes, in.SourceDestCheck, in.ENI)
				}
			}
			// A stopped instance can be deleted, and takes its Elastic IP.
			if err := p.Stop(ctx, pr); err != nil {
				t.Fatal(err)
			}
			if err := p.Delete(ctx, &provision.DeleteRequest{Address: req.Address, Kind: provision.KindInstance, ID: created.ID}); err != nil {
				t.Fatalf("delete of a stopped instance: %v", err)
			}
			if c := fake.Counts(); c["instance"] != 0 || c["address"] != 0 {
				t.Errorf("after deleting the stopped instance: %v, want no instance and no address", c)
			}
		})
	}
}

// TestStartFinishes: what finish sets up on a first boot is set up again
// by Start when it was undone while the instance was stopped (an Elastic
// IP disassociated, source/destination checks turned back on).
func TestStartFinishes(t *testing.T) {
	fake, p, netID := stopSite(t)
	ctx := context.Background()
	c := p.Client()
	tests := []struct {
		name  string
		attrs provision.Attrs
		undo  func(t *testing.T, id string)
		check func(in awsfake.Instance) bool
	}{
		{"elastic IP", provision.Attrs{"public_ip": true},
			func(t *testing.T, id string) {
				out, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{filter("instance-id", id)}})
				if err != nil || len(out.Addresses) != 1 {
					t.Fatalf("DescribeAddresses: %v, %v", out, err)
				}
				if _, err := c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: out.Addresses[0].AssociationId}); err != nil {
					t.Fatal(err)
				}
			},
			func(in awsfake.Instance) bool {
				return in.PublicIP != "" && in.PublicIP == strings.Fields(in.Tags[TagEIP])[1]
			}},
		{"gateway", provision.Attrs{"roles": []string{"gateway"}, "overlay_cidr": "10.200.0.0/16"},
			func(t *testing.T, id string) {
				if _, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
					SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(true)}}); err != nil {
					t.Fatal(err)
				}
			},
			func(in awsfake.Instance) bool { return !in.SourceDestCheck }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := instanceReq("c1", "cloud", strings.ReplaceAll(tt.name, " ", "-"), netID, tt.attrs)
			id := mustCreate(t, p, req).ID
			mustWait(t, p, id)
			pr := &provision.PowerRequest{Address: req.Address, ID: id}
			if err := p.Stop(ctx, pr); err != nil {
				t.Fatal(err)
			}
			tt.undo(t, id)
			if tt.check(fakeInstance(t, fake, id)) {
				t.Fatal("the undo did not undo")
			}
			rr, err := p.Start(ctx, pr)
			if err != nil {
				t.Fatal(err)
			}
			if in := fakeInstance(t, fake, id); !tt.check(in) || rr.Attrs["state"] != "running" {
				t.Errorf("after Start: %+v, attrs %v; want it set up again and running", in, rr.Attrs)
			}
		})
	}
}

func TestStopStartErrors(t *testing.T) {
	fake, p, netID := stopSite(t)
	ctx := context.Background()
	mk := func(name string, attrs provision.Attrs) *provision.PowerRequest {
		req := instanceReq("c1", "cloud", name, netID, attrs)
		id := mustCreate(t, p, req).ID
		mustWait(t, p, id)
		return &provision.PowerRequest{Address: req.Address, ID: id, Attrs: req.Attrs}
	}
	terminated := mk("gone", nil)
	if err := fake.TerminateOutside(terminated.ID); err != nil {
		t.Fatal(err)
	}
	unknown := &provision.PowerRequest{Address: "site.cloud.node.never", ID: "i-0000000000deadbee"}
	spot := mk("spot", provision.Attrs{"spot": true})
	full := mk("full", nil)
	if err := p.Stop(ctx, full); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		op     string
		req    *provision.PowerRequest
		setup  func()
		want   string // in the error, besides the address
		action string // the API call that must not have been made ("" = any may)
	}{
		{"stop terminated", "stop", terminated, nil, "is terminated (Client.UserInitiatedShutdown", "StopInstances"},
		{"start terminated", "start", terminated, nil, "is terminated", "StartInstances"},
		{"stop unknown", "stop", unknown, nil, "does not exist", "StopInstances"},
		{"start unknown", "start", unknown, nil, "does not exist", "StartInstances"},
		{"stop spot", "stop", spot, nil, "spot instance", "StopInstances"},
		{"start without capacity", "start", full, func() { fake.Capacity("t3.medium", true) }, "insufficient capacity", ""},
		{"start refused", "start", full, func() {
			fake.Capacity("t3.medium", false)
			fake.Fail("StartInstances", "UnauthorizedOperation", "You are not authorized to perform this operation.", 1)
		}, "UnauthorizedOperation", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			calls := 0
			if tt.action != "" {
				calls = fake.Calls(tt.action)
			}
			var err error
			if tt.op == "stop" {
				err = p.Stop(ctx, tt.req)
			} else {
				_, err = p.Start(ctx, tt.req)
			}
			if err == nil || !strings.Contains(err.Error(), tt.req.Address) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%s %s: %v, want an error naming it and saying %q", tt.op, tt.req.Address, err, tt.want)
			}
			if tt.action != "" && fake.Calls(tt.action) != calls {
				t.Errorf("%s was called", tt.action)
			}
			checkNoSecrets(t, "error", err.Error())
		})
	}
	var ce *provision.CapacityError
	fake.Capacity("t3.medium", true)
	if _, err := p.Start(ctx, full); !errors.As(err, &ce) {
		t.Errorf("start without capacity: %v (%T), want a *provision.CapacityError for the elastic daemon", err, err)
	}
	if in := fakeInstance(t, fake, full.ID); in.State != "stopped" {
		t.Errorf("after the failed starts: %s, want still stopped", in.State)
	}
}

// TestWaitReadyStoppedIsABootFailure: WaitReady (after a create) still
// calls an instance that stopped a failed boot; only Start expects one.
func TestWaitReadyStoppedIsABootFailure(t *testing.T) {
	_, p, netID := stopSite(t)
	ctx := context.Background()
	req := instanceReq("c1", "cloud", "n1", netID, nil)
	id := mustCreate(t, p, req).ID
	mustWait(t, p, id)
	if _, err := p.Client().StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	rr, err := p.WaitReady(ctx, &provision.ReadRequest{Address: req.Address, Kind: provision.KindInstance, ID: id})
	if err == nil || !strings.Contains(err.Error(), "stopped while booting") || rr == nil || !rr.Exists || rr.Attrs["state"] != "stopped" {
		t.Errorf("WaitReady of a stopped instance = %+v, %v; want it existing, stopped, and a boot error", rr, err)
	}
}

// TestFakeStopStartWire checks the fake's StopInstances and
// StartInstances answers as the SDK decodes them: EC2's state changes
// (StoppingInstances, StartingInstances with CurrentState and
// PreviousState) and its errors.
func TestFakeStopStartWire(t *testing.T) {
	_, p, netID := stopSite(t)
	ctx := context.Background()
	c := p.Client()
	id := mustCreate(t, p, instanceReq("c1", "cloud", "n1", netID, nil)).ID
	change := func(ch []types.InstanceStateChange) string {
		if len(ch) != 1 || aws.ToString(ch[0].InstanceId) != id || ch[0].CurrentState == nil || ch[0].PreviousState == nil {
			return "malformed"
		}
		return string(ch[0].PreviousState.Name) + "->" + string(ch[0].CurrentState.Name)
	}
	stop := func() (string, error) {
		out, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return "", err
		}
		return change(out.StoppingInstances), nil
	}
	start := func() (string, error) {
		out, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return "", err
		}
		return change(out.StartingInstances), nil
	}
	describe := func() (string, error) {
		_, err := p.describe(ctx, id, "")
		return "", err
	}
	// Never described: it stays pending.
	pendingID := mustCreate(t, p, instanceReq("c1", "cloud", "n2", netID, nil)).ID
	stopPending := func() (string, error) {
		_, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{pendingID}})
		return "", err
	}
	terminate := func() (string, error) {
		_, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		return "", err
	}
	unknown := func() (string, error) {
		_, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{"i-0000000000deadbee"}})
		return "", err
	}
	steps := []struct {
		name string
		call func() (string, error)
		want string // the state change, or the error code
	}{
		{"stop while pending", stopPending, "IncorrectInstanceState"},
		{"boot", describe, ""},
		{"stop", stop, "running->stopping"},
		{"stop while stopping", stop, "stopping->stopping"},
		{"start while stopping", start, "IncorrectInstanceState"},
		{"stopped at the next describe", describe, ""},
		{"stop while stopped", stop, "stopped->stopped"},
		{"start", start, "stopped->pending"},
		{"start while pending", start, "pending->pending"},
		{"run", describe, ""},
		{"start while running", start, "running->running"},
		{"stop again", stop, "running->stopping"},
		{"terminate the stopping instance", terminate, ""},
		{"start terminated", start, "IncorrectInstanceState"},
		{"stop terminated", stop, "IncorrectInstanceState"},
		{"start unknown", unknown, "InvalidInstanceID.NotFound"},
	}
	for _, st := range steps {
		got, err := st.call()
		if err != nil {
			got = errorCode(err)
		}
		if got != st.want {
			t.Errorf("%s: %q (%v), want %q", st.name, got, err, st.want)
		}
	}
}
