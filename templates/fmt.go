package templates

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in canonical form (hclwrite.Format). It does not
// check syntax; FormatPath does.
func Format(src []byte) []byte {
	return hclwrite.Format(src)
}

// FormatOptions are the flags of hvctl fmt.
type FormatOptions struct {
	// Check leaves files alone and only reports which would change.
	Check bool
	// Diff writes a unified diff of every change.
	Diff bool
	// Recursive also formats the templates in subdirectories (not
	// hidden ones, such as .hvctl).
	Recursive bool
	// NoWrite leaves files alone (Check implies it); NoList does not
	// print the names of the files that change.
	NoWrite, NoList bool
}

// FormatResult is what FormatPath did.
type FormatResult struct {
	// Changed lists the files whose formatting differs: rewritten, or
	// with Check, the ones that would be.
	Changed []string
	// Files are the parsed files, for printing diagnostics.
	Files map[string]*hcl.File
}

// FormatPath formats the template at path (a file, or every *.hcl file
// of a directory). It writes the name of each changed file to out, then
// its diff when opts.Diff is set, and rewrites the file unless
// opts.Check is set. A file with syntax errors is left alone and
// reported in the diagnostics.
func FormatPath(path string, opts FormatOptions, out io.Writer) (*FormatResult, hcl.Diagnostics) {
	res := &FormatResult{Files: map[string]*hcl.File{}}
	var names []string
	fi, err := os.Stat(path)
	if err != nil {
		return res, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Failed to read template", Detail: fmt.Sprintf("Cannot read %s: %s.", path, unwrapPathErr(err))}}
	}
	if fi.IsDir() {
		err := filepath.WalkDir(path, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			hidden := strings.HasPrefix(e.Name(), ".") && p != path
			if e.IsDir() {
				if p != path && (hidden || !opts.Recursive) {
					return filepath.SkipDir
				}
				return nil
			}
			if !hidden && strings.HasSuffix(e.Name(), Extension) {
				names = append(names, p)
			}
			return nil
		})
		if err != nil {
			return res, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Failed to read template directory", Detail: err.Error()}}
		}
		sort.Strings(names)
	} else {
		names = []string{path}
	}
	var diags hcl.Diagnostics
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to read file", Detail: err.Error()})
			continue
		}
		f, d := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		res.Files[name] = f
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		formatted := Format(src)
		if bytes.Equal(src, formatted) {
			continue
		}
		res.Changed = append(res.Changed, name)
		if !opts.NoList {
			if _, err := fmt.Fprintln(out, name); err != nil {
				return res, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to write output", Detail: err.Error()})
			}
		}
		if opts.Diff {
			if _, err := io.WriteString(out, UnifiedDiff("old/"+name, "new/"+name, string(src), string(formatted))); err != nil {
				return res, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to write output", Detail: err.Error()})
			}
		}
		if !opts.Check && !opts.NoWrite {
			if err := writeFileAtomic(name, formatted, 0o644); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to write file", Detail: err.Error()})
			}
		}
	}
	return res, diags
}

func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	if st, err := os.Stat(name); err == nil {
		perm = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// UnifiedDiff returns a unified diff (three lines of context) from a to b,
// or "" when they are equal.
func UnifiedDiff(nameA, nameB, a, b string) string {
	if a == b {
		return ""
	}
	x, y := splitLines(a), splitLines(b)
	ops := diffLines(x, y)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", nameA, nameB)
	const ctx = 3
	// Group ops into hunks around changes.
	i := 0
	for i < len(ops) {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-ctx, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*ctx {
				end = min(end+ctx, len(ops))
				break
			}
			end = run
		}
		aStart, bStart := ops[start].ai, ops[start].bi
		var aLen, bLen int
		for _, op := range ops[start:end] {
			if op.kind != '+' {
				aLen++
			}
			if op.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&sb, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
		for _, op := range ops[start:end] {
			sb.WriteByte(op.kind)
			sb.WriteString(op.text)
			if !strings.HasSuffix(op.text, "\n") {
				sb.WriteString("\n\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return sb.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

type diffOp struct {
	kind   byte // ' ', '-', '+'
	text   string
	ai, bi int // line index in a and b where this op starts
}

// diffLines is a longest-common-subsequence line diff; the common
// prefix and suffix are trimmed first, so formatting changes in a large
// file stay cheap.
func diffLines(a, b []string) []diffOp {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(ma), len(mb)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if ma[i] == mb[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []diffOp
	for k := 0; k < pre; k++ {
		ops = append(ops, diffOp{' ', a[k], k, k})
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && ma[i] == mb[j]:
			ops = append(ops, diffOp{' ', ma[i], pre + i, pre + j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, diffOp{'-', ma[i], pre + i, pre + j})
			i++
		default:
			ops = append(ops, diffOp{'+', mb[j], pre + i, pre + j})
			j++
		}
	}
	for k := 0; k < suf; k++ {
		ops = append(ops, diffOp{' ', a[len(a)-suf+k], len(a) - suf + k, len(b) - suf + k})
	}
	return ops
}
