package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// jobScript starts processes every way a job may: in the background,
// in a subshell's background (reparented), and in the foreground.
const jobScript = `sleep 300 & (sleep 300 &) ; sh -c 'sleep 300' & sleep 300`

// needRoot skips (or fails under HVCTL_E2E=1) without root: PID
// namespaces need CAP_SYS_ADMIN.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("HVCTL_E2E") == "1" {
		t.Fatalf("job process test needs root (PID namespaces); HVCTL_E2E=1 makes this a failure")
	}
	t.Skip("job process test needs root (PID namespaces); run as root, or set HVCTL_E2E=1 to make this a failure")
}

// marked lists the processes whose environment holds mark.
func marked(mark string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, []byte("HVCTL_TEST_MARK="+mark+"\x00")) {
			cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			out = append(out, e.Name()+":"+string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// waitFor waits (generously) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newMark(t *testing.T) string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func startMarked(t *testing.T, mark string) *JobProcess {
	t.Helper()
	p, err := StartJob(context.Background(), func() *exec.Cmd {
		cmd := exec.Command("sh", "-c", jobScript)
		cmd.Env = append(os.Environ(), "HVCTL_TEST_MARK="+mark)
		return cmd
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJobKillLeavesNoProcess: Kill (cancel) ends every process of a
// job, those it started in the background included.
func TestJobKillLeavesNoProcess(t *testing.T) {
	needRoot(t)
	mark := newMark(t)
	p := startMarked(t, mark)
	if !p.PIDNamespace {
		t.Errorf("as root, a job should run in its own PID namespace")
	}
	waitFor(t, "the job's 5 processes", func() bool { return len(marked(mark)) >= 5 })
	p.Kill()
	if err := p.Wait(); err == nil {
		t.Errorf("a killed job exited 0")
	}
	waitFor(t, "no process of the killed job", func() bool { return len(marked(mark)) == 0 })
	if !p.Killed() {
		t.Errorf("Killed() = false after Kill")
	}
	p.Kill() // again, after the end: harmless
}

// TestJobDiesWithAgent: when the agent is SIGKILLed, its jobs' processes
// die too (Pdeathsig on the job's first process, which ends its PID
// namespace), so a job queued again elsewhere never runs twice.
func TestJobDiesWithAgent(t *testing.T) {
	if mark := os.Getenv("HVCTL_JOBPROC_AGENT"); mark != "" {
		// The helper "agent": start a job, then wait to be killed.
		startMarked(t, mark)
		fmt.Println("started")
		time.Sleep(time.Hour)
		return
	}
	needRoot(t)
	mark := newMark(t)
	agent := exec.Command(os.Args[0], "-test.run=^TestJobDiesWithAgent$")
	agent.Env = append(os.Environ(), "HVCTL_JOBPROC_AGENT="+mark)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	waitFor(t, "the job's 5 processes", func() bool { return len(marked(mark)) >= 5 })
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agent.Wait()
	waitFor(t, "no process of the dead agent's job", func() bool { return len(marked(mark)) == 0 })
}
