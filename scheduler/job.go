package scheduler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hvctl/hvctl/templates"
)

// State is a job's place in its life:
// queued → assigned → running → done | failed | cancelled.
type State string

const (
	Queued    State = "queued"
	Assigned  State = "assigned"
	Running   State = "running"
	Done      State = "done"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

// Final reports whether no further transition can happen.
func (s State) Final() bool { return s == Done || s == Failed || s == Cancelled }

// Resources is what a job needs from a node.
type Resources struct {
	CPUs      int               `json:"cpus,omitempty" hcl:"cpus,optional"`
	MemoryMiB int64             `json:"memory_mib,omitempty"`
	GPUs      int               `json:"gpus,omitempty" hcl:"gpus,optional"`
	Labels    map[string]string `json:"labels,omitempty" hcl:"labels,optional"`
}

// Spec is what a user submits: one job, or an array of Count copies
// (HVCTL_ARRAY_INDEX tells each its index).
type Spec struct {
	Name       string    `json:"name,omitempty"`
	Command    []string  `json:"command"`
	Resources  Resources `json:"resources,omitempty"`
	Inputs     []string  `json:"inputs,omitempty"`      // dataset names, fetched through the site cache
	Output     string    `json:"output,omitempty"`      // where results go on the global tier
	Priority   int       `json:"priority,omitempty"`    // higher runs first
	MaxRetries int       `json:"max_retries,omitempty"` // after a failure of the command; node loss always retries
	Count      int       `json:"count,omitempty"`       // array size; 0 or 1 = one job
	Site       string    `json:"site,omitempty"`        // pin to a site
	// Container, when set, runs Command in an OCI container.
	Container *Container `json:"container,omitempty"`
}

// Container runs a job's command in an OCI image (podman on the node):
// the job's input directory is mounted read-only at ContainerInputDir,
// its output directory at ContainerOutputDir, its CPU and memory limits
// are the container's.
type Container struct {
	// Image is the image reference: "docker.io/library/alpine:3.20",
	// or the name a local archive gives (or is given) on load.
	Image string `json:"image"`
	// Archive, when set, is the dataset (also listed in inputs) that
	// holds the image as a tarball: an image archive (podman save:
	// docker-archive or oci-archive) is loaded, a root filesystem
	// tarball is imported as Image. Without it the image is pulled.
	Archive string `json:"archive,omitempty"`
	// Mounts are extra bind mounts "HOST:CONTAINER" or
	// "HOST:CONTAINER:ro", absolute paths on the node.
	Mounts []string `json:"mounts,omitempty"`
}

// Where a container job finds its input and output directories
// ($HVCTL_INPUT_DIR and $HVCTL_OUTPUT_DIR say so too).
const (
	ContainerInputDir  = "/hvctl/input"
	ContainerOutputDir = "/hvctl/output"
)

// MaxMounts bounds a container's extra mounts.
const MaxMounts = 64

// Check validates a container spec.
func (c *Container) Check(inputs []string) error {
	switch {
	case c.Image == "":
		return &SpecError{"container.image", "is required: an image reference such as \"docker.io/library/alpine:3.20\""}
	case len(c.Image) > 512 || strings.ContainsAny(c.Image, " \t\n\r\x00\\\"'") || strings.HasPrefix(c.Image, "-"):
		return &SpecError{"container.image", fmt.Sprintf("%q is not an image reference (no spaces, quotes or backslashes; at most 512 bytes)", c.Image)}
	case len(c.Mounts) > MaxMounts:
		return &SpecError{"container.mounts", fmt.Sprintf("at most %d mounts", MaxMounts)}
	}
	if c.Archive != "" {
		found := false
		for _, in := range inputs {
			found = found || in == c.Archive
		}
		if !found {
			return &SpecError{"container.archive", fmt.Sprintf("dataset %q must also be listed in inputs (it is fetched through the caches like any input)", c.Archive)}
		}
	}
	for _, m := range c.Mounts {
		if _, _, _, err := ParseMount(m); err != nil {
			return &SpecError{"container.mounts", err.Error()}
		}
	}
	return nil
}

// ParseMount reads "HOST:CONTAINER[:ro|rw]": both absolute and clean,
// no commas, the container path not one of the job's own directories.
func ParseMount(m string) (host, ctr string, ro bool, err error) {
	f := strings.Split(m, ":")
	if len(f) < 2 || len(f) > 3 {
		return "", "", false, fmt.Errorf("mount %q: want HOST:CONTAINER or HOST:CONTAINER:ro", m)
	}
	if len(f) == 3 {
		switch f[2] {
		case "ro":
			ro = true
		case "rw":
		default:
			return "", "", false, fmt.Errorf("mount %q: option %q: want ro or rw", m, f[2])
		}
	}
	host, ctr = f[0], f[1]
	for _, p := range []string{host, ctr} {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsAny(p, ",\x00\n") {
			return "", "", false, fmt.Errorf("mount %q: %q is not a clean absolute path (no commas)", m, p)
		}
	}
	if ctr == "/" || ctr == "/hvctl" || strings.HasPrefix(ctr, "/hvctl/") {
		return "", "", false, fmt.Errorf("mount %q: %s is the job's own (%s and %s)", m, ctr, ContainerInputDir, ContainerOutputDir)
	}
	return host, ctr, ro, nil
}

// Job is one job in the system.
type Job struct {
	ID        string    `json:"id"`
	ArrayID   string    `json:"array_id,omitempty"`
	Index     int       `json:"index"`
	Spec      Spec      `json:"spec"`
	State     State     `json:"state"`
	Site      string    `json:"site,omitempty"`
	Node      string    `json:"node,omitempty"`
	Attempt   int       `json:"attempt"`
	Retries   int       `json:"retries"` // command failures retried so far
	ExitCode  *int      `json:"exit_code,omitempty"`
	Error     string    `json:"error,omitempty"`
	Submitted time.Time `json:"submitted"`
	Started   time.Time `json:"started,omitzero"`
	Ended     time.Time `json:"ended,omitzero"`
	// Reason says why a queued job is not running yet, when the
	// global manager knows (its site's local manager is unreachable).
	Reason string `json:"reason,omitempty"`
}

// SpecError is a rejected job description, naming the field.
type SpecError struct {
	Field string
	Msg   string
}

func (e *SpecError) Error() string { return fmt.Sprintf("job %s: %s", e.Field, e.Msg) }

// MaxArray bounds array jobs.
const MaxArray = 100000

// Job size limits, checked once at submit: a job that passes them is
// never refused further down (sites take batches that fit any job).
const (
	// MaxSpecBytes bounds one job spec as JSON. Bigger data goes in a
	// dataset (inputs), not in the command line.
	MaxSpecBytes = 256 << 10
	// MaxSubmitBytes bounds a whole submit: the spec's size times its
	// count (each job of an array carries the spec).
	MaxSubmitBytes = 256 << 20
)

// SizeError is a job spec over a size limit (the API answers 413).
type SizeError struct{ Msg string }

func (e *SizeError) Error() string { return "job spec too large: " + e.Msg }

// checkSize enforces MaxSpecBytes and MaxSubmitBytes.
func (s *Spec) checkSize() error {
	b, err := json.Marshal(s)
	if err != nil {
		return &SpecError{"body", err.Error()}
	}
	if len(b) > MaxSpecBytes {
		return &SizeError{fmt.Sprintf("the spec is %d bytes; the limit is %d KiB (put large data in a dataset and name it in inputs)", len(b), MaxSpecBytes>>10)}
	}
	if n := int64(len(b)) * int64(max(s.Count, 1)); n > MaxSubmitBytes {
		return &SizeError{fmt.Sprintf("%d jobs of %d bytes each make %d MiB; one submit may hold at most %d MiB of job specs (submit fewer at a time)", max(s.Count, 1), len(b), n>>20, MaxSubmitBytes>>20)}
	}
	return nil
}

// Check validates a spec.
func (s *Spec) Check() error {
	switch {
	case len(s.Command) == 0 || strings.TrimSpace(strings.Join(s.Command, "")) == "":
		return &SpecError{"command", "is required: the program and its arguments"}
	case s.Resources.CPUs < 0:
		return &SpecError{"resources.cpus", "must not be negative"}
	case s.Resources.MemoryMiB < 0:
		return &SpecError{"resources.memory", "must not be negative"}
	case s.Resources.GPUs < 0:
		return &SpecError{"resources.gpus", "must not be negative"}
	case s.MaxRetries < 0 || s.MaxRetries > 100:
		return &SpecError{"max_retries", "must be between 0 and 100"}
	case s.Count < 0 || s.Count > MaxArray:
		return &SpecError{"count", fmt.Sprintf("must be between 0 and %d", MaxArray)}
	}
	for _, in := range s.Inputs {
		if in == "" || strings.ContainsAny(in, "/\\\x00") || in == "." || in == ".." {
			return &SpecError{"inputs", fmt.Sprintf("dataset name %q is not a plain name", in)}
		}
	}
	if s.Container != nil {
		if err := s.Container.Check(s.Inputs); err != nil {
			return err
		}
	}
	return s.checkSize()
}

// CPUSlots is the CPU slots a job takes (at least one).
func (r Resources) CPUSlots() int {
	if r.CPUs < 1 {
		return 1
	}
	return r.CPUs
}

// jsonSpec accepts memory as "4GiB" or a MiB number.
type jsonSpec struct {
	Spec
	Resources struct {
		CPUs   int             `json:"cpus"`
		Memory json.RawMessage `json:"memory"`
		// MemoryMiB is how a Spec marshals (what the client sends).
		MemoryMiB *int64            `json:"memory_mib"`
		GPUs      int               `json:"gpus"`
		Labels    map[string]string `json:"labels"`
	} `json:"resources"`
}

// DecodeJSON reads a job spec in JSON: {"command": [...], "resources":
// {"cpus": 2, "memory": "4GiB"}, ...}. Unknown fields are errors.
// A body over MaxSpecBytes is a *SizeError.
func DecodeJSON(r io.Reader) (*Spec, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSpecBytes+1))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, &SizeError{fmt.Sprintf("the request body is over %d KiB", mb.Limit>>10)}
		}
		return nil, &SpecError{"body", "read: " + err.Error()}
	}
	if len(b) > MaxSpecBytes {
		return nil, &SizeError{fmt.Sprintf("the request body is over %d KiB (put large data in a dataset and name it in inputs)", MaxSpecBytes>>10)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var js jsonSpec
	if err := dec.Decode(&js); err != nil {
		return nil, jsonError(err)
	}
	if dec.More() {
		return nil, &SpecError{"body", "trailing data after the job"}
	}
	s := js.Spec
	s.Resources = Resources{CPUs: js.Resources.CPUs, GPUs: js.Resources.GPUs, Labels: js.Resources.Labels}
	if js.Resources.MemoryMiB != nil {
		if len(js.Resources.Memory) > 0 && string(js.Resources.Memory) != "null" {
			return nil, &SpecError{"resources.memory_mib", "give memory or memory_mib, not both"}
		}
		s.Resources.MemoryMiB = *js.Resources.MemoryMiB
	}
	if len(js.Resources.Memory) > 0 && string(js.Resources.Memory) != "null" {
		var str string
		var n int64
		switch {
		case json.Unmarshal(js.Resources.Memory, &str) == nil:
			b, err := templates.ParseSize(str)
			if err != nil {
				return nil, &SpecError{"resources.memory", err.Error()}
			}
			s.Resources.MemoryMiB = b >> 20
		case json.Unmarshal(js.Resources.Memory, &n) == nil:
			s.Resources.MemoryMiB = n
		default:
			return nil, &SpecError{"resources.memory", `a size like "4GiB" or a number of MiB`}
		}
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return &s, nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if ok := asType(err, &te); ok {
		return &SpecError{strings.TrimPrefix(te.Field, "Spec."), "expected " + te.Type.String()}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &SpecError{strings.Trim(f, `"`), "unknown field"}
	}
	return &SpecError{"body", "not valid JSON: " + err.Error()}
}

// hclSpec is the HCL form of a job file:
//
//	job "render" {
//	  command   = ["sh", "-c", "echo hi"]
//	  resources { cpus = 2  memory = "4GiB" }
//	  inputs    = ["audio-1"]
//	  priority  = 5
//	  count     = 100
//	  container {                    # optional: run in an OCI image
//	    image  = "localhost/tools:1"
//	    archive = "tools-image"      # a dataset in inputs; else pulled
//	    mounts = ["/srv/ref:/ref:ro"]
//	  }
//	}
type hclSpec struct {
	Jobs []struct {
		Name       string   `hcl:"name,label"`
		Command    []string `hcl:"command"`
		Inputs     []string `hcl:"inputs,optional"`
		Output     string   `hcl:"output,optional"`
		Priority   int      `hcl:"priority,optional"`
		MaxRetries int      `hcl:"max_retries,optional"`
		Count      int      `hcl:"count,optional"`
		Site       string   `hcl:"site,optional"`
		Resources  *struct {
			CPUs   int               `hcl:"cpus,optional"`
			Memory string            `hcl:"memory,optional"`
			GPUs   int               `hcl:"gpus,optional"`
			Labels map[string]string `hcl:"labels,optional"`
		} `hcl:"resources,block"`
		Container *struct {
			Image   string   `hcl:"image"`
			Archive string   `hcl:"archive,optional"`
			Mounts  []string `hcl:"mounts,optional"`
		} `hcl:"container,block"`
	} `hcl:"job,block"`
}

// DecodeHCL reads a job file in HCL; diagnostics name file and line.
func DecodeHCL(filename string, src []byte) ([]*Spec, hcl.Diagnostics) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	var hs hclSpec
	diags = gohcl.DecodeBody(f.Body, nil, &hs)
	if diags.HasErrors() {
		return nil, diags
	}
	if len(hs.Jobs) == 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No job block", Detail: `A job file holds one or more job "NAME" { command = [...] } blocks.`, Subject: &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}}}
	}
	var out []*Spec
	body := f.Body.(*hclsyntax.Body)
	for i, j := range hs.Jobs {
		s := &Spec{Name: j.Name, Command: j.Command, Inputs: j.Inputs, Output: j.Output, Priority: j.Priority,
			MaxRetries: j.MaxRetries, Count: j.Count, Site: j.Site}
		rng := body.Blocks[i].DefRange()
		if j.Container != nil {
			s.Container = &Container{Image: j.Container.Image, Archive: j.Container.Archive, Mounts: j.Container.Mounts}
		}
		if j.Resources != nil {
			s.Resources = Resources{CPUs: j.Resources.CPUs, GPUs: j.Resources.GPUs, Labels: j.Resources.Labels}
			if j.Resources.Memory != "" {
				b, err := templates.ParseSize(j.Resources.Memory)
				if err != nil {
					return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid memory", Detail: err.Error(), Subject: &rng}}
				}
				s.Resources.MemoryMiB = b >> 20
			}
		}
		if err := s.Check(); err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid job " + j.Name, Detail: err.Error(), Subject: &rng}}
		}
		out = append(out, s)
	}
	return out, nil
}

// DecodeFile reads a job file: JSON when it starts with "{", else HCL.
func DecodeFile(filename string, src []byte) ([]*Spec, error) {
	if t := bytes.TrimSpace(src); len(t) > 0 && t[0] == '{' {
		s, err := DecodeJSON(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filename, err)
		}
		return []*Spec{s}, nil
	}
	specs, diags := DecodeHCL(filename, src)
	if diags.HasErrors() {
		return nil, diags
	}
	return specs, nil
}
