package manager

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/hvctl/hvctl/scheduler"
)

// controlFSM is the manager's control state as the raft log builds it,
// on every replica: the registry (as persisted) and the global job
// table. The serving manager works on its own copy and writes its
// changes through the log; a replica that becomes leader loads its copy
// from here.
type controlFSM struct {
	mu    sync.Mutex
	reg   *persisted
	jobs  map[string]*scheduler.Job
	order []string
	// keys are recent submits' idempotency keys (within
	// scheduler.KeyTTL of the newest).
	keys map[string]scheduler.SubmitKey
	// resultsDir holds this replica's copy of the job results
	// (results.go); results is their index, uploads the uploads not
	// yet ended.
	// tmpl is the template last recorded.
	tmpl       *Template
	resultsDir string
	results    map[string]map[string]ResultFile
	uploads    map[string]*snapUpload
}

func newControlFSM(resultsDir string) *controlFSM {
	return &controlFSM{jobs: map[string]*scheduler.Job{}, keys: map[string]scheduler.SubmitKey{}, resultsDir: resultsDir,
		results: map[string]map[string]ResultFile{}, uploads: map[string]*snapUpload{}}
}

var _ raft.FSM = (*controlFSM)(nil)

// Apply applies one committed command. A command that does not decode
// is skipped with an error result (every replica skips it alike).
func (f *controlFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := DecodeCommand(l.Data)
	if err != nil {
		return err
	}
	return f.apply(c)
}

func (f *controlFSM) apply(c *Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Op {
	case OpResult:
		return f.applyResultLocked(c.Result)
	case OpTemplate:
		f.tmpl = c.Template
	case OpRegistry:
		f.reg = c.Registry
	case OpJobs:
		jobs := c.Jobs
		if c.Array != nil {
			jobs = append(c.Array.Jobs(), jobs...)
		}
		for _, j := range jobs {
			if _, ok := f.jobs[j.ID]; !ok {
				f.order = append(f.order, j.ID)
			}
			f.jobs[j.ID] = j
		}
		// An update of a job the table does not have is dropped (every
		// replica drops it alike); the leader sends updates only for
		// jobs its log has applied.
		for _, u := range c.Updates {
			if j := f.jobs[u.ID]; j != nil {
				c := *j
				u.applyTo(&c)
				f.jobs[u.ID] = &c
			}
		}
		if c.Key != nil {
			f.keys[c.Key.Key] = *c.Key
			// Expired by the log's own clock (the newest key), so
			// every replica drops the same ones.
			for k, v := range f.keys {
				if c.Key.At.Sub(v.At) > scheduler.KeyTTL {
					delete(f.keys, k)
				}
			}
		}
	}
	return nil
}

// has reports whether the table has job id.
func (f *controlFSM) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jobs[id] != nil
}

// template is the template last recorded, nil if none.
func (f *controlFSM) template() *Template {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tmpl
}

// submitKeys returns the idempotency keys kept.
func (f *controlFSM) submitKeys() []scheduler.SubmitKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]scheduler.SubmitKey, 0, len(f.keys))
	for _, k := range f.keys {
		out = append(out, k)
	}
	return out
}

// state returns deep copies: the registry and the jobs in submission
// order.
func (f *controlFSM) state() (*persisted, []*scheduler.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var reg *persisted
	if f.reg != nil {
		b, err := json.Marshal(f.reg)
		if err != nil {
			return nil, nil, err
		}
		reg = &persisted{}
		if err := json.Unmarshal(b, reg); err != nil {
			return nil, nil, err
		}
	}
	jobs := make([]*scheduler.Job, 0, len(f.order))
	for _, id := range f.order {
		c := *f.jobs[id]
		jobs = append(jobs, &c)
	}
	return reg, jobs, nil
}

// resolve is where replica id listens for raft: its overlay address
// in the replicated registry.
func (f *controlFSM) resolve(id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reg == nil {
		return "", fmt.Errorf("no registry yet")
	}
	a, ok := f.reg.Addrs[id]
	if !ok {
		return "", fmt.Errorf("no overlay address")
	}
	return netip.AddrPortFrom(a, ReplicaPort).String(), nil
}

// apiURL is member id's API URL as the replicated registry has it.
func (f *controlFSM) apiURL(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reg == nil {
		return ""
	}
	return apiURL(f.reg.Nodes[id])
}

// snapshotVersion is the version of the snapshot encoding: a JSON
// header, then the content of the files it lists (Results, then
// Uploads, each of its size). Version 1 had no files.
const snapshotVersion = 2

// fsmSnapshot is a snapshot's header.
type fsmSnapshot struct {
	V        int                   `json:"v"`
	Registry *persisted            `json:"registry,omitempty"`
	Jobs     []*scheduler.Job      `json:"jobs"`
	Keys     []scheduler.SubmitKey `json:"keys,omitempty"`
	Template *Template             `json:"template,omitempty"`
	Results  []snapResult          `json:"results,omitempty"`
	Uploads  []snapUpload          `json:"uploads,omitempty"`
}

