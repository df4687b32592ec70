package elastic

import (
	"fmt"
	"time"
)

// Action is one thing the policy asks for. Every action carries the
// reason it was chosen; String renders both for the decision log.
type Action interface {
	fmt.Stringer
	// Why is the reason the policy chose the action.
	Why() string
}

// ScaleUp adds Count nodes to Pool.
type ScaleUp struct {
	Pool   string
	Count  int
	Reason string
}

// ScaleDown powers a node off. For a healthy node it is a pending
// power-off (the node drains and can be got back with CancelPowerOff);
// for a failed one it is a destroy.
type ScaleDown struct {
	Node   string
	Pool   string
	Reason string
	// Failed is set when the node failed (boot failure, join timeout):
	// the executor counts it against the pool (History.Failed).
	Failed bool
}

// CancelPowerOff gets back a node whose power-off is pending.
type CancelPowerOff struct {
	Node   string
	Pool   string
	Reason string
}

// Replace destroys a failed node and creates another in its pool. The
// executor counts the failure against the pool.
type Replace struct {
	Node   string
	Pool   string
	Reason string
}

// Hold stops the policy from growing Pool until Until; the pool's work
// goes to the next site meanwhile.
type Hold struct {
	Pool   string
	Until  time.Time
	Reason string
}

// Reconcile repairs a node the queue system shows down while the cloud
// shows it running: restart its agent so it registers again, instead of
// powering the machine off and on (paper 003's vnode-5 loop).
type Reconcile struct {
	Node   string
	Pool   string
	Reason string
}

// Stop stops an idle node: it is no longer billed for compute, keeps
// its disk, and Start gets it back in the pool's StartTime.
type Stop struct {
	Node   string
	Pool   string
	Reason string
}

// Start starts a stopped node again.
type Start struct {
	Node   string
	Pool   string
	Reason string
}

func (a Stop) Why() string           { return a.Reason }
func (a Start) Why() string          { return a.Reason }
func (a Stop) String() string        { return fmt.Sprintf("stop %s: %s", a.Node, a.Reason) }
func (a Start) String() string       { return fmt.Sprintf("start %s: %s", a.Node, a.Reason) }
func (a ScaleUp) Why() string        { return a.Reason }
func (a ScaleDown) Why() string      { return a.Reason }
func (a CancelPowerOff) Why() string { return a.Reason }
func (a Replace) Why() string        { return a.Reason }
func (a Hold) Why() string           { return a.Reason }
func (a Reconcile) Why() string      { return a.Reason }

func (a ScaleUp) String() string {
	return fmt.Sprintf("scale-up %s +%d: %s", a.Pool, a.Count, a.Reason)
}
func (a ScaleDown) String() string {
	return fmt.Sprintf("scale-down %s: %s", a.Node, a.Reason)
}
func (a CancelPowerOff) String() string {
	return fmt.Sprintf("cancel-power-off %s: %s", a.Node, a.Reason)
}
func (a Replace) String() string { return fmt.Sprintf("replace %s: %s", a.Node, a.Reason) }
func (a Hold) String() string {
	return fmt.Sprintf("hold %s until %s: %s", a.Pool, a.Until.UTC().Format(time.RFC3339), a.Reason)
}
func (a Reconcile) String() string { return fmt.Sprintf("reconcile %s: %s", a.Node, a.Reason) }
