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
	"state", "output", "graph", "sim", "version", "completion", "check", "overlay", "elastic", "node", "slurm", "cancel", "report"}

func TestHelpOnEveryVerb(t *testing.T) {
	for _, v := range verbs {
		for _, flag := range []string{"-help", "--help", "-h"} {
			t.Run(v+flag, func(t *testing.T) {
				r := hv(t, t.TempDir(), "", v, flag)
				text := r.stdout + r.stderr
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
	// A group's subcommands, and a subcommand's own flags.
	out, err = execBash(`source ` + script + `; cd ` + t.TempDir() + `; COMP_WORDS=(hvctl state un); COMP_CWORD=2; _hvctl; echo "${COMPREPLY[@]}"`)
	if err != nil || strings.TrimSpace(out) != "unlock" {
		t.Errorf("bash completion of 'state un' = %q, %v", out, err)
	}
	out, err = execBash(`source ` + script + `; COMP_WORDS=(hvctl overlay config -show); COMP_CWORD=3; _hvctl; echo "${COMPREPLY[@]}"`)
	if err != nil || strings.TrimSpace(out) != "-show-secrets" {
		t.Errorf("bash completion of 'overlay config -show' = %q, %v", out, err)
	}
	// Resource addresses come from the state of the directory.
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "cpl", 1, 0)
	if r := hv(t, dir, "", "apply", "-auto-approve", "main.hcl"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	out, err = execBash(`PATH=` + filepath.Dir(hvctl) + `:$PATH; source ` + script + `; cd ` + dir + `; COMP_WORDS=(hvctl state show site.onprem.node.fr); COMP_CWORD=3; _hvctl; echo "${COMPREPLY[@]}"`)
	if err != nil || !strings.Contains(out, "site.onprem.node.frontend") {
		t.Errorf("bash completion of 'state show site.onprem.node.fr' = %q, %v", out, err)
	}
	r := hv(t, ".", "", "completion", "fish")
	if r.code != 0 || !strings.Contains(r.stdout, "complete -c hvctl -n '__fish_seen_subcommand_from state' -a unlock") {
		t.Errorf("fish completion: exit %d\n%s", r.code, r.stdout)
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

// TestTerraformStyleCIScript: the lines a CI pipeline written for
// Terraform runs, on the sim provider.
func TestTerraformStyleCIScript(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "ci", 2, 0)
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"init", "-input=false"}, 0, "hvctl has been successfully initialized!"},
		{[]string{"init", "-backend-config", "bucket=x"}, 1, `bucket is not a setting of the local backend`},
		{[]string{"plan", "-input=false", "-out=ci.hvplan", "main.hcl"}, 0, "Saved the plan to: ci.hvplan"},
		{[]string{"apply", "-input=false", "-var", "x=1", "ci.hvplan"}, 1, "A saved plan cannot be changed by -var"},
		{[]string{"apply", "-input=false", "ci.hvplan"}, 0, "Apply complete!"},
		{[]string{"plan", "-input=false", "-detailed-exitcode", "main.hcl"}, 0, "No changes."},
		{[]string{"plan", "main.hcl", "extra.hcl"}, 1, `Unexpected "extra.hcl"`},
		{[]string{"apply", "-destroy", "-input=false", "main.hcl"}, 1, "-input=false forbids asking; nothing was changed"},
		{[]string{"apply", "-destroy", "-auto-approve", "-input=false", "main.hcl"}, 0, "Destroy complete!"},
		{[]string{"down", "-auto-approve", "main.hcl"}, 0, ""},
		{[]string{"force-unlock", "no-such-lock"}, 1, "the state is not locked"},
	}
	for _, s := range steps {
		r := hv(t, dir, "", s.args...)
		if r.code != s.code || !strings.Contains(r.stdout+r.stderr, s.want) {
			t.Fatalf("hvctl %s: exit %d (want %d), want %q in:\n%s%s", strings.Join(s.args, " "), r.code, s.code, s.want, r.stdout, r.stderr)
		}
	}
	if out, _ := exec.Command(hvctl, "sim", "list", "-json", filepath.Join(dir, "main.hcl")).Output(); strings.TrimSpace(string(out)) != "[]" {
		t.Errorf("machines left after apply -destroy: %s", out)
	}
}

// TestHVCTLLog: the CLI logs nothing unless HVCTL_LOG asks, then in one
// slog format, to HVCTL_LOG_PATH when set; a bad level is an error.
func TestHVCTLLog(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "lg", 1, 0)
	run := func(env ...string) result {
		cmd := exec.Command(hvctl, "plan", "main.hcl")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return result{o.String(), e.String(), code}
	}
	if r := run(); r.code != 0 || r.stderr != "" {
		t.Errorf("no HVCTL_LOG: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run("HVCTL_LOG=debug"); r.code != 0 || !strings.Contains(r.stderr, `level=DEBUG msg="hvctl starting"`) {
		t.Errorf("HVCTL_LOG=debug: exit %d, stderr %q", r.code, r.stderr)
	}
	p := filepath.Join(dir, "hvctl.log")
	if r := run("HVCTL_LOG=debug", "HVCTL_LOG_PATH="+p); r.code != 0 || r.stderr != "" {
		t.Errorf("HVCTL_LOG_PATH: exit %d, stderr %q", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), `msg="hvctl starting"`) {
		t.Errorf("log file: %q", b)
	}
	if r := run("HVCTL_LOG=loud"); r.code != 1 || !strings.Contains(r.stderr, `HVCTL_LOG="loud" is not a log level`) {
		t.Errorf("bad HVCTL_LOG: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestExtraArgumentsRefused: a verb given more arguments than it takes
// says which ones, and does nothing.
func TestExtraArgumentsRefused(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "0s", "xa", 1, 0)
	for _, v := range []string{"validate", "plan", "apply", "up", "destroy", "down", "status", "show", "graph", "check", "jobs", "fmt", "init", "gc"} {
		r := hv(t, dir, "", v, "main.hcl", "extra.hcl")
		if r.code != 1 || !strings.Contains(r.stderr, "Too many arguments for hvctl "+v) || !strings.Contains(r.stderr, `Unexpected "extra.hcl"`) {
			t.Errorf("%s with an extra argument: exit %d\n%s", v, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".hvctl", "state.json")); err == nil {
		t.Errorf("a refused command wrote a state")
	}
}
