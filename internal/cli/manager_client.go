package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/agent"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/templates"
)

// managerClient talks to the cluster's manager replicas with the
// cluster token, through the one typed manager client.
type managerClient struct {
	*manager.Client
}

// managerFor returns a client for the cluster's managers, or nil when
// the cluster runs no agents (sim) or has no manager node yet. Its
// endpoints are every manager-role node's address in the state, the
// primary manager node first.
func (s *session) managerFor(st *provision.State) *managerClient {
	if s.boot == nil {
		if st.Data["cluster"] == nil {
			return nil
		}
		secret, ca, err := clusterSecret(st.Clone())
		if err != nil {
			return nil
		}
		b, _ := agent.NewBootstrap(s.cfg, secret, ca)
		s.boot = b
	}
	mn := provision.ManagerNode(s.cfg.Cluster)
	if mn == nil {
		return nil
	}
	nodes := []*templates.Node{mn}
	for _, site := range s.cfg.Cluster.AllSites() {
		for _, n := range site.Nodes {
			if n != mn && n.HasRole(templates.RoleManager) {
				nodes = append(nodes, n)
			}
		}
	}
	var urls []string
	for _, n := range nodes {
		r := st.Resource(provision.NodeAddress(n))
		if r == nil {
			continue
		}
		if p, ok := s.eng.Provider(r.Provider); !ok {
			continue
		} else if h, ok := p.(provision.AgentHost); !ok || !h.RunsAgents() {
			continue
		}
		if u := s.boot.ManagerURL(r); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return nil
	}
	cfg := manager.ClientConfig{Endpoints: urls, Token: s.boot.Secret.AdminToken()}
	if tc, err := manager.ClientTLS(s.boot.CA.CertPEM); err == nil {
		cfg.TLS = tc
	}
	return &managerClient{manager.NewClient(cfg)}
}

// pushTemplate gives the cluster's managers the template about to be
// applied, before any machine it adds is made: they keep it in the
// control log and admit, plan (overlay, replica set) and route by it.
// Nothing to do for a cluster without managers yet (they are created
// with it).
func (s *session) pushTemplate(ctx context.Context, st *provision.State) error {
	mc := s.managerFor(st)
	if mc == nil || s.boot == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return mc.PutTemplate(ctx, &s.boot.Template)
}

// grantWitness gives the template's witness a replica certificate when
// it was made before it was the witness (agent.Bootstrap.StaleWitness):
// through the leader, which keeps it in the control log and hands it to
// the node. It returns the witness's address when there was one to give.
func (s *session) grantWitness(ctx context.Context, st *provision.State) (string, error) {
	if s.boot == nil {
		return "", nil
	}
	w := s.boot.StaleWitness(st)
	mc := s.managerFor(st)
	if w == "" || mc == nil {
		return w, nil
	}
	cert, key, err := s.boot.CA.IssueReplica()
	if err != nil {
		return w, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return w, mc.GrantReplica(ctx, manager.MemberID(w), &manager.ReplicaGrant{Cert: string(cert), Key: string(key)})
}

// nodes lists the cluster's members.
func (m *managerClient) nodes(ctx context.Context) ([]manager.Node, error) {
	return m.Nodes(ctx)
}

// send is a call without a typed method (a JSON body from body, the
// answer into out: a *[]byte takes it raw); it returns the HTTP status
// of an error answer.
func (m *managerClient) send(a *App, method, path string, body io.Reader, out any) (int, error) {
	c := &manager.Call{Method: method, Path: path, Out: out, Retry: method == "GET" || method == "DELETE"}
	if body != nil {
		b, err := io.ReadAll(body)
		if err != nil {
			return 0, err
		}
		c.Body = func() (io.ReadCloser, int64, error) { return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil }
		c.ContentType = "application/json"
	}
	err := m.Do(a.Ctx, c)
	if err != nil {
		return manager.StatusOf(err), err
	}
	return 200, nil
}

// get is a GET without a typed method.
func (m *managerClient) get(a *App, path string, out any) error {
	_, err := m.send(a, "GET", path, nil, out)
	return err
}

// managerDetail is what the manager said about err, with what to do.
func managerDetail(err error) string {
	var ae *manager.APIError
	if errors.As(err, &ae) {
		if h := ae.Hint(); h != "" {
			return ae.Detail() + "\n\n" + h
		}
		return ae.Detail()
	}
	return err.Error()
}

// failManager prints a manager error as "Error: summary" with what the
// manager said and what to do.
func (a *App) failManager(summary string, err error) int {
	var ue *manager.UnreachableError
	if errors.As(err, &ue) {
		return a.fail(summary, fmt.Sprintf("%v\n\nNo cluster manager answered. Is the cluster up? hvctl status shows its nodes; the hub agent's log is in the state directory.", err))
	}
	return a.fail(summary, managerDetail(err))
}
