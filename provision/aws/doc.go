// Package aws is hvctl's Amazon EC2 provider (aws-sdk-go-v2), registered
// as provider type "aws".
//
// A site's network is a VPC with an internet gateway, a subnet for the
// site's cidr whose route table sends 0.0.0.0/0 to the gateway, and a
// security group that admits the overlay's UDP port (and, on the manager
// node's site, the manager API); a nested site is a subnet of its
// parent's VPC; network.existing_id (or the provider's subnet_id) reuses
// a subnet, and hvctl then makes only the security group. A node is an
// instance launched with RunInstances, idempotent on the engine's client
// token, whose cloud-init user data writes the agent configuration (mode
// 0600) and starts `hvctl agent`; a node with public_ip gets an Elastic
// IP, and a site gateway has source/destination checks off and carries
// the overlay route of its site's route table. Every resource is tagged
// hvctl:cluster, hvctl:address, hvctl:lineage, hvctl:token and, with a
// ttl, hvctl:expires-at, which is how Owned finds them for `hvctl gc`.
//
// With stop_idle = true the provider is a provision.Stopper: an idle
// on-demand node is stopped (StopInstances) instead of terminated, keeping
// its volume, private address and Elastic IP, and started again
// (StartInstances, then the Elastic IP and gateway set up as after a
// boot). StopCost prices a stopped node at its volume (disk_gib, else the
// image's 8 GiB) times ebs_price ($ per GiB-month, default gp3's 0.08)
// over 730 hours, and a start at about a minute. Spot nodes never stop.
//
// Credentials come from the SDK's default chain (environment, shared
// profile, SSO, container and instance metadata) unless the block gives
// access_key and secret_key. The SDK's adaptive retryer absorbs
// throttling; what it gives up on is a provision.RetryableError. EC2's
// capacity errors are provision.CapacityError, quota errors *QuotaError
// (naming the Service Quotas quota to raise).
//
// Package awsfake is an in-memory EC2 endpoint that speaks the Query API,
// for tests: the provider reaches it through the endpoint setting.
package aws
