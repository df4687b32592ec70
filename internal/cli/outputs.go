package cli

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

// storedOutput is one output as apply recorded it in the state (its
// data "outputs"), as Terraform keeps outputs: hvctl output reads them
// without evaluating the template again.
type storedOutput struct {
	Value     json.RawMessage `json:"value"`
	Type      json.RawMessage `json:"type"`
	Sensitive bool            `json:"sensitive,omitempty"`
}

// storeOutputs evaluates the template's outputs against the state that
// apply left and records the known ones; a destroyed cluster has none.
// It returns them for printing.
func (s *session) storeOutputs(destroyed bool) (map[string]storedOutput, error) {
	st, err := s.store.Load()
	if err != nil {
		return nil, err
	}
	outs := map[string]storedOutput{}
	if !destroyed {
		known := knownValues(s.cfg, st)
		for _, o := range s.cfg.Outputs {
			v, d := templates.EvalOutput(s.cfg, o, known)
			if d.HasErrors() || v == cty.NilVal || !v.IsWhollyKnown() {
				continue
			}
			v, _ = v.UnmarkDeep()
			vb, err := ctyjson.Marshal(v, v.Type())
			if err != nil {
				continue
			}
			tb, _ := ctyjson.MarshalType(v.Type())
			outs[o.Name] = storedOutput{Value: vb, Type: tb, Sensitive: o.Sensitive}
		}
	}
	old, had := st.Data["outputs"]
	b, _ := json.Marshal(outs)
	if len(outs) == 0 {
		if !had {
			return outs, nil
		}
		delete(st.Data, "outputs")
	} else {
		if had && string(old) == string(b) {
			return outs, nil
		}
		if st.Data == nil {
			st.Data = map[string]json.RawMessage{}
		}
		st.Data["outputs"] = b
	}
	return outs, s.store.Write(st)
}

// loadOutputs reads the outputs apply recorded.
func loadOutputs(st *provision.State) (map[string]storedOutput, error) {
	outs := map[string]storedOutput{}
	raw, ok := st.Data["outputs"]
	if !ok {
		return outs, nil
	}
	if err := json.Unmarshal(raw, &outs); err != nil {
		return nil, fmt.Errorf("the state's outputs are damaged (%v); run hvctl apply to record them again", err)
	}
	return outs, nil
}

// value decodes a stored output.
func (o storedOutput) value() (cty.Value, error) {
	ty, err := ctyjson.UnmarshalType(o.Type)
	if err != nil {
		return cty.NilVal, err
	}
	return ctyjson.Unmarshal(o.Value, ty)
}

// printOutputs prints "Outputs:" after apply, as Terraform does.
func (a *App) printOutputs(outs map[string]storedOutput) {
	if len(outs) == 0 {
		return
	}
	names := make([]string, 0, len(outs))
	for n := range outs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(a.Stdout, "\n%s\n\n", a.bold("Outputs:"))
	for _, n := range names {
		o := outs[n]
		if o.Sensitive {
			fmt.Fprintf(a.Stdout, "%s = <sensitive>\n", n)
			continue
		}
		v, err := o.value()
		if err != nil {
			continue
		}
		fmt.Fprintf(a.Stdout, "%s = %s\n", n, templates.OutputString(v))
	}
}
