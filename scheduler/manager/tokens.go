package manager

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Secret is a cluster's root secret. hvctl creates it at the first apply
// and keeps it in the state (mode 0600); the hub's manager gets it to
// check tokens. Every other credential is derived from it.
type Secret []byte

// NewSecret returns 32 random bytes.
func NewSecret() Secret {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// ParseSecret decodes a secret from its base64 form.
func ParseSecret(s string) (Secret, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 16 {
		return nil, errors.New("cluster secret is malformed")
	}
	return b, nil
}

// String is the base64 form, for storing.
func (s Secret) String() string { return base64.RawURLEncoding.EncodeToString(s) }

func (s Secret) mac(parts ...string) string {
	m := hmac.New(sha256.New, s)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// JoinToken mints a single-use join token for node id: hvctl gives one to
// each node it creates. The manager accepts each token once.
func (s Secret) JoinToken(id string) string {
	n := make([]byte, 12)
	if _, err := rand.Read(n); err != nil {
		panic(err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(n)
	return "hvj1." + base64.RawURLEncoding.EncodeToString([]byte(id)) + "." + nonce + "." + s.mac("join", id, nonce)
}

// checkJoinToken verifies a join token and returns its node and nonce.
func (s Secret) checkJoinToken(tok string) (id, nonce string, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 4 || parts[0] != "hvj1" {
		return "", "", errors.New("malformed join token")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", errors.New("malformed join token")
	}
	id, nonce = string(b), parts[2]
	if subtle.ConstantTimeCompare([]byte(s.mac("join", id, nonce)), []byte(parts[3])) != 1 {
		return "", "", errors.New("join token is not valid for this cluster")
	}
	return id, nonce, nil
}

// NodeCredential is what a node uses after joining (heartbeats, peer
// updates, rejoining after a restart).
func (s Secret) NodeCredential(id string) string {
	return "hvn1." + base64.RawURLEncoding.EncodeToString([]byte(id)) + "." + s.mac("node", id)
}

func (s Secret) checkNodeCredential(cred string) (string, error) {
	parts := strings.Split(cred, ".")
	if len(parts) != 3 || parts[0] != "hvn1" {
		return "", errors.New("malformed node credential")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("malformed node credential")
	}
	id := string(b)
	if subtle.ConstantTimeCompare([]byte(s.mac("node", id)), []byte(parts[2])) != 1 {
		return "", fmt.Errorf("node credential is not valid")
	}
	return id, nil
}

// AdminToken is the cluster token hvctl uses for the manager API.
func (s Secret) AdminToken() string { return "hva1." + s.mac("admin") }

func (s Secret) checkAdmin(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(s.AdminToken())) == 1
}

// Site derives the secret of one site's local manager: node credentials
// for the local manager and the global manager's token for it come from
// it, so a site's local manager never holds the cluster secret.
func (s Secret) Site(site string) Secret {
	m := hmac.New(sha256.New, s)
	m.Write([]byte("site\x00" + site))
	return m.Sum(nil)
}

// CheckNodeCredential verifies a node credential and returns its node.
func (s Secret) CheckNodeCredential(cred string) (string, error) { return s.checkNodeCredential(cred) }

// CheckAdmin verifies an admin token.
func (s Secret) CheckAdmin(tok string) bool { return s.checkAdmin(tok) }
