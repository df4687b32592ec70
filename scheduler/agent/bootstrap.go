package agent

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/templates"
)

// Bootstrap hands each node what it needs to join its cluster: a
// single-use join token and the manager's URL; the manager node also gets
// the cluster secret and the template. It plugs into provision.Engine's
// Prepare hook, and adds nothing for providers whose machines run no
// agent (sim).
type Bootstrap struct {
	Cluster     *templates.Cluster
	Secret      manager.Secret
	CA          *manager.CA
	Template    Template
	ManagerPort int
	// Host, when set, is how hvctl was run; a manager node whose
	// provider is provision.HostLocal gets it (wrapped) to run hvctl
	// against the same state.
	Host *HostCommand
}

// HostCommand is how the manager node runs hvctl against the cluster's
// own state and template: the elastic daemon, SLURM's power-saving
// programs. argv + VERB + Args is the command line.
type HostCommand struct {
	Argv []string `json:"argv"` // the hvctl executable, wrapped by the provider
	Dir  string   `json:"dir"`  // working directory
	// Args follow the verb: -state, -var and the template path.
	Args []string `json:"args"`
}

// Command is the command line of an hvctl verb (with its own flags
// before the template arguments).
func (h *HostCommand) Command(verb []string, flags ...string) []string {
	out := append(append([]string(nil), h.Argv...), verb...)
	return append(append(out, flags...), h.Args...)
}

// NewBootstrap packs a loaded template for the manager node: its own
// files as ManagerCopy leaves them, and the values of the variables that
// copy still uses (variable files are not sent: values go as
// assignments, Template.Vars).
func NewBootstrap(cfg *templates.Config, secret manager.Secret, ca *manager.CA) (*Bootstrap, error) {
	t := Template{Files: map[string]string{}}
	src := map[string][]byte{}
	for _, name := range cfg.Sources {
		if f := cfg.Files[name]; f != nil {
			src[filepath.Base(name)] = f.Bytes
		}
	}
	copies, used, err := ManagerCopy(src)
	if err != nil {
		return nil, err
	}
	for name, b := range copies {
		t.Files[name] = string(b)
	}
	for _, v := range cfg.Variables {
		if !used[v.Name] || v.Value.IsNull() || !v.Value.IsWhollyKnown() {
			continue
		}
		val := string(hclwrite.TokensForValue(v.Value).Bytes())
		if v.Value.Type() == cty.String {
			val = v.Value.AsString()
		}
		t.Vars = append(t.Vars, TemplateVar{Name: v.Name, Value: val})
	}
	return &Bootstrap{Cluster: cfg.Cluster, Secret: secret, CA: ca, Template: t, ManagerPort: DefaultManagerPort}, nil
}

// ManagerCopy is the template (file name to source) as the manager
// node gets it, and the variables it still uses. The manager loads the
// template for the cluster (sites, pools, roles, overlay, scheduler) and
// never uses a provider, the state or an output: the machines are made
// where hvctl runs. So every provider block is emptied of its settings
// (kept, so the sites' provider.TYPE.NAME references resolve), and the
// state and output blocks go; then the variables and locals nothing left
// refers to go too, and their values are not sent. Provider credentials
// (a private_key, file("keys/...") that exists only beside the template,
// a secret passed in a variable), the state's passphrase and sensitive
// outputs never leave the machine hvctl runs on, and the manager's load
// cannot fail on a file it does not have.
func ManagerCopy(files map[string][]byte) (map[string][]byte, map[string]bool, error) {
	parsed := map[string]*hclwrite.File{}
	for name, src := range files {
		f, diags := hclwrite.ParseConfig(src, name, hcl.InitialPos)
		if diags.HasErrors() {
			return nil, nil, fmt.Errorf("pack %s for the manager node: %s", name, diags.Error())
		}
		body := f.Body()
		for _, b := range body.Blocks() {
			switch b.Type() {
			case "provider":
				for a := range b.Body().Attributes() {
					b.Body().RemoveAttribute(a)
				}
				for _, nb := range b.Body().Blocks() {
					b.Body().RemoveBlock(nb)
				}
			case "state", "output":
				body.RemoveBlock(b)
			}
		}
		parsed[name] = f
	}
	// What is left refers to some variables, directly or through
	// locals (which may refer to each other).
	vars, locals := map[string]bool{}, map[string]bool{}
	localRefs := map[string][2][]string{} // local -> (vars, locals) it refers to
	var pending []string
	for name, f := range parsed {
		sf, diags := hclsyntax.ParseConfig(f.Bytes(), name, hcl.InitialPos)
		if diags.HasErrors() {
			return nil, nil, fmt.Errorf("pack %s for the manager node: %s", name, diags.Error())
		}
		for _, b := range sf.Body.(*hclsyntax.Body).Blocks {
			switch b.Type {
			case "variable": // its validations refer to itself only
			case "locals":
				for n, a := range b.Body.Attributes {
					v, l := references(a.Expr)
					localRefs[n] = [2][]string{v, l}
				}
			default:
				hclsyntax.VisitAll(b.Body, func(n hclsyntax.Node) hcl.Diagnostics {
					if e, ok := n.(hclsyntax.Expression); ok {
						v, l := references(e)
						for _, x := range v {
							vars[x] = true
						}
						pending = append(pending, l...)
					}
					return nil
				})
			}
		}
	}
	for len(pending) > 0 {
		l := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if locals[l] {
			continue
		}
		locals[l] = true
		for _, x := range localRefs[l][0] {
			vars[x] = true
		}
		pending = append(pending, localRefs[l][1]...)
	}
	out := map[string][]byte{}
	for name, f := range parsed {
		body := f.Body()
		for _, b := range body.Blocks() {
			switch b.Type() {
			case "variable":
				if l := b.Labels(); len(l) == 1 && !vars[l[0]] {
					body.RemoveBlock(b)
				}
			case "locals":
				for n := range b.Body().Attributes() {
					if !locals[n] {
						b.Body().RemoveAttribute(n)
					}
				}
			}
		}
		out[name] = f.Bytes()
	}
	return out, vars, nil
}

