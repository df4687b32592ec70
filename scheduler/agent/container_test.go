package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/internal/testimage"
	"github.com/hvctl/hvctl/scheduler"
)

func tarFile(t *testing.T, path string, gz bool, names ...string) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: 2})
		tw.Write([]byte("{}"))
	}
	tw.Close()
	data := b.Bytes()
	if gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(data)
		zw.Close()
		data = z.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestArchiveKind(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		gz    bool
		files []string
		want  string
	}{
		{"rootfs", false, []string{"bin/sh", "etc/passwd"}, "rootfs"},
		{"docker archive", false, []string{"abc/layer.tar", "manifest.json"}, "docker-archive"},
		{"oci archive", true, []string{"blobs/sha256/x", "./oci-layout", "index.json"}, "oci-archive"},
		{"gzip rootfs", true, []string{"./bin/sh"}, "rootfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			tarFile(t, p, tt.gz, tt.files...)
			got, err := archiveKind(p)
			if err != nil || got != tt.want {
				t.Errorf("archiveKind = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	os.WriteFile(filepath.Join(dir, "junk"), []byte("not a tar file at all, clearly not, no"), 0o644)
	if _, err := archiveKind(filepath.Join(dir, "junk")); err == nil || !strings.Contains(err.Error(), "not a tar file") {
		t.Errorf("junk: %v, want not a tar file", err)
	}
}

func TestLoadedImages(t *testing.T) {
	got := loadedImages([]byte("Loaded image: localhost/a:1\nLoaded image(s): b:2, c:3\n"))
	if fmt.Sprint(got) != "[localhost/a:1 b:2 c:3]" {
		t.Errorf("loadedImages = %q", got)
	}
}

// needPodman skips (or fails with HVCTL_E2E=1) without root and podman.
func needPodman(t *testing.T) {
	t.Helper()
	needRoot(t)
	for _, bin := range []string{"podman", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("HVCTL_E2E") == "1" {
				t.Fatalf("%s is not installed (apt-get install podman busybox); HVCTL_E2E=1 makes this a failure", bin)
			}
			t.Skipf("%s is not installed (apt-get install podman busybox)", bin)
		}
	}
	if _, err := ociRuntime(); err != nil {
		if os.Getenv("HVCTL_E2E") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestContainerRun runs containers as the runner does, as job processes:
// the image is imported from a rootfs tarball once, the job's
// directories and an extra mount are where the job expects them, and a
// job over its memory limit is reported as killed for memory.
func TestContainerRun(t *testing.T) {
	needPodman(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "image.tar")
	if err := testimage.BusyboxRootfs(archive); err != nil {
		t.Fatal(err)
	}
	var loads []string
	store := &ContainerStore{Dir: filepath.Join(dir, "store"), Logf: func(f string, a ...any) { loads = append(loads, fmt.Sprintf(f, a...)) }}
	image := fmt.Sprintf("localhost/hvctl-test-%d:1", rand.IntN(1e6))
	extra := filepath.Join(dir, "extra")
	os.MkdirAll(extra, 0o755)
	os.WriteFile(filepath.Join(extra, "ref"), []byte("reference\n"), 0o644)
	run := func(name string, mem int64, cmd string) (string, error) {
		in, out := filepath.Join(dir, name, "in"), filepath.Join(dir, name, "out")
		os.MkdirAll(in, 0o755)
		os.WriteFile(filepath.Join(in, "data"), []byte("input-"+name+"\n"), 0o644)
		r := &ContainerRun{Store: store, Name: "hvctl-test-" + name, Spec: &scheduler.Container{Image: image, Mounts: []string{extra + ":/ref:ro"}},
			Command: []string{"sh", "-c", cmd}, Env: []string{"HVCTL_OUTPUT_DIR=" + scheduler.ContainerOutputDir}, InputDir: in, OutputDir: out, CPUs: 1, MemoryMiB: mem}
		if err := r.Prepare(context.Background(), archive); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		p, err := StartJob(context.Background(), func() *exec.Cmd {
			c, err := r.Cmd()
			if err != nil {
				t.Fatal(err)
			}
			c.Stdout, c.Stderr = &buf, &buf
			return c
		})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Finish(p.Wait())
		return buf.String(), err
	}
	for i := 0; i < 2; i++ {
		name := fmt.Sprint("ok", i)
		out, err := run(name, 64, `cat data; cat /ref/ref; echo done > $HVCTL_OUTPUT_DIR/result; ! touch /ref/x 2>/dev/null`)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out)
		}
		if !strings.Contains(out, "input-"+name+"\nreference\n") {
			t.Errorf("run %d output %q", i, out)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, name, "out", "result")); string(b) != "done\n" {
			t.Errorf("run %d result %q", i, b)
		}
	}
	if len(loads) != 1 {
		t.Errorf("image loaded %d times, want once: %q", len(loads), loads)
	}
	// 64 MiB of shell string in a 32 MiB container.
	out, err := run("hog", 32, `x=$(head -c 67108864 /dev/zero | tr '\0' a); echo survived ${#x}`)
	var me *MemoryError
	if !errors.As(err, &me) || me.LimitMiB != 32 {
		t.Fatalf("memory hog: err %v, want a MemoryError\n%s", err, out)
	}
	if strings.Contains(out, "survived") {
		t.Errorf("memory hog survived: %s", out)
	}
	t.Logf("memory hog: %v", err)
	// A cancel (Kill) ends the container with podman.
	in, outDir := filepath.Join(dir, "sleep", "in"), filepath.Join(dir, "sleep", "out")
	r := &ContainerRun{Store: store, Name: "hvctl-test-sleep", Spec: &scheduler.Container{Image: image}, Command: []string{"sleep", "301"},
		InputDir: in, OutputDir: outDir, MemoryMiB: 16}
	if err := r.Prepare(context.Background(), archive); err != nil {
		t.Fatal(err)
	}
	p, err := StartJob(context.Background(), func() *exec.Cmd { c, _ := r.Cmd(); return c })
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the container runs", func() bool {
		b, _ := store.run(context.Background(), "ps", "-q", "--filter", "name=hvctl-test-sleep")
		return len(bytes.TrimSpace(b)) > 0
	})
	p.Kill()
	r.Finish(p.Wait())
	if b, _ := exec.Command("pgrep", "-f", "sleep 301").Output(); len(b) > 0 {
		t.Errorf("the container's process outlived the cancel: %s", b)
	}
	// Nothing is left: no container, no cgroup.
	if b, _ := store.run(context.Background(), "ps", "-a", "-q"); len(bytes.TrimSpace(b)) != 0 {
		t.Errorf("containers left: %s", b)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/hvctl/hvctl-test-*"); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	store.run(context.Background(), "rmi", "-f", image)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within 30s", what)
}

