package manager

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/hvctl/hvctl/templates"
)

// Template is the cluster's template as the managers hold it: its
// files (as agent.ManagerCopy leaves them) and variable assignments.
// The first comes with the manager node's bootstrap; hvctl up sends
// each later one (PUT /v1/template), and it is kept in the control log,
// so every replica, a new leader and a restarted manager use the one
// the cluster was last applied with.
type Template struct {
	Files map[string]string `json:"files"`
	Vars  []TemplateVar     `json:"vars,omitempty"`
}

// TemplateVar is a -var assignment (resolved values; -var-file contents
// are passed as assignments too).
type TemplateVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// MaxTemplateBytes bounds a template sent to the managers.
const MaxTemplateBytes = 8 << 20

// Hash identifies a template's content.
func (t *Template) Hash() string {
	names := make([]string, 0, len(t.Files))
	for n := range t.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, _ := json.Marshal([]string{n, t.Files[n]})
		h.Write(b)
	}
	b, _ := json.Marshal(t.Vars)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// LoadTemplate loads t (dir is where relative paths resolve).
func LoadTemplate(t *Template, dir string) (*templates.Config, error) {
	if t == nil || len(t.Files) == 0 {
		return nil, fmt.Errorf("the template has no files")
	}
	files := map[string][]byte{}
	for k, v := range t.Files {
		files[k] = []byte(v)
	}
	var args []templates.VarArg
	for _, v := range t.Vars {
		args = append(args, templates.VarArg{Name: v.Name, Value: v.Value})
	}
	cfg, d := templates.LoadSource(files, dir, templates.LoadOptions{Args: args})
	if d.HasErrors() {
		return nil, fmt.Errorf("load the cluster template: %s", d.Error())
	}
	return cfg, nil
}

// checkTemplate loads t and checks that the manager may take it: the
// same cluster, the same overlay range.
func (m *Manager) checkTemplate(t *Template) (*templates.Config, error) {
	cfg, err := LoadTemplate(t, m.cfg.TemplateDir)
	if err != nil {
		return nil, &BadRequest{Field: "template", Msg: err.Error()}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cfg.Cluster.Name != m.cfg.Cluster.Name {
		return nil, &BadRequest{Field: "template", Msg: fmt.Sprintf("the template is of cluster %q; this is cluster %q", cfg.Cluster.Name, m.cfg.Cluster.Name)}
	}
	if cfg.Cluster.Overlay.CIDR != m.cfg.Cluster.Overlay.CIDR {
		return nil, &BadRequest{Field: "template", Msg: fmt.Sprintf("overlay.cidr changed from %s to %s; the cluster's addresses cannot move", m.cfg.Cluster.Overlay.CIDR, cfg.Cluster.Overlay.CIDR)}
	}
	return cfg, nil
}

// useTemplate makes the manager work with cfg (loaded from t): what a
// node may join as, the sites the job table routes to, the overlay plan
// (hubs, topology: every member's peer set is planned again) and the
// replica set.
func (m *Manager) useTemplate(t *Template, cfg *templates.Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg.Cluster = cfg.Cluster
	m.template = t.Hash()
	m.global.SetSites(siteInfos(cfg.Cluster))
	m.bumpLocked() // replans; agents long-polling take their new peer sets
	m.addVotersLocked()
	if m.cfg.OnTemplate != nil {
		m.cfg.OnTemplate(cfg)
	}
}

// TemplateHash is the hash of the template the manager works with ("" =
// the one it was started with, when Config.Template was not given).
func (m *Manager) TemplateHash() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.template
}

// Cluster is the cluster model the manager works with.
func (m *Manager) Cluster() *templates.Cluster {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.Cluster
}

// putTemplate is PUT /v1/template (cluster token): the template is
// checked, written to the control log, then used.
func (m *Manager) putTemplate(w http.ResponseWriter, r *http.Request) {
	var t Template
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, MaxTemplateBytes), &t); err != nil {
		writeErr(w, err)
		return
	}
	if t.Hash() == m.TemplateHash() {
		writeJSON(w, http.StatusOK, map[string]string{"template": t.Hash()})
		return
	}
	cfg, err := m.checkTemplate(&t)
	if err != nil {
		writeErr(w, err)
		return
	}
	if m.replica != nil {
		if err := m.replica.apply(&Command{Op: OpTemplate, Template: &t}); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
			return
		}
	}
	m.useTemplate(&t, cfg)
	m.cfg.Logf("the cluster's template changed (%s)", t.Hash()[:12])
	writeJSON(w, http.StatusOK, map[string]string{"template": t.Hash()})
}

// templateFromLog makes a manager that starts leading use the template
// last written to the log, when it is not the one it has.
func (m *Manager) templateFromLog() {
	t := m.replica.fsm.template()
	if t == nil || t.Hash() == m.TemplateHash() {
		return
	}
	cfg, err := m.checkTemplate(t)
	if err != nil {
		m.cfg.Logf("control log: the template in the log does not load here: %v", err)
		return
	}
	m.useTemplate(t, cfg)
	m.cfg.Logf("control log: using the template last applied (%s)", t.Hash()[:12])
}
