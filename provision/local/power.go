package local

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hvctl/hvctl/provision"
)

// Stopping and starting a node (provision.Stopper, the stop_idle
// setting). A local machine is its namespace plus the processes in it:
// a stop ends the processes, as a power-off does, and keeps its disk
// (the node directory: agent.json, the agent's WireGuard key and
// credential), its namespace, links and addresses; a start runs the
// agent again from that directory, as a boot from the same disk, and
// the agent rejoins with the key and credential it kept.
//
// Both are recorded in the world before anything changes, as a create's
// intent is: record.Power is "stopping" while the processes are being
// ended and "stopped" once they are; "starting" from a start's intent
// until its agent is recorded (startAgent clears it in the same write).
// A crash leaves the mark, and the retried Stop or Start (or a Read of
// a half-stopped node, or a Delete) completes it.

// Stored power states of a node (record.Power); "" is on.
const (
	powerStopping = "stopping"
	powerStopped  = "stopped"
	powerStarting = "starting"
)

// agentStartEstimate is what a start takes besides boot_time: nsenter
// and the time namespace wrapper, the agent loading its key and
// credential, one join round trip to the manager, and wireguard-go's
// device with the peer set; WaitReady's startGrace (300 ms) is part of
// it. TestLocalStopStart (internal/cli, real agents) measured 0.37 to
// 0.44 s from Start to the hub reaching the node over the overlay on an
// idle 2-core machine; 1 s leaves room for a loaded one.
const agentStartEstimate = time.Second

// StopCost: a local node can stop when the provider's stop_idle is
// true. A start takes boot_time plus the agent's start
// (agentStartEstimate); a stopped local node costs nothing (a node's
// template price only models a cloud's).
func (p *Provider) StopCost(attrs provision.Attrs) (provision.StopCost, bool) {
	if !p.settings.StopIdle {
		return provision.StopCost{}, false
	}
	return provision.StopCost{StartTime: p.settings.BootTime + agentStartEstimate, StoppedPrice: 0}, true
}

// Stop ends a node's processes (its agent and what the agent started)
// and what they held in memory, and keeps its directory, namespace,
// links and addresses. Stopping a stopped node is fine.
func (p *Provider) Stop(ctx context.Context, req *provision.PowerRequest) error {
	defer p.lockID(req.ID)()
	var r *record
	err := p.store.update(func(w *world) (bool, error) {
		var err error
		if r, err = powerRecord(w, req, "stop"); err != nil {
			return false, err
		}
		if r.Power == powerStopped {
			return false, nil
		}
		r.Power = powerStopping
		return true, nil
	})
	if err != nil || r.Power == powerStopped {
		return err
	}
	return p.finishStop(ctx, r)
}

// finishStop ends the processes of node r (marked stopping) and marks
// it stopped. Called with r's lockID held.
func (p *Provider) finishStop(ctx context.Context, r *record) error {
	if err := powerOff(ctx, r); err != nil {
		return err
	}
	return p.store.update(func(w *world) (bool, error) {
		cur := byID(w, r.ID)
		if cur == nil || cur.Power != powerStopping {
			return false, fmt.Errorf("local: stop %s (%s): it was deleted or started meanwhile", r.Address, r.ID)
		}
		cur.Power, cur.Proc = powerStopped, nil
		*r = *cur
		return true, nil
	})
}

// Start runs a stopped node's agent again from its directory, after
// boot_time (on the env clock), and waits for it as WaitReady does.
// Starting a running node is fine; a node whose agent died (failed) is
// started again too.
func (p *Provider) Start(ctx context.Context, req *provision.PowerRequest) (*provision.ReadResponse, error) {
	unlock := p.lockID(req.ID)
	var r *record
	running := false
	err := p.store.update(func(w *world) (bool, error) {
		var err error
		if r, err = powerRecord(w, req, "start"); err != nil {
			return false, err
		}
		switch {
		case r.Power == "" && r.Proc.alive():
			running = true
			return false, nil
		case r.Power == powerStarting:
			return false, nil
		case r.Power == "" && r.Proc != nil:
			// A dead agent (failed): its leftovers go as at a stop.
			r.Power = powerStopping
			return true, nil
		case r.Power == "":
			// Never started (pending): WaitReady starts it.
			return false, nil
		}
		return false, nil
	})
	if err == nil && r.Power == powerStopping {
		err = p.finishStop(ctx, r)
	}
	if err == nil && r.Power == powerStopped {
		err = p.store.update(func(w *world) (bool, error) {
			cur := byID(w, r.ID)
			if cur == nil || cur.Power != powerStopped {
				return false, fmt.Errorf("local: start %s (%s): it was deleted or changed meanwhile", r.Address, r.ID)
			}
			cur.Power, cur.Proc = powerStarting, nil
			cur.ReadyAt = p.env.Now().UTC().Add(p.settings.BootTime)
			return true, nil
		})
	}
	unlock()
	if err != nil {
		return nil, err
	}
	if running {
		return &provision.ReadResponse{Exists: true, ID: r.ID, Attrs: p.computed(r)}, nil
	}
	return p.WaitReady(ctx, &provision.ReadRequest{Address: req.Address, Kind: provision.KindInstance, ID: r.ID})
}

// powerRecord finds the node a Stop or Start names, made and not being
// deleted; its errors name the node's address.
func powerRecord(w *world, req *provision.PowerRequest, verb string) (*record, error) {
	if req.ID == "" {
		return nil, fmt.Errorf("local: %s %s: no ID", verb, req.Address)
	}
	r := byID(w, req.ID)
	switch {
	case r == nil || r.State == recDeleting:
		return nil, fmt.Errorf("local: %s %s (%s): %w", verb, req.Address, req.ID, provision.ErrNotFound)
	case r.Kind != provision.KindInstance:
		return nil, fmt.Errorf("local: %s %s (%s): a %s cannot stop or start, only a node", verb, req.Address, req.ID, r.Kind)
	case r.State == recCreating:
		return nil, fmt.Errorf("local: %s %s (%s): it is still being created (its WaitReady, or the next apply, completes it)", verb, req.Address, req.ID)
	case !netnsExists(r.Netns):
		return nil, fmt.Errorf("local: %s %s (%s): its namespace %s is gone (%w)", verb, req.Address, req.ID, r.Netns, provision.ErrNotFound)
	}
	return r, nil
}

// powerOff ends node r's processes (its agent's group, then whatever
// else runs in its namespace, as Delete does) and what the kernel held
// for them that a power-off loses: links in its namespace the provider
// did not make (the agent's WireGuard device, which outlives its
// process when it is the kernel's) and its nft tables (the provider
// makes none in a node). Its own links, addresses and routes stay.
func powerOff(ctx context.Context, r *record) error {
	killProcs(ctx, r)
	if !netnsExists(r.Netns) {
		return nil
	}
	out, err := run(ctx, nil, "ip", "-n", r.Netns, "-o", "link", "show")
	if err != nil {
		return fmt.Errorf("local: stop %s (%s): %w", r.Address, r.ID, err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name == "lo" || name == nodeSite || name == nodePublic {
			continue
		}
		if err := delLink(ctx, r.Netns, name); err != nil {
			return fmt.Errorf("local: stop %s (%s): %w", r.Address, r.ID, err)
		}
	}
	if err := nftIn(ctx, r.Netns, "flush ruleset\n"); err != nil {
		return fmt.Errorf("local: stop %s (%s): %w", r.Address, r.ID, err)
	}
	return nil
}
