package agent

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler"
)

// Containers. A job with a container spec runs its command in an OCI
// image with podman, in this node's own image store (DIR/containers):
// the store is the node cache tier of images, so a node pulls or loads
// an image once, whatever the number of jobs that use it.
//
// Limits. The job's CPUs become --cpus. Its memory limit is set by the
// agent on a parent cgroup it makes for the attempt (podman
// --cgroup-parent), not by podman --memory: so the agent reads the
// OOM kills of the attempt from that cgroup after the container is gone
// (with cgroup v1 podman does not report them) and reports the job as
// killed for its memory. Both cgroup v1 and v2 are handled; without
// root, podman runs rootless and the memory limit is podman's.
//
// OCI runtime. crun (podman's default on Debian) refuses to run on a
// cgroup v1 machine that has a controller on the v2 hierarchy too
// ("hybrid"); there runc is used when it is installed.

// ContainerStore is the image store of a node (podman --root and
// --runroot under it).
type ContainerStore struct {
	Dir string
	// RunDir is podman's --runroot, "" for Dir/run: podman wants it
	// under 50 bytes.
	RunDir string
	// Logf, when set, logs every pull and load.
	Logf func(format string, args ...any)

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	have  map[string]bool // images known to be in the store
}

// podman returns podman's global arguments for the store.
func (s *ContainerStore) podman() ([]string, error) {
	args := []string{"podman", "--root", filepath.Join(s.Dir, "storage"), "--runroot", s.runDir(),
		"--events-backend=file", "--tmpdir", filepath.Join(s.Dir, "tmp")}
	if os.Geteuid() == 0 {
		args = append(args, "--cgroup-manager=cgroupfs")
	}
	rt, err := ociRuntime()
	if err != nil {
		return nil, err
	}
	if rt != "" {
		args = append(args, "--runtime="+rt)
	}
	return args, nil
}

func (s *ContainerStore) runDir() string {
	if s.RunDir != "" {
		return s.RunDir
	}
	return filepath.Join(s.Dir, "run")
}

var (
	runtimeOnce sync.Once
	runtimeName string
	runtimeErr  error
)

// ociRuntime is the runtime to name to podman ("" = podman's default).
func ociRuntime() (string, error) {
	runtimeOnce.Do(func() {
		if !hybridCgroups() {
			return
		}
		if _, err := exec.LookPath("runc"); err == nil {
			runtimeName = "runc"
			return
		}
		runtimeErr = errors.New("this machine has cgroup v1 with a controller on the v2 hierarchy too (hybrid), where crun runs no container; install runc (Debian: apt-get install runc)")
	})
	return runtimeName, runtimeErr
}

const cgroup2Magic = 0x63677270

// cgroupV2 reports whether /sys/fs/cgroup is the unified (v2) hierarchy.
func cgroupV2() bool {
	var st syscall.Statfs_t
	return syscall.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == cgroup2Magic
}

// hybridCgroups reports cgroup v1 with controllers on the v2 hierarchy.
func hybridCgroups() bool {
	if cgroupV2() {
		return false
	}
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	return err == nil && strings.TrimSpace(string(b)) != ""
}

