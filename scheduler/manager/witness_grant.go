package manager

import (
	"crypto/tls"
	"fmt"
	"net/http"
)

// ReplicaGrant is a replica certificate for a node that was made before
// the template named it the control log's witness (so without one):
// hvctl up issues it (the cluster CA stays where hvctl runs) and gives
// it to the leader (PUT /v1/nodes/{id}/replica), the log keeps it, and
// the node gets it in its runtime (over TLS, to its node credential
// only) and starts its witness replica.
type ReplicaGrant struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// putReplicaGrant is PUT /v1/nodes/{id}/replica (cluster token): only
// for the template's witness.
func (m *Manager) putReplicaGrant(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var g ReplicaGrant
	if err := decodeStrict(r.Body, &g); err != nil {
		writeErr(w, err)
		return
	}
	if _, err := tls.X509KeyPair([]byte(g.Cert), []byte(g.Key)); err != nil {
		writeErr(w, &BadRequest{Field: "cert", Msg: "not a certificate and its key: " + err.Error()})
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	wn := Witness(m.cfg.Cluster)
	if wn == nil || wn.Path() != id {
		writeJSON(w, http.StatusForbidden, apiError{Error: fmt.Sprintf("%s is not the control log's witness; only the witness gets a replica certificate this way", id)})
		return
	}
	if _, ok := m.grants[id]; ok {
		// The first grant stands: the node may run with it already.
		writeJSON(w, http.StatusOK, map[string]string{"node": id})
		return
	}
	m.grants[id] = g
	if err := m.saveLocked(); err != nil {
		delete(m.grants, id)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
		return
	}
	m.bumpLocked() // the node's peer poll answers with its runtime
	m.cfg.Logf("node %s is given a replica certificate: it becomes the control log's witness", id)
	writeJSON(w, http.StatusOK, map[string]string{"node": id})
}
