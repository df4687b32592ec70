package cli

import (
	"fmt"
	"strings"

	"github.com/hvctl/hvctl/provision"
)

// stateRefPrefix marks an attribute a saved plan does not hold: apply
// reads it from the state the plan was made against (same lineage and
// serial, which apply checks first).
const stateRefPrefix = "hvctl-state-ref:"

// secretAttr reports whether a plan file must not hold attribute k:
// bootstrap data (join tokens, the cluster secret, the hub's TLS key,
// the template) and anything sensitive.
func secretAttr(k string) bool { return provision.IsInternal(k) || provision.IsSecret(k) }

// redactPlan returns a copy of p whose changes hold references instead
// of secret attribute values.
func redactPlan(p *provision.Plan) *provision.Plan {
	c := *p
	c.Changes = make([]*provision.Change, len(p.Changes))
	for i, ch := range p.Changes {
		x := *ch
		x.Before = redactAttrs(ch.Address, ch.Before)
		x.After = redactAttrs(ch.Address, ch.After)
		c.Changes[i] = &x
	}
	return &c
}

func redactAttrs(addr string, a provision.Attrs) provision.Attrs {
	if a == nil {
		return nil
	}
	out := make(provision.Attrs, len(a))
	for k, v := range a {
		if secretAttr(k) {
			v = stateRefPrefix + addr + "#" + k
		}
		out[k] = v
	}
	return out
}

// restorePlan puts the secret values a saved plan refers to back from
// st. A reference the state cannot resolve means the plan does not
// belong to this state.
func restorePlan(p *provision.Plan, st *provision.State) error {
	for _, ch := range p.Changes {
		for _, a := range []provision.Attrs{ch.Before, ch.After} {
			for k, v := range a {
				ref, ok := v.(string)
				if !ok || !strings.HasPrefix(ref, stateRefPrefix) {
					continue
				}
				if ref != stateRefPrefix+ch.Address+"#"+k {
					return fmt.Errorf("saved plan: %s.%s refers to %s; the plan file is damaged, make it again with hvctl plan -out", ch.Address, k, ref)
				}
				r := st.Resource(ch.Address)
				if r == nil {
					return fmt.Errorf("saved plan: %s.%s is kept in the state, but the state has no %s; make the plan again with hvctl plan -out", ch.Address, k, ch.Address)
				}
				val, ok := r.Attrs[k]
				if !ok {
					delete(a, k)
					continue
				}
				a[k] = val
			}
		}
	}
	return nil
}
