package provision

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
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

// MakeShortRoot makes /run/hvctl, the parent of every ShortDir, and sets
// it to 0755: every user's SLURM clients go through it to a node's public
// directory, and a MkdirAll of a 0700 directory below it (the container
// run directory), or a process under umask 077 (a static host's agent),
// would otherwise have made it 0700.
func MakeShortRoot() error {
	root := filepath.Dir(ShortDir(""))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	return os.Chmod(root, 0o755)
}

// Where a machine that boots the agent from cloud-init keeps it.
const (
	// AgentBinary is where the image must have the hvctl binary (or
	// cloud-init puts it).
	AgentBinary = "/usr/local/bin/hvctl"
	// AgentConfigPath is the agent configuration (mode 0600).
	AgentConfigPath = "/etc/hvctl/agent.json"
	// AgentDir is where the agent keeps its key and credential.
	AgentDir = "/var/lib/hvctl"
	// AgentUnitName is the agent's systemd unit.
	AgentUnitName = "hvctl-agent.service"
)

// NewAgentConfig is the agent configuration of the machine req creates:
// its identity and size from the instance attributes, and every
// attribute (join_token, manager_url, overlay_port, ...; on the manager
// node cluster_secret and template) in Attrs, except user_data, which
// is the provider's to run. Providers set the addresses (SetAddresses)
// and Dir.
func NewAgentConfig(req *CreateRequest) *AgentConfig {
	in := InstanceOf(req.Attrs)
	c := &AgentConfig{
		Cluster: req.Cluster, Address: req.Address, Name: in.Name, Site: in.Site, Pool: in.Pool,
		Roles: in.Roles, Labels: in.Labels, CPUs: in.CPUs, MemoryMiB: in.MemoryMiB, GPUs: in.GPUs,
		Attrs: make(map[string]any, len(req.Attrs)),
	}
	for k, v := range req.Attrs {
		if k != "user_data" {
			c.Attrs[k] = v
		}
	}
	return c
}

// SetAddresses records the machine's addresses, in the fields and in
// Attrs (private_ip, public_address), each only when known.
func (c *AgentConfig) SetAddresses(privateIP, publicAddress string) {
	if privateIP != "" {
		c.PrivateIP = privateIP
		c.Attrs["private_ip"] = privateIP
	}
	if publicAddress != "" {
		c.PublicAddress = publicAddress
		c.Attrs["public_address"] = publicAddress
	}
}

// SystemdUnit is the agent's systemd unit: it runs execStart, restarted
// when it exits.
func SystemdUnit(execStart string) string {
	return `[Unit]
Description=hvctl node agent
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=` + execStart + `
Restart=always
RestartSec=3

[Install]
WantedBy=multi-user.target
`
}

// PublicDir is a directory (mode 0755, beside ShortDir) for what a
// node's users other than root must reach (SLURM: the munge socket, the
// spool directory, slurm.conf): the node's own directory may lie under
// directories only root may enter.
func PublicDir(dir string) string { return ShortDir(dir) + "-pub" }

// ContainerRunDir is podman's --runroot for a node's image store
// (podman wants it under 50 bytes).
func ContainerRunDir(dir string) string { return ShortDir(dir) + "-ctr" }
