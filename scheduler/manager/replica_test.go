package manager

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/templates"
)

// logManager is a manager whose control state is a single-voter raft log
// in dir.
func logManager(t *testing.T, dir string, s Secret, clk *clock) *Manager {
	t.Helper()
	cfg, d := templates.LoadSource(map[string][]byte{"m.hcl": []byte(tmpl)}, ".", templates.LoadOptions{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	m, err := New(Config{Cluster: cfg.Cluster, Secret: s, Clock: clk.now,
		Replica: &ReplicaConfig{Dir: dir, ID: "onprem.frontend", Bootstrap: SingleVoter("onprem.frontend")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// A manager restarted on its log has everything back: members, spent
// join tokens, addresses, the site designation, and every job with its
// site, node and attempt.
func TestControlLogReplaysAfterRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	clk := &clock{t: time.Unix(1e9, 0)}
	s := NewSecret()
	m := logManager(t, dir, s, clk)
	tok := s.JoinToken("onprem.frontend")
	hub := &JoinRequest{Token: tok, Address: "site.onprem.node.frontend", Site: "onprem", Roles: []templates.Role{"hub", "manager"}, PublicKey: key(t)}
	if _, err := m.Join(hub, ""); err != nil {
		t.Fatal(err)
	}
	wn := &JoinRequest{Token: s.JoinToken("onprem.wn[0]"), Address: "site.onprem.pool.wn.node[0]", Site: "onprem", PublicKey: key(t)}
	if _, err := m.Join(wn, ""); err != nil {
		t.Fatal(err)
	}
	// The site's local manager, in process.
	l := scheduler.NewLocal("onprem", 0)
	l.Clock = clk.now
	m.Global().SetLink("onprem", scheduler.LocalLink{L: l})
	l.Poll(scheduler.Node{ID: "onprem.wn[0]", CPUs: 2}, 0)
	m.Global().Sync()
	spec := &scheduler.Spec{Command: []string{"true"}, Count: 5}
	jobs, _, err := m.Global().SubmitKey(spec, "retry-me")
	if err != nil {
		t.Fatal(err)
	}
	m.Global().Sync()
	work := l.Poll(scheduler.Node{ID: "onprem.wn[0]", CPUs: 2}, 0)
	if len(work) != 2 {
		t.Fatalf("first poll got %d jobs, want 2", len(work))
	}
	if err := l.Record("onprem.wn[0]", scheduler.Report{JobID: work[0].Job.ID, Attempt: work[0].Attempt, State: scheduler.Done}); err != nil {
		t.Fatal(err)
	}
	m.Global().Sync()
	before := map[string]scheduler.Job{}
	for _, j := range m.Global().List("") {
		before[j.ID] = *j
	}
	nodesBefore := m.Nodes()
	addrsBefore := m.Addresses()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m2 := logManager(t, dir, s, clk)
	after := m2.Global().List("")
	if len(after) != len(jobs) {
		t.Fatalf("after restart %d jobs, want %d", len(after), len(jobs))
	}
	for i, j := range after {
		if j.ID != jobs[i].ID {
			t.Errorf("job %d is %s, want %s (submission order)", i, j.ID, jobs[i].ID)
		}
		b := before[j.ID]
		if j.State != b.State || j.Site != b.Site || j.Node != b.Node || j.Attempt != b.Attempt {
			t.Errorf("job %s after restart: %s at %s/%s attempt %d; before: %s at %s/%s attempt %d",
				j.ID, j.State, j.Site, j.Node, j.Attempt, b.State, b.Site, b.Node, b.Attempt)
		}
	}
	states := map[scheduler.State]int{}
	for _, j := range after {
		states[j.State]++
	}
	if states[scheduler.Done] != 1 || states[scheduler.Running] != 1 {
		t.Errorf("states after restart = %v, want 1 done and 1 running", states)
	}
	if got := m2.Nodes(); len(got) != len(nodesBefore) {
		t.Errorf("after restart %d members, want %d", len(got), len(nodesBefore))
	}
	for id, a := range addrsBefore {
		if m2.Addresses()[id] != a {
			t.Errorf("address of %s: %s after restart, %s before", id, m2.Addresses()[id], a)
		}
	}
	if m2.designated["onprem"] != m.designated["onprem"] || m2.designated["onprem"] == "" {
		t.Errorf("designation after restart %q, before %q", m2.designated["onprem"], m.designated["onprem"])
	}
	if _, err := m2.Join(hub, ""); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("a spent join token works after a restart: %v", err)
	}
	// The submit retried after the restart (its answer was lost) with
	// its idempotency key gets the same jobs, not new ones.
	again, replayed, err := m2.Global().SubmitKey(spec, "retry-me")
	if err != nil || !replayed || len(again) != len(jobs) || again[0].ID != jobs[0].ID {
		t.Errorf("keyed submit retried after a restart: replayed=%v, %d jobs (first %v), err %v; want the %d jobs of the first", replayed, len(again), firstID(again), err, len(jobs))
	}
	if n := len(m2.Global().List("")); n != len(jobs) {
		t.Errorf("%d jobs after the retried submit, want %d", n, len(jobs))
	}
}

// An array submit is one log entry holding the spec once, whatever its
// count; a restart expands it into the same jobs (IDs, indexes, spec,
// submission time), and its idempotency key still replays it.
func TestArraySubmitIsOneEntry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	clk := &clock{t: time.Unix(1e9, 0)}
	s := NewSecret()
	m := logManager(t, dir, s, clk)
	spec := &scheduler.Spec{Command: []string{"sh", "-c", "echo $HVCTL_ARRAY_INDEX"}, Count: 5000, Priority: 3}
	before := m.replica.raft.LastIndex()
	jobs, _, err := m.Global().SubmitKey(spec, "array-key")
	if err != nil {
		t.Fatal(err)
	}
	last := m.replica.raft.LastIndex()
	var l raft.Log
	if err := m.replica.store.GetLog(last, &l); err != nil {
		t.Fatal(err)
	}
	if last != before+1 || len(l.Data) > 1024 {
		t.Errorf("the submit of %d jobs wrote %d log entries, the last of %d bytes; want one small entry", spec.Count, last-before, len(l.Data))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := logManager(t, dir, s, clk)
	after := m2.Global().List("")
	if len(after) != len(jobs) {
		t.Fatalf("after restart %d jobs, want %d", len(after), len(jobs))
	}
	for i, j := range after {
		w := jobs[i]
		if j.ID != w.ID || j.ArrayID != w.ArrayID || j.Index != i || j.State != scheduler.Queued || !j.Submitted.Equal(w.Submitted) ||
			j.Spec.Priority != 3 || j.Spec.Count != 0 || strings.Join(j.Spec.Command, " ") != strings.Join(spec.Command, " ") {
			t.Fatalf("job %d after restart = %+v, want %+v", i, j, w)
		}
	}
	again, replayed, err := m2.Global().SubmitKey(spec, "array-key")
	if err != nil || !replayed || len(again) != len(jobs) {
		t.Errorf("keyed array submit retried after a restart: replayed=%v, %d jobs, err %v", replayed, len(again), err)
	}
}

func firstID(jobs []*scheduler.Job) string {
	if len(jobs) == 0 {
		return ""
	}
	return jobs[0].ID
}

// A new local manager (restarted, or on another node) is seeded from the
// restarted global table: the running job stays running with its
// attempt, so the worker's report is accepted and it runs once.
func TestControlLogSeedsNewLocalManager(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	clk := &clock{t: time.Unix(1e9, 0)}
	s := NewSecret()
	m := logManager(t, dir, s, clk)
	l := scheduler.NewLocal("onprem", 0)
	l.Clock = clk.now
	m.Global().SetLink("onprem", scheduler.LocalLink{L: l})
	l.Poll(scheduler.Node{ID: "w", CPUs: 1}, 0)
	m.Global().Sync()
	if _, err := m.Global().Submit(&scheduler.Spec{Command: []string{"true"}, Count: 2}); err != nil {
		t.Fatal(err)
	}
	m.Global().Sync()
	work := l.Poll(scheduler.Node{ID: "w", CPUs: 1}, 0)
	if len(work) != 1 {
		t.Fatalf("got %d jobs, want 1", len(work))
	}
	m.Global().Sync()
	m.Close()

	// Both managers die; the new ones start from the log.
	m2 := logManager(t, dir, s, clk)
	l2 := scheduler.NewLocal("onprem", 0)
	l2.Clock = clk.now
	m2.Global().SetLink("onprem", &seedLink{scheduler.LocalLink{L: l2}, l2})
	m2.Global().Sync() // seeds
	m2.Global().Sync()
	w := work[0]
	if err := l2.Record("w", scheduler.Report{JobID: w.Job.ID, Attempt: w.Attempt, State: scheduler.Done}); err != nil {
		t.Fatalf("the still-running worker's report was refused by the seeded local manager: %v", err)
	}
	clk.add(scheduler.DefaultSeedHold + 1)
	rest := l2.Poll(scheduler.Node{ID: "w", CPUs: 1}, 0)
	if len(rest) != 1 || rest[0].Job.ID == w.Job.ID {
		t.Fatalf("after the seed hold the worker got %v, want the other job", rest)
	}
	l2.Record("w", scheduler.Report{JobID: rest[0].Job.ID, Attempt: rest[0].Attempt, State: scheduler.Done})
	m2.Global().Sync()
	for _, j := range m2.Global().List("") {
		if j.State != scheduler.Done {
			t.Errorf("job %s: %s, want done", j.ID, j.State)
		}
	}
}

// seedLink is an in-process link that can seed.
type seedLink struct {
	scheduler.LocalLink
	l *scheduler.Local
}

func (s *seedLink) Seed(jobs []*scheduler.Job) error { s.l.Seed(jobs); return nil }
func (s *seedLink) State(since uint64) (scheduler.SiteState, error) {
	return s.l.State(since), nil
}

func TestDecodeCommand(t *testing.T) {
	good, err := EncodeCommand(&Command{Op: OpJobs, Jobs: []*scheduler.Job{{ID: "a", State: scheduler.Queued}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeCommand(good); err != nil {
		t.Fatalf("a good command: %v", err)
	}
	cases := []struct {
		name, in, want string
	}{
		{"not json", `{`, "control log command"},
		{"old version", `{"v":0,"op":"jobs","jobs":[{"id":"a","state":"queued"}]}`, "version 0"},
		{"future version", `{"v":2,"op":"jobs","jobs":[{"id":"a","state":"queued"}]}`, "version 2"},
		{"unknown op", `{"v":1,"op":"drop"}`, `unknown op "drop"`},
		{"unknown field", `{"v":1,"op":"jobs","jobs":[{"id":"a","state":"queued"}],"x":1}`, "unknown field"},
		{"trailing data", `{"v":1,"op":"jobs","jobs":[{"id":"a","state":"queued"}]} {}`, "trailing"},
		{"jobs without jobs", `{"v":1,"op":"jobs"}`, "wants jobs"},
		{"registry with jobs", `{"v":1,"op":"registry","registry":{"nodes":{}},"jobs":[{"id":"a","state":"queued"}]}`, "wants a registry"},
		{"job without ID", `{"v":1,"op":"jobs","jobs":[{"state":"queued"}]}`, "no job ID"},
		{"job in no state", `{"v":1,"op":"jobs","jobs":[{"id":"a","state":"limbo"}]}`, `unknown state "limbo"`},
		{"null job", `{"v":1,"op":"jobs","jobs":[null]}`, "no job ID"},
		{"negative attempt", `{"v":1,"op":"jobs","jobs":[{"id":"a","state":"queued","attempt":-1}]}`, "negative"},
		{"node under another name", `{"v":1,"op":"registry","registry":{"nodes":{"a":{"id":"b"}}}}`, `node "a"`},
		{"registry with a key", `{"v":1,"op":"registry","registry":{"nodes":{}},"key":{"key":"k","spec":"0000000000000000000000000000000000000000000000000000000000000000","first":"a","count":1}}`, "wants a registry"},
		{"empty key", `{"v":1,"op":"jobs","jobs":[{"id":"a","state":"queued"}],"key":{"key":"","spec":"0000000000000000000000000000000000000000000000000000000000000000","first":"a","count":1}}`, "idempotency key: empty"},
		{"key with a short spec hash", `{"v":1,"op":"jobs","jobs":[{"id":"a","state":"queued"}],"key":{"key":"k","spec":"00","first":"a","count":1}}`, "64 hex digits"},
		{"key without jobs", `{"v":1,"op":"jobs","jobs":[{"id":"a","state":"queued"}],"key":{"key":"k","spec":"0000000000000000000000000000000000000000000000000000000000000000","count":0}}`, "no jobs"},
		{"array without an ID", `{"v":1,"op":"jobs","array":{"count":3,"spec":{"command":["true"]}}}`, "wants an ID"},
		{"array of one", `{"v":1,"op":"jobs","array":{"array_id":"a","count":1,"spec":{"command":["true"]}}}`, "2 to 100000"},
		{"array too large", `{"v":1,"op":"jobs","array":{"array_id":"a","count":100001,"spec":{"command":["true"]}}}`, "2 to 100000"},
		{"array with a dotted ID", `{"v":1,"op":"jobs","array":{"array_id":"a.1","count":2,"spec":{"command":["true"]}}}`, "wants an ID"},
		{"array without a command", `{"v":1,"op":"jobs","array":{"array_id":"a","count":2,"spec":{}}}`, "no command"},
		{"registry with an array", `{"v":1,"op":"registry","registry":{"nodes":{}},"array":{"array_id":"a","count":2,"spec":{"command":["true"]}}}`, "wants a registry"},
		{"template without files", `{"v":1,"op":"template","template":{"files":{}}}`, "wants a template with files"},
		{"template with jobs", `{"v":1,"op":"template","template":{"files":{"m.hcl":"x"}},"jobs":[{"id":"a","state":"queued"}]}`, "wants a template"},
		{"registry with a template", `{"v":1,"op":"registry","registry":{"nodes":{}},"template":{"files":{"m.hcl":"x"}}}`, "wants a registry"},
		{"result without a chunk", `{"v":1,"op":"result"}`, "wants a result chunk"},
		{"result with jobs", `{"v":1,"op":"result","result":{"job":"a","name":"o","upload":"01"},"jobs":[{"id":"a","state":"queued"}]}`, "wants a result chunk"},
		{"jobs with a result", `{"v":1,"op":"jobs","jobs":[{"id":"a","state":"queued"}],"result":{"job":"a","name":"o","upload":"01"}}`, "wants jobs"},
		{"result under a path", `{"v":1,"op":"result","result":{"job":"a","name":"../o","upload":"01"}}`, "not plain names"},
		{"result of the uploads directory", `{"v":1,"op":"result","result":{"job":".uploads","name":"o","upload":"01"}}`, "not plain names"},
		{"result upload not hex", `{"v":1,"op":"result","result":{"job":"a","name":"o","upload":"../x"}}`, "not hex"},
		{"result at a negative offset", `{"v":1,"op":"result","result":{"job":"a","name":"o","upload":"01","offset":-1}}`, "negative"},
		{"result end without a hash", `{"v":1,"op":"result","result":{"job":"a","name":"o","upload":"01","end":true,"bytes":3}}`, "64-hex-digit"},
		{"result end with data", `{"v":1,"op":"result","result":{"job":"a","name":"o","upload":"01","end":true,"data":"eA==","sha256":"HASH"}}`, "no data"},
		{"result chunk with a hash", `{"v":1,"op":"result","result":{"job":"a","name":"o","upload":"01","data":"eA==","sha256":"HASH"}}`, "no size or hash"},
	}
	for _, c := range cases {
		c.in = strings.ReplaceAll(c.in, "HASH", "0000000000000000000000000000000000000000000000000000000000000000")
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeCommand([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("DecodeCommand(%s) = %v, want an error with %q", c.in, err, c.want)
			}
		})
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte(`{"v":1,"op":"jobs","jobs":[{"id":"a","state":"queued","spec":{"command":["true"]}}]}`))
	f.Add([]byte(`{"v":1,"op":"registry","registry":{"nodes":{"a.b":{"id":"a.b","roles":["hub"]}},"used_nonces":{"x":true},"addresses":{"a.b":"10.0.0.1"},"version":3,"designated":{"a":"a.b"}}}`))
	f.Add([]byte(`{"v":2,"op":"jobs"}`))
	f.Add([]byte(`{"v":1,"op":"jobs","jobs":[{"id":"a1.0","state":"queued"}],"key":{"key":"k1","at":"2026-12-02T10:00:00Z","spec":"0000000000000000000000000000000000000000000000000000000000000000","first":"a1.0","array_id":"a1","count":1}}`))
	f.Add([]byte(`{"v":1,"op":"jobs","array":{"array_id":"a1","count":3,"spec":{"command":["true"]},"submitted":"2026-12-02T10:00:00Z"},"key":{"key":"k1","at":"2026-12-02T10:00:00Z","spec":"0000000000000000000000000000000000000000000000000000000000000000","first":"a1.0","array_id":"a1","count":3}}`))
	f.Add([]byte(`{"v":1,"op":"template","template":{"files":{"main.hcl":"cluster \"c\" {}"},"vars":[{"name":"n","value":"3"}]}}`))
	f.Add([]byte(`{"v":1,"op":"result","result":{"job":"a1.0","name":"out.txt","upload":"0a1b","offset":3,"data":"aGVsbG8="}}`))
	f.Add([]byte(`{"v":1,"op":"result","result":{"job":"a1.0","name":"out.txt","upload":"0a1b","end":true,"bytes":5,"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// What decodes encodes again to a command that decodes the same.
		again, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := DecodeCommand(again)
		if err != nil {
			t.Fatalf("a re-encoded command does not decode: %v\n%s", err, again)
		}
		b1, _ := EncodeCommand(c2)
		if !bytes.Equal(again, b1) {
			t.Fatalf("decode/encode is not stable:\n%s\n%s", again, b1)
		}
		f := newControlFSM(t.TempDir())
		f.apply(c)
	})
}

// JobUpdate carries every field of a job that changes after submit:
// a new field of scheduler.Job must be added to it (or named here as
// fixed at submit), else updates would drop it.
func TestJobUpdateCoversJob(t *testing.T) {
	fixed := map[string]bool{"ArrayID": true, "Index": true, "Spec": true, "Submitted": true}
	jt, ut := reflect.TypeOf(scheduler.Job{}), reflect.TypeOf(JobUpdate{})
	for i := 0; i < jt.NumField(); i++ {
		f := jt.Field(i)
		if fixed[f.Name] {
			continue
		}
		if uf, ok := ut.FieldByName(f.Name); !ok || uf.Type != f.Type {
			t.Errorf("scheduler.Job.%s (%s) is not in JobUpdate", f.Name, f.Type)
		}
	}
	exit := 3
	j := &scheduler.Job{ID: "a", State: scheduler.Failed, Site: "s", Node: "n", Attempt: 2, Retries: 1, ExitCode: &exit, Error: "e",
		Started: time.Unix(5, 0), Ended: time.Unix(6, 0), Reason: "r"}
	var got scheduler.Job
	updateOf(j).applyTo(&got)
	got.ID = j.ID
	if !reflect.DeepEqual(&got, j) {
		t.Errorf("an update applied = %+v, want %+v", got, *j)
	}
}
