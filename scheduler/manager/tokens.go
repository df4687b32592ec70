package manager

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// strict decodes the base64 parts of tokens: one spelling per value, so
// no second form of a token passes its MAC.
var strict = base64.RawURLEncoding.Strict()

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

// JoinTokenTTL is how long a join token admits its node. A token only
// has to live from the node's create to its first join (minutes: the
// default join timeout of up is 5m); a day covers the slowest boot hvctl
// waits for (cloud capacity retries, a static machine set up by hand the
// same day) and clock skew between the machine that ran hvctl and the
// hub, while a token read later from user data, a disk image or an old
// state backup admits nothing. Single use covers the normal case: a
// token is spent at the first join.
const JoinTokenTTL = 24 * time.Hour

// JoinToken mints a single-use join token for node id that expires after
// JoinTokenTTL: hvctl gives one to each node it creates. The manager
// accepts each token once.
func (s Secret) JoinToken(id string) string {
	return s.JoinTokenUntil(id, time.Now().Add(JoinTokenTTL))
}

// JoinTokenUntil mints a join token for node id that expires at exp. The
// expiry is inside what the MAC covers, so it cannot be extended.
func (s Secret) JoinTokenUntil(id string, exp time.Time) string {
	n := make([]byte, 12)
	if _, err := rand.Read(n); err != nil {
		panic(err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(n)
	e := strconv.FormatInt(exp.Unix(), 10)
	return "hvj2." + base64.RawURLEncoding.EncodeToString([]byte(id)) + "." + nonce + "." + e + "." + s.mac("join2", id, nonce, e)
}

// joinClaims is what a valid join token says.
type joinClaims struct {
	ID, Nonce string
	Expires   time.Time
}

// checkJoinToken verifies a join token's MAC and expiry at now and
// returns what it says.
func (s Secret) checkJoinToken(tok string, now time.Time) (joinClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) == 4 && parts[0] == "hvj1" {
		return joinClaims{}, errors.New("join token has the old format (no expiry), which this manager no longer accepts; create the node again (hvctl apply -replace ADDRESS)")
	}
	if len(parts) != 5 || parts[0] != "hvj2" {
		return joinClaims{}, errors.New("malformed join token")
	}
	b, err := strict.DecodeString(parts[1])
	if err != nil {
		return joinClaims{}, errors.New("malformed join token")
	}
	exp, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return joinClaims{}, errors.New("malformed join token")
	}
	c := joinClaims{ID: string(b), Nonce: parts[2], Expires: time.Unix(exp, 0)}
	if subtle.ConstantTimeCompare([]byte(s.mac("join2", c.ID, c.Nonce, parts[3])), []byte(parts[4])) != 1 {
		return joinClaims{}, errors.New("join token is not valid for this cluster")
	}
	if !now.Before(c.Expires) {
		return joinClaims{}, fmt.Errorf("join token for %s expired at %s; a node that did not join in time is created again (hvctl apply replaces it)", c.ID, c.Expires.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// NodeCredential is what a node uses after joining (heartbeats, peer
// updates, rejoining after a restart). gen is the generation the
// manager gave the node when it joined with a join token: revoking a
// node forgets it, so every earlier credential stops working.
func (s Secret) NodeCredential(id, gen string) string {
	return "hvn2." + base64.RawURLEncoding.EncodeToString([]byte(id)) + "." + gen + "." + s.mac("node2", id, gen)
}

// checkNodeCredential verifies a node credential's MAC and returns its
// node and generation; whether that generation is current is the
// manager's to say (Manager.authNode).
func (s Secret) checkNodeCredential(cred string) (id, gen string, err error) {
	parts := strings.Split(cred, ".")
	if len(parts) != 4 || parts[0] != "hvn2" {
		return "", "", errors.New("malformed node credential")
	}
	b, err := strict.DecodeString(parts[1])
	if err != nil {
		return "", "", errors.New("malformed node credential")
	}
	id, gen = string(b), parts[2]
	if subtle.ConstantTimeCompare([]byte(s.mac("node2", id, gen)), []byte(parts[3])) != 1 {
		return "", "", fmt.Errorf("node credential is not valid")
	}
	return id, gen, nil
}

// SiteClaims are what a node may do at its site's local manager, as
// the engine created it: run jobs (the worker role) of at most its
// capacity, with its labels. They travel inside the site credential,
// under its MAC, so the local manager needs no registry to check a
// work poll.
type SiteClaims struct {
	Worker    bool              `json:"w,omitempty"`
	CPUs      int               `json:"c,omitempty"`
	MemoryMiB int64             `json:"m,omitempty"`
	GPUs      int               `json:"g,omitempty"`
	Labels    map[string]string `json:"l,omitempty"`
}

// SiteCredential is a node's credential for its site's local manager,
// made from the site's secret (Secret.Site), carrying its claims.
func (s Secret) SiteCredential(id string, c SiteClaims) string {
	cb, _ := json.Marshal(c)
	enc := base64.RawURLEncoding.EncodeToString(cb)
	return "hvs1." + base64.RawURLEncoding.EncodeToString([]byte(id)) + "." + enc + "." + s.mac("site-node", id, enc)
}

func (s Secret) checkSiteCredential(cred string) (string, SiteClaims, error) {
	parts := strings.Split(cred, ".")
	if len(parts) != 4 || parts[0] != "hvs1" {
		return "", SiteClaims{}, errors.New("malformed site credential")
	}
	b, err := strict.DecodeString(parts[1])
	if err != nil {
		return "", SiteClaims{}, errors.New("malformed site credential")
	}
	id := string(b)
	if subtle.ConstantTimeCompare([]byte(s.mac("site-node", id, parts[2])), []byte(parts[3])) != 1 {
		return "", SiteClaims{}, fmt.Errorf("site credential is not valid")
	}
	var c SiteClaims
	cb, err := strict.DecodeString(parts[2])
	if err != nil || json.Unmarshal(cb, &c) != nil {
		return "", SiteClaims{}, errors.New("malformed site credential")
	}
	return id, c, nil
}

// ResultGrant is what a site's local manager gives a node with each
// attempt it hands out (s is the site secret): with it, and its own node
// credential, the node may store that attempt's results on the global
// tier, and nothing else.
func (s Secret) ResultGrant(job, node string, attempt int) string {
	a := strconv.Itoa(attempt)
	return a + "." + s.mac("result", job, node, a)
}

// checkResultGrant verifies a result grant and returns its attempt.
func (s Secret) checkResultGrant(grant, job, node string) (int, bool) {
	a, mac, ok := strings.Cut(grant, ".")
	n, err := strconv.Atoi(a)
	if !ok || err != nil || n < 1 {
		return 0, false
	}
	return n, subtle.ConstantTimeCompare([]byte(s.mac("result", job, node, a)), []byte(mac)) == 1
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

// CheckSiteCredential verifies a site credential and returns its node
// and claims.
func (s Secret) CheckSiteCredential(cred string) (string, SiteClaims, error) {
	return s.checkSiteCredential(cred)
}

// CheckAdmin verifies an admin token.
func (s Secret) CheckAdmin(tok string) bool { return s.checkAdmin(tok) }
