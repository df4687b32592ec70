package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/agent"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/templates"
)

// Manager returns a client for the cluster's manager replicas with the
// cluster token, or nil when the cluster runs no agents (sim) or has no
// manager node in st yet. Its endpoints are every manager-role node's
// address in st, the primary manager node first.
func (c *Cluster) Manager(st *provision.State) *manager.Client {
	if c.boot == nil {
		if st.Data["cluster"] == nil {
			return nil
		}
		secret, ca, err := Secret(st.Clone())
		if err != nil {
			return nil
		}
		b, err := agent.NewBootstrap(c.Config, secret, ca)
		if err != nil {
			return nil
		}
		c.boot = b
	}
	mn := provision.ManagerNode(c.Config.Cluster)
	if mn == nil {
		return nil
	}
	nodes := []*templates.Node{mn}
	for _, site := range c.Config.Cluster.AllSites() {
		for _, n := range site.Nodes {
			if n != mn && n.HasRole(templates.RoleManager) {
				nodes = append(nodes, n)
			}
		}
	}
	var urls []string
	for _, n := range nodes {
		r := st.Resource(provision.NodeAddress(n))
		if r == nil || !c.runsAgents(r) {
			continue
		}
		if u := c.boot.ManagerURL(r); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return nil
	}
	cfg := manager.ClientConfig{Endpoints: urls, Token: c.boot.Secret.AdminToken()}
	if tc, err := manager.ClientTLS(c.boot.CA.CertPEM); err == nil {
		cfg.TLS = tc
	}
	return manager.NewClient(cfg)
}

// runsAgents reports whether r's provider runs hvctl agent on its
// machines (not sim).
func (c *Cluster) runsAgents(r *provision.ResourceState) bool {
	p, ok := c.Engine.Provider(r.Provider)
	if !ok {
		return false
	}
	h, ok := p.(provision.AgentHost)
	return ok && h.RunsAgents()
}

// AgentMembers are the member IDs of the instances in st whose
// machines run an agent: the nodes that join the overlay.
func (c *Cluster) AgentMembers(st *provision.State) map[string]bool {
	want := map[string]bool{}
	for _, r := range st.Resources {
		if r.Kind == provision.KindInstance && c.runsAgents(r) {
			want[manager.MemberID(r.Address)] = true
		}
	}
	return want
}

// forget tells the manager that member is going (its credential and
// registry entry), so it is not counted as lost. A cluster without a
// manager, or a manager that does not answer, is not an error: the
// engine's delete is what matters.
func forget(ctx context.Context, mc *manager.Client, member string) {
	if mc == nil {
		return
	}
	mc.Do(ctx, &manager.Call{Method: "DELETE", Path: "/v1/nodes/" + member, Retry: true})
}

// pushTemplate gives the cluster's managers the template about to be
// applied, before any machine it adds is made: they keep it in the
// control log and admit, plan (overlay, replica set) and route by it.
// Nothing to do for a cluster without managers yet (they are created
// with it).
func (c *Cluster) pushTemplate(ctx context.Context, st *provision.State) error {
	mc := c.Manager(st)
	if mc == nil || c.boot == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return mc.PutTemplate(ctx, &c.boot.Template)
}

// grantWitness gives the template's witness a replica certificate when
// it was made before it was the witness (agent.Bootstrap.StaleWitness):
// through the leader, which keeps it in the control log and hands it to
// the node. It returns the witness's address when there was one to give.
func (c *Cluster) grantWitness(ctx context.Context, st *provision.State) (string, error) {
	if c.boot == nil {
		return "", nil
	}
	w := c.boot.StaleWitness(st)
	mc := c.Manager(st)
	if w == "" || mc == nil {
		return w, nil
	}
	cert, key, err := c.boot.CA.IssueReplica()
	if err != nil {
		return w, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return w, mc.GrantReplica(ctx, manager.MemberID(w), &manager.ReplicaGrant{Cert: string(cert), Key: string(key)})
}

// tellManagers gives the managers the template and a stale witness its
// certificate before an apply; what fails is a warning (the apply goes
// on), said through c.Warn.
func (c *Cluster) tellManagers(ctx context.Context, st *provision.State) {
	if err := c.pushTemplate(ctx, st); err != nil {
		c.warn(fmt.Sprintf("the cluster's managers did not take the template (%v); they keep the one they have until the next apply reaches them.", err))
	}
	if w, err := c.grantWitness(ctx, st); err != nil {
		c.warn(fmt.Sprintf("%s is the control log's witness now, but it was made before it was, and its replica certificate could not be given to it (%v): until it is, the replica set cannot lose a manager. Run this again, or make it again: hvctl up -replace=%s", w, err, w))
	}
}

func (c *Cluster) warn(msg string) {
	if c.Warn != nil {
		c.Warn(msg)
	}
}
