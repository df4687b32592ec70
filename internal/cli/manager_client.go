package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
)

// managerClient talks to the cluster's manager replicas with the
// cluster token, through the one typed manager client.
type managerClient struct {
	*manager.Client
}

// managerFor returns a client for the cluster's managers, or nil when
// the cluster runs no agents (sim) or has no manager node yet
// (cluster.Cluster.Manager).
func (s *session) managerFor(st *provision.State) *managerClient {
	c := s.Manager(st)
	if c == nil {
		return nil
	}
	return &managerClient{c}
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
