// Package templates reads hvctl templates: it parses HCL files (one file or
// a directory read together), resolves variables from defaults, the
// environment and the command line, evaluates locals and functions, decodes
// the cluster into the typed model (Config, Cluster, Site, Node, Pool, ...)
// and checks it, reporting every problem as an hcl.Diagnostic that points at
// the exact source range. It also formats templates (hvctl fmt).
//
// The package never talks to providers or the network: a provider's own
// settings are kept as evaluated values and checked by that provider at plan
// time.
package templates
