package slurm

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SacctArgs lists every job slurmdbd recorded, all users, one line per
// job (no steps), for ParseSacct: job ID | state | exit code | user |
// partition | nodes | submit | start | end | name. The name comes last:
// it may hold '|'. Run it with TimeFormatEnv.
var SacctArgs = []string{"-a", "-X", "-n", "-P", "--noconvert", "-S", "1970-01-01T00:00:00", "-E", "now",
	"-o", "JobID,State,ExitCode,User,Partition,NodeList,Submit,Start,End,JobName"}

// AcctJob is one job as slurmdbd recorded it.
type AcctJob struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	User  string `json:"user,omitempty"`
	State string `json:"state"` // PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ...
	// ExitCode is the job's exit status and Signal the signal that ended
	// it (sacct's "code:signal").
	ExitCode  int    `json:"exit_code"`
	Signal    int    `json:"signal,omitempty"`
	Partition string `json:"partition,omitempty"`
	// Nodes are the SLURM node names the job ran on (none while it
	// waits).
	Nodes     []string  `json:"nodes,omitempty"`
	Submitted time.Time `json:"submitted,omitzero"`
	Started   time.Time `json:"started,omitzero"`
	Ended     time.Time `json:"ended,omitzero"`
}

// ParseSacct decodes the output of sacct SacctArgs; times are read in
// loc (nil means UTC).
func ParseSacct(out []byte, loc *time.Location) ([]AcctJob, error) {
	if loc == nil {
		loc = time.UTC
	}
	var jobs []AcctJob
	err := eachLine(out, func(ln int, line string) error {
		f := strings.SplitN(line, "|", 10)
		if len(f) != 10 {
			return fmt.Errorf("sacct line %d: %d fields, want 10: %q", ln, len(f), line)
		}
		bad := func(what, v string, err error) error {
			if err != nil {
				return fmt.Errorf("sacct line %d: %s %q: %v", ln, what, v, err)
			}
			return fmt.Errorf("sacct line %d: bad %s %q", ln, what, v)
		}
		j := AcctJob{ID: f[0], User: f[3], Partition: f[4], Name: f[9]}
		if j.ID == "" || strings.ContainsAny(j.ID, " \t") {
			return bad("job ID", f[0], nil)
		}
		// "CANCELLED by 0": the state is the first word.
		state, _, _ := strings.Cut(f[1], " ")
		if state == "" || strings.ToUpper(state) != state {
			return bad("state", f[1], nil)
		}
		j.State = state
		code, sig, ok := strings.Cut(f[2], ":")
		var err error
		if !ok {
			return bad("exit code", f[2], nil)
		}
		if j.ExitCode, err = strconv.Atoi(code); err != nil || j.ExitCode < 0 || j.ExitCode > 255 {
			return bad("exit code", f[2], err)
		}
		if j.Signal, err = strconv.Atoi(sig); err != nil || j.Signal < 0 || j.Signal > 255 {
			return bad("exit signal", f[2], err)
		}
		if nl := f[5]; nl != "" && nl != "None assigned" && nl != "(null)" {
			if j.Nodes, err = ExpandHostlist(nl); err != nil {
				return bad("node list", nl, err)
			}
		}
		for _, t := range []struct {
			what string
			v    string
			dst  *time.Time
		}{{"submit time", f[6], &j.Submitted}, {"start time", f[7], &j.Started}, {"end time", f[8], &j.Ended}} {
			if *t.dst, err = acctTime(t.v, loc); err != nil {
				return bad(t.what, t.v, err)
			}
		}
		jobs = append(jobs, j)
		return nil
	})
	return jobs, err
}

// acctTime reads a sacct time; "Unknown", "None" and "" are zero.
func acctTime(s string, loc *time.Location) (time.Time, error) {
	switch s {
	case "", "Unknown", "None", "N/A":
		return time.Time{}, nil
	}
	return time.ParseInLocation("2006-01-02T15:04:05", s, loc)
}
