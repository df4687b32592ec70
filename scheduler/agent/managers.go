package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/hvctl/hvctl/provision"
)

// managersFile, in the node's directory, keeps the manager endpoints the
// agent learnt from join and heartbeat answers, so a restarted agent
// reaches the replicas even when the one in its config is gone.
const managersFile = "managers.json"

// managerEndpoints is the agent's manager list: what it learnt last
// (managers.json), then its config's manager_url, then the replicas
// that existed when the node was created (manager_urls).
func managerEndpoints(c *Config) []string {
	var list []string
	if b, err := os.ReadFile(filepath.Join(c.Dir, managersFile)); err == nil {
		var saved []string
		if json.Unmarshal(b, &saved) == nil {
			list = append(list, saved...)
		}
	}
	if u := strings.TrimSuffix(c.attr("manager_url"), "/"); u != "" {
		list = append(list, u)
	}
	if s := c.attr("manager_urls"); s != "" {
		var more []string
		if json.Unmarshal([]byte(s), &more) == nil {
			list = append(list, more...)
		}
	}
	return list
}

// saveManagers records the manager list learnt from the managers.
func (a *Agent) saveManagers(list []string) {
	b, err := json.Marshal(list)
	if err != nil {
		return
	}
	if err := provision.WriteFileAtomic(filepath.Join(a.cfg.Dir, managersFile), b); err != nil {
		a.log.Printf("save the manager list: %v", err)
		return
	}
	a.log.Printf("managers: %s", strings.Join(list, ", "))
}
