package pulumitest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildCLI builds the Pulumi CLI into the cache (or finds it there)
// and checks it reports Version. .ci/run starts it in the background
// first, so a fresh machine's build overlaps the other packages' tests.
func TestBuildCLI(t *testing.T) {
	dir := CLI(t)
	out, err := exec.Command(filepath.Join(dir, "bin", "pulumi"), "version").Output()
	if err != nil || strings.TrimSpace(string(out)) != Version {
		t.Fatalf("pulumi version = %q, %v; want %s", out, err, Version)
	}
	env := Env(t.TempDir(), "/plugins")
	for _, k := range OfflineKeys {
		if env[k] == "" {
			t.Errorf("Env lacks %s", k)
		}
	}
	if !strings.HasPrefix(env["PATH"], "/plugins:") {
		t.Errorf("PATH = %q, want the plugin directory first", env["PATH"])
	}
}
