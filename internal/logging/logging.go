// Package logging is hvctl's one log: log/slog records, levelled by
// HVCTL_LOG (trace, debug, info, warn, error: Terraform's TF_LOG) and
// written to HVCTL_LOG_PATH (appended) or to the given stream. The
// agents, the elastic daemon, the CLI and the cloud SDKs all write
// through it, in one format.
package logging

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
)

// LevelTrace is below debug: every API call.
const LevelTrace = slog.Level(-8)

// Env names.
const (
	EnvLevel = "HVCTL_LOG"
	EnvPath  = "HVCTL_LOG_PATH"
)

// Off is a level above every record: nothing is written.
const Off = slog.Level(100)

// ParseLevel reads a HVCTL_LOG value; "" is ok=false.
func ParseLevel(s string) (level slog.Level, ok bool, err error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return 0, false, nil
	case "trace":
		return LevelTrace, true, nil
	case "debug":
		return slog.LevelDebug, true, nil
	case "info":
		return slog.LevelInfo, true, nil
	case "warn", "warning":
		return slog.LevelWarn, true, nil
	case "error":
		return slog.LevelError, true, nil
	case "off":
		return Off, true, nil
	}
	return 0, false, fmt.Errorf("%s=%q is not a log level: use trace, debug, info, warn, error or off", EnvLevel, s)
}

// New makes the logger of one process from its environment: the level
// is HVCTL_LOG's, else dflt (Off for the CLI, whose output is for
// people; info for agents and daemons); records go to HVCTL_LOG_PATH
// when set, else to w. close flushes and closes the file.
func New(environ []string, w io.Writer, dflt slog.Level) (l *slog.Logger, close func() error, err error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	level, set, err := ParseLevel(env[EnvLevel])
	if err != nil {
		return nil, nil, err
	}
	if !set {
		level = dflt
	}
	close = func() error { return nil }
	if p := env[EnvPath]; p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", EnvPath, err)
		}
		w, close = f, f.Close
	}
	if w == nil || level >= Off {
		w = io.Discard
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: levelNames})), close, nil
}

// levelNames writes LevelTrace as "TRACE", not "DEBUG-4".
func levelNames(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey && len(groups) == 0 {
		if l, ok := a.Value.Any().(slog.Level); ok && l <= LevelTrace {
			a.Value = slog.StringValue("TRACE")
		}
	}
	return a
}

// StdLogger is a *log.Logger whose lines become records of l at level,
// for code written against the standard log package.
func StdLogger(l *slog.Logger, level slog.Level) *log.Logger {
	return slog.NewLogLogger(l.Handler(), level)
}

// Enabled reports whether l writes records at level.
func Enabled(l *slog.Logger, level slog.Level) bool {
	return l.Enabled(context.Background(), level)
}
