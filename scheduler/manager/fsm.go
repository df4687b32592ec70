package manager

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
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
}

func newControlFSM() *controlFSM {
	return &controlFSM{jobs: map[string]*scheduler.Job{}, keys: map[string]scheduler.SubmitKey{}}
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
	f.apply(c)
	return nil
}

func (f *controlFSM) apply(c *Command) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Op {
	case OpRegistry:
		f.reg = c.Registry
	case OpJobs:
		for _, j := range c.Jobs {
			if _, ok := f.jobs[j.ID]; !ok {
				f.order = append(f.order, j.ID)
			}
			f.jobs[j.ID] = j
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

// snapshotVersion is the version of the snapshot encoding.
const snapshotVersion = 1

// fsmSnapshot is a snapshot's encoding.
type fsmSnapshot struct {
	V        int                   `json:"v"`
	Registry *persisted            `json:"registry,omitempty"`
	Jobs     []*scheduler.Job      `json:"jobs"`
	Keys     []scheduler.SubmitKey `json:"keys,omitempty"`
}

type encodedSnapshot []byte

func (s encodedSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("write control snapshot: %w", err)
	}
	return sink.Close()
}

func (encodedSnapshot) Release() {}

// Snapshot encodes the state for raft's snapshot store.
func (f *controlFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := fsmSnapshot{V: snapshotVersion, Registry: f.reg, Jobs: make([]*scheduler.Job, 0, len(f.order))}
	for _, id := range f.order {
		s.Jobs = append(s.Jobs, f.jobs[id])
	}
	for _, k := range f.keys {
		s.Keys = append(s.Keys, k)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode control snapshot: %w", err)
	}
	return encodedSnapshot(b), nil
}

// Restore replaces the state with a snapshot's.
func (f *controlFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4*MaxCommandBytes))
	if err != nil {
		return fmt.Errorf("read control snapshot: %w", err)
	}
	s, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reg = s.Registry
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

// decodeSnapshot decodes and checks a snapshot, as strictly as a
// command.
func decodeSnapshot(b []byte) (*fsmSnapshot, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s fsmSnapshot
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("control snapshot: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("control snapshot: trailing data")
	}
	if s.V != snapshotVersion {
		return nil, fmt.Errorf("control snapshot: version %d, this hvctl reads version %d", s.V, snapshotVersion)
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
