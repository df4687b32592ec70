package slurm

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseResumeFile(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ResumeFile
	}{
		{"22.05", `{"jobs":[{"job_id":140814,"nodes":"cloud-burst-[0-1]"},{"job_id":140815,"nodes":"cloud-burst-2"}],"all_nodes":"cloud-burst-[0-2]"}`,
			ResumeFile{AllNodes: "cloud-burst-[0-2]", Jobs: []ResumeJob{
				{JobID: 140814, Nodes: "cloud-burst-[0-1]"}, {JobID: 140815, Nodes: "cloud-burst-2"}}}},
		{"23.02", `{
  "all_nodes_resume": "cloud[1-3,7-8]",
  "jobs": [
    {"extra": "An arbitrary string from --extra", "features": "c1,c2", "job_id": 140814,
     "nodes_alloc": "cloud[1-4]", "nodes_resume": "cloud[1-3]", "oversubscribe": "OK",
     "partition": "cloud", "reservation": "resv_1234"},
    {"extra": null, "features": null, "job_id": 140815, "nodes_alloc": "cloud[1-2]",
     "nodes_resume": "cloud[1-2]", "oversubscribe": "OK", "partition": "cloud", "reservation": null}
  ]
}`, ResumeFile{AllNodes: "cloud[1-3,7-8]", Jobs: []ResumeJob{
			{JobID: 140814, Nodes: "cloud[1-3]", NodesAlloc: "cloud[1-4]", Partition: "cloud", Features: "c1,c2",
				Extra: "An arbitrary string from --extra", OverSubscribe: "OK", Reservation: "resv_1234"},
			{JobID: 140815, Nodes: "cloud[1-2]", NodesAlloc: "cloud[1-2]", Partition: "cloud", OverSubscribe: "OK"}}}},
		{"no jobs, unknown fields", `{"all_nodes":"a1","jobs":[],"future":{"x":[1,2]}}`, ResumeFile{AllNodes: "a1"}},
		{"job ID as a string", `{"all_nodes":"a1","jobs":[{"job_id":"7","nodes":"a1"}]}`,
			ResumeFile{AllNodes: "a1", Jobs: []ResumeJob{{JobID: 7, Nodes: "a1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResumeFile([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseResumeFileErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not JSON", `all_nodes=a1`, "resume file: invalid character"},
		{"no job ID", `{"all_nodes":"a1","jobs":[{"nodes":"a1"}]}`, "job 0: job_id : missing"},
		{"negative job ID", `{"jobs":[{"job_id":1},{"job_id":-1}]}`, "job 1: job_id -1: not a job ID"},
		{"job ID too large", `{"jobs":[{"job_id":4294967296}]}`, "not a job ID"},
		{"fractional job ID", `{"jobs":[{"job_id":1.5}]}`, "not a job ID"},
		{"node list of the wrong type", `{"all_nodes":["a1"]}`, "resume file: json: cannot unmarshal array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseResumeFile([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
