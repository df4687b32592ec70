package elastic

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hvctl/hvctl/templates"
)

func loadExample(t testing.TB, vars ...templates.VarArg) (*templates.Config, Workload) {
	t.Helper()
	cfg, diags := templates.Load(filepath.Join("..", "examples", "hybrid-audio.hcl"), templates.LoadOptions{Args: vars})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	f, err := os.Open(filepath.Join("..", "examples", "workloads", "hybrid-audio.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := ParseWorkload(f.Name(), f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, w
}

func TestPaperRun(t *testing.T) {
	cfg, w := loadExample(t)
	r, err := Simulate(cfg, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.WriteText(os.Stdout)
}

func TestPaperDecisions(t *testing.T) {
	cfg, w := loadExample(t)
	r, _ := Simulate(cfg, w, 1)
	for _, d := range r.Decisions {
		t.Logf("%s %s", hm(d.T), d.Action)
	}
}
