// Package openstack is hvctl's OpenStack provider (gophercloud v2),
// registered as provider type "openstack".
//
// Credentials come from clouds.yaml and the OS_* variables, as the
// openstack CLI reads them: the entry named by `cloud` (or OS_CLOUD),
// looked for in OS_CLIENT_CONFIG_FILE, ./clouds.yaml,
// ~/.config/openstack/clouds.yaml and /etc/openstack/clouds.yaml; without
// one, OS_AUTH_URL, OS_USERNAME, ... Settings in the provider block
// (region, auth_url, project_name, ...) override both. Keystone v3 gives
// a token and the service catalog, which locates Nova, Neutron and
// Glance (or `endpoint` replaces the catalog).
//
// A site network (Kind network) is a Neutron network and subnet (or the
// network.existing_id network), a security group admitting the overlay's
// UDP port, the manager API (TCP 51821) and site-local traffic, and a
// router to the external network. A node (Kind instance) is a Neutron
// port in that group, a floating IP when public_ip, and a Nova server on
// the port whose cloud-init user data writes the agent config (0600) and
// starts `hvctl agent`. A gateway's port admits the overlay CIDR as
// source (allowed address pairs), and the subnet gets a host route for
// the overlay CIDR through it.
//
// OpenStack has no client tokens: every object is tagged (Neutron:
// "hvctl", "hvctl-token=...", "hvctl-cluster=...", "hvctl-address=...",
// "hvctl-lineage=...", "hvctl-expires-at=...") or given the same keys as
// metadata (Nova), named after its token, and looked up by tag and name
// before it is created, so a retry after a crash or a lost response
// finds what the first attempt made. Errors: 429 and 503 are retried
// with backoff, then returned as *provision.RetryableError; a server that
// ends in ERROR with "No valid host was found" is a
// *provision.CapacityError; quota refusals are *QuotaError, naming the
// quota.
//
// With stop_idle set, a node can be stopped (Nova os-stop, polled until
// SHUTOFF, read back as state "stopped") and started again (os-start,
// polled until ACTIVE) instead of being destroyed and made anew
// (provision.Stopper): the server keeps its disk and its port, so its
// addresses and floating IP. stopped_price is what a SHUTOFF server costs
// on the cloud ($ per hour, default 0).
//
// osfake is an in-memory OpenStack (Keystone, Nova, Neutron, Glance)
// for tests.
package openstack
