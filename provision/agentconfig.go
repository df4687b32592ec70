package provision

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
)

// AgentConfig is the contract between a provider and the node agent: the
// JSON file a provider puts on each machine (mode 0600: its attrs hold
// the join token, and on the manager node the cluster secret) and that
// `hvctl agent -config FILE` reads (scheduler/agent.Config embeds it).
type AgentConfig struct {
	Cluster   string            `json:"cluster"`
	Address   string            `json:"address"` // hvctl address of the node
	Name      string            `json:"name"`
	Site      string            `json:"site"`
	Pool      string            `json:"pool,omitempty"`
	Roles     []string          `json:"roles"`
	Labels    map[string]string `json:"labels,omitempty"`
	CPUs      int               `json:"cpus"`
	MemoryMiB int64             `json:"memory_mib"`
	GPUs      int               `json:"gpus,omitempty"`
	// The node's addresses, as its provider made them.
	PrivateIP     string `json:"private_ip,omitempty"`
	PublicAddress string `json:"public_address,omitempty"`
	// Attrs are the resource attributes the engine passed to Create:
	// join_token, manager_url, overlay_port, cluster_ca, and on the
	// manager node cluster_secret, template and its TLS certificate.
	Attrs map[string]any `json:"attrs,omitempty"`
	// Dir is where the agent keeps its key and credential; default: the
	// config file's directory.
	Dir string `json:"dir,omitempty"`
}

// ShortDir is a short path (under /run/hvctl) that a node's agent links
// to a directory of its own, for paths with length limits: unix socket
// paths (108 bytes) that SLURM and munge build under their directories.
// Providers remove it with the node.
func ShortDir(dir string) string {
	h := sha256.Sum256([]byte(dir))
	return filepath.Join("/run/hvctl", "n-"+hex.EncodeToString(h[:6]))
}
