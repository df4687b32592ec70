package manager

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hvctl/hvctl/scheduler"
)

// CommandVersion is the version of the control log's command encoding.
// A replica refuses a command of another version rather than guess.
const CommandVersion = 1

// Command ops.
const (
	// OpRegistry replaces the node registry (members, spent join
	// tokens, overlay addresses, site designations, the peer-set
	// version, and whatever else persisted holds).
	OpRegistry = "registry"
	// OpJobs upserts jobs of the global job table; a job not seen
	// before is appended to the submission order. An array submit is
	// its spec and count (Array), expanded by every replica alike.
	OpJobs = "jobs"
	// OpResult writes a chunk of a job's result file, or ends its
	// upload (results.go).
	OpResult = "result"
	// OpTemplate records the cluster's template, as hvctl up last sent
	// it (template.go).
	OpTemplate = "template"
)

// Command is one entry of the control log. Exactly the payload its Op
// names is set.
type Command struct {
	V        int              `json:"v"`
	Op       string           `json:"op"`
	Registry *persisted       `json:"registry,omitempty"`
	Jobs     []*scheduler.Job `json:"jobs,omitempty"`
	// Key, with jobs, is the idempotency key of the submit that made
	// them.
	Key *scheduler.SubmitKey `json:"key,omitempty"`
	// Updates, with OpJobs, are changes of jobs the table has (after
	// Jobs): what moves, without the spec.
	Updates []*JobUpdate `json:"updates,omitempty"`
	// Array, with OpJobs, is an array submit (before Jobs, if any).
	Array *scheduler.ArraySubmit `json:"array,omitempty"`
	// Template is the cluster's template.
	Template *Template `json:"template,omitempty"`
	// Result is a result upload's chunk or end.
	Result *ResultChunk `json:"result,omitempty"`
}

// MaxCommandBytes bounds one command (an array of 100,000 jobs is
// about 40 MB).
const MaxCommandBytes = 256 << 20

// EncodeCommand encodes c for the log.
func EncodeCommand(c *Command) ([]byte, error) {
	c.V = CommandVersion
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %w", c.Op, err)
	}
	return b, nil
}

// DecodeCommand decodes and checks one log entry: its version, its op,
// that it carries that op's payload and nothing else, unknown fields,
// trailing data, and that every job has an ID and a known state.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) > MaxCommandBytes {
		return nil, fmt.Errorf("control log command: %d bytes, more than %d", len(b), MaxCommandBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Command
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("control log command: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("control log command: trailing data")
	}
	if c.V != CommandVersion {
		return nil, fmt.Errorf("control log command: version %d, this hvctl reads version %d", c.V, CommandVersion)
	}
	switch c.Op {
	case OpTemplate:
		if c.Template == nil || len(c.Template.Files) == 0 || c.Registry != nil || c.Jobs != nil || c.Key != nil || c.Array != nil || c.Result != nil || c.Updates != nil {
			return nil, fmt.Errorf("control log command %s: wants a template with files and nothing else", c.Op)
		}
	case OpResult:
		if c.Result == nil || c.Registry != nil || c.Jobs != nil || c.Key != nil || c.Array != nil || c.Template != nil || c.Updates != nil {
			return nil, fmt.Errorf("control log command %s: wants a result chunk and nothing else", c.Op)
		}
		if err := checkResultChunk(c.Result); err != nil {
			return nil, fmt.Errorf("control log command %s: %w", c.Op, err)
		}
	case OpRegistry:
		if c.Registry == nil || c.Jobs != nil || c.Key != nil || c.Result != nil || c.Array != nil || c.Template != nil || c.Updates != nil {
			return nil, fmt.Errorf("control log command %s: wants a registry and no jobs", c.Op)
		}
		if err := checkRegistry(c.Registry); err != nil {
			return nil, fmt.Errorf("control log command %s: %w", c.Op, err)
		}
	case OpJobs:
		if c.Registry != nil || len(c.Jobs) == 0 && c.Array == nil && len(c.Updates) == 0 || c.Result != nil || c.Template != nil {
			return nil, fmt.Errorf("control log command %s: wants jobs and no registry", c.Op)
		}
		for i, u := range c.Updates {
			if u == nil {
				return nil, fmt.Errorf("control log command %s: update %d: no job ID", c.Op, i)
			}
			if err := checkJob(u.job()); err != nil {
				return nil, fmt.Errorf("control log command %s: update %d: %w", c.Op, i, err)
			}
		}
		if a := c.Array; a != nil {
			if a.ArrayID == "" || strings.ContainsAny(a.ArrayID, "./") || a.Count < 2 || a.Count > scheduler.MaxArray || a.Spec.Count != 0 {
				return nil, fmt.Errorf("control log command %s: array %q of %d jobs: wants an ID and 2 to %d jobs", c.Op, a.ArrayID, a.Count, scheduler.MaxArray)
			}
			if len(a.Spec.Command) == 0 {
				return nil, fmt.Errorf("control log command %s: array %s: no command", c.Op, a.ArrayID)
			}
		}
		for i, j := range c.Jobs {
			if err := checkJob(j); err != nil {
				return nil, fmt.Errorf("control log command %s: job %d: %w", c.Op, i, err)
			}
		}
		if c.Key != nil {
			if err := checkKey(c.Key); err != nil {
				return nil, fmt.Errorf("control log command %s: %w", c.Op, err)
			}
		}
	default:
		return nil, fmt.Errorf("control log command: unknown op %q", c.Op)
	}
	return &c, nil
}

