package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/agent"
	"github.com/hvctl/hvctl/scheduler/manager"
)

// clusterData is what hvctl keeps about a cluster in the state's data
// ("cluster"; mode 0600, never in plans, JSON or status).
type clusterData struct {
	Secret string `json:"secret"`
	CACert string `json:"ca_cert,omitempty"`
	CAKey  string `json:"ca_key,omitempty"`
	// Created is when the cluster was first applied: its ttl runs from
	// here, so every resource carries the same expiry.
	Created time.Time `json:"created,omitzero"`
}

// created returns when the cluster was first applied (now, and
// recorded in st, on first use).
func created(st *provision.State) time.Time {
	var cd clusterData
	json.Unmarshal(st.Data["cluster"], &cd)
	if cd.Created.IsZero() {
		cd.Created = time.Now().UTC()
		b, _ := json.Marshal(cd)
		st.Data["cluster"] = b
	}
	return cd.Created
}

// Secret returns the cluster secret and CA from st, creating them (in
// st) on first use. A state that holds nodes but lost them is refused:
// a new secret would lock every node out.
func Secret(st *provision.State) (manager.Secret, *manager.CA, error) {
	var cd clusterData
	if raw, ok := st.Data["cluster"]; ok {
		if err := json.Unmarshal(raw, &cd); err != nil {
			return nil, nil, fmt.Errorf("state: cluster data is unreadable: %w", err)
		}
	}
	if cd.Secret == "" {
		if err := lostClusterData(st, "secret"); err != nil {
			return nil, nil, err
		}
		cd.Secret = manager.NewSecret().String()
	}
	if cd.CACert == "" || cd.CAKey == "" {
		if err := lostClusterData(st, "certificate authority"); err != nil {
			return nil, nil, err
		}
		ca, err := manager.NewCA(st.Cluster)
		if err != nil {
			return nil, nil, err
		}
		cd.CACert, cd.CAKey = string(ca.CertPEM), string(ca.KeyPEM)
	}
	b, _ := json.Marshal(cd)
	if st.Data == nil {
		st.Data = map[string]json.RawMessage{}
	}
	st.Data["cluster"] = b
	secret, err := manager.ParseSecret(cd.Secret)
	if err != nil {
		return nil, nil, err
	}
	return secret, &manager.CA{CertPEM: []byte(cd.CACert), KeyPEM: []byte(cd.CAKey)}, nil
}

// lostClusterData explains a state that holds nodes but lost the
// cluster's secret or CA: making new ones would lock every node out.
func lostClusterData(st *provision.State, what string) error {
	var nodes []string
	for _, r := range st.Resources {
		if r.Kind == provision.KindInstance {
			nodes = append(nodes, r.Address)
		}
	}
	if len(nodes) == 0 {
		return nil
	}
	provision.SortAddresses(nodes)
	count := len(nodes)
	more := ""
	if len(nodes) > 3 {
		more = fmt.Sprintf(" and %d more", len(nodes)-3)
		nodes = nodes[:3]
	}
	return fmt.Errorf("the state has lost the cluster's %s (data.cluster) while it holds %d nodes (%s%s): hvctl will not make a new one, because every node and the hub would no longer trust it. Nothing was changed. Restore data.cluster from a backup of the state (hvctl state push FILE), or destroy the cluster (hvctl down) and create it again",
		what, count, strings.Join(nodes, ", "), more)
}

// prepare wires the join-token hook into the engine for st: every node
// the engine creates gets its join token, the manager node its secret,
// template and certificate, and the cluster's expiry.
func (c *Cluster) prepare(st *provision.State) error {
	secret, ca, err := Secret(st)
	if err != nil {
		return err
	}
	b, err := agent.NewBootstrap(c.Config, secret, ca)
	if err != nil {
		return err
	}
	b.Host = c.hostCommand()
	c.boot = b
	c.Engine.Prepare = b.Prepare
	if ttl := c.Config.Cluster.TTL; ttl > 0 {
		c.Engine.ExpiresAt = created(st).Add(ttl)
	}
	return nil
}

// hostCommand is how a manager on this host runs hvctl against this
// cluster (hvctl elastic run): this executable, here, with the options
// that chose the state and the variables.
func (c *Cluster) hostCommand() *agent.HostCommand {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	dir, _ := os.Getwd()
	var args []string
	if c.Store.Backend == nil {
		statePath, _ := filepath.Abs(c.Store.Path)
		args = []string{"-state", statePath}
	} else {
		ws := c.opts.Workspace
		if ws == "" {
			ws = "default"
		}
		args = []string{"-workspace", ws}
		for _, kv := range c.opts.BackendConfig {
			args = append(args, "-backend-config", kv)
		}
	}
	for _, v := range c.opts.Vars {
		args = append(args, "-var", v.Name+"="+v.Value)
	}
	return &agent.HostCommand{Argv: []string{exe}, Dir: dir, Args: append(args, c.Template)}
}
