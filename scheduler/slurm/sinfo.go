package slurm

import (
	"fmt"
	"strconv"
	"strings"
)

// SinfoArgs lists every node SLURM shows, one line per node and
// partition, for ParseNodes: name | state | CPUs
// allocated/idle/other/total | memory (MiB). Powered-down CLOUD nodes
// only show with PrivateData=cloud, which Conf sets.
var SinfoArgs = []string{"-h", "-N", "--noconvert", "-o", "%N|%T|%C|%m"}

// NodeFlags are the conditions sinfo prints around a node's base state.
type NodeFlags uint32

const (
	// Down: the node is DOWN (no work until it registers again).
	Down NodeFlags = 1 << iota
	// Drain: DRAINING or DRAINED, by an administrator or a failed
	// health check: no new work.
	Drain
	// Fail: FAIL or FAILING, expected to fail: no new work.
	Fail
	// NotResponding ('*'): slurmctld cannot reach the node's slurmd.
	NotResponding
	// PoweredDown ('~'): in power save; for a CLOUD node, it does not
	// exist.
	PoweredDown
	// PoweringUp ('#'): ResumeProgram was run, slurmd has not registered.
	PoweringUp
	// PowerDownPending ('!'): will be powered down when idle.
	PowerDownPending
	// PoweringDown ('%'): SuspendProgram was run, SuspendTimeout has not
	// passed.
	PoweringDown
	// Completing ('+', or the COMPLETING state): jobs are ending.
	Completing
	// Maint ('$' or MAINT): in a maintenance reservation.
	Maint
	// Reboot ('@', '^', or a REBOOT state): a reboot is pending or issued.
	Reboot
	// Planned ('-' or PLANNED): held by the backfill scheduler for a
	// higher-priority job.
	Planned
	// Invalid (INVAL): the node registered with less than its configured
	// resources.
	Invalid
)

// NodeInfo is one node as sinfo shows it.
type NodeInfo struct {
	Name string
	// State is the base state in lowercase without suffixes: "idle",
	// "mixed", "allocated", "completing", "down", "drained", "draining",
	// "fail", "failing", "future", "inval", "maint", "reboot",
	// "powered_down", "unknown", ... (any word sinfo prints).
	State string
	Flags NodeFlags
	// AllocCPUs, IdleCPUs and TotalCPUs are from sinfo's A/I/O/T figure.
	AllocCPUs, IdleCPUs, TotalCPUs int
	MemoryMiB                      int64
}

// Has reports whether all of f are set.
func (n NodeInfo) Has(f NodeFlags) bool { return n.Flags&f == f }

// Lost reports whether the node cannot run work for a fault: down or not
// responding.
func (n NodeInfo) Lost() bool { return n.Flags&(Down|NotResponding) != 0 }

// Absent reports whether no slurmd of the node is registered because the
// node is powered off or on its way up or down (power save, CLOUD nodes
// not yet made), or because SLURM has not heard from it since it started.
func (n NodeInfo) Absent() bool {
	if n.Flags&(PoweredDown|PoweringUp|PoweringDown) != 0 {
		return true
	}
	switch n.State {
	case "future", "cloud", "powered_down", "powering_up", "powering_down":
		return true
	case "unknown":
		return !n.Has(NotResponding)
	}
	return false
}

// suffixFlags are the characters sinfo appends to a state (man sinfo,
// NODE STATE CODES).
var suffixFlags = map[byte]NodeFlags{
	'*': NotResponding, '~': PoweredDown, '#': PoweringUp, '!': PowerDownPending,
	'%': PoweringDown, '$': Maint, '@': Reboot, '^': Reboot, '-': Planned, '+': Completing,
}

// stateFlags are the flags a base state word implies.
var stateFlags = map[string]NodeFlags{
	"down": Down, "drained": Drain, "draining": Drain, "drain": Drain,
	"fail": Fail, "failing": Fail, "completing": Completing,
	"maint": Maint, "reboot": Reboot, "reboot_issued": Reboot, "reboot_requested": Reboot,
	"planned": Planned, "inval": Invalid,
	"powered_down": PoweredDown, "powering_up": PoweringUp, "powering_down": PoweringDown,
	"power_down": PowerDownPending,
}

// parseState reads a state as sinfo's %T prints it ("idle~",
// "allocated+", "drained*", "DOWN#"): the lowercase base state and the
// flags of its suffixes and of the state itself.
func parseState(s string) (state string, flags NodeFlags, err error) {
	st := strings.ToLower(s)
	for len(st) > 0 {
		f, ok := suffixFlags[st[len(st)-1]]
		if !ok {
			break
		}
		flags |= f
		st = st[:len(st)-1]
	}
	if st == "" {
		return "", 0, fmt.Errorf("no state")
	}
	for i := 0; i < len(st); i++ {
		if c := st[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return "", 0, fmt.Errorf("bad character %q", c)
		}
	}
	return st, flags | stateFlags[st], nil
}

// ParseNodes decodes the output of sinfo SinfoArgs. A node that shows in
// several partitions is listed once.
func ParseNodes(out []byte) ([]NodeInfo, error) {
	var nodes []NodeInfo
	seen := map[string]bool{}
	err := eachLine(out, func(ln int, line string) error {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			return fmt.Errorf("sinfo line %d: %d fields, want 4: %q", ln, len(f), line)
		}
		names, err := ExpandHostlist(f[0])
		if err != nil || len(names) != 1 {
			return fmt.Errorf("sinfo line %d: bad node name %q: want one node per line (sinfo -N)", ln, f[0])
		}
		n := NodeInfo{Name: names[0]}
		if n.State, n.Flags, err = parseState(f[1]); err != nil {
			return fmt.Errorf("sinfo line %d: bad state %q: %v", ln, f[1], err)
		}
		if n.AllocCPUs, n.IdleCPUs, n.TotalCPUs, err = cpuCounts(f[2]); err != nil {
			return fmt.Errorf("sinfo line %d: bad CPUs %q: %v", ln, f[2], err)
		}
		if n.MemoryMiB, err = parseMemory(f[3]); err != nil {
			return fmt.Errorf("sinfo line %d: bad memory %q: %v", ln, f[3], err)
		}
		if !seen[n.Name] {
			seen[n.Name] = true
			nodes = append(nodes, n)
		}
		return nil
	})
	return nodes, err
}

// cpuCounts reads "allocated/idle/other/total".
func cpuCounts(s string) (alloc, idle, total int, err error) {
	f := strings.Split(s, "/")
	if len(f) != 4 {
		return 0, 0, 0, fmt.Errorf("want A/I/O/T")
	}
	var v [4]int
	for i, x := range f {
		if v[i], err = strconv.Atoi(x); err != nil || v[i] < 0 {
			return 0, 0, 0, fmt.Errorf("want A/I/O/T")
		}
	}
	return v[0], v[1], v[3], nil
}
