package live

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNS runs fn on an OS thread that has entered network namespace ns, and
// returns fn's error. Sockets and devices created by fn stay in ns. The
// thread is never handed back to the Go scheduler (it exits with its
// goroutine), so a failed switch back cannot leak into other goroutines.
// A handle that is not open (netns.None()) means the caller's namespace.
func inNS(ns netns.NsHandle, fn func() error) error {
	if int(ns) <= 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with this goroutine.
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
