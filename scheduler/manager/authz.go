package manager

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

// memberSpec is what the engine made a member to be: its powers come
// from here, never from what its join request says.
type memberSpec struct {
	Site  string
	Pool  string
	Roles []templates.Role
	Caps  Capabilities
}

// modelMember finds the node or pool slot an hvctl address names in the
// cluster's model. ok is false when the model has no such node (or the
// pool slot is beyond the pool's max).
func modelMember(c *templates.Cluster, address string) (memberSpec, bool) {
	for _, s := range c.AllSites() {
		for _, n := range s.Nodes {
			if provision.NodeAddress(n) != address {
				continue
			}
			roles := slices.Clone(n.Roles)
			if len(roles) == 0 {
				roles = []templates.Role{templates.RoleWorker}
			}
			return memberSpec{Site: s.Path, Roles: roles, Caps: Capabilities{CPUs: n.Instance.CPUs,
				MemoryMiB: n.Instance.Memory >> 20, GPUs: n.Instance.GPUs}}, true
		}
		for _, p := range s.Pools {
			rest, ok := strings.CutPrefix(address, provision.PoolPrefix(p))
			if !ok {
				continue
			}
			var i int
			if _, err := fmt.Sscanf(rest, "%d]", &i); err != nil || provision.PoolNodeAddress(p, i) != address || i >= p.Max {
				continue
			}
			var labels map[string]string
			if len(p.Labels) > 0 {
				labels = make(map[string]string, len(p.Labels))
				for k, v := range p.Labels {
					labels[k] = v
				}
			}
			return memberSpec{Site: s.Path, Pool: p.Path(), Roles: []templates.Role{templates.RoleWorker},
				Caps: Capabilities{CPUs: p.Instance.CPUs, MemoryMiB: p.Instance.Memory >> 20, GPUs: p.Instance.GPUs, Labels: labels}}, true
		}
	}
	return memberSpec{}, false
}

// checkClaims refuses a join request that claims more than the model
// gives its node: other roles, another site or pool, more capacity. A
// request may leave them out (the model fills them in) or repeat them.
func (s memberSpec) checkClaims(req *JoinRequest) error {
	if req.Site != "" && req.Site != s.Site {
		return fmt.Errorf("%w: the node is in site %s, not %s", ErrForbidden, s.Site, req.Site)
	}
	if req.Pool != "" && req.Pool != s.Pool {
		return fmt.Errorf("%w: the node is not in pool %s", ErrForbidden, req.Pool)
	}
	for _, r := range req.Roles {
		if !slices.Contains(s.Roles, r) {
			return fmt.Errorf("%w: the node does not have role %s (its roles are %v, as the template gives them)", ErrForbidden, r, s.Roles)
		}
	}
	c := req.Caps
	if c.CPUs > s.Caps.CPUs || c.MemoryMiB > s.Caps.MemoryMiB || c.GPUs > s.Caps.GPUs {
		return fmt.Errorf("%w: the node claims %d CPUs, %d MiB, %d GPUs; the template gives it %d, %d, %d",
			ErrForbidden, c.CPUs, c.MemoryMiB, c.GPUs, s.Caps.CPUs, s.Caps.MemoryMiB, s.Caps.GPUs)
	}
	for k, v := range c.Labels {
		if s.Caps.Labels[k] != v {
			return fmt.Errorf("%w: the node claims label %s=%s, which the template does not give it", ErrForbidden, k, v)
		}
	}
	return nil
}

// newGeneration returns a fresh credential generation.
func newGeneration() string {
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// authNode checks a node credential: its MAC, and that its generation
// is the node's current one (a revoked node has none).
func (m *Manager) authNode(cred string) (string, error) {
	id, gen, err := m.cfg.Secret.checkNodeCredential(cred)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return id, m.currentLocked(id, gen)
}

func (m *Manager) currentLocked(id, gen string) error {
	cur, ok := m.creds[id]
	if !ok {
		return fmt.Errorf("%w: the credential of node %s was revoked (or the node was removed); the engine must create the node again", ErrUnauthorized, id)
	}
	if cur != gen {
		return fmt.Errorf("%w: this credential of node %s was replaced by a newer one", ErrUnauthorized, id)
	}
	return nil
}

// Revoke removes a member and revokes its credential: it cannot rejoin
// with it, only with a new join token (a node the engine creates again).
func (m *Manager) Revoke(id string) error {
	m.mu.Lock()
	_, had := m.creds[id]
	delete(m.creds, id)
	m.mu.Unlock()
	if err := m.Leave(id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if had {
		m.cfg.Logf("node %s: credential revoked", id)
	}
	return m.saveLocked()
}
