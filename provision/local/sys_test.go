package local

import (
	"os"
	"os/exec"
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
