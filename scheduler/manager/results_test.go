package manager

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// memSink is a raft.SnapshotSink into memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

func chunk(job, name, upload string, off int64, data []byte) *Command {
	return &Command{Op: OpResult, Result: &ResultChunk{Job: job, Name: name, Upload: upload, Offset: off, Data: data}}
}

func end(job, name, upload string, data []byte) *Command {
	h := sha256.Sum256(data)
	return &Command{Op: OpResult, Result: &ResultChunk{Job: job, Name: name, Upload: upload, End: true, Bytes: int64(len(data)), SHA256: hex.EncodeToString(h[:])}}
}

func mustApply(t *testing.T, f *controlFSM, cs ...*Command) {
	t.Helper()
	for _, c := range cs {
		if err := f.apply(c); err != nil {
			t.Fatal(err)
		}
	}
}

// A snapshot carries the results and the uploads under way (a result
// replaced before the snapshot is written fails it); a replica restored from it has the same files
// and can finish the upload; content that does not match its hash, or
// bytes after the last file, are refused.
func TestResultSnapshot(t *testing.T) {
	f := newControlFSM(t.TempDir())
	a1, b := []byte("first version of a"), []byte("upload under way")
	mustApply(t, f, chunk("j1", "a", "01", 0, a1[:5]), chunk("j1", "a", "01", 5, a1[5:]), end("j1", "a", "01", a1),
		end("j1", "empty", "02", nil), chunk("j2", "b", "03", 0, b[:6]))
	// An upload whose content is not what its end says is not stored.
	mustApply(t, f, chunk("j2", "bad", "04", 0, []byte("abc")))
	if err := f.apply(end("j2", "bad", "04", []byte("abd"))); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("an end with another hash: %v, want it refused", err)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// a is replaced after the snapshot was taken and before it is
	// written: that snapshot fails (raft takes another later), and
	// the next one has the new version.
	a2 := []byte("second, longer version of a")
	mustApply(t, f, chunk("j1", "a", "05", 0, a2), end("j1", "a", "05", a2))
	if err := snap.Persist(&memSink{}); err == nil || !strings.Contains(err.Error(), "changed while") {
		t.Errorf("a snapshot whose result was replaced before it was written: %v, want it refused", err)
	}
	snap.Release()
	a1 = a2
	if snap, err = f.Snapshot(); err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	raw := sink.Bytes()

	g := newControlFSM(t.TempDir())
	if err := g.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	res := g.Results("j1")
	if len(res) != 2 || res["a"].Bytes != int64(len(a1)) || res["empty"].Bytes != 0 || len(g.Results("j2")) != 0 {
		t.Errorf("restored index = %v, %v; want a (%d bytes) and empty for j1, nothing for j2", res, g.Results("j2"), len(a1))
	}
	if got, _ := os.ReadFile(g.resultPath("j1", "a")); !bytes.Equal(got, a1) {
		t.Errorf("restored a = %q, want %q", got, a1)
	}
	mustApply(t, g, chunk("j2", "b", "03", 6, b[6:]), end("j2", "b", "03", b))
	if got, _ := os.ReadFile(g.resultPath("j2", "b")); !bytes.Equal(got, b) {
		t.Errorf("the upload finished on the restored replica = %q, want %q", got, b)
	}
	// Restoring again over its own files keeps them.
	if err := g.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(g.resultPath("j1", "a")); !bytes.Equal(got, a1) {
		t.Errorf("restored twice: a = %q, want %q", got, a1)
	}

	bad := append([]byte(nil), raw...)
	i := bytes.Index(bad, a1)
	bad[i] ^= 1
	if err := newControlFSM(t.TempDir()).Restore(io.NopCloser(bytes.NewReader(bad))); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("a snapshot with damaged content: %v, want it refused", err)
	}
	if err := newControlFSM(t.TempDir()).Restore(io.NopCloser(bytes.NewReader(append(raw, 'x')))); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("a snapshot with trailing bytes: %v, want it refused", err)
	}
	if err := newControlFSM(t.TempDir()).Restore(io.NopCloser(bytes.NewReader(raw[:len(raw)-3]))); err == nil {
		t.Errorf("a snapshot cut short restored")
	}
}

// FuzzRestoreSnapshot: any bytes given to Restore (a snapshot comes
// from another replica) are restored or refused, never a panic, and
// never a file outside the replica's results directory.
func FuzzRestoreSnapshot(f *testing.F) {
	f.Add([]byte(`{"v":1,"jobs":[]}`))
	f.Add([]byte(`{"v":2,"jobs":[{"id":"a","state":"done"}],"results":[{"job":"a","name":"o","bytes":2,"sha256":"fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603"}]}ab`))
	f.Add([]byte(`{"v":2,"jobs":[],"uploads":[{"job":"a","name":"o","upload":"0a","len":3}]}xyz`))
	f.Add([]byte(`{"v":2,"jobs":[],"results":[{"job":"..","name":"o","bytes":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		root := t.TempDir()
		g := newControlFSM(filepath.Join(root, "results"))
		g.Restore(io.NopCloser(bytes.NewReader(b)))
		filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err == nil && p != root && !strings.HasPrefix(p, filepath.Join(root, "results")) {
				t.Errorf("restore wrote %s, outside the results directory", p)
			}
			return nil
		})
	})
}
