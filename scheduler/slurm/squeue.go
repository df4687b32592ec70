package slurm

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// TimeFormatEnv must be in the environment of squeue so that submit times
// print as ParsePending reads them ("2006-01-02T15:04:05", local time).
const TimeFormatEnv = "SLURM_TIME_FORMAT=standard"

// SqueuePendingArgs lists the pending jobs, one line per job (and per job
// array element), for ParsePending: job ID | CPUs | nodes | memory per
// node | submit time | partitions | reason | features. Features come last:
// a constraint may hold '|' ("a|b").
var SqueuePendingArgs = []string{"-h", "-r", "--noconvert", "-t", "PD", "-o", "%i|%C|%D|%m|%V|%P|%r|%f"}

// SqueueRunningArgs lists the jobs holding nodes (configuring, running,
// completing, suspended, stopped) with their node lists, for
// ParseRunning: job ID | nodes.
var SqueueRunningArgs = []string{"-h", "-r", "-t", "CF,R,CG,S,ST", "-o", "%i|%N"}

// Pending is one pending SLURM job.
type Pending struct {
	JobID string
	// CPUs is the job's total CPU count over Nodes nodes (at least 1).
	CPUs, Nodes int
	// MemoryMiB is the memory asked for per node; 0 when none was. A job
	// submitted with --mem-per-cpu shows its per-CPU figure here (squeue
	// does not tell them apart).
	MemoryMiB int64
	// Submitted is zero when SLURM did not print a time.
	Submitted  time.Time
	Partitions []string
	Reason     string
	// Features is the --constraint expression, "" for none.
	Features string
}

// blockedReasons are pending reasons that no new node resolves.
var blockedReasons = map[string]bool{
	"BadConstraints": true, "BeginTime": true, "Dependency": true, "DependencyNeverSatisfied": true,
	"InvalidAccount": true, "InvalidQOS": true, "JobHeldAdmin": true, "JobHeldUser": true,
	"PartitionDown": true, "PartitionInactive": true, "PartitionTimeLimit": true, "Reservation": true,
}

// Blocked reports whether the job waits for something other than nodes:
// held, a dependency, a begin time, a reservation, a partition that is
// down, or an accounting/QOS limit. Such jobs are no demand for capacity.
func (p Pending) Blocked() bool {
	return blockedReasons[p.Reason] || strings.HasPrefix(p.Reason, "Assoc") || strings.HasPrefix(p.Reason, "QOS") || p.LaunchFailedHeld()
}

// LaunchFailedHeld reports whether SLURM requeued the job held after its
// launch failed ("launch failed requeued held"), as it does when the
// node it was given did not come up within ResumeTimeout. Nothing but a
// release (scontrol release) runs it again.
func (p Pending) LaunchFailedHeld() bool {
	return strings.EqualFold(strings.ReplaceAll(p.Reason, "_", " "), "launch failed requeued held")
}

// MaxLaunchReleases is how often hvctl releases one job that SLURM held
// after a failed launch: the node is made again for it each time, so a
// job whose nodes never come up is left held after that, for a person.
const MaxLaunchReleases = 3

// ToRelease picks the jobs SLURM held after a failed launch that hvctl
// releases now (released counts earlier releases per job ID, and is
// updated), and those it leaves held because they were released
// MaxLaunchReleases times already (each reported once: its count is set
// past the limit).
func ToRelease(pending []Pending, released map[string]int) (release, giveUp []string) {
	for _, p := range pending {
		if !p.LaunchFailedHeld() {
			continue
		}
		switch n := released[p.JobID]; {
		case n < MaxLaunchReleases:
			release = append(release, p.JobID)
			released[p.JobID] = n + 1
		case n == MaxLaunchReleases:
			giveUp = append(giveUp, p.JobID)
			released[p.JobID] = n + 1
		}
	}
	return release, giveUp
}

