package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/agent"
	"github.com/hvctl/hvctl/templates"
)

func init() {
	register(&command{name: "container", usage: "run [flags] -- CMD...",
		help: "Run a command in an OCI image as a job does (the wrapper for SLURM jobs)", run: runContainer,
		subs: []*command{
			{name: "run", usage: "-image IMAGE [-archive FILE] [-mount HOST:CTR[:ro]]... [-input DIR] [-output DIR] [-cpus N] [-memory SIZE] [-store DIR] -- CMD...",
				help:     "Run CMD in IMAGE with podman: the input directory read-only at /hvctl/input, the output directory at /hvctl/output, CPU and memory limits (under SLURM: the job's)",
				examples: []string{"sbatch --wrap 'hvctl container run -image localhost/tools:1 -archive /shared/tools.tar -- sh -c \"ls /hvctl/input\"'"}},
		}})
}

// runContainer is hvctl container run: one container in the foreground,
// through the same code as the builtin runner's container jobs. Under
// SLURM it takes the job's CPUs and memory and keeps one image store per
// SLURM node, so a node loads an image once.
func runContainer(a *App, args []string) int {
	usage := "Usage: hvctl container run -image IMAGE [-archive FILE] [-mount HOST:CTR[:ro]]... -- CMD..."
	if len(args) == 0 || args[0] != "run" {
		return a.fail(usage, "container run runs one command in an OCI image with podman, as hvctl runs container jobs.")
	}
	fs := a.flagSet(findCommand("container").sub("run"))
	image := fs.String("image", "", "image reference (from the archive, the store, or pulled)")
	archive := fs.String("archive", "", "image archive or root filesystem tarball to load the image from, once per store")
	var mounts multiString
	fs.Var(&mounts, "mount", "extra bind mount HOST:CONTAINER[:ro] (repeatable)")
	input := fs.String("input", "", "directory mounted read-only at "+scheduler.ContainerInputDir+" (default: the working directory)")
	output := fs.String("output", "", "directory mounted at "+scheduler.ContainerOutputDir+" (default: the working directory)")
	cpus := fs.Int("cpus", 0, "CPU limit (default: the SLURM job's SLURM_CPUS_PER_TASK or SLURM_CPUS_ON_NODE)")
	mem := fs.String("memory", "", "memory limit, e.g. 512MiB (default: the SLURM job's SLURM_MEM_PER_NODE)")
	store := fs.String("store", "", "image store directory (default: $HVCTL_CONTAINER_STORE; as root /var/lib/hvctl/containers/$SLURMD_NODENAME)")
	var cmd []string
	for i, x := range args[1:] {
		if x == "--" {
			cmd, args = args[i+2:], args[:i+1]
			break
		}
	}
	pos, code, ok := a.parse(fs, args[1:])
	if !ok {
		return code
	}
	if len(pos) > 0 || len(cmd) == 0 {
		return a.fail(usage, "Give the command after --.")
	}
	cwd, _ := os.Getwd()
	for _, d := range []*string{input, output} {
		if *d == "" {
			*d = cwd
		}
	}
	if *cpus == 0 {
		*cpus = envInt("SLURM_CPUS_PER_TASK", envInt("SLURM_CPUS_ON_NODE", 0))
	}
	if *store == "" {
		*store = defaultStore()
	}
	spec := &scheduler.Spec{Command: cmd, Container: &scheduler.Container{Image: *image, Mounts: mounts}}
	if err := spec.Container.Check(nil); err != nil {
		return a.failErr(err)
	}
	var memMiB int64
	switch {
	case *mem != "":
		b, err := templates.ParseSize(*mem)
		if err != nil {
			return a.fail("Invalid -memory", err.Error())
		}
		memMiB = b >> 20
	default:
		memMiB = int64(envInt("SLURM_MEM_PER_NODE", 0))
	}
	arch := *archive
	if arch != "" {
		if p, err := filepath.Abs(arch); err == nil {
			arch = p
		}
		if _, err := os.Stat(arch); err != nil {
			return a.failErr(err)
		}
	}
	dir, run := agent.StoreDirs(*store)
	name := "hvctl-run-" + strconv.Itoa(os.Getpid())
	if id := os.Getenv("SLURM_JOB_ID"); id != "" {
		name = "hvctl-slurm-" + id + "-" + os.Getenv("SLURM_STEP_ID")
	}
	r := &agent.ContainerRun{Store: &agent.ContainerStore{Dir: dir, RunDir: run}, Name: strings.TrimSuffix(name, "-"), Spec: spec.Container, Command: cmd,
		Env:      []string{"HVCTL_INPUT_DIR=" + scheduler.ContainerInputDir, "HVCTL_OUTPUT_DIR=" + scheduler.ContainerOutputDir},
		InputDir: *input, OutputDir: *output, CPUs: *cpus, MemoryMiB: memMiB}
	err := r.Run(a.Ctx, arch, a.Stdout, a.Stderr)
	var ee *exec.ExitError
	var me *agent.MemoryError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &me):
		fmt.Fprintln(a.Stderr, "hvctl container run:", me.Error())
		return 137
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		return a.fail("Cannot run the container", err.Error())
	}
}

// defaultStore is the image store: HVCTL_CONTAINER_STORE; else, as
// root, /var/lib/hvctl/containers with one store per SLURM node (the
// local provider's nodes share a filesystem); else the user's own.
func defaultStore() string {
	if s := os.Getenv("HVCTL_CONTAINER_STORE"); s != "" {
		return s
	}
	node := os.Getenv("SLURMD_NODENAME")
	if node == "" {
		node = "local"
	}
	if os.Geteuid() == 0 {
		return filepath.Join("/var/lib/hvctl/containers", node)
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local/share/hvctl/containers", node)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
