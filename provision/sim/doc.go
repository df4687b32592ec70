// Package sim is hvctl's simulated cloud: an in-process provider whose
// world (networks and machines) persists in the state directory, in
// sim/world.json, so that several hvctl processes — including ones killed
// half-way through an apply — see one consistent cloud. The world
// setting (a directory, relative to the template) or HVCTL_SIM_WORLD
// puts it elsewhere, so working directories can share one cloud.
//
// The provider block tunes it: boot_time (boot latency of each machine),
// api_rate (an API rate limit the sim both advertises and enforces),
// and injected faults — fail_rate (transient API errors), capacity (the
// most live machines a site can hold), boot_fail_rate (machines that end
// in state "failed"). Every random choice derives from seed, so a run is
// reproducible.
//
// Create is idempotent on the client token, like EC2's ClientToken, which
// is what lets a re-run after a crash find the machine instead of
// creating another. List and Query show what really exists, for
// `hvctl sim list` and `hvctl gc`. Time comes from a Clock, so tests and
// the elasticity simulator can run the sim on virtual time.
package sim