// BenchmarkContainerJob: the cost of running a job's command in a
// container (image already in the node's store) against running it on
// the node, both as job processes, measured in the same run.
func BenchmarkContainerJob(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		b.Skip("needs podman")
	}
	if _, err := ociRuntime(); err != nil {
		b.Skip(err)
	}
	dir := b.TempDir()
	archive := filepath.Join(dir, "image.tar")
	if err := testimage.BusyboxRootfs(archive); err != nil {
		b.Fatal(err)
	}
	store := &ContainerStore{Dir: filepath.Join(dir, "store")}
	image := fmt.Sprintf("localhost/hvctl-bench-%d:1", rand.IntN(1e6))
	defer store.run(context.Background(), "rmi", "-f", image)
	var plain, boxed time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		p, err := StartJob(context.Background(), func() *exec.Cmd { return exec.Command("true") })
		if err != nil || p.Wait() != nil {
			b.Fatal(err)
		}
		plain += time.Since(start)
		start = time.Now()
		r := &ContainerRun{Store: store, Name: fmt.Sprint("hvctl-bench-", i), Spec: &scheduler.Container{Image: image}, Command: []string{"true"},
			InputDir: filepath.Join(dir, "in"), OutputDir: filepath.Join(dir, "out"), MemoryMiB: 64}
		if err := r.Run(context.Background(), archive, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
		if i > 0 || b.N == 1 { // the first run loads the image
			boxed += time.Since(start)
		}
	}
	n := float64(max(b.N-1, 1))
	b.ReportMetric(plain.Seconds()/float64(b.N)*1000, "plain-ms/job")
	b.ReportMetric(boxed.Seconds()/n*1000, "container-ms/job")
	b.ReportMetric((boxed.Seconds()/n)/(plain.Seconds()/float64(b.N)), "container/plain")
}

// FuzzArchiveKind: any bytes as an image archive give a kind or an
// error, never a panic.
func FuzzArchiveKind(f *testing.F) {
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "a")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		kind, err := archiveKind(p)
		if err == nil && kind != "rootfs" && kind != "docker-archive" && kind != "oci-archive" {
			t.Fatalf("kind %q", kind)
		}
	})
}
