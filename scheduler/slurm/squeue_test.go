package slurm

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePending(t *testing.T) {
	out := "101|4|1|2048M|2024-05-01T10:00:00|all|Resources|(null)\n" +
		"\n" +
		"102_3|16|2-4|4G|2024-05-01T10:00:05|cloud|Priority|gpu_a100|gpu_h100\n" +
		"103|1|1|0|N/A|onprem,all|JobHeldUser|\r\n"
	loc := time.FixedZone("CEST", 2*3600)
	got, err := ParsePending([]byte(out), loc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pending{
		{JobID: "101", CPUs: 4, Nodes: 1, MemoryMiB: 2048, Submitted: time.Date(2024, 5, 1, 10, 0, 0, 0, loc),
			Partitions: []string{"all"}, Reason: "Resources"},
		{JobID: "102_3", CPUs: 16, Nodes: 2, MemoryMiB: 4096, Submitted: time.Date(2024, 5, 1, 10, 0, 5, 0, loc),
			Partitions: []string{"cloud"}, Reason: "Priority", Features: "gpu_a100|gpu_h100"},
		{JobID: "103", CPUs: 1, Nodes: 1, Partitions: []string{"onprem", "all"}, Reason: "JobHeldUser"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got[0].Submitted.UTC().Hour() != 8 {
		t.Errorf("submit time not read in the given zone: %v", got[0].Submitted.UTC())
	}
}

func TestParsePendingErrors(t *testing.T) {
	good := "1|1|1|0|2024-05-01T10:00:00|all|Resources|\n"
	tests := []struct{ name, line, want string }{
		{"too few fields", "1|1|1|0|2024-05-01T10:00:00|all", "squeue line 2: 6 fields, want 8"},
		{"no job ID", "|1|1|0|2024-05-01T10:00:00|all|Resources|", `squeue line 2: bad job ID ""`},
		{"CPUs", "1|many|1|0|2024-05-01T10:00:00|all|Resources|", `squeue line 2: CPU count "many"`},
		{"negative nodes", "1|1|-2|0|2024-05-01T10:00:00|all|Resources|", `squeue line 2: node count "-2"`},
		{"memory", "1|1|1|lots|2024-05-01T10:00:00|all|Resources|", `squeue line 2: memory "lots"`},
		{"submit time", "1|1|1|0|10:00:00|all|Resources|", `squeue line 2: submit time "10:00:00"`},
		{"partition", "1|1|1|0|2024-05-01T10:00:00||Resources|", `squeue line 2: bad partition ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePending([]byte(good+tt.line+"\n"), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"500", 500, true}, {"500M", 500, true}, {"2G", 2048, true},
		{"1T", 1 << 20, true}, {"1P", 1 << 30, true}, {"1.5G", 1536, true}, {"1.46G", 1496, true},
		{"512K", 1, true}, {"2048m", 2048, true},
		{"", 0, false}, {"G", 0, false}, {"-1", 0, false}, {"1e3", 0, false}, {"0x10", 0, false},
		{".5G", 0, false}, {"1.", 0, false}, {"1,5G", 0, false}, {"NaN", 0, false}, {"Inf", 0, false},
		{"2GB", 0, false}, {"99999999999999999P", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseMemory(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseMemory(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseRunning(t *testing.T) {
	out := "200|cloud-burst-[0-1]\n201|cloud-burst-1\n202_4|onprem-wn-0\n203|\n204|(null)\n"
	got, err := ParseRunning([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"cloud-burst-0": 1, "cloud-burst-1": 2, "onprem-wn-0": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, tt := range []struct{ out, want string }{
		{"200|a\n201|n[3-1]\n", "squeue line 2: node list: hostlist"},
		{"200|a|b\n", "squeue line 1: want 2 fields"},
		{"\n200\n", "squeue line 2: want 2 fields"},
		{"|a\n", "squeue line 1: empty job ID"},
	} {
		if _, err := ParseRunning([]byte(tt.out)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRunning(%q): error %v, want one containing %q", tt.out, err, tt.want)
		}
	}
}

func TestBlocked(t *testing.T) {
	for reason, blocked := range map[string]bool{
		"Resources": false, "Priority": false, "None": false, "ReqNodeNotAvail": false, "NodeDown": false,
		"Dependency": true, "JobHeldUser": true, "JobHeldAdmin": true, "BeginTime": true,
		"AssocGrpCPULimit": true, "QOSMaxNodePerJobLimit": true, "PartitionDown": true,
		"launch failed requeued held": true, "launch_failed_requeued_held": true,
	} {
		if got := (Pending{Reason: reason}).Blocked(); got != blocked {
			t.Errorf("Blocked(%s) = %v", reason, got)
		}
	}
}

// TestToRelease: jobs SLURM held after a failed launch are released up
// to MaxLaunchReleases times each, then reported once and left held;
// other pending jobs are never touched.
func TestToRelease(t *testing.T) {
	held := func(id string) Pending { return Pending{JobID: id, Reason: "launch failed requeued held"} }
	released := map[string]int{}
	for i, tt := range []struct {
		pending         []Pending
		release, giveUp []string
	}{
		{[]Pending{held("7"), {JobID: "8", Reason: "Resources"}, {JobID: "9", Reason: "JobHeldUser"}}, []string{"7"}, nil},
		{[]Pending{held("7"), held("10")}, []string{"7", "10"}, nil},
		{[]Pending{held("7")}, []string{"7"}, nil},
		{[]Pending{held("7"), held("10")}, []string{"10"}, []string{"7"}},
		{[]Pending{held("7"), held("10")}, []string{"10"}, nil},
		{[]Pending{held("7"), held("10")}, nil, []string{"10"}},
		{[]Pending{held("7"), held("10")}, nil, nil},
	} {
		release, giveUp := ToRelease(tt.pending, released)
		if !slices.Equal(release, tt.release) || !slices.Equal(giveUp, tt.giveUp) {
			t.Errorf("step %d: release %v, give up %v; want %v, %v", i, release, giveUp, tt.release, tt.giveUp)
		}
	}
}