// ParsePending decodes the output of squeue SqueuePendingArgs. Submit
// times are read in loc (the zone squeue ran in; nil means UTC).
func ParsePending(out []byte, loc *time.Location) ([]Pending, error) {
	if loc == nil {
		loc = time.UTC
	}
	var jobs []Pending
	err := eachLine(out, func(ln int, line string) error {
		f := strings.SplitN(line, "|", 8)
		if len(f) != 8 {
			return fmt.Errorf("squeue line %d: %d fields, want 8: %q", ln, len(f), line)
		}
		bad := func(what string, v string, err error) error {
			if err != nil {
				return fmt.Errorf("squeue line %d: %s %q: %v", ln, what, v, err)
			}
			return fmt.Errorf("squeue line %d: bad %s %q", ln, what, v)
		}
		p := Pending{JobID: f[0], Reason: f[6], Features: f[7]}
		if p.JobID == "" {
			return bad("job ID", f[0], nil)
		}
		var err error
		if p.CPUs, err = count(f[1]); err != nil {
			return bad("CPU count", f[1], err)
		}
		if p.Nodes, err = count(f[2]); err != nil {
			return bad("node count", f[2], err)
		}
		p.CPUs, p.Nodes = max(p.CPUs, 1), max(p.Nodes, 1)
		if p.MemoryMiB, err = parseMemory(f[3]); err != nil {
			return bad("memory", f[3], err)
		}
		if p.Submitted, err = submitTime(f[4], loc); err != nil {
			return bad("submit time", f[4], err)
		}
		if f[5] == "" {
			return bad("partition", f[5], nil)
		}
		p.Partitions = strings.Split(f[5], ",")
		if p.Features == "(null)" {
			p.Features = ""
		}
		jobs = append(jobs, p)
		return nil
	})
	return jobs, err
}

// ParseRunning decodes the output of squeue SqueueRunningArgs into the
// number of jobs on each node; a job over several nodes counts on each.
func ParseRunning(out []byte) (map[string]int, error) {
	running := map[string]int{}
	err := eachLine(out, func(ln int, line string) error {
		id, nodes, ok := strings.Cut(line, "|")
		if !ok || strings.Contains(nodes, "|") {
			return fmt.Errorf("squeue line %d: want 2 fields: %q", ln, line)
		}
		if id == "" {
			return fmt.Errorf("squeue line %d: empty job ID", ln)
		}
		if nodes == "" || nodes == "(null)" {
			return nil
		}
		names, err := ExpandHostlist(nodes)
		if err != nil {
			return fmt.Errorf("squeue line %d: node list: %w", ln, err)
		}
		for _, n := range names {
			running[n]++
		}
		return nil
	})
	return running, err
}

// eachLine calls fn with each non-blank line and its 1-based number.
func eachLine(out []byte, fn func(ln int, line string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := fn(ln, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read output: %w", err)
	}
	return nil
}

// count reads a non-negative count; a range "2-4" (a pending job's
// node count) reads as its minimum.
func count(s string) (int, error) {
	if lo, _, ok := strings.Cut(s, "-"); ok && lo != "" {
		s = lo
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a count")
	}
	return n, nil
}

// parseMemory reads a SLURM memory figure in MiB: "0", "500", "500M",
// "2G", "1.5G", "1T" (K, M, G, T, P; no unit means M), rounding up.
func parseMemory(s string) (int64, error) {
	mult := 1.0
	if s != "" {
		switch s[len(s)-1] {
		case 'K', 'k':
			mult = 1.0 / 1024
		case 'M', 'm':
		case 'G', 'g':
			mult = 1 << 10
		case 'T', 't':
			mult = 1 << 20
		case 'P', 'p':
			mult = 1 << 30
		default:
			mult = 0
		}
		if mult != 0 {
			s = s[:len(s)-1]
		} else {
			mult = 1
		}
	}
	if !decimal(s) {
		return 0, fmt.Errorf("not a memory size")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("not a memory size")
	}
	mib := math.Ceil(v * mult)
	if mib > 1<<50 {
		return 0, fmt.Errorf("memory size too large")
	}
	return int64(mib), nil
}

// decimal reports whether s is digits with at most one '.' between them.
func decimal(s string) bool {
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || len(intPart) > 18 || hasDot && (frac == "" || len(frac) > 18) {
		return false
	}
	for _, c := range intPart + frac {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// submitTime reads squeue's standard time format; "N/A", "Unknown" and
// "None" are no time.
func submitTime(s string, loc *time.Location) (time.Time, error) {
	switch s {
	case "N/A", "Unknown", "None", "0":
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("want YYYY-MM-DDTHH:MM:SS (%s)", TimeFormatEnv)
	}
	return t, nil
}
