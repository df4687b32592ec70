package slurm

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// ResumeFile is the JSON file that slurmctld names in SLURM_RESUME_FILE
// when it runs ResumeProgram: which nodes to power up, and for which jobs.
//
// SLURM 22.05 writes {"all_nodes": HOSTLIST, "jobs": [{"job_id": N,
// "nodes": HOSTLIST}]}. SLURM 23.02 renamed the lists to
// "all_nodes_resume" and "nodes_resume" and added "nodes_alloc",
// "partition", "features", "extra", "oversubscribe" and "reservation";
// both forms are read. Node lists are hostlist expressions
// (ExpandHostlist); strings SLURM leaves null are "".
type ResumeFile struct {
	AllNodes string
	Jobs     []ResumeJob
}

// ResumeJob is one job whose nodes are being powered up.
type ResumeJob struct {
	JobID uint32
	// Nodes are the job's nodes powered up by this run ("nodes" in
	// 22.05, "nodes_resume" later); NodesAlloc all its nodes (23.02+).
	Nodes, NodesAlloc string
	Partition         string
	Features          string
	Extra             string
	OverSubscribe     string
	Reservation       string
}

type resumeJSON struct {
	AllNodes       *string         `json:"all_nodes"`
	AllNodesResume *string         `json:"all_nodes_resume"`
	Jobs           []resumeJobJSON `json:"jobs"`
}

type resumeJobJSON struct {
	JobID         json.RawMessage `json:"job_id"`
	Nodes         *string         `json:"nodes"`
	NodesResume   *string         `json:"nodes_resume"`
	NodesAlloc    *string         `json:"nodes_alloc"`
	Partition     *string         `json:"partition"`
	Features      *string         `json:"features"`
	Extra         *string         `json:"extra"`
	OverSubscribe *string         `json:"oversubscribe"`
	Reservation   *string         `json:"reservation"`
}

// ParseResumeFile decodes a SLURM_RESUME_FILE. Unknown fields are
// ignored; a missing node list is "".
func ParseResumeFile(data []byte) (ResumeFile, error) {
	var raw resumeJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		return ResumeFile{}, fmt.Errorf("resume file: %w", err)
	}
	rf := ResumeFile{AllNodes: first(raw.AllNodesResume, raw.AllNodes)}
	for i, j := range raw.Jobs {
		id, err := jobID(j.JobID)
		if err != nil {
			return ResumeFile{}, fmt.Errorf("resume file: job %d: job_id %s: %v", i, j.JobID, err)
		}
		rf.Jobs = append(rf.Jobs, ResumeJob{
			JobID: id, Nodes: first(j.NodesResume, j.Nodes), NodesAlloc: first(j.NodesAlloc),
			Partition: first(j.Partition), Features: first(j.Features), Extra: first(j.Extra),
			OverSubscribe: first(j.OverSubscribe), Reservation: first(j.Reservation),
		})
	}
	return rf, nil
}

// first returns the first non-nil string.
func first(ss ...*string) string {
	for _, s := range ss {
		if s != nil {
			return *s
		}
	}
	return ""
}

// jobID reads a job ID written as a JSON number (or, defensively, a
// string of digits).
func jobID(raw json.RawMessage) (uint32, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, fmt.Errorf("missing")
	}
	s := string(raw)
	var str string
	if json.Unmarshal(raw, &str) == nil {
		s = str
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("not a job ID")
	}
	return uint32(v), nil
}