func (s *ContainerStore) lock(image string) func() {
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]*sync.Mutex{}
	}
	m := s.locks[image]
	if m == nil {
		m = &sync.Mutex{}
		s.locks[image] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (s *ContainerStore) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// run runs podman with the store's arguments.
func (s *ContainerStore) run(ctx context.Context, args ...string) ([]byte, error) {
	base, err := s.podman()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(s.Dir, "storage"), s.runDir(), filepath.Join(s.Dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	cmd := exec.CommandContext(ctx, base[0], append(base[1:], args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("podman %s: %v: %s", args[0], err, strings.TrimSpace(lastLines(stderr.Bytes(), 5)))
	}
	return out, nil
}

// Ensure makes image present in the store, once: from archive (a file)
// when given, else by pulling it. It reports whether it pulled or
// loaded it now.
func (s *ContainerStore) Ensure(ctx context.Context, image, archive string) (loaded bool, err error) {
	defer s.lock(image)()
	s.mu.Lock()
	known := s.have[image]
	s.mu.Unlock()
	if known {
		return false, nil
	}
	defer func() {
		if err == nil {
			s.mu.Lock()
			if s.have == nil {
				s.have = map[string]bool{}
			}
			s.have[image] = true
			s.mu.Unlock()
		}
	}()
	if _, err := s.run(ctx, "image", "exists", image); err == nil {
		return false, nil
	}
	if archive == "" {
		if _, err := s.run(ctx, "pull", "-q", image); err != nil {
			return false, err
		}
		s.logf("container: pulled image %s into this node's store", image)
		return true, nil
	}
	kind, err := archiveKind(archive)
	if err != nil {
		return false, err
	}
	switch kind {
	case "rootfs":
		if _, err := s.run(ctx, "import", "-q", archive, image); err != nil {
			return false, err
		}
	default:
		out, err := s.run(ctx, "load", "-q", "-i", archive)
		if err != nil {
			return false, err
		}
		if _, err := s.run(ctx, "image", "exists", image); err != nil {
			// An archive of one untagged image takes the job's name.
			loaded := loadedImages(out)
			if len(loaded) != 1 {
				return false, fmt.Errorf("image archive %s holds no image named %s (it holds %s)", filepath.Base(archive), image, strings.Join(loaded, ", "))
			}
			if _, err := s.run(ctx, "tag", loaded[0], image); err != nil {
				return false, err
			}
		}
	}
	s.logf("container: loaded image %s from %s (%s) into this node's store", image, filepath.Base(archive), kind)
	return true, nil
}

// loadedImages reads podman load's "Loaded image(s): A, B" lines.
func loadedImages(out []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		_, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}

// archiveKind tells an image archive (docker-archive: manifest.json;
// oci-archive: oci-layout) from a root filesystem tarball, gzip or not.
func archiveKind(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return "", fmt.Errorf("image archive %s: %w", filepath.Base(file), err)
		}
		r = gz
	}
	tr := tar.NewReader(r)
	for i := 0; i < 100000; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("image archive %s is not a tar file: %w", filepath.Base(file), err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "manifest.json":
			return "docker-archive", nil
		case "oci-layout", "index.json":
			return "oci-archive", nil
		}
	}
	return "rootfs", nil
}

// ContainerRun is one container run.
type ContainerRun struct {
	Store *ContainerStore
	// Name is the container's name: unique on the node.
	Name      string
	Spec      *scheduler.Container
	Command   []string
	Env       []string // KEY=VALUE inside the container
	InputDir  string   // mounted read-only at scheduler.ContainerInputDir
	OutputDir string   // mounted at scheduler.ContainerOutputDir
	CPUs      int
	MemoryMiB int64

	cg *memCgroup
}

// MemoryError is a container run that the kernel killed because it went
// over its memory limit.
type MemoryError struct {
	LimitMiB int64
	// Events counts the OOM events seen (v1) or the processes killed
	// (v2).
	Events int
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("killed: out of memory (the job went over its memory limit of %d MiB, and the kernel's OOM killer ended it)", e.LimitMiB)
}

// Cmd makes the podman command of the run; Prepare must have
// succeeded.
func (r *ContainerRun) Cmd() (*exec.Cmd, error) {
	base, err := r.Store.podman()
	if err != nil {
		return nil, err
	}
	args := append(base[1:], "run", "--rm", "--name", r.Name, "--pull=never", "--network=host",
		"--workdir", scheduler.ContainerInputDir,
		"-v", r.InputDir+":"+scheduler.ContainerInputDir+":ro",
		"-v", r.OutputDir+":"+scheduler.ContainerOutputDir)
	for _, m := range r.Spec.Mounts {
		host, ctr, ro, err := scheduler.ParseMount(m)
		if err != nil {
			return nil, err
		}
		v := host + ":" + ctr
		if ro {
			v += ":ro"
		}
		args = append(args, "-v", v)
	}
	if os.Geteuid() == 0 {
		// Rootful podman sets rlimits above the agent's own, which
		// fails without CAP_SYS_RESOURCE: the agent's, capped.
		args = append(args, "--ulimit", "nofile="+rlimit(syscall.RLIMIT_NOFILE, 1<<20), "--ulimit", "nproc="+rlimit(6 /* RLIMIT_NPROC */, 32768))
	}
	if r.CPUs > 0 {
		args = append(args, "--cpus="+strconv.Itoa(r.CPUs))
	}
	if r.cg != nil {
		// conmon stays out of it: an OOM kill of conmon would leave
		// podman waiting for an exit status that never comes.
		args = append(args, "--cgroup-parent="+r.cg.parent, "--cgroups=no-conmon")
	} else if r.MemoryMiB > 0 {
		args = append(args, "--memory="+strconv.FormatInt(r.MemoryMiB, 10)+"m", "--memory-swap="+strconv.FormatInt(r.MemoryMiB, 10)+"m")
	}
	for _, e := range r.Env {
		args = append(args, "-e", e)
	}
	args = append(args, "--", r.Spec.Image)
	args = append(args, r.Command...)
	// conmon leaves files in its working directory (an "oom" marker).
	wd := filepath.Join(r.Store.Dir, "tmp")
	if os.Geteuid() != 0 {
		cmd := exec.Command(base[0], args...)
		cmd.Dir = wd
		return cmd, nil
	}
	// As a job process, podman is the first process of a PID namespace
	// of its own, so that its end (a cancel, the agent's death) ends
	// conmon and the container too. The OCI runtime reads /proc, which
	// must then be that namespace's: a mount namespace with its own
	// /proc (its mounts, the container's root among them, end with it).
	cmd := exec.Command("unshare", append([]string{"--mount-proc", "--", base[0]}, args...)...)
	cmd.Dir = wd
	return cmd, nil
}

