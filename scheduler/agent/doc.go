// Package agent is hvctl agent, the daemon on every node: it generates
// the node's WireGuard key (the private key never leaves the node), joins
// the cluster through the hub's manager with a single-use join token,
// brings up the overlay device, applies peer-set updates incrementally,
// probes its hubs through the tunnel, and sends heartbeats with its
// capabilities and peer handshakes. On the hub it also runs the manager.
package agent
