package templates

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// seedTemplates adds every template file of the valid and invalid
// corpora and the examples to f.
func seedTemplates(f *testing.F) {
	var files []string
	for _, pat := range []string{"testdata/valid/*.hcl", "testdata/valid/*/*.hcl", "testdata/invalid/*.hcl", "testdata/invalid/*/*.hcl", "../examples/*.hcl"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
}

// FuzzParse checks that parsing never panics and that formatting a
// template that parses gives one that parses to the same shape and is
// already formatted.
func FuzzParse(f *testing.F) {
	seedTemplates(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		_, diags := hclsyntax.ParseConfig(src, "fuzz.hcl", hcl.InitialPos)
		out := Format(src)
		if diags.HasErrors() {
			return
		}
		if _, diags := hclsyntax.ParseConfig(out, "fuzz.hcl", hcl.InitialPos); diags.HasErrors() {
			t.Fatalf("formatted template does not parse: %v\n%s", diags, out)
		}
		if again := Format(out); !bytes.Equal(again, out) {
			t.Fatalf("Format is not idempotent:\n%s", UnifiedDiff("once", "twice", string(out), string(again)))
		}
	})
}

// FuzzLoad checks that loading never panics, that every error points at
// the source, and that a template without errors yields a cluster.
func FuzzLoad(f *testing.F) {
	seedTemplates(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := LoadSource(map[string][]byte{"fuzz.hcl": src}, "testdata/valid", LoadOptions{})
		if err := WriteDiagnostics(io.Discard, cfg.Files, diags, false, 80); err != nil {
			t.Fatal(err)
		}
		for _, d := range diags {
			if d.Severity == hcl.DiagError && d.Subject == nil {
				t.Fatalf("error without a source range: %s: %s", d.Summary, d.Detail)
			}
		}
		if diags.HasErrors() {
			return
		}
		if cfg.Cluster == nil {
			t.Fatal("no errors and no cluster")
		}
		for _, s := range cfg.Cluster.AllSites() {
			if s.Provider == nil {
				t.Fatalf("site %s has no provider", s.Path)
			}
			for _, p := range s.Pools {
				if p.Min < 0 || p.Min > p.Max {
					t.Fatalf("pool %s bounds %d..%d", p.Path(), p.Min, p.Max)
				}
			}
		}
		for _, o := range cfg.Outputs {
			EvalOutput(cfg, o, nil)
		}
	})
}

// FuzzVarValue feeds arbitrary -var and environment values to a template.
func FuzzVarValue(f *testing.F) {
	for _, s := range []string{"1", "{ a = 1 }", "[1, 2]", "\"x\"", "var.x", "{", "1 +", "${x}", "true"} {
		f.Add("count", s)
		f.Add("labels", s)
		f.Add("opt", s)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		for _, opts := range []LoadOptions{
			{Args: []VarArg{{Name: name, Value: value}}},
			{Environ: []string{EnvPrefix + name + "=" + value}},
		} {
			cfg, diags := Load("testdata/valid/vars.hcl", opts)
			if err := WriteDiagnostics(io.Discard, cfg.Files, diags, false, 80); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzSize(f *testing.F) {
	for _, s := range []string{"512MiB", "4GiB", "1TiB", "20GB", "1.5GiB", "1048576", "0", "7B", "4 gigs", "-1", "1e3GiB", "9223372036854775807", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if m, err := ParseSize(FormatSize(n)); err != nil || m != n {
			t.Fatalf("ParseSize(FormatSize(%d)) = %d, %v", n, m, err)
		}
	})
}

func FuzzDuration(f *testing.F) {
	for _, s := range []string{"5s", "20m", "6h", "1h30m", "1d", "2d12h", "0", "-5s", "1.5d", "106751d", "1e3d", "d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
	})
}