// rlimit is "N:N", the current hard limit capped at most.
func rlimit(res int, most uint64) string {
	var l syscall.Rlimit
	n := most
	if syscall.Getrlimit(res, &l) == nil && l.Max < n {
		n = l.Max
	}
	return strconv.FormatUint(n, 10) + ":" + strconv.FormatUint(n, 10)
}

// Prepare makes the image present and, as root with a memory limit, the
// attempt's parent cgroup.
func (r *ContainerRun) Prepare(ctx context.Context, archive string) error {
	if _, err := r.Store.Ensure(ctx, r.Spec.Image, archive); err != nil {
		return err
	}
	for _, d := range []string{r.InputDir, r.OutputDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if os.Geteuid() == 0 && r.MemoryMiB > 0 {
		// Nodes of the local provider share the host's cgroups.
		h := sha256.Sum256([]byte(r.Store.Dir))
		cg, err := newMemCgroup(r.Name+"-"+hex.EncodeToString(h[:4]), r.MemoryMiB)
		if err != nil {
			return fmt.Errorf("memory limit: %w", err)
		}
		r.cg = cg
	}
	return nil
}

// Finish removes what the run left (a killed podman leaves its
// container) and turns an OOM kill into a *MemoryError.
func (r *ContainerRun) Finish(runErr error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.Store.run(ctx, "rm", "-f", "--ignore", r.Name)
	if r.cg == nil {
		return runErr
	}
	kills := r.cg.oomKills()
	r.cg.remove()
	var ee *exec.ExitError
	if kills > 0 && (runErr == nil || errors.As(runErr, &ee)) {
		return &MemoryError{LimitMiB: r.MemoryMiB, Events: kills}
	}
	return runErr
}

// memCgroup is an attempt's parent memory cgroup.
type memCgroup struct {
	parent string   // as podman --cgroup-parent takes it: "/hvctl/NAME"
	dirs   []string // made here, innermost last
	v2     bool
	// v1: an eventfd registered for the cgroup's OOM notifications. The
	// kill counter (oom_kill) is the victim's cgroup's, the container's,
	// which podman removes; the notification is this cgroup's.
	efd, ofd int
}

func newMemCgroup(name string, mib int64) (*memCgroup, error) {
	limit := strconv.FormatInt(mib<<20, 10)
	cg := &memCgroup{parent: "/hvctl/" + name, v2: cgroupV2()}
	if cg.v2 {
		root := "/sys/fs/cgroup"
		top := filepath.Join(root, "hvctl")
		dir := filepath.Join(top, name)
		for _, d := range []string{top, dir} {
			if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
				return nil, err
			}
		}
		cg.dirs = []string{dir}
		for _, d := range []string{root, top} {
			if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory +cpu"), 0o644); err != nil {
				cg.remove()
				return nil, fmt.Errorf("enable the memory controller in %s (cgroup v2 without delegation?): %w", d, err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(limit), 0o644); err != nil {
			cg.remove()
			return nil, err
		}
		os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0o644)
		return cg, nil
	}
	top := "/sys/fs/cgroup/memory/hvctl"
	dir := filepath.Join(top, name)
	for _, d := range []string{top, dir} {
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return nil, fmt.Errorf("make memory cgroup %s: %w", d, err)
		}
	}
	cg.dirs = []string{dir}
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(limit), 0o644); err != nil {
		cg.remove()
		return nil, err
	}
	// With swap accounting, swap counts too: going over is an OOM kill,
	// not a slow job.
	if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
		os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), []byte(limit), 0o644)
	}
	cg.efd, cg.ofd = -1, -1
	efd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		cg.remove()
		return nil, fmt.Errorf("eventfd: %w", errno)
	}
	cg.efd = int(efd)
	ofd, err := syscall.Open(filepath.Join(dir, "memory.oom_control"), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		cg.remove()
		return nil, err
	}
	cg.ofd = ofd
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(fmt.Sprintf("%d %d", cg.efd, cg.ofd)), 0o200); err != nil {
		cg.remove()
		return nil, fmt.Errorf("register for OOM notifications: %w", err)
	}
	return cg, nil
}

