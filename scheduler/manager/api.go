package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Handler serves the manager API:
//
//	POST   /v1/join         join with a join token (or rejoin with a node credential)
//	GET    /v1/peers        a node's peer set, long-polled with ?version=N
//	POST   /v1/heartbeat    a node's heartbeat
//	POST   /v1/leave        a node leaves
//	GET    /v1/nodes        every member with its state (cluster token)
//	DELETE /v1/nodes/{id}   remove a member (cluster token)
//	GET    /v1/overlay      every member's peer set (cluster token; public keys only)
//	GET    /v1/healthz      liveness, no auth
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/join", m.handleJoin)
	mux.HandleFunc("GET /v1/peers", m.node(m.handlePeers))
	mux.HandleFunc("POST /v1/heartbeat", m.node(m.handleHeartbeat))
	mux.HandleFunc("POST /v1/leave", m.node(func(w http.ResponseWriter, r *http.Request, id string) {
		if err := m.Leave(id); err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"left": id})
	}))
	mux.HandleFunc("GET /v1/nodes", m.admin(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"nodes": m.Nodes()})
	}))
	mux.HandleFunc("DELETE /v1/nodes/{id}", m.admin(func(w http.ResponseWriter, r *http.Request) {
		if err := m.Revoke(r.PathValue("id")); err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"removed": r.PathValue("id"), "revoked": r.PathValue("id")})
	}))
	// A pending power-off: the queue system gives the node no new work
	// (SLURM: drain), or gets it back ({"drain": false}).
	mux.HandleFunc("POST /v1/nodes/{id}/drain", m.admin(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Drain bool `json:"drain"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{Error: "body: want {\"drain\": true|false}: " + err.Error()})
			return
		}
		if m.cfg.Drain == nil {
			writeJSON(w, http.StatusNotImplemented, apiError{Error: "this cluster's scheduler cannot drain nodes"})
			return
		}
		if err := m.cfg.Drain(r.PathValue("id"), req.Drain); err != nil {
			writeJSON(w, http.StatusBadGateway, apiError{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"node": r.PathValue("id"), "drain": req.Drain})
	}))
	mux.HandleFunc("GET /v1/overlay", m.admin(func(w http.ResponseWriter, r *http.Request) {
		v, sets, err := m.PeerSets()
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"version": v, "peer_sets": sets})
	}))
	m.jobRoutes(mux)
	m.slurmRoutes(mux)
	mux.HandleFunc("PUT /v1/template", m.admin(m.putTemplate))
	mux.HandleFunc("PUT /v1/nodes/{id}/replica", m.admin(m.putReplicaGrant))
	mux.HandleFunc("GET /v1/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// Uploads set their own, larger limits.
	return m.leaderOnly(limitBodies(mux, MaxRequestBytes, func(r *http.Request) bool {
		return r.Method == "PUT" && (strings.HasPrefix(r.URL.Path, "/v1/datasets/") || strings.HasPrefix(r.URL.Path, "/v1/jobs/") || r.URL.Path == "/v1/template")
	}))
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

func (m *Manager) node(f func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := m.authNode(bearer(r))
		if err != nil {
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "a valid node credential is required (Authorization: Bearer ...): " + err.Error()})
			return
		}
		f(w, r, id)
	}
}

func (m *Manager) admin(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !m.cfg.Secret.checkAdmin(bearer(r)) {
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "the cluster token is required (Authorization: Bearer ...); hvctl reads it from the state"})
			return
		}
		f(w, r)
	}
}

type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	var br *BadRequest
	if tl, ok := tooLarge(err); ok {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: tl.Error(), Field: "body"})
		return
	}
	switch {
	case errors.As(err, &br):
		writeJSON(w, http.StatusBadRequest, apiError{Error: br.Msg, Field: br.Field})
	case errors.Is(err, ErrUnauthorized):
		writeJSON(w, http.StatusUnauthorized, apiError{Error: err.Error()})
	case errors.Is(err, ErrForbidden):
		writeJSON(w, http.StatusForbidden, apiError{Error: err.Error()})
	default:
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
	}
}

// DecodeJoin parses and checks a join request body.
func DecodeJoin(r io.Reader) (*JoinRequest, error) {
	var req JoinRequest
	if err := decodeStrict(r, &req); err != nil {
		return nil, err
	}
	switch {
	case req.Address == "":
		return nil, &BadRequest{Field: "address", Msg: "required: the node's hvctl address"}
	case req.Site == "":
		return nil, &BadRequest{Field: "site", Msg: "required: the node's site path"}
	case req.PublicKey == "":
		return nil, &BadRequest{Field: "public_key", Msg: "required: the node's WireGuard public key"}
	case req.Caps.CPUs < 0 || req.Caps.MemoryMiB < 0 || req.Caps.GPUs < 0:
		return nil, &BadRequest{Field: "capabilities", Msg: "must not be negative"}
	}
	if _, err := parseKey(req.PublicKey); err != nil {
		return nil, &BadRequest{Field: "public_key", Msg: "not a WireGuard public key (base64 of 32 bytes)"}
	}
	return &req, nil
}

// decodeStrict decodes one JSON object, rejecting unknown fields and
// trailing data, and names the field that is wrong. A body over
// MaxRequestBytes is an errTooLarge (413); servers bound bodies with
// http.MaxBytesReader before this (limitBodies).
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(&capReader{r: r, n: MaxSiteBatchBytes})
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if tl, ok := tooLarge(err); ok {
			return tl
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &BadRequest{Field: te.Field, Msg: fmt.Sprintf("expected %s", te.Type)}
		}
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return &BadRequest{Field: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), Msg: "unknown field"}
		}
		return &BadRequest{Field: "body", Msg: "not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return &BadRequest{Field: "body", Msg: "trailing data after the JSON object"}
	}
	return nil
}

// capReader is a last bound for a body no server limited: past n bytes
// it fails with errTooLarge instead of truncating silently.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(b []byte) (int, error) {
	if c.n <= 0 {
		return 0, &errTooLarge{limit: MaxSiteBatchBytes}
	}
	if int64(len(b)) > c.n {
		b = b[:c.n]
	}
	n, err := c.r.Read(b)
	c.n -= int64(n)
	return n, err
}

func (m *Manager) handleJoin(w http.ResponseWriter, r *http.Request) {
	req, err := DecodeJoin(r.Body)
	if err != nil {
		writeErr(w, err)
		return
	}
	var from netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		from = ap.Addr()
	}
	resp, err := m.JoinFrom(req, bearer(r), from)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (m *Manager) handlePeers(w http.ResponseWriter, r *http.Request, id string) {
	var since uint64
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeErr(w, &BadRequest{Field: "version", Msg: "must be a number"})
			return
		}
		since = n
	}
	wait := 25 * time.Second
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			writeErr(w, &BadRequest{Field: "wait", Msg: "a duration up to 1m"})
			return
		}
		wait = d
	}
	v, ps, err := m.Peers(id, since, wait)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": v, "peer_set": ps, "runtime": m.RuntimeFor(id)})
}

func (m *Manager) handleHeartbeat(w http.ResponseWriter, r *http.Request, id string) {
	var hb Heartbeat
	if err := decodeStrict(r.Body, &hb); err != nil {
		writeErr(w, err)
		return
	}
	if err := m.Beat(id, &hb); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": "true", "managers": m.Managers()})
}
