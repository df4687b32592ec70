// Package elastic grows and shrinks a cluster's elastic pools from queue
// depth: the policy (a pure function over a snapshot), the daemon loop,
// and the discrete-event simulator that runs the same policy code.
package elastic
