package templates

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	ins, _ := filepath.Glob("testdata/fmt/*.in")
	if len(ins) == 0 {
		t.Fatal("no fmt cases")
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got := Format(src)
			checkGolden(t, strings.TrimSuffix(in, ".in")+".golden", string(got))
			if again := Format(got); !bytes.Equal(again, got) {
				t.Errorf("Format is not idempotent:\n%s", UnifiedDiff("once", "twice", string(got), string(again)))
			}
		})
	}
}

func TestFormatPath(t *testing.T) {
	messy, err := os.ReadFile("testdata/fmt/messy.in")
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := os.ReadFile("testdata/fmt/canonical.in")
	if err != nil {
		t.Fatal(err)
	}
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		for name, src := range map[string][]byte{"a.hcl": messy, "b.hcl": canonical, "notes.txt": messy} {
			if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	tests := []struct {
		name        string
		opts        FormatOptions
		wantWritten bool
		wantDiff    bool
	}{
		{"write", FormatOptions{}, true, false},
		{"check", FormatOptions{Check: true}, false, false},
		{"check and diff", FormatOptions{Check: true, Diff: true}, false, true},
		{"diff and write", FormatOptions{Diff: true}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := setup(t)
			var out bytes.Buffer
			res, diags := FormatPath(dir, tt.opts, &out)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			a := filepath.Join(dir, "a.hcl")
			eq(t, "changed", res.Changed, []string{a})
			got, _ := os.ReadFile(a)
			eq(t, "written", bytes.Equal(got, Format(messy)), tt.wantWritten)
			txt, _ := os.ReadFile(filepath.Join(dir, "notes.txt"))
			eq(t, "other files untouched", bytes.Equal(txt, messy), true)
			wantOut := a + "\n"
			if tt.wantDiff {
				wantOut += UnifiedDiff("old/"+a, "new/"+a, string(messy), string(Format(messy)))
			}
			eq(t, "output", out.String(), wantOut)
			if tt.wantDiff {
				// The diff itself, with the temporary directory taken out.
				checkGolden(t, "testdata/fmt/messy.diff.golden", strings.ReplaceAll(out.String(), dir+"/", ""))
			}
		})
	}
}

// TestFormatPathRecursive: -recursive goes into subdirectories but not
// hidden ones (.hvctl); -write=false and -list=false do what they say.
func TestFormatPathRecursive(t *testing.T) {
	messy, err := os.ReadFile("testdata/fmt/messy.in")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		opts        FormatOptions
		wantChanged []string
		wantWritten bool
		wantListed  bool
	}{
		{"top only", FormatOptions{}, []string{"a.hcl"}, true, true},
		{"recursive", FormatOptions{Recursive: true}, []string{"a.hcl", "sites/b.hcl", "sites/x/c.hcl"}, true, true},
		{"no write", FormatOptions{Recursive: true, NoWrite: true}, []string{"a.hcl", "sites/b.hcl", "sites/x/c.hcl"}, false, true},
		{"no list", FormatOptions{NoList: true}, []string{"a.hcl"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range []string{"a.hcl", "sites/b.hcl", "sites/x/c.hcl", ".hvctl/d.hcl", "sites/.hidden/e.hcl"} {
				p := filepath.Join(dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, messy, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			res, diags := FormatPath(dir, tt.opts, &out)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var want []string
			listed := ""
			for _, n := range tt.wantChanged {
				want = append(want, filepath.Join(dir, n))
				listed += filepath.Join(dir, n) + "\n"
			}
			eq(t, "changed", res.Changed, want)
			for _, n := range want {
				got, _ := os.ReadFile(n)
				eq(t, "written "+n, bytes.Equal(got, Format(messy)), tt.wantWritten)
			}
			for _, n := range []string{".hvctl/d.hcl", "sites/.hidden/e.hcl"} {
				got, _ := os.ReadFile(filepath.Join(dir, n))
				eq(t, "hidden untouched "+n, bytes.Equal(got, messy), true)
			}
			if !tt.wantListed {
				listed = ""
			}
			eq(t, "output", out.String(), listed)
		})
	}
}

func TestFormatPathSyntaxError(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bad.hcl")
	src := []byte("cluster \"c\" {\n  ttl = = 1\n}\n")
	if err := os.WriteFile(f, src, 0o644); err != nil {
		t.Fatal(err)
	}
	res, diags := FormatPath(f, FormatOptions{}, &bytes.Buffer{})
	if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("diags = %v", diags)
	}
	if !strings.Contains(renderDiags(t, res.Files, diags), "2:   ttl = = 1") {
		t.Errorf("no snippet in %s", renderDiags(t, res.Files, diags))
	}
	got, _ := os.ReadFile(f)
	eq(t, "file untouched", string(got), string(src))
}

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"equal", "x\n", "x\n", ""},
		{"change", "a\nb\nc\n", "a\nB\nc\n", "--- a\n+++ b\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"add at end", "a\n", "a\nb\n", "--- a\n+++ b\n@@ -1 +1,2 @@\n a\n+b\n"},
		{"from empty", "", "a\n", "--- a\n+++ b\n@@ -0,0 +1 @@\n+a\n"},
		{"no newline", "a", "a\n", "--- a\n+++ b\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "x\n2\n3\n4\n5\n6\n7\n8\n9\ny\n",
			"--- a\n+++ b\n@@ -1,4 +1,4 @@\n-1\n+x\n 2\n 3\n 4\n@@ -7,4 +7,4 @@\n 7\n 8\n 9\n-10\n+y\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eq(t, "diff", UnifiedDiff("a", "b", tt.a, tt.b), tt.want)
		})
	}
}
