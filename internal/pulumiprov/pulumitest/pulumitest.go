// Package pulumitest gives tests the Pulumi engine CLI: built once per
// machine from the Go module proxy into a cache directory and reused by
// every later run, and the environment that keeps it offline.
package pulumitest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Version is the Pulumi CLI the tests build (the sdk/v3 in go.mod).
const Version = "v3.274.1"

// clipboardReplace is pkg/v3's own replace directive, which a plain go
// install ignores: the CLI builds only from a module that copies it.
const clipboardReplace = "github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"

// CacheDir is where the CLI is kept: $HVCTL_CACHE/pulumi-VERSION, else
// the user's cache directory (~/.cache/hvctl/pulumi-VERSION).
func CacheDir() string {
	base := os.Getenv("HVCTL_CACHE")
	if base == "" {
		if c, err := os.UserCacheDir(); err == nil {
			base = filepath.Join(c, "hvctl")
		} else {
			base = filepath.Join(os.TempDir(), "hvctl-cache")
		}
	}
	return filepath.Join(base, "pulumi-"+Version)
}

// CLI returns the cache directory whose bin/pulumi is the CLI (the Root
// of auto.NewPulumiCommand), building it first when it is not there.
// When it cannot be had the test is skipped with the reason; under
// HVCTL_E2E=1 that is a failure.
func CLI(t testing.TB) string {
	t.Helper()
	dir := CacheDir()
	took, err := Build(context.Background(), dir)
	if err != nil {
		if os.Getenv("HVCTL_E2E") == "1" {
			t.Fatalf("the Pulumi CLI %s cannot be built into %s: %v", Version, dir, err)
		}
		t.Skipf("the Pulumi CLI %s cannot be built into %s (set HVCTL_E2E=1 to make this a failure): %v", Version, dir, err)
	}
	if took > 0 {
		t.Logf("built the Pulumi CLI %s into %s in %s (kept for later runs)", Version, dir, took.Round(time.Second))
	}
	return dir
}

// Build makes dir/bin/pulumi unless it is there and reports Version;
// it returns how long a build took (0 when the cached CLI was used).
// Concurrent callers (parallel test binaries) wait for one build.
func Build(ctx context.Context, dir string) (time.Duration, error) {
	bin := filepath.Join(dir, "bin", "pulumi")
	if ok(bin) {
		return 0, nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return 0, fmt.Errorf("no go command to build it with: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		return 0, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return 0, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if ok(bin) { // another process built it meanwhile
		return 0, nil
	}
	start := time.Now()
	src := filepath.Join(dir, "src")
	gomod := fmt.Sprintf("module hvctl-pulumi-cli\n\ngo 1.26\n\nrequire (\n\tgithub.com/pulumi/pulumi/pkg/v3 %s\n\tgithub.com/pulumi/pulumi/sdk/v3 %s\n)\n\nreplace %s\n", Version, Version, clipboardReplace)
	tools := "//go:build tools\n\n// Package tools pins the Pulumi CLI for hvctl's tests.\npackage tools\n\nimport _ \"github.com/pulumi/pulumi/pkg/v3/cmd/pulumi\"\n"
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(src, "tools.go"), []byte(tools), 0o644); err != nil {
		return 0, err
	}
	os.Remove(filepath.Join(src, "go.sum"))
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "nice", append([]string{"-n", "10", "go"}, args...)...)
		cmd.Dir, cmd.Env = src, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, lastLines(out.String(), 20))
		}
		return nil
	}
	if err := run("mod", "tidy"); err != nil {
		return 0, err
	}
	tmp := bin + ".tmp"
	if err := run("build", "-o", tmp, "-ldflags", "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version="+Version,
		"github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return 0, err
	}
	if !ok(bin) {
		return 0, fmt.Errorf("%s was built but does not report %s", bin, Version)
	}
	took := time.Since(start)
	os.WriteFile(filepath.Join(dir, "built.txt"), []byte(fmt.Sprintf("built %s in %s\n", time.Now().UTC().Format(time.RFC3339), took.Round(time.Second))), 0o644)
	return took, nil
}

// ok reports whether bin is the CLI at Version.
func ok(bin string) bool {
	out, err := exec.Command(bin, "version").Output()
	return err == nil && strings.TrimSpace(string(out)) == Version
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Env is the environment that keeps the engine offline and in dir: a
// file backend (dir/backend), its own PULUMI_HOME, no update check, no
// plugin download, a fixed passphrase for the stack's secrets, and
// pluginDir first on PATH (where hvctl pulumi install put the plugin).
func Env(dir, pluginDir string) map[string]string {
	os.MkdirAll(filepath.Join(dir, "backend"), 0o755)
	os.MkdirAll(filepath.Join(dir, "home"), 0o755)
	return map[string]string{
		"PULUMI_BACKEND_URL":                          "file://" + filepath.Join(dir, "backend"),
		"PULUMI_HOME":                                 filepath.Join(dir, "home"),
		"PULUMI_CONFIG_PASSPHRASE":                    "hvctl-test",
		"PULUMI_SKIP_UPDATE_CHECK":                    "1",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
		"PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK":    "true",
		"PATH": pluginDir + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
}

// OfflineKeys are the settings Env must carry for the engine never to
// reach the network; tests assert them.
var OfflineKeys = []string{"PULUMI_BACKEND_URL", "PULUMI_SKIP_UPDATE_CHECK", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"}