// encodedSnapshot is a snapshot's header and the files it carries:
// the results, read when it is written, then the uploads under way,
// opened when it was taken.
type encodedSnapshot struct {
	f       *controlFSM
	header  []byte
	results []snapResult
	sizes   []int64 // of the uploads
	files   []*os.File
}

func (s *encodedSnapshot) Persist(sink raft.SnapshotSink) error {
	err := func() error {
		if _, err := sink.Write(s.header); err != nil {
			return err
		}
		for _, r := range s.results {
			if err := s.f.copyResult(sink, r); err != nil {
				return err
			}
		}
		for i, fd := range s.files {
			if _, err := io.Copy(sink, io.NewSectionReader(fd, 0, s.sizes[i])); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("write control snapshot: %w", err)
	}
	return sink.Close()
}

func (s *encodedSnapshot) Release() {
	for _, fd := range s.files {
		fd.Close()
	}
}

// Snapshot encodes the state for raft's snapshot store.
func (f *controlFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := fsmSnapshot{V: snapshotVersion, Registry: f.reg, Template: f.tmpl, Jobs: make([]*scheduler.Job, 0, len(f.order))}
	for _, id := range f.order {
		s.Jobs = append(s.Jobs, f.jobs[id])
	}
	for _, k := range f.keys {
		s.Keys = append(s.Keys, k)
	}
	res, ups, fds, err := f.snapshotFilesLocked()
	if err != nil {
		return nil, err
	}
	s.Results, s.Uploads = res, ups
	b, err := json.Marshal(s)
	if err != nil {
		for _, fd := range fds {
			fd.Close()
		}
		return nil, fmt.Errorf("encode control snapshot: %w", err)
	}
	es := &encodedSnapshot{f: f, header: b, results: res, files: fds}
	for _, u := range ups {
		es.sizes = append(es.sizes, u.Len)
	}
	return es, nil
}

// Restore replaces the state with a snapshot's.
func (f *controlFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	dec := json.NewDecoder(io.LimitReader(rc, 4*MaxCommandBytes))
	s, err := decodeSnapshot(dec)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	content := io.MultiReader(dec.Buffered(), rc)
	if err := f.restoreFilesLocked(content, s.Results, s.Uploads); err != nil {
		return err
	}
	if n, _ := content.Read(make([]byte, 1)); n > 0 {
		return fmt.Errorf("control snapshot: trailing data")
	}
	f.reg = s.Registry
	f.tmpl = s.Template
	f.jobs = make(map[string]*scheduler.Job, len(s.Jobs))
	f.order = f.order[:0]
	for _, j := range s.Jobs {
		if _, ok := f.jobs[j.ID]; !ok {
			f.order = append(f.order, j.ID)
		}
		f.jobs[j.ID] = j
	}
	f.keys = make(map[string]scheduler.SubmitKey, len(s.Keys))
	for _, k := range s.Keys {
		f.keys[k.Key] = k
	}
	return nil
}

// decodeSnapshot decodes and checks a snapshot's header, as strictly
// as a command; the files it lists follow it in dec's input.
func decodeSnapshot(dec *json.Decoder) (*fsmSnapshot, error) {
	dec.DisallowUnknownFields()
	var s fsmSnapshot
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("control snapshot: %w", err)
	}
	if s.V != snapshotVersion && s.V != 1 {
		return nil, fmt.Errorf("control snapshot: version %d, this hvctl reads versions 1 and %d", s.V, snapshotVersion)
	}
	for _, r := range s.Results {
		c := ResultChunk{Job: r.Job, Name: r.Name, Upload: "00", End: true, Bytes: r.Bytes, SHA256: r.SHA256}
		if err := checkResultChunk(&c); err != nil {
			return nil, fmt.Errorf("control snapshot: %w", err)
		}
	}
	for _, u := range s.Uploads {
		c := u.ResultChunk
		if err := checkResultChunk(&c); err != nil || u.Len < 0 || c.End {
			return nil, fmt.Errorf("control snapshot: upload %q: %v", u.Upload, err)
		}
	}
	if s.Registry != nil {
		if err := checkRegistry(s.Registry); err != nil {
			return nil, fmt.Errorf("control snapshot: %w", err)
		}
	}
	for i, j := range s.Jobs {
		if err := checkJob(j); err != nil {
			return nil, fmt.Errorf("control snapshot: job %d: %w", i, err)
		}
	}
	for i := range s.Keys {
		if err := checkKey(&s.Keys[i]); err != nil {
			return nil, fmt.Errorf("control snapshot: %w", err)
		}
	}
	return &s, nil
}