// JobUpdate is a change of a job the table already has: everything
// that moves, not what was submitted (spec, array, index, submit time).
type JobUpdate struct {
	ID       string          `json:"id"`
	State    scheduler.State `json:"state"`
	Site     string          `json:"site,omitempty"`
	Node     string          `json:"node,omitempty"`
	Attempt  int             `json:"attempt"`
	Retries  int             `json:"retries,omitempty"`
	ExitCode *int            `json:"exit_code,omitempty"`
	Error    string          `json:"error,omitempty"`
	Started  time.Time       `json:"started,omitzero"`
	Ended    time.Time       `json:"ended,omitzero"`
	Reason   string          `json:"reason,omitempty"`
}

func updateOf(j *scheduler.Job) *JobUpdate {
	return &JobUpdate{ID: j.ID, State: j.State, Site: j.Site, Node: j.Node, Attempt: j.Attempt, Retries: j.Retries,
		ExitCode: j.ExitCode, Error: j.Error, Started: j.Started, Ended: j.Ended, Reason: j.Reason}
}

// job is u as a job without its spec (for checks).
func (u *JobUpdate) job() *scheduler.Job {
	return &scheduler.Job{ID: u.ID, State: u.State, Attempt: u.Attempt, Retries: u.Retries}
}

// applyTo moves j to u.
func (u *JobUpdate) applyTo(j *scheduler.Job) {
	j.State, j.Site, j.Node, j.Attempt, j.Retries = u.State, u.Site, u.Node, u.Attempt, u.Retries
	j.ExitCode, j.Error, j.Started, j.Ended, j.Reason = u.ExitCode, u.Error, u.Started, u.Ended, u.Reason
}

func checkRegistry(p *persisted) error {
	for id, n := range p.Nodes {
		if n == nil || n.ID != id || id == "" {
			return fmt.Errorf("node %q: missing or named %q", id, nodeID(n))
		}
	}
	for site, id := range p.Designated {
		if site == "" || id == "" {
			return fmt.Errorf("designation %q = %q: empty", site, id)
		}
	}
	return nil
}

func nodeID(n *Node) string {
	if n == nil {
		return ""
	}
	return n.ID
}

func checkJob(j *scheduler.Job) error {
	if j == nil || j.ID == "" {
		return fmt.Errorf("no job ID")
	}
	switch j.State {
	case scheduler.Queued, scheduler.Assigned, scheduler.Running, scheduler.Done, scheduler.Failed, scheduler.Cancelled:
	default:
		return fmt.Errorf("job %s: unknown state %q", j.ID, j.State)
	}
	if j.Attempt < 0 || j.Retries < 0 {
		return fmt.Errorf("job %s: negative attempt or retries", j.ID)
	}
	return nil
}

func checkKey(k *scheduler.SubmitKey) error {
	if k.Key == "" || len(k.Key) > scheduler.MaxKeyLen {
		return fmt.Errorf("idempotency key: empty or longer than %d characters", scheduler.MaxKeyLen)
	}
	if h, err := hex.DecodeString(k.Spec); err != nil || len(h) != 32 {
		return fmt.Errorf("idempotency key %q: spec hash is not 64 hex digits", k.Key)
	}
	if k.First == "" || k.Count < 1 {
		return fmt.Errorf("idempotency key %q: no jobs", k.Key)
	}
	return nil
}
