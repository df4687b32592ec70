package elastic

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseWorkload(t *testing.T) {
	tests := []struct {
		name, file, src string
		wantErr         string // substring; "" for success
		check           func(t *testing.T, w Workload)
	}{
		{
			name: "json batches", file: "w.json",
			src: `{"name": "x", "setup": "4m30s", "batches": [
  {"count": 2, "duration": "15s", "duration_max": 20, "cpus": 1, "memory": "1GiB"},
  {"count": 3, "gap": "8m", "after": "done", "duration": "15s"}]}`,
			check: func(t *testing.T, w Workload) {
				if w.Size() != 5 || w.Setup != 270*time.Second || w.Batches[0].DurationMax != 20*time.Second || w.Batches[1].After != "done" || w.Batches[0].Memory != 1<<30 {
					t.Errorf("got %+v", w)
				}
			},
		},
		{
			name: "json jobs", file: "w.json",
			src: `{"jobs": [{"submit": 0, "duration": "1m", "labels": {"gpu": "a100"}, "site": "cloud"}]}`,
			check: func(t *testing.T, w Workload) {
				if len(w.Jobs) != 1 || w.Jobs[0].Duration != time.Minute || w.Jobs[0].Labels["gpu"] != "a100" || w.Jobs[0].Site != "cloud" {
					t.Errorf("got %+v", w)
				}
			},
		},
		{
			name: "csv", file: "w.csv",
			src: "# a comment\nsubmit,duration,count,cpus,memory,labels\n0,20s,3,1,1GiB,arch=arm64\n1m,1.5,,2,,\n",
			check: func(t *testing.T, w Workload) {
				if len(w.Jobs) != 4 || w.Jobs[3].Submit != time.Minute || w.Jobs[3].Duration != 1500*time.Millisecond || w.Jobs[0].Labels["arch"] != "arm64" {
					t.Errorf("got %+v", w.Jobs)
				}
			},
		},
		{name: "json syntax error names the line", file: "w.json", src: "{\n \"batches\": [\n  {\"count\": 1,,}\n]}", wantErr: "w.json:3:"},
		{name: "json bad duration names the element's line", file: "w.json", src: "{\"batches\": [\n {\"count\": 1, \"duration\": \"15s\"},\n {\"count\": 1, \"duration\": \"soon\"}]}", wantErr: "w.json:3:2: batches[1]:"},
		{name: "json unknown field in a batch", file: "w.json", src: `{"batches": [{"count": 1, "duration": "1s", "cuont": 2}]}`, wantErr: `unknown field "cuont"`},
		{name: "json unknown top-level field", file: "w.json", src: "{\n  \"jbos\": []}", wantErr: `w.json:2:3: unknown field "jbos"`},
		{name: "json batch without count", file: "w.json", src: `{"batches": [{"duration": "1s"}]}`, wantErr: "count = 0"},
		{name: "json bad after", file: "w.json", src: `{"batches": [{"count": 1, "duration": "1s", "after": "later"}]}`, wantErr: `after = "later"`},
		{name: "json duration_max below duration", file: "w.json", src: `{"batches": [{"count": 1, "duration": "10s", "duration_max": "5s"}]}`, wantErr: "duration_max 5s is less"},
		{name: "json job without duration", file: "w.json", src: `{"jobs": [{"submit": "1s"}]}`, wantErr: "needs submit and duration"},
		{name: "json wrong type", file: "w.json", src: `{"batches": [{"count": "many", "duration": "1s"}]}`, wantErr: "count: cannot use a JSON string"},
		{name: "json trailing data", file: "w.json", src: `{"jobs": [{"submit": 0, "duration": 1}]} {}`, wantErr: "extra data"},
		{name: "empty workload", file: "w.json", src: `{"name": "x"}`, wantErr: "no jobs"},
		{name: "csv missing column", file: "w.csv", src: "submit,cpus\n0,1\n", wantErr: "w.csv:1: the header has no duration column"},
		{name: "csv unknown column", file: "w.csv", src: "submit,duration,color\n", wantErr: `w.csv:1:17: unknown column "color"`},
		{name: "csv bad value names line and column", file: "w.csv", src: "submit,duration\n0,1s\n5s,never\n", wantErr: "w.csv:3:4: duration:"},
		{name: "csv wrong field count", file: "w.csv", src: "submit,duration\n0,1s,3\n", wantErr: "w.csv:2: 3 fields"},
		{name: "csv negative cpus", file: "w.csv", src: "submit,duration,cpus\n0,1s,-1\n", wantErr: "w.csv:2:6: cpus: must be between"},
		{name: "csv bad label", file: "w.csv", src: "submit,duration,labels\n0,1s,gpu\n", wantErr: `labels: "gpu" is not key=value`},
		{name: "csv bad quote", file: "w.csv", src: "submit,duration\n0,\"1s\n", wantErr: "w.csv:2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWorkload(tt.file, strings.NewReader(tt.src))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				var we *WorkloadError
				if !errors.As(err, &we) {
					t.Errorf("error %T is not a *WorkloadError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, w)
		})
	}
}

func TestShippedWorkloads(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "examples", "workloads", "*"))
	if len(files) == 0 {
		t.Fatal("no workloads in examples/workloads")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseWorkload(f, strings.NewReader(string(data))); err != nil {
			t.Error(err)
		}
	}
	_, w := loadExample(t)
	if got := []int{w.Batches[0].Count, w.Batches[1].Count, w.Batches[2].Count, w.Batches[3].Count}; w.Size() != 3676 || got[0] != 873 || got[3] != 990 {
		t.Errorf("hybrid-audio batches %v, %d jobs: want paper 003's 873, 888, 925, 990 = 3676", got, w.Size())
	}
}

// FuzzParseWorkload checks that no input panics and that every error
// names the file. Its seed corpus is testdata/fuzz/FuzzParseWorkload.
func FuzzParseWorkload(f *testing.F) {
	f.Add("w.json", `{"batches": [{"count": 2, "duration": "15s", "duration_max": "20s"}]}`)
	f.Add("w.csv", "submit,duration,count,cpus,memory,gpus,site,pool,labels\n0,20s,2,1,1GiB,0,cloud,cloud.burst,a=b\n")
	f.Fuzz(func(t *testing.T, name, src string) {
		w, err := ParseWorkload(name, strings.NewReader(src))
		if err != nil {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name the file %q", err, name)
			}
			return
		}
		if w.Size() == 0 || w.Size() > maxJobs {
			t.Errorf("accepted a workload of %d jobs", w.Size())
		}
		for _, b := range w.Batches {
			if b.Count <= 0 || b.Duration < 0 || (b.DurationMax != 0 && b.DurationMax < b.Duration) {
				t.Errorf("accepted batch %+v", b)
			}
		}
	})
}
