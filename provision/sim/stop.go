package sim

import (
	"context"
	"fmt"

	"github.com/hvctl/hvctl/provision"
)

// StopCost reports that a machine can stop when the provider sets
// start_time (provision.Stopper); spot machines cannot, as on EC2.
func (p *Provider) StopCost(attrs provision.Attrs) (provision.StopCost, bool) {
	if p.settings.StartTime <= 0 {
		return provision.StopCost{}, false
	}
	if spot, _ := attrs["spot"].(bool); spot {
		return provision.StopCost{}, false
	}
	return provision.StopCost{StartTime: p.settings.StartTime, StoppedPrice: p.settings.StoppedPrice}, true
}

// Stop stops a running instance at once (provision.Stopper). One API
// call, like EC2's StopInstances; stopping a stopped instance is fine.
func (p *Provider) Stop(ctx context.Context, req *provision.PowerRequest) error {
	if p.settings.StartTime <= 0 {
		return fmt.Errorf("sim: stop %s: this provider's machines cannot stop (set start_time)", req.Address)
	}
	if err := p.gate(ctx, "StopInstances", req.ID); err != nil {
		return err
	}
	now := p.clock.Now().UTC()
	return p.store.update(func(w *world) (bool, error) {
		r := byID(w, req.ID)
		if r == nil || !r.live() || r.Kind != provision.KindInstance {
			return false, fmt.Errorf("sim: stop %s (%s): %w", req.Address, req.ID, provision.ErrNotFound)
		}
		switch r.effectiveState(now) {
		case StateStopped:
			return false, nil
		case StateRunning:
		default:
			return false, fmt.Errorf("sim: IncorrectInstanceState: stop %s (%s): it is %s, not running", req.Address, req.ID, r.effectiveState(now))
		}
		r.State = StateStopped
		w.Changed(r)
		return true, nil
	})
}

// Start starts a stopped instance, which runs again start_time later
// (provision.Stopper); it waits for that, like WaitReady after Create.
func (p *Provider) Start(ctx context.Context, req *provision.PowerRequest) (*provision.ReadResponse, error) {
	if err := p.gate(ctx, "StartInstances", req.ID); err != nil {
		return nil, err
	}
	now := p.clock.Now().UTC()
	err := p.store.update(func(w *world) (bool, error) {
		r := byID(w, req.ID)
		if r == nil || !r.live() || r.Kind != provision.KindInstance {
			return false, fmt.Errorf("sim: start %s (%s): %w", req.Address, req.ID, provision.ErrNotFound)
		}
		switch r.effectiveState(now) {
		case StateRunning, StatePending:
			return false, nil
		case StateStopped:
		default:
			return false, fmt.Errorf("sim: IncorrectInstanceState: start %s (%s): it is %s", req.Address, req.ID, r.effectiveState(now))
		}
		r.State, r.ReadyAt, r.FailBoot = StatePending, now.Add(p.settings.StartTime), false
		w.Changed(r)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return p.WaitReady(ctx, &provision.ReadRequest{Address: req.Address, Kind: provision.KindInstance, ID: req.ID})
}

var _ provision.Stopper = (*Provider)(nil)
