package main

import (
	"testing"

	"github.com/hvctl/hvctl/templates"
)

// TestTemplateLoads: the example's template validates, and its pool
// follows vars.workers as the program sets it.
func TestTemplateLoads(t *testing.T) {
	for _, c := range []struct {
		workers string
		want    int
	}{{"", 2}, {"5", 5}} {
		var args []templates.VarArg
		if c.workers != "" {
			args = append(args, templates.VarArg{Name: "workers", Value: c.workers})
		}
		cfg, d := templates.Load("cluster.hcl", templates.LoadOptions{Args: args})
		if d.HasErrors() {
			t.Fatalf("cluster.hcl: %v", d)
		}
		pools := cfg.Cluster.Sites[0].Pools
		if len(pools) != 1 || pools[0].Min != c.want || pools[0].Max != c.want {
			t.Errorf("workers=%q: pools %+v, want one of %d", c.workers, pools, c.want)
		}
	}
}
