// Package local is hvctl's embedded default provider: it builds real
// sites and nodes on the local machine out of Linux network namespaces.
//
// A site (kind network) is a "site router" namespace holding a bridge for
// the site's private network (the router has the first host address, the
// site gateway) and a veth "wan0" to the cluster's "internet": a bridge in
// the root namespace with a public /24 from 198.18.0.0/15, the root side
// holding .1. The router masquerades the site network out of wan0 and
// drops new connections from the internet into the site, so a site
// network is private, as in the clouds: only the overlay joins sites.
// The host reaches public addresses directly; a root-namespace nft table
// per cluster keeps the host from routing the internet anywhere else
// (its real uplink, another cluster's internet), but to the interfaces
// the outside_interfaces setting names, between which and the internet
// bridge the host routes (forwarding on for exactly those links, put
// back as it was when the internet goes).
//
// A node (kind instance) is a namespace with eth0 on its site bridge and
// a default route via the site router. With public_ip = true it also gets
// pub0 on the internet bridge with a public address, and its default
// route goes that way. Once boot_time has passed, WaitReady starts the
// node agent (`hvctl agent -config agent.json`, see AgentCommand) inside
// the namespace as a detached daemon (its own session, stdin /dev/null),
// logging to agent.log next to agent.json in StateDir/local/nodes/ID;
// HVCTL_NODE_CONFIG also names agent.json. A node whose agent died is
// "failed".
//
// With the stop_idle setting the provider is a provision.Stopper, so the
// elastic daemon can stop an idle node instead of destroying it. Stop
// models a machine's power-off: the node's processes end (the agent's
// process group, then whatever else runs in its namespace, as at a
// delete), and so does what the kernel held for them (links in the
// namespace the provider did not make, such as a kernel WireGuard
// device, and nft tables); its directory (agent.json, the agent's
// WireGuard key and credential), namespace, links, addresses and routes
// stay, and it reads "stopped". Start is a boot from the same disk: after
// boot_time it runs the agent again from the same directory, which
// rejoins with the key and credential it kept, and waits for it as
// WaitReady does. The stop or start is recorded in the world before it
// is made ("stopping", "starting"), so a retry — or a Read or Delete of
// a half-stopped node — completes one a crash interrupted. A stopped
// node costs nothing (StopCost); a start is estimated at boot_time plus
// the agent's start.
//
// Everything the provider makes — namespaces, root-namespace links, nft
// tables, agent processes (pid and start time), files — is recorded in
// StateDir/local/world.json, written atomically under an flock before it
// is made, so that Delete, Cleanup and the rerun of a crashed apply remove
// or complete exactly what exists. Create is idempotent on the client
// token. Names carry the cluster, so several clusters coexist on one
// machine: namespaces are hv-CLUSTER-SITE-NODE (routers
// hv-CLUSTER-SITE-router), root-namespace links hvXXXXXXXX plus a one
// letter suffix (b internet bridge, r router uplink, p node public veth;
// e is a node's port on its site bridge, inside the router namespace).
//
// The provider shells out to iproute2 (`ip`) and nftables (`nft`) and
// needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); without them New says so
// and points at the sim provider.
package local
