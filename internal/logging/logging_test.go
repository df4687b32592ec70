package logging

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	cases := []struct {
		name     string
		env      []string
		dflt     slog.Level
		has, not []string
		err      string
	}{
		{"CLI default writes nothing", nil, Off, nil, []string{"warned", "informed", "errored"}, ""},
		{"agent default is info", nil, slog.LevelInfo, []string{"level=INFO msg=informed", "level=WARN msg=warned"}, []string{"debugged"}, ""},
		{"HVCTL_LOG=debug", []string{"HVCTL_LOG=debug"}, Off, []string{"level=DEBUG msg=debugged"}, []string{"traced"}, ""},
		{"HVCTL_LOG=trace", []string{"HVCTL_LOG=TRACE"}, Off, []string{"level=TRACE msg=traced", "level=DEBUG msg=debugged"}, nil, ""},
		{"HVCTL_LOG=error", []string{"HVCTL_LOG=error"}, slog.LevelInfo, []string{"level=ERROR msg=errored"}, []string{"warned"}, ""},
		{"bad level", []string{"HVCTL_LOG=verbose"}, Off, nil, nil, `HVCTL_LOG="verbose" is not a log level: use trace, debug, info, warn, error or off`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, closeLog, err := New(c.env, &buf, c.dflt)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closeLog()
			l.Log(context.Background(), LevelTrace, "traced")
			l.Debug("debugged")
			l.Info("informed")
			l.Warn("warned")
			l.Error("errored")
			for _, h := range c.has {
				if !strings.Contains(buf.String(), h) {
					t.Errorf("log lacks %q:\n%s", h, buf.String())
				}
			}
			for _, n := range c.not {
				if strings.Contains(buf.String(), n) {
					t.Errorf("log has %q:\n%s", n, buf.String())
				}
			}
		})
	}
}

func TestLogPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hvctl.log")
	var stderr bytes.Buffer
	l, closeLog, err := New([]string{"HVCTL_LOG=info", "HVCTL_LOG_PATH=" + p}, &stderr, Off)
	if err != nil {
		t.Fatal(err)
	}
	StdLogger(l, slog.LevelInfo).Printf("from the log package %d", 7)
	closeLog()
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), `level=INFO msg="from the log package 7"`) || stderr.Len() != 0 {
		t.Errorf("file:\n%s\nstderr:\n%s", b, stderr.String())
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode: %v %v", fi.Mode(), err)
	}
	if _, _, err := New([]string{"HVCTL_LOG_PATH=" + filepath.Join(p, "x", "y")}, &stderr, Off); err == nil || !strings.Contains(err.Error(), "HVCTL_LOG_PATH") {
		t.Errorf("unwritable path: err = %v", err)
	}
}
