package sim

import (
	"time"

	"github.com/hvctl/hvctl/provision"
)

// Clock is the sim's time source. Boot progress, the rate limiter and
// WaitReady all read it, so a virtual clock (tests, the elasticity
// simulator) makes the whole cloud run on virtual time.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed on this
	// clock, like time.After.
	After(d time.Duration) <-chan time.Time
}

// envClock reads the Env's clock and sleeps in real time.
type envClock struct{ env *provision.Env }

func (c envClock) Now() time.Time                         { return c.env.Now() }
func (c envClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
