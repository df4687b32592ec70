package overlay

import "github.com/hvctl/hvctl/templates"

// ProbeTargets lists the members whose overlay addresses node id must
// reach for the overlay to serve it, in input order: in a mesh every
// other member; otherwise every hub and every site's gateway, whichever
// tunnel the packets take (its own hub or gateway forwards the rest).
// A node that reaches them all reaches every site; that is the property
// up waits for and agents keep probing.
func (t *Topology) ProbeTargets(id string) []string {
	x, ok := t.byID[id]
	if !ok {
		return nil
	}
	var out []string
	for _, m := range t.members {
		if m == x {
			continue
		}
		if t.kind == templates.Mesh || m.isHub() || m.isGateway() {
			out = append(out, m.ID)
		}
	}
	return out
}
