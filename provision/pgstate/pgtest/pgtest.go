// Package pgtest starts a real PostgreSQL server for tests: initdb and
// pg_ctl from Debian's postgresql package in a scratch directory, on a
// Unix socket only (no TCP port), as nobody when the test runs as root.
package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
)

// binDir finds initdb and pg_ctl: on PATH, or in Debian's
// /usr/lib/postgresql/VERSION/bin (the newest), which is not on PATH.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	sort.Slice(m, func(i, j int) bool { return version(m[i]) > version(m[j]) })
	if len(m) == 0 {
		return "", fmt.Errorf("no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin (Debian package postgresql, see scripts/deps.txt)")
	}
	return filepath.Dir(m[0]), nil
}

func version(p string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return n
}

// Server is a running test PostgreSQL.
type Server struct {
	// ConnStr connects as the superuser hvctl to database postgres.
	ConnStr string
	Dir     string
	bin     string
}

// Dump is pg_dump of the database (plain SQL, data included): what a
// backup of the server holds.
func (s *Server) Dump(t testing.TB) []byte {
	t.Helper()
	bin := filepath.Join(s.bin, "pg_dump")
	if _, err := os.Stat(bin); err != nil {
		// initdb and pg_ctl may be wrappers on PATH; pg_dump is Debian's.
		if p, err := exec.LookPath("pg_dump"); err == nil {
			bin = p
		} else if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump"); len(m) > 0 {
			sort.Slice(m, func(i, j int) bool { return version(m[i]) > version(m[j]) })
			bin = m[0]
		}
	}
	out, err := exec.Command(bin, "-d", s.ConnStr).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	return out
}

// Start starts a server for t and stops it at cleanup. Without
// PostgreSQL the test is skipped, or fails under HVCTL_E2E=1.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		if os.Getenv("HVCTL_E2E") == "1" {
			t.Fatalf("PostgreSQL test cannot run: %v (HVCTL_E2E=1 makes this a failure)", err)
		}
		t.Skipf("PostgreSQL test skipped: %v; set HVCTL_E2E=1 to make this a failure", err)
	}
	// t.TempDir is 0700 and root's; the server may run as nobody, so
	// the scratch directory is its own, traversable one.
	dir, err := os.MkdirTemp("", "hvctl-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}
	if err := run("initdb", "-D", data, "-U", "hvctl", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatal(err)
	}
	const port = "5432" // the socket is private to dir: no port is shared
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -p %s -c fsync=off", dir, port)
	if err := run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("%v\nserver log:\n%s", err, log)
	}
	t.Cleanup(func() {
		if err := run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Logf("stop PostgreSQL: %v", err)
		}
	})
	return &Server{ConnStr: fmt.Sprintf("host=%s port=%s user=hvctl dbname=postgres", dir, port), Dir: dir, bin: bin}
}