// oomKills is how often the cgroup ran out of memory (cgroup v1: OOM
// notifications) or the number of processes the OOM killer ended in it
// (v2: memory.events).
func (cg *memCgroup) oomKills() int {
	if !cg.v2 {
		var b [8]byte
		n, err := syscall.Read(cg.efd, b[:])
		if err != nil || n != 8 {
			return 0
		}
		return int(binary.LittleEndian.Uint64(b[:]))
	}
	b, err := os.ReadFile(filepath.Join(cg.dirs[len(cg.dirs)-1], "memory.events"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// remove removes the cgroup and what podman left under it, in every
// v1 hierarchy podman made it in.
func (cg *memCgroup) remove() {
	for _, fd := range []*int{&cg.efd, &cg.ofd} {
		if *fd > 0 {
			syscall.Close(*fd)
			*fd = -1
		}
	}
	var roots []string
	if cg.v2 {
		roots = []string{"/sys/fs/cgroup"}
	} else {
		ents, _ := os.ReadDir("/sys/fs/cgroup")
		for _, e := range ents {
			roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	for _, root := range roots {
		dir := filepath.Join(root, cg.parent)
		for i := 0; i < 20; i++ {
			subs, _ := filepath.Glob(filepath.Join(dir, "*", "cgroup.procs"))
			for _, s := range subs {
				syscall.Rmdir(filepath.Dir(s))
			}
			if err := syscall.Rmdir(dir); err == nil || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// containerRun prepares the container of work w (nil, nil for a job
// without one): the image in the node's store, the limits.
func (a *Agent) containerRun(ctx context.Context, w scheduler.Work, inputDir, outputDir string, env []string) (*ContainerRun, error) {
	c := w.Job.Spec.Container
	if c == nil {
		return nil, nil
	}
	a.mu.Lock()
	if a.containers == nil {
		// Its run directory is below /run/hvctl: made here, 0755, not
		// by the store's 0700 MkdirAll.
		if err := provision.MakeShortRoot(); err != nil {
			a.mu.Unlock()
			return nil, err
		}
		a.containers = &ContainerStore{Dir: filepath.Join(a.cfg.Dir, "containers"), RunDir: provision.ContainerRunDir(a.cfg.Dir), Logf: a.log.Printf}
	}
	store := a.containers
	a.mu.Unlock()
	// Inside, the job's directories are where the container sees them.
	inner := make([]string, 0, len(env))
	for _, e := range env {
		switch k, _, _ := strings.Cut(e, "="); k {
		case "HVCTL_INPUT_DIR":
			e = k + "=" + scheduler.ContainerInputDir
		case "HVCTL_OUTPUT_DIR":
			e = k + "=" + scheduler.ContainerOutputDir
		}
		inner = append(inner, e)
	}
	r := &ContainerRun{Store: store, Name: containerName(w.Job.ID, w.Attempt), Spec: c, Command: w.Job.Spec.Command, Env: inner,
		InputDir: inputDir, OutputDir: outputDir, CPUs: w.Job.Spec.Resources.CPUs, MemoryMiB: w.Job.Spec.Resources.MemoryMiB}
	archive := ""
	if c.Archive != "" {
		archive = filepath.Join(inputDir, c.Archive)
	}
	if err := r.Prepare(ctx, archive); err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	if _, err := r.Cmd(); err != nil {
		r.Finish(nil)
		return nil, fmt.Errorf("container: %w", err)
	}
	return r, nil
}

// containerName is a podman container name for an attempt of a job.
func containerName(job string, attempt int) string {
	var b strings.Builder
	b.WriteString("hvctl-")
	for _, r := range job {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String() + "-" + strconv.Itoa(attempt)
}

// Run runs the container in the foreground as a job process (hvctl
// container run, the wrapper SLURM jobs use): the image from archive
// (a file) or pulled, output to stdout and stderr. The error is the
// command's (*exec.ExitError), a *MemoryError, or why it could not run.
func (r *ContainerRun) Run(ctx context.Context, archive string, stdout, stderr io.Writer) error {
	if err := r.Prepare(ctx, archive); err != nil {
		return err
	}
	var cmdErr error
	p, err := StartJob(ctx, func() *exec.Cmd {
		cmd, err := r.Cmd()
		if err != nil {
			cmdErr = err
			cmd = exec.Command("false")
		}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		return cmd
	})
	if err == nil && cmdErr != nil {
		p.Kill()
		p.Wait()
		err = cmdErr
	}
	if err != nil {
		r.Finish(nil)
		return err
	}
	return r.Finish(p.Wait())
}

// StoreDirs are the image store of a node that is not an hvctl agent's
// own (hvctl container run): DIR/storage and a short run directory.
func StoreDirs(dir string) (store, run string) {
	h := sha256.Sum256([]byte(dir))
	return dir, filepath.Join("/run/hvctl", "c-"+hex.EncodeToString(h[:6]))
}
