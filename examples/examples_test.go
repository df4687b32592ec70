package examples

import (
	"path/filepath"
	"testing"

	"github.com/hvctl/hvctl/templates"
)

// TestExamplesLoad loads every example template: an example that does
// not validate is a bug.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			cfg, d := templates.Load(f, templates.LoadOptions{})
			if d.HasErrors() {
				t.Fatalf("%s: %v", f, d)
			}
			if cfg.Cluster == nil || len(cfg.Cluster.Sites) == 0 {
				t.Fatalf("%s: no cluster or sites", f)
			}
		})
	}
}
