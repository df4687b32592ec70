package slurm

import (
	"testing"
	"time"
)

// The seeds are in testdata/fuzz/<target>, where go test -fuzz also
// keeps the inputs that failed.

func fuzzNodes(f *testing.F) []Node {
	nodes, err := Nodes(load(f, labTemplate))
	if err != nil {
		f.Fatal(err)
	}
	return nodes
}

func FuzzParsePending(f *testing.F) {
	nodes := fuzzNodes(f)
	f.Fuzz(func(t *testing.T, out []byte) {
		jobs, err := ParsePending(out, time.UTC)
		if err != nil {
			return
		}
		for _, j := range jobs {
			if j.JobID == "" || j.CPUs < 1 || j.Nodes < 1 || j.MemoryMiB < 0 || len(j.Partitions) == 0 {
				t.Fatalf("bad job %+v", j)
			}
		}
		s := Signals(Reading{Time: time.Unix(1e9, 0), Pending: jobs}, nodes, nil)
		n := 0
		for _, g := range s.Waiting.Demand {
			if g.Count < 1 || g.Resources.CPUs < 1 || g.Oldest.IsZero() {
				t.Fatalf("bad demand group %+v", g)
			}
			n += g.Count
		}
		if s.Waiting.PendingJobs > len(jobs) || n < s.Waiting.PendingJobs {
			t.Fatalf("%d jobs, %d pending, %d demanded", len(jobs), s.Waiting.PendingJobs, n)
		}
	})
}

func FuzzParseNodes(f *testing.F) {
	nodes := fuzzNodes(f)
	var idle IdleTracker
	f.Fuzz(func(t *testing.T, out []byte) {
		infos, err := ParseNodes(out)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, n := range infos {
			if n.Name == "" || seen[n.Name] || n.State == "" || n.AllocCPUs < 0 || n.TotalCPUs < 0 || n.MemoryMiB < 0 {
				t.Fatalf("bad node %+v", n)
			}
			seen[n.Name] = true
		}
		s := Signals(Reading{Time: time.Unix(1e9, 0), Nodes: infos}, nodes, &idle)
		for _, ss := range s.Sites {
			for _, n := range ss.Nodes {
				if n.IdleFor < 0 {
					t.Fatalf("negative idle time %+v", n)
				}
			}
		}
	})
}

func FuzzParseRunning(f *testing.F) {
	f.Fuzz(func(t *testing.T, out []byte) {
		running, err := ParseRunning(out)
		if err != nil {
			return
		}
		for n, c := range running {
			if n == "" || c < 1 {
				t.Fatalf("bad count %q: %d", n, c)
			}
		}
	})
}

func FuzzExpandHostlist(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ExpandHostlist(s)
		if err != nil {
			return
		}
		if len(names) > MaxHostlist {
			t.Fatalf("%d names", len(names))
		}
		if len(names) > 1000 {
			return // keep the round trip cheap
		}
		c := CompressHostlist(names)
		back, err := ExpandHostlist(c)
		if err != nil {
			t.Fatalf("expand(compress(expand(%q))) = expand(%q): %v", s, c, err)
		}
		want := sortedUnique(names)
		if len(back) != len(want) {
			t.Fatalf("expand(%q) = %q, want %q", c, back, want)
		}
		for i := range back {
			if back[i] != want[i] {
				t.Fatalf("expand(%q) = %q, want %q", c, back, want)
			}
		}
	})
}

func FuzzParseResumeFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := ParseResumeFile(data)
		if err != nil {
			return
		}
		_, _ = ExpandHostlist(rf.AllNodes)
		for _, j := range rf.Jobs {
			_, _ = ExpandHostlist(j.Nodes)
		}
	})
}

func FuzzParseSacct(f *testing.F) {
	f.Fuzz(func(t *testing.T, out []byte) {
		jobs, err := ParseSacct(out, time.UTC)
		if err != nil {
			return
		}
		for _, j := range jobs {
			if j.ID == "" || j.State == "" || j.ExitCode < 0 || j.ExitCode > 255 || j.Signal < 0 || j.Signal > 255 || len(j.Nodes) > MaxHostlist {
				t.Fatalf("bad job %+v", j)
			}
			for _, n := range j.Nodes {
				if n == "" {
					t.Fatalf("empty node name in %+v", j)
				}
			}
		}
	})
}
