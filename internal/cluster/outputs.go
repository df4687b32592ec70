package cluster

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

// Output is one output as apply recorded it in the state (its data
// "outputs"), as Terraform keeps outputs: reading them does not
// evaluate the template again.
type Output struct {
	Value     json.RawMessage `json:"value"`
	Type      json.RawMessage `json:"type"`
	Sensitive bool            `json:"sensitive,omitempty"`
}

// CtyValue decodes the output's value.
func (o Output) CtyValue() (cty.Value, error) {
	ty, err := ctyjson.UnmarshalType(o.Type)
	if err != nil {
		return cty.NilVal, err
	}
	return ctyjson.Unmarshal(o.Value, ty)
}

// Outputs are the outputs the last apply recorded in the cluster's
// state.
func (c *Cluster) Outputs() (map[string]Output, error) { return LoadOutputs(c.State) }

// LoadOutputs reads the outputs apply recorded in st.
func LoadOutputs(st *provision.State) (map[string]Output, error) {
	outs := map[string]Output{}
	raw, ok := st.Data["outputs"]
	if !ok {
		return outs, nil
	}
	if err := json.Unmarshal(raw, &outs); err != nil {
		return nil, fmt.Errorf("the state's outputs are damaged (%v); run hvctl apply to record them again", err)
	}
	return outs, nil
}

// storeOutputs evaluates the template's outputs against the state that
// apply left and records the known ones; a destroyed cluster has none.
// It returns them and the state as stored.
func (c *Cluster) storeOutputs(destroyed bool) (map[string]Output, *provision.State, error) {
	st, err := c.Store.Load()
	if err != nil {
		return nil, nil, err
	}
	outs := map[string]Output{}
	if !destroyed {
		known := KnownValues(c.Config, st)
		for _, o := range c.Config.Outputs {
			v, d := templates.EvalOutput(c.Config, o, known)
			if d.HasErrors() || v == cty.NilVal || !v.IsWhollyKnown() {
				continue
			}
			v, _ = v.UnmarkDeep()
			vb, err := ctyjson.Marshal(v, v.Type())
			if err != nil {
				continue
			}
			tb, _ := ctyjson.MarshalType(v.Type())
			outs[o.Name] = Output{Value: vb, Type: tb, Sensitive: o.Sensitive}
		}
	}
	old, had := st.Data["outputs"]
	b, _ := json.Marshal(outs)
	if len(outs) == 0 {
		if !had {
			return outs, st, nil
		}
		delete(st.Data, "outputs")
	} else {
		if had && string(old) == string(b) {
			return outs, st, nil
		}
		if st.Data == nil {
			st.Data = map[string]json.RawMessage{}
		}
		st.Data["outputs"] = b
	}
	return outs, st, c.Store.Write(st)
}

// KnownValues are the cluster.NAME.* values outputs may refer to, from
// the state.
func KnownValues(cfg *templates.Config, st *provision.State) map[string]cty.Value {
	c := cfg.Cluster
	pre := "cluster." + c.Name
	known := map[string]cty.Value{
		pre + ".name":             cty.StringVal(c.Name),
		pre + ".overlay.cidr":     cty.StringVal(c.Overlay.CIDR.String()),
		pre + ".overlay.topology": cty.StringVal(string(c.Overlay.Topology)),
	}
	if len(c.Overlay.Hubs) > 0 {
		for _, s := range c.AllSites() {
			for _, n := range s.Nodes {
				if n.Path() != c.Overlay.Hubs[0] {
					continue
				}
				if r := st.Resource(provision.NodeAddress(n)); r != nil {
					if pub, _ := r.Attrs["public_address"].(string); pub != "" {
						known[pre+".overlay.endpoint"] = cty.StringVal(pub + ":" + strconv.Itoa(c.Overlay.Port))
					}
				}
			}
		}
	}
	return known
}
