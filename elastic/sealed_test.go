package elastic

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision/statecrypt"
)

var cheapKDF = statecrypt.Params{Time: 1, MemKiB: 8 << 10, Threads: 1}

// TestSealedJournalAndHistory: with a Sealer the daemon's journal and
// history hold no plaintext (no pool, node, cluster or field name); a
// restarted daemon with the passphrase reads them back and makes no
// duplicate; a wrong or missing passphrase is refused with an error
// naming the file, and the refused step changes neither file.
func TestSealedJournalAndHistory(t *testing.T) {
	dir := t.TempDir()
	jpath, hpath := filepath.Join(dir, "elastic.json"), filepath.Join(dir, HistoryFile)
	now := t0
	cloud := newCloud()
	q := &fakeQueue{view: QueueView{Queue: jobs(6, t0.Add(-time.Minute)), Nodes: []QueueNode{
		{Name: "wn-1", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
		{Name: "wn-2", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
	}}}
	mk := func(s *statecrypt.Sealer) *Daemon {
		d := newDaemon(t, dir, cloud, q, &now)
		d.Journal = FileJournal{Path: jpath, Sealer: s}
		d.History, d.Cluster = &FileHistory{Path: hpath, Sealer: s}, "sealed-c1"
		return d
	}
	right := statecrypt.NewWithParams("elastic passphrase", cheapKDF)
	cloud.hidden = true // the creates stay in flight, in the journal
	if err := mk(right).Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	made := len(cloud.machines)
	if made < 3 {
		t.Fatalf("%d machines after the first step, want the onprem 2 and a burst", made)
	}
	files := map[string][]byte{}
	for _, p := range []string{jpath, hpath} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
		for _, leak := range []string{"sealed-c1", "aws.burst", "wn-1", "in_flight", "nodes", "scale-up"} {
			if bytes.Contains(b, []byte(leak)) {
				t.Errorf("%s contains %q", filepath.Base(p), leak)
			}
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", p, fi.Mode().Perm())
		}
	}
	if !statecrypt.IsSealed(files[jpath]) {
		t.Errorf("journal is not an envelope: %.40q", files[jpath])
	}

	tests := []struct {
		name   string
		sealer *statecrypt.Sealer
		want   string
	}{
		{"wrong passphrase", statecrypt.NewWithParams("not it", cheapKDF), "passphrase is wrong"},
		{"no encryption", nil, "encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mk(tt.sealer).Step(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), jpath) {
				t.Fatalf("step: %v, want an error naming %s with %q", err, jpath, tt.want)
			}
			for p, b := range files {
				if after, _ := os.ReadFile(p); !bytes.Equal(after, b) {
					t.Errorf("the refused step changed %s", filepath.Base(p))
				}
			}
			f, _ := os.Open(hpath)
			defer f.Close()
			_, _, err = ReadSealedHistory(hpath, f, tt.sealer)
			var he *HistoryError
			if !errors.As(err, &he) || he.Line != 1 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("read history: %v, want an error at line 1 with %q", err, tt.want)
			}
		})
	}

	// The right passphrase in a new process (a new Sealer): the journal's
	// creates are resumed with their tokens, no machine is made twice.
	again := statecrypt.NewWithParams("elastic passphrase", cheapKDF)
	if err := mk(again).Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(cloud.machines) != made {
		t.Errorf("%d machines after the restart, want %d (no duplicate)", len(cloud.machines), made)
	}
	f, _ := os.Open(hpath)
	defer f.Close()
	run, steps, err := ReadSealedHistory(hpath, f, again)
	if err != nil {
		t.Fatal(err)
	}
	if run.Cluster != "sealed-c1" || len(steps) == 0 {
		t.Errorf("history: run %+v, %d steps", run, len(steps))
	}
}

// TestReseal: the history resealed for state rekey opens with the new
// passphrase only and has the same run and steps; plaintext lines are
// sealed; a last line cut short is dropped, a bad line before it is an
// error naming it; the journal is resealed whole.
func TestReseal(t *testing.T) {
	dir := t.TempDir()
	from, to := statecrypt.NewWithParams("old", cheapKDF), statecrypt.NewWithParams("new", cheapKDF)
	hpath := filepath.Join(dir, HistoryFile)
	h := &FileHistory{Path: hpath, Sealer: from}
	h.Start(HistoryRun{Cluster: "rekeyed", Start: t0}, true)
	h.Step(HistoryStep{T: t0, Nodes: []HistoryNode{{Name: "n1", State: Idle}}})
	good, _ := os.ReadFile(hpath)
	plainLine := `{"t":"` + t0.Add(time.Minute).Format(time.RFC3339) + `","nodes":[{"n":"plainnode-two","s":"busy"}]}` + "\n"
	tests := []struct {
		name, content string
		steps         int
		err           string
	}{
		{"sealed", string(good), 1, ""},
		{"with a plaintext line", string(good) + plainLine, 2, ""},
		{"last line cut short", string(good) + string(good[:40]) + "\n", 1, ""},
		{"bad line before the last", string(good[:40]) + "\n" + string(good), 0, HistoryFile + ":1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(hpath, []byte(tt.content), 0o600)
			b, err := Reseal(hpath, from, to)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("reseal: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("rekeyed")) || bytes.Contains(b, []byte("plainnode-two")) {
				t.Error("resealed history holds plaintext")
			}
			run, steps, err := ReadSealedHistory(hpath, bytes.NewReader(b), to)
			if err != nil || run.Cluster != "rekeyed" || len(steps) != tt.steps {
				t.Errorf("resealed history: run %+v, %d steps, %v; want %d steps", run, len(steps), err, tt.steps)
			}
			if _, _, err := ReadSealedHistory(hpath, bytes.NewReader(b), from); err == nil {
				t.Error("resealed history opens with the old passphrase")
			}
		})
	}
	jpath := filepath.Join(dir, "elastic-journal.json")
	if err := (FileJournal{Path: jpath, Sealer: from}).Save(JournalState{Started: t0}); err != nil {
		t.Fatal(err)
	}
	b, err := Reseal(jpath, from, to)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(jpath, b, 0o600)
	if st, err := (FileJournal{Path: jpath, Sealer: to}).Load(); err != nil || !st.Started.Equal(t0) {
		t.Errorf("resealed journal: %+v %v", st, err)
	}
	if b, err := Reseal(filepath.Join(dir, "none.jsonl"), from, to); b != nil || err != nil {
		t.Errorf("reseal of no file: %q %v", b, err)
	}
}
