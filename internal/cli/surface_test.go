package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var verbs = []string{"validate", "fmt", "plan", "apply", "up", "destroy", "down", "status", "show",
	"state", "output", "graph", "sim", "version", "completion", "check"}

func TestHelpOnEveryVerb(t *testing.T) {
	for _, v := range verbs {
		for _, flag := range []string{"-help", "--help", "-h"} {
			t.Run(v+flag, func(t *testing.T) {
				r := hv(t, t.TempDir(), "", v, flag)
				text := r.stdout + r.stderr
				if v == "completion" {
					// completion takes a shell name; help is its usage error.
					if !strings.Contains(text, "bash|zsh") {
						t.Errorf("completion %s:\n%s", flag, text)
					}
					return
				}
				if r.code != 0 {
					t.Errorf("exit %d:\n%s", r.code, text)
				}
				if !strings.Contains(text, "Usage: hvctl "+v) {
					t.Errorf("no usage line:\n%s", text)
				}
			})
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		r := hv(t, t.TempDir(), "", "completion", sh)
		if r.code != 0 {
			t.Fatalf("%s: %s", sh, r.stderr)
		}
		for _, v := range verbs {
			if !strings.Contains(r.stdout, v) {
				t.Errorf("%s completion lacks %s", sh, v)
			}
		}
		if !strings.Contains(r.stdout, "-auto-approve") || !strings.Contains(r.stdout, "-detailed-exitcode") {
			t.Errorf("%s completion lacks flags", sh)
		}
	}
	// The bash script loads in bash and completes a verb.
	script := filepath.Join(t.TempDir(), "c.bash")
	os.WriteFile(script, []byte(hv(t, ".", "", "completion", "bash").stdout), 0o644)
	out, err := execBash(`source ` + script + `; COMP_WORDS=(hvctl pl); COMP_CWORD=1; _hvctl; echo "${COMPREPLY[@]}"`)
	if err != nil || strings.TrimSpace(out) != "plan" {
		t.Errorf("bash completion of 'pl' = %q, %v", out, err)
	}
	out, err = execBash(`source ` + script + `; COMP_WORDS=(hvctl apply -auto); COMP_CWORD=2; _hvctl; echo "${COMPREPLY[@]}"`)
	if err != nil || strings.TrimSpace(out) != "-auto-approve" {
		t.Errorf("bash completion of 'apply -auto' = %q, %v", out, err)
	}
}

func TestUnknownVerbSuggests(t *testing.T) {
	r := hv(t, t.TempDir(), "", "pln")
	if r.code != 1 || !strings.Contains(r.stderr, `Did you mean "plan"?`) {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
	r = hv(t, t.TempDir(), "", "plan", "-auto-aprove")
	if r.code != 1 || !strings.Contains(r.stderr, "flag provided but not defined: -auto-aprove") {
		t.Errorf("bad flag: exit %d: %s", r.code, r.stderr)
	}
}

func TestValidateJSONAndChdir(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "vj", 1, 0)
	r := hv(t, "/", "", "-chdir="+dir, "validate", "-json", "main.hcl")
	var doc struct {
		Valid      bool
		ErrorCount int `json:"error_count"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || !doc.Valid || r.code != 0 {
		t.Errorf("valid: %v %+v exit %d\n%s%s", err, doc, r.code, r.stdout, r.stderr)
	}
	os.WriteFile(filepath.Join(dir, "bad.hcl"), []byte("cluster \"x\" {\n  overlay { cidr = \"10.0.0.0/33\" }\n}\n"), 0o644)
	r = hv(t, dir, "", "validate", "-json", "bad.hcl")
	var bad struct {
		Valid       bool
		Diagnostics []struct {
			Severity string
			Range    struct {
				Filename string
				Start    struct{ Line int }
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &bad); err != nil || bad.Valid || r.code != 1 || len(bad.Diagnostics) == 0 {
		t.Fatalf("invalid: %v %+v exit %d\n%s", err, bad, r.code, r.stdout)
	}
	if d := bad.Diagnostics[0]; d.Severity != "error" || !strings.HasSuffix(d.Range.Filename, "bad.hcl") || d.Range.Start.Line == 0 {
		t.Errorf("diagnostic not located: %+v", d)
	}
}

func execBash(script string) (string, error) {
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	return string(out), err
}
