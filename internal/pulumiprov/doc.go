// Package pulumiprov serves hvctl clusters to Pulumi: a resource provider
// speaking the Pulumi resource-provider gRPC protocol (built only on
// github.com/pulumi/pulumi/sdk/v3: the generated types in sdk/v3/proto/go
// and the plugin helpers), with one resource, hvctl:index:Cluster.
//
// The engine starts the plugin binary pulumi-resource-hvctl, a wrapper
// that `hvctl pulumi install` writes around `hvctl pulumi-provider`.
// Check is hvctl's validate (located diagnostics become check failures
// naming file and line), Diff is hvctl's plan, Create and Update apply,
// Delete destroys, Read refreshes. The cluster's own state stays in
// hvctl's state backend, locked as for every hvctl command; Pulumi keeps
// only the inputs and the public outputs (hub endpoint, nodes, overlay
// CIDR, the template's non-sensitive outputs): no join token, key or
// cluster secret ever reaches Pulumi.
//
// The provider runs cluster operations through the Clusters interface;
// Engine implements it in-process on internal/cluster.
package pulumiprov
