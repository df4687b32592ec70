// Package overlay computes and applies the WireGuard overlay that joins the
// nodes of every site into one private network.
//
// The package has two halves, kept apart as in squat/kilo:
//
//   - A pure planner. Allocate hands out overlay addresses (stable across
//     re-plans and scaling), and Plan turns the cluster model and the list of
//     member nodes into a Topology from which PeersFor(node) yields that
//     node's PeerSet: its interface address, MTU, listen port, peers with
//     AllowedIPs, endpoints and keepalives, the routes it needs and, for
//     nodes with backup hubs, the failover range. RenderWGQuick and
//     RenderCloudInit write a PeerSet as a wg-quick file or a cloud-init
//     snippet. Nothing here needs root or touches the network.
//
//   - The live part, in the sub-package overlay/live: it applies a PeerSet
//     to a kernel or wireguard-go device through wgctrl and netlink
//     (incrementally, peer by peer), probes hub and gateway tunnels with
//     packets through them, and moves the failover range to a backup hub
//     when the active hub stops answering.
//
// Private keys are generated on the node that uses them (GenerateKey,
// LoadOrCreateKey); only public keys are passed to Plan.
package overlay
