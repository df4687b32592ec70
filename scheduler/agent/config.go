package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
)

// DefaultManagerPort is the TCP port of the manager API on the hub.
const DefaultManagerPort = 51821

// Config is what an agent is started with: the provider writes it to a
// file (mode 0600) beside the node's other files.
type Config struct {
	provision.AgentConfig
}

// LoadConfig reads an agent config file, checking what the agent needs.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("agent config %s is not valid JSON: %w", path, err)
	}
	if c.Dir == "" {
		c.Dir = filepath.Dir(path)
	}
	for _, req := range []struct{ v, name string }{{c.Cluster, "cluster"}, {c.Address, "address"}, {c.Site, "site"}, {c.attr("manager_url"), "attrs.manager_url"}} {
		if req.v == "" {
			return nil, fmt.Errorf("agent config %s: %s is missing", path, req.name)
		}
	}
	return &c, nil
}

func (c *Config) attr(k string) string {
	s, _ := c.Attrs[k].(string)
	return s
}

// IsHub reports whether the node runs the manager.
func (c *Config) IsHub() bool { return c.attr("cluster_secret") != "" }

func (c *Config) hasRole(r string) bool {
	for _, x := range c.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// Template is how the hub receives the cluster's template: its files and
// variable arguments, loaded again on the hub (manager.LoadTemplate).
type Template = manager.Template

// TemplateVar is a -var assignment (resolved values; -var-file contents
// are passed as assignments too).
type TemplateVar = manager.TemplateVar

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}
