package templates

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

// expectation is an "# error: SUMMARY" marker: some error diagnostic must
// have its subject on this file and line, with a summary containing the
// text.
type expectation struct {
	file    string
	line    int
	summary string
}

func markers(t *testing.T, files []string) []expectation {
	t.Helper()
	var out []expectation
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for line := 1; sc.Scan(); line++ {
			if _, s, ok := strings.Cut(sc.Text(), "# error: "); ok {
				out = append(out, expectation{f, line, strings.TrimSpace(s)})
			}
		}
	}
	return out
}

// corpus lists the templates directly under dir: *.hcl files and
// directories.
func corpus(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".hcl") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

func templateFiles(t *testing.T, path string) []string {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		return []string{path}
	}
	m, _ := filepath.Glob(filepath.Join(path, "*.hcl"))
	return m
}

func renderDiags(t *testing.T, files map[string]*hcl.File, diags hcl.Diagnostics) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, files, diags, false, 0); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got ---\n%s\n--- diff ---\n%s",
			path, got, UnifiedDiff("want", "got", string(want), got))
	}
}

// TestInvalid loads every template of the invalid corpus. Each must fail
// with an error at every "# error:" marker, and the rendered diagnostics
// must match the golden file next to it.
func TestInvalid(t *testing.T) {
	paths := corpus(t, "testdata/invalid")
	if len(paths) < 30 {
		t.Fatalf("invalid corpus has %d templates, want at least 30", len(paths))
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".hcl")
		t.Run(name, func(t *testing.T) {
			cfg, diags := Load(path, LoadOptions{})
			if !diags.HasErrors() {
				t.Fatalf("no errors")
			}
			exps := markers(t, templateFiles(t, path))
			if len(exps) == 0 {
				t.Fatalf("no # error: marker in %s", path)
			}
			for _, e := range exps {
				found := false
				for _, d := range diags {
					if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.Filename == e.file &&
						d.Subject.Start.Line == e.line && strings.Contains(d.Summary, e.summary) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error %q at %s:%d; got:\n%s", e.summary, e.file, e.line, renderDiags(t, cfg.Files, diags))
				}
			}
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Subject == nil {
					t.Errorf("error without a source range: %s: %s", d.Summary, d.Detail)
				}
			}
			checkGolden(t, strings.TrimSuffix(path, ".hcl")+".golden", renderDiags(t, cfg.Files, diags))
		})
	}
}