// references are the variables (var.NAME) and locals (local.NAME) e
// refers to.
func references(e hclsyntax.Expression) (vars, locals []string) {
	for _, tr := range e.Variables() {
		if len(tr) < 2 {
			continue
		}
		a, ok := tr[1].(hcl.TraverseAttr)
		if !ok {
			continue
		}
		switch tr.RootName() {
		case "var":
			vars = append(vars, a.Name)
		case "local":
			locals = append(locals, a.Name)
		}
	}
	return vars, locals
}

// ManagerURL is where the manager of a cluster listens, given the
// manager node's resource in the state.
func (b *Bootstrap) ManagerURL(r *provision.ResourceState) string {
	if r == nil {
		return ""
	}
	host, _ := r.Attrs["public_address"].(string)
	if host == "" {
		host, _ = r.Attrs["private_ip"].(string)
	}
	if host == "" {
		return ""
	}
	return "https://" + host + ":" + strconv.Itoa(b.ManagerPort)
}

// Prepare is the provision.Engine Prepare hook.
func (b *Bootstrap) Prepare(st *provision.State, c *provision.Change, p provision.Provider) (provision.Attrs, error) {
	if h, ok := p.(provision.AgentHost); !ok || !h.RunsAgents() || c.Kind != provision.KindInstance {
		return nil, nil
	}
	mn := provision.ManagerNode(b.Cluster)
	if mn == nil {
		return nil, fmt.Errorf("the cluster has no node to run the manager: name a hub in overlay.hubs, or give a node the manager role")
	}
	port := b.Cluster.Overlay.Port
	if port == 0 {
		port = 51820
	}
	a := provision.Attrs{
		"join_token":   b.Secret.JoinToken(manager.MemberID(c.Address)),
		"overlay_port": int64(port),
		"cluster_ca":   string(b.CA.CertPEM),
		"overlay_cidr": b.Cluster.Overlay.CIDR.String(),
	}
	mAddr := provision.NodeAddress(mn)
	// Every manager node runs a replica of the control log (a SLURM
	// cluster keeps one manager: slurmctld runs beside it); with two,
	// a witness gives the third vote.
	replicas := b.replicaNodes(mn)
	if urls := b.managerURLs(st, replicas); len(urls) > 0 {
		ub, _ := json.Marshal(urls)
		a["manager_urls"] = string(ub)
	}
	if len(replicas) > 1 {
		if w := manager.Witness(b.Cluster); w != nil && provision.NodeAddress(w) == c.Address {
			if err := b.replicaCert(a); err != nil {
				return nil, err
			}
			a["raft_witness"] = "true"
		}
	}
	isReplica := false
	for _, n := range replicas {
		isReplica = isReplica || provision.NodeAddress(n) == c.Address
	}
	if isReplica {
		tb, err := json.Marshal(b.Template)
		if err != nil {
			return nil, err
		}
		cert, key, err := b.CA.IssueServer()
		if err != nil {
			return nil, err
		}
		a["cluster_secret"] = b.Secret.String()
		a["template"] = string(tb)
		a["tls_cert"], a["tls_key"] = string(cert), string(key)
		// Every replica may speak raft, a sole one too: a cluster that
		// gains a second manager node later grows its log into a
		// replica set.
		if err := b.replicaCert(a); err != nil {
			return nil, err
		}
		// Every replica runs the elastic daemon where hvctl runs (one
		// leads, the others stand by), so elasticity outlives the node
		// that runs it.
		if hl, ok := p.(provision.HostLocal); ok && b.Host != nil {
			h := *b.Host
			h.Argv = hl.HostCommand(h.Argv)
			hb, err := json.Marshal(h)
			if err != nil {
				return nil, err
			}
			a["hvctl_command"] = string(hb)
		}
	}
	if c.Address == mAddr {
		a["manager_url"] = "https://127.0.0.1:" + strconv.Itoa(b.ManagerPort)
		// The primary bootstraps the log only for a new cluster. A
		// primary created while other replicas exist (a replaced hub)
		// starts empty and unbootstrapped: the replica set's leader
		// sends it the log. Bootstrapping it would start a second log
		// with a leader of its own.
		if !b.otherReplicasExist(st, replicas, mAddr) {
			a["raft_bootstrap"] = "true"
		}
		return a, nil
	}
	url := b.ManagerURL(st.Resource(mAddr))
	if url == "" {
		return nil, fmt.Errorf("the manager node %s has no address yet; create it first", mAddr)
	}
	a["manager_url"] = url
	return a, nil
}

