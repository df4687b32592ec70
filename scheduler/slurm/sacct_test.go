package slurm

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// sacctSample is what sacct SacctArgs printed on slurm-wlm 22.05 for a
// finished job, a failed one, a cancelled pending one and a running one.
const sacctSample = `2|COMPLETED|0:0|root|all|onprem-wn-0|2026-12-02T15:01:02|2026-12-02T15:01:03|2026-12-02T15:01:05|wrap
3|FAILED|3:0|nobody|onprem|cloud-burst-[0-1]|2026-12-02T15:01:02|2026-12-02T15:01:04|2026-12-02T15:01:06|a|b
4|CANCELLED by 0|0:0|root|all|None assigned|2026-12-02T15:01:02|None|2026-12-02T15:01:07|x
5_1|RUNNING|0:0|root|all|onprem-wn-1|2026-12-02T15:01:02|2026-12-02T15:01:08|Unknown|arr
`

func TestParseSacct(t *testing.T) {
	jobs, err := ParseSacct([]byte(sacctSample), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	tm := func(sec int) time.Time { return time.Date(2026, 12, 2, 15, 1, sec, 0, time.UTC) }
	want := []AcctJob{
		{ID: "2", Name: "wrap", User: "root", State: "COMPLETED", Partition: "all", Nodes: []string{"onprem-wn-0"}, Submitted: tm(2), Started: tm(3), Ended: tm(5)},
		{ID: "3", Name: "a|b", User: "nobody", State: "FAILED", ExitCode: 3, Partition: "onprem", Nodes: []string{"cloud-burst-0", "cloud-burst-1"}, Submitted: tm(2), Started: tm(4), Ended: tm(6)},
		{ID: "4", Name: "x", User: "root", State: "CANCELLED", Partition: "all", Submitted: tm(2), Ended: tm(7)},
		{ID: "5_1", Name: "arr", User: "root", State: "RUNNING", Partition: "all", Nodes: []string{"onprem-wn-1"}, Submitted: tm(2), Started: tm(8)},
	}
	if !reflect.DeepEqual(jobs, want) {
		t.Errorf("got\n%+v\nwant\n%+v", jobs, want)
	}
}

func TestParseSacctErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"few fields", "2|COMPLETED|0:0\n", "sacct line 1: 3 fields, want 10"},
		{"no job ID", "|COMPLETED|0:0|root|all|n1|None|None|None|x\n", `bad job ID ""`},
		{"lower-case state", "2|done|0:0|root|all|n1|None|None|None|x\n", `bad state "done"`},
		{"exit code", "2|FAILED|x:0|root|all|n1|None|None|None|x\n", `exit code "x:0"`},
		{"exit code range", "2|FAILED|300:0|root|all|n1|None|None|None|x\n", `exit code "300:0"`},
		{"no signal", "2|FAILED|3|root|all|n1|None|None|None|x\n", `bad exit code "3"`},
		{"node list", "2|FAILED|3:0|root|all|n[1-|None|None|None|x\n", `node list "n[1-"`},
		{"time", "2|FAILED|3:0|root|all|n1|yesterday|None|None|x\n", `submit time "yesterday"`},
		{"second line", sacctSample + "9|FAILED\n", "sacct line 5:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSacct([]byte(tt.in), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
