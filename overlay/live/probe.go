package live

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Pinger sends ICMP echo requests from one network namespace. A probe to
// a hub's or gateway's overlay address leaves through that peer's tunnel
// (its /32 is in the peer's AllowedIPs), so a reply proves the tunnel
// carries packets both ways and the far end is alive — a data-plane check,
// not a heartbeat. IPv4 only.
type Pinger struct {
	c   *net.IPConn
	id  uint16
	mu  sync.Mutex
	seq uint16
	// waiting maps a sequence number to the channel its reply goes to.
	waiting map[uint16]chan struct{}
	done    chan struct{}
}

// NewPinger opens a raw ICMP socket in namespace nsName ("" = the
// caller's).
func NewPinger(nsName string) (*Pinger, error) {
	ns := netns.None()
	if nsName != "" {
		h, err := netns.GetFromName(nsName)
		if err != nil {
			if h, err = netns.GetFromPath(nsName); err != nil {
				return nil, fmt.Errorf("pinger: network namespace %s: %w", nsName, err)
			}
		}
		defer h.Close()
		ns = h
	}
	var c *net.IPConn
	err := inNS(ns, func() error {
		pc, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		c = pc.(*net.IPConn)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pinger: open ICMP socket: %w", err)
	}
	p := &Pinger{c: c, id: uint16(rand.UintN(1 << 16)), waiting: map[uint16]chan struct{}{}, done: make(chan struct{})}
	go p.read()
	return p, nil
}

func (p *Pinger) read() {
	defer close(p.done)
	buf := make([]byte, 1500)
	for {
		n, _, err := p.c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		// Echo reply: type 0, code 0, checksum, id, seq.
		if n < 8 || buf[0] != 0 || binary.BigEndian.Uint16(buf[4:]) != p.id {
			continue
		}
		seq := binary.BigEndian.Uint16(buf[6:])
		p.mu.Lock()
		if ch, ok := p.waiting[seq]; ok {
			close(ch)
			delete(p.waiting, seq)
		}
		p.mu.Unlock()
	}
}

// Ping sends one echo request to dst and waits for the reply until ctx is
// done; it returns the round-trip time.
func (p *Pinger) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	p.mu.Lock()
	p.seq++
	seq := p.seq
	ch := make(chan struct{})
	p.waiting[seq] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiting, seq)
		p.mu.Unlock()
	}()
	msg := make([]byte, 16)
	msg[0] = 8 // echo request
	binary.BigEndian.PutUint16(msg[4:], p.id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], "hvctl-hc")
	binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	start := time.Now()
	if _, err := p.c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return 0, fmt.Errorf("ping %s: %w", dst, err)
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("ping %s: no reply: %w", dst, ctx.Err())
	}
}

// Close closes the socket.
func (p *Pinger) Close() error {
	err := p.c.Close()
	<-p.done
	return err
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
