package aws

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hvctl/hvctl/provision"
)

var _ provision.Stopper = (*Provider)(nil)

const (
	// startTime is what StopCost says a start takes until the node runs
	// work again: EC2 starts a stopped EBS-backed instance in about a
	// minute (no image to copy, no first-boot cloud-init; the agent is a
	// systemd unit that comes back with the machine). A fixed estimate.
	startTime = time.Minute
	// defaultRootGiB is the volume priced when an instance's template
	// gives no disk: hvctl asks RunInstances for no block device
	// mapping, so the root volume is the image's, 8 GiB for the Debian,
	// Ubuntu and Amazon Linux AMIs.
	defaultRootGiB = 8
	// hoursPerMonth is AWS's billing month (EBS prices are per
	// GiB-month, instance prices per hour).
	hoursPerMonth = 730
)

// StopCost reports whether an instance may be stopped instead of
// terminated (provision.Stopper): only with stop_idle on, and not a spot
// instance (hvctl launches one-time spot requests, which EC2 cannot
// stop). A stopped instance costs its volume: disk_gib (the template's
// disk; RunInstances does not size the root volume from it yet, so it is
// the image's size the template states) or defaultRootGiB, at ebs_price
// per GiB-month.
func (p *Provider) StopCost(attrs provision.Attrs) (provision.StopCost, bool) {
	if !p.settings.StopIdle || attrs.Bool("spot") {
		return provision.StopCost{}, false
	}
	gib := attrs.Int("disk_gib")
	if gib <= 0 {
		gib = defaultRootGiB
	}
	return provision.StopCost{StartTime: startTime, StoppedPrice: float64(gib) * p.settings.EBSPrice / hoursPerMonth}, true
}

// Stop stops an instance with StopInstances and polls until EC2 reports
// it stopped (provision.Stopper). Its volumes, private address, network
// interface and Elastic IP stay; an ephemeral public IP is released. A
// stopped instance is left alone; a terminated or unknown one is an
// error naming it.
func (p *Provider) Stop(ctx context.Context, req *provision.PowerRequest) error {
	inst, err := p.powerTarget(ctx, "stop", req)
	if err != nil {
		return err
	}
	if inst.InstanceLifecycle == types.InstanceLifecycleTypeSpot {
		return fmt.Errorf("aws: stop %s: instance %s is a spot instance of a one-time request, which EC2 cannot stop", req.Address, req.ID)
	}
	switch inst.State.Name {
	case types.InstanceStateNameStopped:
		return nil
	case types.InstanceStateNameStopping:
	default:
		if _, err := p.client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{req.ID}}); err != nil {
			return p.powerErr(ctx, "stop", "StopInstances", req, err)
		}
	}
	rr := &provision.ReadRequest{Address: req.Address, Kind: provision.KindInstance, ID: req.ID}
	return p.poll(ctx, rr, func(inst *types.Instance) (bool, error) {
		switch {
		case inst.State != nil && inst.State.Name == types.InstanceStateNameStopped:
			return true, nil
		case gone(*inst):
			return true, goneErr("stop", req, inst)
		}
		// stopping, or running in a read that lags the call.
		return false, nil
	})
}

// Start starts a stopped instance with StartInstances, polls until it
// runs, and finishes it as WaitReady does (its Elastic IP associated, a
// gateway's source/destination checks off and overlay route through
// it), returning its attributes as Read reports them (provision.Stopper).
// One still stopping is waited for first; a running one is only
// finished. A terminated or unknown one is an error naming it; no
// capacity for its type is a *provision.CapacityError.
func (p *Provider) Start(ctx context.Context, req *provision.PowerRequest) (*provision.ReadResponse, error) {
	inst, err := p.powerTarget(ctx, "start", req)
	if err != nil {
		return nil, err
	}
	rr := &provision.ReadRequest{Address: req.Address, Kind: provision.KindInstance, ID: req.ID}
	if inst.State.Name == types.InstanceStateNameStopping {
		// EC2 refuses to start an instance until it has stopped.
		if err := p.poll(ctx, rr, func(inst *types.Instance) (bool, error) {
			if gone(*inst) {
				return true, goneErr("start", req, inst)
			}
			return inst.State != nil && inst.State.Name != types.InstanceStateNameStopping, nil
		}); err != nil {
			return nil, err
		}
		if inst, err = p.powerTarget(ctx, "start", req); err != nil {
			return nil, err
		}
	}
	called := time.Now()
	if inst.State.Name == types.InstanceStateNameStopped {
		if _, err := p.client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{req.ID}}); err != nil {
			return nil, p.powerErr(ctx, "start", "StartInstances", req, err)
		}
	}
	var out *provision.ReadResponse
	started := false // seen pending or running since the call
	err = p.poll(ctx, rr, func(inst *types.Instance) (bool, error) {
		switch s := state(*inst); {
		case s == "running":
			started = true
			r, err := p.running(ctx, inst)
			out = r
			return r != nil || err != nil, err
		case s == "pending":
			started = true
		case gone(*inst):
			return true, goneErr("start", req, inst)
		case s == "stopped" && (started || time.Since(called) > notFoundGrace):
			why := ""
			if inst.StateReason != nil {
				why = ": " + aws.ToString(inst.StateReason.Message)
			}
			return true, fmt.Errorf("aws: start %s: instance %s stopped again while starting%s", req.Address, req.ID, why)
		}
		// Still stopped in a read that lags the call (EC2 is eventually
		// consistent), or pending.
		return false, nil
	})
	return out, err
}

// powerTarget describes the instance to stop or start: one that is
// gone (terminated, shutting down, unknown to EC2) is an error naming
// it.
func (p *Provider) powerTarget(ctx context.Context, verb string, req *provision.PowerRequest) (*types.Instance, error) {
	if req.ID == "" {
		return nil, fmt.Errorf("aws: %s %s: no instance ID", verb, req.Address)
	}
	inst, err := p.describe(ctx, req.ID, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Address, err)
	}
	if inst == nil || gone(*inst) || inst.State == nil {
		return nil, goneErr(verb, req, inst)
	}
	return inst, nil
}

// powerErr maps an error of StopInstances or StartInstances: an
// instance terminated meanwhile is named as gone; the rest is mapErr's,
// prefixed by the address.
func (p *Provider) powerErr(ctx context.Context, verb, op string, req *provision.PowerRequest, err error) error {
	if isNotFound(err) {
		return goneErr(verb, req, nil)
	}
	if errorCode(err) == "IncorrectInstanceState" {
		if inst, derr := p.describe(ctx, req.ID, ""); derr == nil && (inst == nil || gone(*inst)) {
			return goneErr(verb, req, inst)
		}
	}
	return fmt.Errorf("%s: %w", req.Address, p.mapErr(op, err))
}

// goneErr says an instance to stop or start is gone, and why when EC2
// says.
func goneErr(verb string, req *provision.PowerRequest, inst *types.Instance) error {
	if inst == nil {
		return fmt.Errorf("aws: %s %s: instance %s does not exist", verb, req.Address, req.ID)
	}
	s := "in no state EC2 reports"
	if inst.State != nil {
		s = string(inst.State.Name)
	}
	if inst.StateReason != nil && inst.StateReason.Message != nil {
		s += " (" + aws.ToString(inst.StateReason.Message) + ")"
	}
	return fmt.Errorf("aws: %s %s: instance %s is %s", verb, req.Address, req.ID, s)
}
