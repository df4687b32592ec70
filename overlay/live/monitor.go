package live

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/hvctl/hvctl/overlay"
)

// Prober sends one probe to dst through the overlay and reports whether
// an answer came back before ctx ended. *Pinger is the real one.
type Prober interface {
	Ping(ctx context.Context, dst netip.Addr) (time.Duration, error)
}

// Health is what the monitor knows about one hub or gateway peer.
type Health struct {
	Node      string
	Address   netip.Addr
	Up        bool          // the last probe was answered
	Fails     int           // consecutive unanswered probes
	UpSince   time.Time     // start of the current answered run (zero if down)
	LastRTT   time.Duration // of the last answered probe
	LastProbe time.Time
}

// Monitor probes the hubs and gateways among a device's peers and moves
// the failover range between hubs.
//
// Every Interval it sends one probe to each such peer's overlay address,
// through that peer's tunnel. When the hub holding the range has missed
// FailAfter probes in a row, the range moves to the first hub in plan
// order whose last probe was answered. The range moves back to a hub
// earlier in the order (normally the primary) once that hub has answered
// every probe for FailbackAfter; FailbackAfter < 0 disables moving back.
// With the defaults (1s, 3, 1s timeout) traffic leaves a dead hub 3–4 s
// after it stops answering.
type Monitor struct {
	Device        *Device
	Prober        Prober
	Interval      time.Duration // default 1s
	Timeout       time.Duration // per probe; default Interval
	FailAfter     int           // default 3
	FailbackAfter time.Duration // default 30s
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logf reports hub changes; nil discards.
	Logf func(format string, args ...any)

	mu     sync.Mutex
	health map[string]*Health
}

func (m *Monitor) defaults() {
	if m.Interval <= 0 {
		m.Interval = time.Second
	}
	if m.Timeout <= 0 {
		m.Timeout = m.Interval
	}
	if m.FailAfter <= 0 {
		m.FailAfter = 3
	}
	if m.FailbackAfter == 0 {
		m.FailbackAfter = 30 * time.Second
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Logf == nil {
		m.Logf = func(string, ...any) {}
	}
}

// Run probes until ctx is done.
func (m *Monitor) Run(ctx context.Context) error {
	m.defaults()
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		m.Step(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Step runs one round of probes and acts on the result.
func (m *Monitor) Step(ctx context.Context) {
	m.defaults()
	ps := m.Device.Plan()
	if ps == nil {
		return
	}
	var targets []overlay.Peer
	for _, p := range ps.Peers {
		if p.Role == overlay.PeerHub || p.Role == overlay.PeerGateway {
			targets = append(targets, p)
		}
	}
	type result struct {
		node string
		addr netip.Addr
		rtt  time.Duration
		err  error
	}
	results := make(chan result, len(targets))
	for _, p := range targets {
		go func() {
			pctx, cancel := context.WithTimeout(ctx, m.Timeout)
			defer cancel()
			rtt, err := m.Prober.Ping(pctx, p.Address)
			results <- result{p.Node, p.Address, rtt, err}
		}()
	}
	now := m.Now()
	m.mu.Lock()
	if m.health == nil {
		m.health = map[string]*Health{}
	}
	seen := map[string]bool{}
	for range targets {
		r := <-results
		seen[r.node] = true
		h := m.health[r.node]
		if h == nil {
			h = &Health{Node: r.node}
			m.health[r.node] = h
		}
		h.Address, h.LastProbe = r.addr, now
		if r.err == nil {
			if !h.Up {
				h.UpSince = now
			}
			h.Up, h.Fails, h.LastRTT = true, 0, r.rtt
		} else {
			h.Up, h.Fails, h.UpSince = false, h.Fails+1, time.Time{}
		}
	}
	for n := range m.health {
		if !seen[n] {
			delete(m.health, n)
		}
	}
	var next string
	if ps.Failover != nil {
		next = ChooseHub(ps.Failover.Hubs, m.Device.ActiveHub(), m.health, now, m.FailAfter, m.FailbackAfter)
	}
	m.mu.Unlock()
	if ps.Failover != nil && next != m.Device.ActiveHub() {
		prev := m.Device.ActiveHub()
		if err := m.Device.SetActiveHub(next); err != nil {
			m.Logf("overlay: move range from hub %s to %s: %v", prev, next, err)
		} else {
			m.Logf("overlay: range moved from hub %s to %s", prev, next)
		}
	}
}

// Status returns the health of every probed peer.
func (m *Monitor) Status() []Health {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Health, 0, len(m.health))
	for _, h := range m.health {
		out = append(out, *h)
	}
	return out
}

// ChooseHub decides which hub should hold the failover range. hubs is the
// plan order (primary first), active the current holder. The active hub
// keeps the range until it has failed failAfter probes in a row; it then
// goes to the first hub whose last probe was answered (or stays, if none
// was). Independently, a hub earlier in the order than the active one
// takes the range back once it has been up for failback (failback < 0:
// never).
func ChooseHub(hubs []string, active string, health map[string]*Health, now time.Time, failAfter int, failback time.Duration) string {
	if len(hubs) == 0 {
		return active
	}
	if active == "" {
		active = hubs[0]
	}
	rank := len(hubs)
	for i, h := range hubs {
		if h == active {
			rank = i
		}
	}
	if h := health[active]; h != nil && h.Fails >= failAfter {
		for _, c := range hubs {
			if ch := health[c]; c != active && ch != nil && ch.Up {
				return c
			}
		}
		return active
	}
	if failback >= 0 {
		for _, c := range hubs[:rank] {
			if ch := health[c]; ch != nil && ch.Up && now.Sub(ch.UpSince) >= failback {
				return c
			}
		}
	}
	return active
}
