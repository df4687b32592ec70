// Package manager is the cluster manager that runs on the hub node: the
// join service (single-use join tokens, overlay addresses, peer sets
// handed to each node and updated peer by peer as nodes come and go),
// the node registry with heartbeats and failure detection, and the
// authenticated HTTP/JSON API under /v1/ that hvctl talks to.
package manager
