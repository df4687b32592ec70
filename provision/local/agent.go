package local

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hvctl/hvctl/provision"
)

// AgentConfig is the node agent's configuration, written (mode 0600) to
// StateDir/local/nodes/ID/agent.json and passed as `-config PATH`. It
// holds secrets the engine passes in Attrs (join token, ...), which is
// why it never goes into the world file.
type AgentConfig struct {
	Cluster string `json:"cluster"`
	// ID is the provider's ID of the node; Address its hvctl address
	// (site.NAME.node.NODE).
	ID        string            `json:"id"`
	Address   string            `json:"address"`
	Name      string            `json:"name"`
	Site      string            `json:"site"`
	Pool      string            `json:"pool,omitempty"`
	Roles     []string          `json:"roles"`
	Labels    map[string]string `json:"labels,omitempty"`
	CPUs      int64             `json:"cpus"`
	MemoryMiB int64             `json:"memory_mib"`
	GPUs      int64             `json:"gpus"`
	// StateDir is the (absolute) hvctl state directory; Dir the node's
	// own directory in it (agent.json, agent.log).
	StateDir string `json:"state_dir"`
	Dir      string `json:"dir"`
	// The node's network: its namespace, site network, addresses.
	Netns         string `json:"netns"`
	Interface     string `json:"interface"` // the site network's link: eth0
	CIDR          string `json:"cidr"`
	PrivateIP     string `json:"private_ip"`
	Gateway       string `json:"gateway"`
	PublicAddress string `json:"public_address,omitempty"`
	// Attrs are every attribute the engine passed to Create, secrets
	// included (hub endpoint, join token, ...).
	Attrs map[string]any `json:"attrs"`
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
	c := &AgentConfig{
		Cluster:       r.Cluster,
		ID:            r.ID,
		Address:       r.Address,
		Name:          r.Name,
		Site:          r.Site,
		StateDir:      p.stateDir(),
		Dir:           r.Dir,
		Netns:         r.Netns,
		Interface:     nodeSite,
		CIDR:          r.CIDR,
		PrivateIP:     r.PrivateIP,
		Gateway:       r.Gateway,
		PublicAddress: r.PublicAddress,
	}
	c.apply(attrs)
	return writeAgentFile(path, c)
}

// apply sets the fields that come from attributes.
func (c *AgentConfig) apply(attrs map[string]any) {
	c.Attrs = make(map[string]any, len(attrs))
	for k, v := range attrs {
		c.Attrs[k] = v
	}
	c.Pool, _ = attrs["pool"].(string)
	c.Roles = toStrings(attrs["roles"])
	if len(c.Roles) == 0 {
		c.Roles = []string{"worker"}
	}
	c.Labels = toStringMap(attrs["labels"])
	c.CPUs = toInt(attrs["cpus"])
	c.MemoryMiB = toInt(attrs["memory_mib"])
	c.GPUs = toInt(attrs["gpus"])
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

func toStrings(v any) []string {
	switch x := v.(type) {
	case []string:
		return append([]string(nil), x...)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

func toStringMap(v any) map[string]string {
	switch x := v.(type) {
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out
	case map[string]any:
		out := make(map[string]string, len(x))
		for k, e := range x {
			out[k] = fmt.Sprint(e)
		}
		return out
	}
	return nil
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int:
		return int64(x)
	case float64:
		return int64(x)
	case json.Number:
		n, _ := strconv.ParseFloat(string(x), 64)
		return int64(n)
	}
	return 0
}

// sameValue compares attribute values by their JSON form.
func sameValue(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
