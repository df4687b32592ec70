package openstack

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
)

// Tag keys. Neutron objects carry them as tags "KEY=VALUE" (and the bare
// tag "hvctl"); servers carry them as metadata.
const (
	tagMarker  = "hvctl"
	keyToken   = "hvctl-token"
	keyCluster = "hvctl-cluster"
	keyAddress = "hvctl-address"
	keyLineage = "hvctl-lineage"
	keyExpires = "hvctl-expires-at"
	keyNetwork = "hvctl-network" // the site network an object belongs to
	keyServer  = "hvctl-server"  // the server a port belongs to
	tagGateway = "hvctl-gateway" // a gateway's port (it has a subnet host route)
)

// owner is what identifies the resource an object belongs to.
type owner struct {
	Token, Cluster, Address, Lineage string
	ExpiresAt                        time.Time
}

func (o owner) meta() map[string]string {
	m := map[string]string{keyToken: o.Token, keyCluster: o.Cluster, keyAddress: o.Address, keyLineage: o.Lineage}
	if !o.ExpiresAt.IsZero() {
		m[keyExpires] = o.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return m
}

// tags are o's Neutron tags plus extra "KEY=VALUE" or bare tags.
func (o owner) tags(extra ...string) []string {
	out := []string{tagMarker}
	for k, v := range o.meta() {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	out = append(out, extra...)
	sort.Strings(out)
	return out
}

func tag(k, v string) string { return k + "=" + v }

// tagValue returns the value of KEY=VALUE among tags.
func tagValue(tags []string, key string) string {
	for _, t := range tags {
		if v, ok := strings.CutPrefix(t, key+"="); ok {
			return v
		}
	}
	return ""
}

func hasTag(tags []string, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
}

// ensureTags makes sure a Neutron object has every tag of want (one PUT
// replacing the set, when any is missing).
func ensureTags(ctx context.Context, c *gophercloud.ServiceClient, resType, id string, have, want []string) error {
	missing := false
	for _, t := range want {
		if !hasTag(have, t) {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	all := append([]string(nil), have...)
	for _, t := range want {
		if !hasTag(all, t) {
			all = append(all, t)
		}
	}
	sort.Strings(all)
	_, err := attributestags.ReplaceAll(ctx, c, resType, id, attributestags.ReplaceAllOpts{Tags: all}).Extract()
	return mapError("tag "+strings.TrimSuffix(resType, "s")+" "+id, err)
}

// resName is the name of every OpenStack object made for an hvctl
// resource: readable, a valid hostname, and unique per client token, so
// a lookup by name finds an object whose tagging was interrupted.
func resName(address, token string) string {
	a := strings.TrimPrefix(address, "site.")
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(a) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if ok {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	base := strings.Trim(b.String(), "-")
	suffix := token
	if len(suffix) > 8 {
		suffix = suffix[len(suffix)-8:]
	}
	if max := 63 - len("hvctl--") - len(suffix); len(base) > max {
		base = strings.Trim(base[:max], "-")
	}
	return "hvctl-" + base + "-" + suffix
}
