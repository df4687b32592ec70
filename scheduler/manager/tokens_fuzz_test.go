package manager

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzSecret is fixed so that seeds minted with it stay valid.
var fuzzSecret = Secret("hvctl-fuzz-secret-0123456789abcdef")

// FuzzCredentials feeds every token and credential decoder: none may
// panic, and whatever one accepts must be the one canonical form the
// secret mints for what it says (no second spelling of a token passes
// its MAC, so "single use" and "revoked" cannot be sidestepped).
func FuzzCredentials(f *testing.F) {
	now := time.Unix(1.7e9, 0)
	f.Add(fuzzSecret.JoinTokenUntil("onprem.wn[0]", now.Add(time.Hour)))
	f.Add(fuzzSecret.NodeCredential("onprem.wn[0]", "gen1"))
	f.Add(fuzzSecret.SiteCredential("cloud.burst[2]", SiteClaims{Worker: true, CPUs: 2, MemoryMiB: 4096, Labels: map[string]string{"arch": "x86_64"}}))
	f.Add("2." + fuzzSecret.ResultGrant("job1", "onprem.wn[0]", 2)[2:])
	f.Add("hvj1.b25wcmVt.bm9uY2U.mac")
	f.Add("hvj2...." + strings.Repeat("a", 43))
	f.Add("hvn2.%%%.x.y")
	f.Fuzz(func(t *testing.T, tok string) {
		if c, err := fuzzSecret.checkJoinToken(tok, now); err == nil {
			e := strconv.FormatInt(c.Expires.Unix(), 10)
			want := "hvj2." + b64(c.ID) + "." + c.Nonce + "." + e + "." + fuzzSecret.mac("join2", c.ID, c.Nonce, e)
			if tok != want || !now.Before(c.Expires) {
				t.Fatalf("accepted join token %q, canonical %q (expires %s)", tok, want, c.Expires)
			}
		}
		if id, gen, err := fuzzSecret.checkNodeCredential(tok); err == nil && tok != fuzzSecret.NodeCredential(id, gen) {
			t.Fatalf("accepted node credential %q for %s/%s, canonical %q", tok, id, gen, fuzzSecret.NodeCredential(id, gen))
		}
		if id, c, err := fuzzSecret.checkSiteCredential(tok); err == nil {
			parts := strings.Split(tok, ".")
			if b64(id) != parts[1] || fuzzSecret.mac("site-node", id, parts[2]) != parts[3] {
				t.Fatalf("accepted site credential %q for %s %+v", tok, id, c)
			}
		}
		if n, ok := fuzzSecret.checkResultGrant(tok, "job1", "onprem.wn[0]"); ok && tok != fuzzSecret.ResultGrant("job1", "onprem.wn[0]", n) {
			t.Fatalf("accepted result grant %q for attempt %d", tok, n)
		}
	})
}

func b64(s string) string { return strings.TrimSuffix(Secret(s).String(), "=") }
