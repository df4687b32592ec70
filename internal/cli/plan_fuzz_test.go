package cli

import (
	"strings"
	"testing"
)

func FuzzDecodePlanFile(f *testing.F) {
	f.Add([]byte(`{"hvctl_plan_format":1,"plan":{"format_version":"1.0","lineage":"l","serial":3,"changes":[{"address":"site.a.network","type":"sim_network","kind":"network","provider":"provider.sim.lab","action":"create","after":{"cidr":"10.0.0.0/24"}}],"template":"/t/main.hcl","vars":[{"name":"n","value":"1"}]}}`))
	f.Add([]byte(`{"hvctl_plan_format":2,"plan":{}}`))
	f.Add([]byte(`{"hvctl_plan_format":1,"plan":{"changes":[null]}}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"hvctl_plan_format":2,"template":"/t/main.hcl","sealed":"SFZDVExFTkMBAQAAAAMAAQAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add([]byte(`{"hvctl_plan_format":2,"sealed":"eA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := decodePlanFile("p.hvplan", b)
		if err != nil {
			if !strings.Contains(err.Error(), "p.hvplan") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if pf.Format == 2 {
			if pf.Template == "" || len(pf.Sealed) == 0 {
				t.Fatalf("accepted an encrypted plan without template or envelope")
			}
			return
		}
		p := pf.Plan
		for _, c := range p.Changes {
			if c == nil || c.Address == "" {
				t.Fatalf("accepted a change without an address")
			}
		}
		p.Counts()
		p.HasChanges()
	})
}
