package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// TestHelpGolden: every verb and subcommand prints its own usage, its
// examples and only its own flags on stdout with exit 0 (golden files
// under testdata/help; go test -run TestHelpGolden -update rewrites them).
func TestHelpGolden(t *testing.T) {
	var cases [][]string
	for _, c := range commands {
		cases = append(cases, []string{c.name})
		for _, s := range c.subs {
			if c.name != "completion" {
				cases = append(cases, []string{c.name, s.name})
			}
		}
	}
	sort.Slice(cases, func(i, j int) bool { return strings.Join(cases[i], " ") < strings.Join(cases[j], " ") })
	for _, args := range cases {
		name := strings.Join(args, "_")
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Ctx: context.Background()}
			if code := a.Run(append(append([]string{}, args...), "-help")); code != 0 {
				t.Errorf("exit %d; stderr:\n%s", code, errb.String())
			}
			if errb.Len() != 0 {
				t.Errorf("help wrote to stderr:\n%s", errb.String())
			}
			if !strings.HasPrefix(out.String(), "Usage: hvctl "+strings.Join(args, " ")) {
				t.Errorf("help does not start with its usage line:\n%s", out.String())
			}
			golden := filepath.Join("testdata", "help", name+".txt")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestHelpGolden -update)", err)
			}
			if out.String() != string(want) {
				t.Errorf("help differs from %s (-update rewrites it):\n%s", golden, out.String())
			}
		})
	}
}

// TestVerbFlagsAreTheirOwn: a verb lists the flags that mean something
// to it, not one shared set.
func TestVerbFlagsAreTheirOwn(t *testing.T) {
	cases := []struct {
		args       []string
		has, lacks []string
	}{
		{[]string{"cancel"}, []string{"-state", "-var"}, []string{"-join-timeout", "-refresh", "-parallelism", "-lock"}},
		{[]string{"jobs"}, []string{"-json"}, []string{"-join-timeout", "-refresh"}},
		{[]string{"up"}, []string{"-join-timeout", "-refresh", "-parallelism", "-lock-timeout", "-input"}, nil},
		{[]string{"plan"}, []string{"-out", "-detailed-exitcode", "-input", "-refresh"}, []string{"-join-timeout", "-auto-approve"}},
		{[]string{"apply"}, []string{"-auto-approve", "-destroy", "-input"}, []string{"-join-timeout", "-out"}},
		{[]string{"down"}, []string{"-auto-approve"}, []string{"-join-timeout"}},
		{[]string{"state", "list"}, []string{"-state"}, []string{"-refresh", "-auto-approve"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			got := helpFlags(c.args...)
			set := map[string]bool{}
			for _, f := range got {
				set[f] = true
			}
			for _, f := range c.has {
				if !set[f] {
					t.Errorf("lacks %s (has %v)", f, got)
				}
			}
			for _, f := range c.lacks {
				if set[f] {
					t.Errorf("has %s, which means nothing to it", f)
				}
			}
		})
	}
}

func TestGroupWithoutSubcommand(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"state"}, 1, "hvctl state needs a subcommand"},
		{[]string{"state", "lsit"}, 1, `Did you mean "list"?`},
		{[]string{"overlay", "-help"}, 0, "  config     "},
		{[]string{"completion", "-help"}, 0, "  fish       "},
		{[]string{"completion", "tcsh"}, 1, `Unknown subcommand "tcsh"`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Ctx: context.Background()}
			if code := a.Run(c.args); code != c.code {
				t.Errorf("exit %d, want %d:\n%s", code, c.code, out.String())
			}
			if !strings.Contains(out.String(), c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out.String())
			}
		})
	}
}

// TestInterrupts: the first interrupt says at once what happens and
// cancels; the second says what is abandoned and exits. The signals go
// through the channel Main fills from signal.Notify, not to the test
// process (a SIGINT while no handler is registered would kill it).
func TestInterrupts(t *testing.T) {
	var mu syncBuffer
	exited := make(chan struct{})
	sig := make(chan os.Signal, 2)
	ctx, stop := interrupts(&mu, sig, func() { close(exited) })
	defer stop()
	sig <- syscall.SIGINT
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the first interrupt did not cancel")
	}
	if !strings.Contains(mu.String(), "Interrupt received.\nPlease wait for hvctl to exit or data loss may occur.\nGracefully shutting down...") {
		t.Errorf("first interrupt said:\n%s", mu.String())
	}
	sig <- syscall.SIGTERM
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the second interrupt did not exit")
	}
	if !strings.Contains(mu.String(), "Two interrupts received. Exiting immediately: operations in flight are abandoned.") {
		t.Errorf("second interrupt said:\n%s", mu.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWarner: a warning that does not stop an apply is a Warning block,
// and with -json one diagnostic line of Terraform's machine-readable UI.
func TestWarner(t *testing.T) {
	for _, tc := range []struct {
		name string
		json bool
	}{{"text", false}, {"json", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			a := &App{Stdout: &out, Stderr: &out, Ctx: context.Background()}
			a.warner(a.ui(tc.json))("the managers did not take the template")
			if !tc.json {
				if got, want := out.String(), "Warning: the managers did not take the template\n\n"; got != want {
					t.Errorf("got %q, want %q", got, want)
				}
				return
			}
			var ev struct {
				Type       string `json:"type"`
				Level      string `json:"@level"`
				Diagnostic struct{ Severity, Summary string }
			}
			if err := json.Unmarshal(out.Bytes(), &ev); err != nil {
				t.Fatalf("%v: %q", err, out.String())
			}
			if ev.Type != "diagnostic" || ev.Level != "warn" || ev.Diagnostic.Severity != "warning" || ev.Diagnostic.Summary != "the managers did not take the template" {
				t.Errorf("got %+v from %q", ev, out.String())
			}
		})
	}
}