// replicaNodes are the nodes that run a manager replica: the manager
// node, and every other node with the manager role (not in a SLURM
// cluster).
func (b *Bootstrap) replicaNodes(mn *templates.Node) []*templates.Node {
	out := []*templates.Node{mn}
	if b.Cluster.Scheduler.Type == "slurm" {
		return out
	}
	for _, s := range b.Cluster.AllSites() {
		for _, n := range s.Nodes {
			if n != mn && n.HasRole(templates.RoleManager) {
				out = append(out, n)
			}
		}
	}
	return out
}

// managerURLs are the API URLs of the replicas that exist already.
func (b *Bootstrap) managerURLs(st *provision.State, replicas []*templates.Node) []string {
	var out []string
	for _, n := range replicas {
		if u := b.ManagerURL(st.Resource(provision.NodeAddress(n))); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// otherReplicasExist reports whether a replica other than the primary
// (or the witness) is in the state already.
func (b *Bootstrap) otherReplicasExist(st *provision.State, replicas []*templates.Node, primary string) bool {
	if len(replicas) < 2 {
		return false
	}
	nodes := append([]*templates.Node(nil), replicas...)
	if w := manager.Witness(b.Cluster); w != nil {
		nodes = append(nodes, w)
	}
	for _, n := range nodes {
		if a := provision.NodeAddress(n); a != primary && st.Resource(a) != nil {
			return true
		}
	}
	return false
}

// replicaCert gives a node a replica certificate: it may speak raft.
func (b *Bootstrap) replicaCert(a provision.Attrs) error {
	cert, key, err := b.CA.IssueReplica()
	if err != nil {
		return fmt.Errorf("issue a replica certificate: %w", err)
	}
	a["replica_cert"], a["replica_key"] = string(cert), string(key)
	return nil
}

// StaleWitness is the address of the template's witness when that node
// exists already without a replica certificate (it was made before the
// template named it the witness: before a second manager node was
// added), "" otherwise. Such a node cannot vote: the replica set has
// two working voters of three and survives no loss until the node is
// made again (hvctl up -replace=ADDR).
func (b *Bootstrap) StaleWitness(st *provision.State) string {
	mn := provision.ManagerNode(b.Cluster)
	if mn == nil || len(b.replicaNodes(mn)) < 2 {
		return ""
	}
	w := manager.Witness(b.Cluster)
	if w == nil {
		return ""
	}
	r := st.Resource(provision.NodeAddress(w))
	if r == nil {
		return ""
	}
	if c, _ := r.Attrs["replica_cert"].(string); c != "" {
		return ""
	}
	return r.Address
}
