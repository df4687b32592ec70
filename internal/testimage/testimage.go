// Package testimage builds tiny container images offline for tests: a
// root filesystem tarball holding this machine's busybox, its shared
// libraries and its applets as links, for podman import. No registry
// is used.
package testimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Marker is the content of /etc/hvctl-image in the image: a job that
// prints it runs in the image, not on the host.
const Marker = "hvctl busybox test image\n"

// Applets are the busybox commands the image links in /bin.
var Applets = []string{"sh", "echo", "cat", "ls", "sleep", "head", "tail", "tr", "id", "wc", "cp", "mkdir", "grep", "env", "true", "false", "dd", "nproc"}

// BusyboxRootfs writes a root filesystem tarball to path: /bin/busybox
// (the one on PATH) with the libraries ldd lists for it, and Applets.
func BusyboxRootfs(path string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox is not installed (Debian: apt-get install busybox): %w", err)
	}
	bb, err = filepath.EvalSymlinks(bb)
	if err != nil {
		return err
	}
	files := map[string]string{"bin/busybox": bb} // in the image -> on this machine
	out, err := exec.Command("ldd", bb).CombinedOutput()
	if err == nil { // a static busybox has none ("not a dynamic executable": ldd fails)
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			for _, f := range strings.Fields(sc.Text()) {
				if strings.HasPrefix(f, "/") {
					files[strings.TrimPrefix(f, "/")] = f
				}
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	addDir := func(d string) error {
		var parts []string
		for ; d != "." && d != "/" && !dirs[d]; d = filepath.Dir(d) {
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			dirs[parts[i]] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parts[i] + "/", Mode: 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range []string{"tmp", "proc", "sys", "dev", "etc", "hvctl"} {
		if err := addDir(d); err != nil {
			return err
		}
	}
	for name, body := range map[string]string{
		"etc/passwd":      "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
		"etc/group":       "root:x:0:\nnogroup:x:65534:\n",
		"etc/hvctl-image": Marker,
	} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return err
		}
	}
	for inImage, host := range files {
		if err := addDir(filepath.Dir(inImage)); err != nil {
			return err
		}
		src, err := os.Open(host)
		if err != nil {
			return err
		}
		st, _ := src.Stat()
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: inImage, Mode: 0o755, Size: st.Size()}); err != nil {
			src.Close()
			return err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return err
		}
	}
	for _, a := range Applets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox"}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
