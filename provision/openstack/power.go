package openstack

import (
	"context"
	"fmt"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/hvctl/hvctl/provision"
)

// startTime is what a start of a stopped server takes until it runs
// work again: os-start boots the server from the disk it kept (no image
// is copied, no server scheduled, cloud-init has already run), so it is
// a guest boot, about a minute, against several for a new server.
const startTime = time.Minute

// StopCost: a node can be stopped when the provider's stop_idle is set;
// a start takes about a minute and a SHUTOFF server costs stopped_price
// an hour (provision.Stopper). A gateway can stop too: its port keeps
// the allowed address pairs and the subnet's host route through it, and
// its agent turns IP forwarding on again when it brings the overlay up.
func (p *Provider) StopCost(provision.Attrs) (provision.StopCost, bool) {
	if !p.s.StopIdle {
		return provision.StopCost{}, false
	}
	return provision.StopCost{StartTime: startTime, StoppedPrice: p.s.StoppedPrice}, true
}

// Stop stops a server with Nova's os-stop action and waits until it is
// SHUTOFF; its port, addresses and floating IP stay. A server already
// SHUTOFF (Nova refuses os-stop with 409) is not an error.
func (p *Provider) Stop(ctx context.Context, req *provision.PowerRequest) error {
	_, err := p.power(ctx, req, stopAction)
	return err
}

// Start starts a stopped server with Nova's os-start action, waits until
// it is ACTIVE and returns it as Read does. A server already ACTIVE is
// not an error. Nothing else is redone: the server kept its port, so its
// private address, its floating IP (associated with the port, not the
// server) and its security group are those it had, and cloud-init does
// not run again (the agent starts from its systemd unit).
func (p *Provider) Start(ctx context.Context, req *provision.PowerRequest) (*provision.ReadResponse, error) {
	return p.power(ctx, req, startAction)
}

// powerAction is os-stop or os-start.
type powerAction struct {
	verb string // "stop", "start"
	call func(ctx context.Context, cc *gophercloud.ServiceClient, id string) error
	// want is the state the action ends in, task the task_state Nova
	// shows while it is in progress, and other the opposite action's.
	want, task, other string
}

var (
	stopAction = &powerAction{verb: "stop", want: StateStopped, task: "powering-off", other: "powering-on",
		call: func(ctx context.Context, cc *gophercloud.ServiceClient, id string) error {
			return servers.Stop(ctx, cc, id).ExtractErr()
		}}
	startAction = &powerAction{verb: "start", want: StateRunning, task: "powering-on", other: "powering-off",
		call: func(ctx context.Context, cc *gophercloud.ServiceClient, id string) error {
			return servers.Start(ctx, cc, id).ExtractErr()
		}}
)

// power runs action on the server and waits, with the provider's poll,
// until it reads back in action.want. Nova answers 409 when the server's
// state does not allow the action: the server is then read again, and
// one already in action.want is done, one on its way there (task_state)
// is waited for, one still booting or in the opposite transition is
// waited for and the action sent once more; anything else is an error
// with Nova's reason. A server that is gone is an error naming its
// address.
func (p *Provider) power(ctx context.Context, req *provision.PowerRequest, action *powerAction) (*provision.ReadResponse, error) {
	if req.ID == "" {
		return nil, fmt.Errorf("openstack: %s: cannot %s it: the state records no server ID", req.Address, action.verb)
	}
	cc, _, _, err := p.clients(ctx)
	if err != nil {
		return nil, err
	}
	rreq := &provision.ReadRequest{Address: req.Address, Kind: provision.KindInstance, ID: req.ID, Attrs: req.Attrs}
	gone := func() error {
		return fmt.Errorf("openstack: %s: cannot %s server %s: it is gone (deleted outside hvctl?); `hvctl apply` makes a new one", req.Address, action.verb, req.ID)
	}
	for retried := false; ; retried = true {
		err := mapError(fmt.Sprintf("%s: %s server %s", req.Address, action.verb, req.ID), action.call(ctx, cc, req.ID))
		if err == nil {
			break
		}
		if isNotFound(err) {
			return nil, gone()
		}
		if !isConflict(err, 409) {
			return nil, err
		}
		rr, srv, rerr := p.readInstance(ctx, rreq)
		if rerr != nil {
			return nil, fmt.Errorf("%s: %w", req.Address, rerr)
		}
		if !rr.Exists {
			return nil, gone()
		}
		state := rr.Attrs["state"]
		if state == action.want && srv.TaskState == "" {
			return rr, nil // already there
		}
		if srv.TaskState == action.task {
			break // on its way: wait
		}
		if !retried && (state == StatePending || srv.TaskState == action.other) {
			// Still booting, or the opposite action in progress: let it
			// finish, then ask again.
			if _, err := p.pollInstance(ctx, rreq, func(rr *provision.ReadResponse, srv *servers.Server) (bool, error) {
				if !rr.Exists {
					return true, gone()
				}
				return rr.Attrs["state"] != StatePending && srv.TaskState == "", nil
			}); err != nil {
				return nil, err
			}
			continue
		}
		return nil, fmt.Errorf("%w; the server is %s%s", err, srv.Status, taskText(srv.TaskState))
	}
	return p.pollInstance(ctx, rreq, func(rr *provision.ReadResponse, srv *servers.Server) (bool, error) {
		if !rr.Exists {
			return true, fmt.Errorf("openstack: %s: server %s disappeared while it was %s", req.Address, req.ID, action.task)
		}
		switch state := rr.Attrs["state"]; {
		case state == action.want && srv.TaskState == "":
			return true, nil
		case state == StateFailed:
			msg := srv.Fault.Message
			if msg == "" {
				msg = "no fault message"
			}
			return true, fmt.Errorf("openstack: %s: server %s went to ERROR while %s: %s", req.Address, req.ID, action.task, msg)
		case srv.TaskState == "":
			// Nova sets the task state before it answers 202, and
			// clears it when the action ends: the action ended
			// without reaching its state (the compute host refused).
			return true, fmt.Errorf("openstack: %s: server %s is %s after a %s: Nova did not %s it (see `openstack server event list %s`)",
				req.Address, req.ID, srv.Status, action.verb, action.verb, req.ID)
		}
		return false, nil
	})
}

func taskText(task string) string {
	if task == "" {
		return ""
	}
	return ", " + task
}
