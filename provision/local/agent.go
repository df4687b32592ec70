package local

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hvctl/hvctl/provision"
)

// AgentConfig is the node agent's configuration, written (mode 0600) to
// StateDir/local/nodes/ID/agent.json and passed as `-config PATH`: the
// shared provider-agent contract and the node's namespace. It holds
// secrets the engine passes in Attrs (join token, ...), which is why it
// never goes into the world file.
type AgentConfig struct {
	provision.AgentConfig
	// ID is the provider's ID of the node.
	ID string `json:"id"`
	// StateDir is the (absolute) hvctl state directory; Dir (in the
	// embedded config) the node's own directory in it (agent.json,
	// agent.log).
	StateDir string `json:"state_dir"`
	// The node's network: its namespace, site network, gateway.
	Netns     string `json:"netns"`
	Interface string `json:"interface"` // the site network's link: eth0
	CIDR      string `json:"cidr"`
	Gateway   string `json:"gateway"`
}

// ReadAgentConfig reads an agent.json the local provider wrote.
func ReadAgentConfig(path string) (*AgentConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c AgentConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("agent config %s: %w", path, err)
	}
	return &c, nil
}

// writeAgentConfig writes r's agent.json from attrs (when nil, the
// existing file is kept, or one is made from the world's attributes).
func (p *Provider) writeAgentConfig(r *record, attrs provision.Attrs) error {
	path := filepath.Join(r.Dir, "agent.json")
	if attrs == nil {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		attrs = r.Attrs
	}
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return err
	}
	c := &AgentConfig{ID: r.ID, StateDir: p.stateDir(), Netns: r.Netns, Interface: nodeSite, CIDR: r.CIDR, Gateway: r.Gateway}
	c.Cluster, c.Address, c.Name, c.Site, c.Dir = r.Cluster, r.Address, r.Name, r.Site, r.Dir
	c.PrivateIP, c.PublicAddress = r.PrivateIP, r.PublicAddress
	c.apply(attrs)
	return writeAgentFile(path, c)
}

// apply sets the fields that come from attributes: those of
// provision.NewAgentConfig, keeping the identity and addresses.
func (c *AgentConfig) apply(attrs map[string]any) {
	n := provision.NewAgentConfig(&provision.CreateRequest{Attrs: attrs})
	c.Pool, c.Roles, c.Labels, c.CPUs, c.MemoryMiB, c.GPUs = n.Pool, n.Roles, n.Labels, n.CPUs, n.MemoryMiB, n.GPUs
	c.Attrs = make(map[string]any, len(attrs))
	for k, v := range attrs {
		c.Attrs[k] = v
	}
}

// updateAgentConfig rewrites labels and roles in r's agent.json.
func updateAgentConfig(r *record, after provision.Attrs) error {
	path := filepath.Join(r.Dir, "agent.json")
	c, err := ReadAgentConfig(path)
	if err != nil {
		return fmt.Errorf("local: update %s: %w", r.Address, err)
	}
	attrs := c.Attrs
	if attrs == nil {
		attrs = map[string]any{}
	}
	for k := range updatable {
		if v, ok := after[k]; ok {
			attrs[k] = v
		} else {
			delete(attrs, k)
		}
	}
	c.apply(attrs)
	return writeAgentFile(path, c)
}

func writeAgentFile(path string, c *AgentConfig) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return provision.WriteFileAtomic(path, append(b, '\n'))
}

// sameValue compares attribute values by their JSON form.
func sameValue(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
