package local

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestParentPID: killNetnsProcs spares a process whose parent is this
// one (an ip command of a concurrent operation) and only that.
func TestParentPID(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	cases := []struct {
		name string
		pid  int
		want int
	}{
		{"this process", os.Getpid(), os.Getppid()},
		{"its child", child.Process.Pid, os.Getpid()},
		{"no such process", 1 << 30, 0},
	}
	for _, c := range cases {
		if got := ParentPID(c.pid); got != c.want {
			t.Errorf("%s: ParentPID(%d) = %d, want %d", c.name, c.pid, got, c.want)
		}
	}
}

// TestProcStatAcrossTimeNamespaces: a process's start read from inside a
// time namespace with a boottime offset (a node's agent, and the elastic
// daemon a hub's agent runs) is the start the host reads, so a record
// made there does not read as a dead agent here.
func TestProcStatAcrossTimeNamespaces(t *testing.T) {
	if pid := os.Getenv("HVCTL_TEST_PROCSTAT_PID"); pid != "" {
		n, _ := strconv.Atoi(pid)
		start, _, err := procStat(n)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("start=%d offset=%d\n", start, bootOffsetTicks())
		return
	}
	requireRoot(t)
	here, _, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, offset := range []string{"-46263", "5000"} {
		cmd := exec.Command("unshare", "--time", "--fork", "--boottime", offset, "--", os.Args[0], "-test.run", "^TestProcStatAcrossTimeNamespaces$", "-test.v")
		cmd.Env = append(os.Environ(), "HVCTL_TEST_PROCSTAT_PID="+strconv.Itoa(os.Getpid()))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("boottime %s: %v\n%s", offset, err, out)
		}
		var start uint64
		var off int64
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "start=") {
				fmt.Sscanf(line, "start=%d offset=%d", &start, &off)
			}
		}
		if want, _ := strconv.ParseInt(offset, 10, 64); off != want*userHZ {
			t.Errorf("boottime %s: the namespace's offset read as %d ticks, want %d\n%s", offset, off, want*userHZ, out)
		}
		if start != here {
			t.Errorf("boottime %s: this process's start read there as %d, here %d", offset, start, here)
		}
	}
}
