// Package provision is hvctl's infrastructure engine: it builds a resource
// graph from a template model, diffs it against the state into a plan,
// applies plans by walking the graph with bounded parallelism under each
// provider's rate limit, and keeps the state (serial, lineage, lock,
// atomic writes). Providers live in sub-packages and register themselves.
package provision
