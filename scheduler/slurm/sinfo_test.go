package slurm

import (
	"reflect"
	"strings"
	"testing"
)

// Every spelling sinfo %T prints in SLURM 22.05: node_state_string(),
// lowercased.
func TestParseState(t *testing.T) {
	tests := []struct {
		in     string
		state  string
		flags  NodeFlags
		lost   bool
		absent bool
	}{
		{"idle", "idle", 0, false, false},
		{"idle*", "idle", NotResponding, true, false},
		{"idle~", "idle", PoweredDown, false, true},
		{"idle#", "idle", PoweringUp, false, true},
		{"idle!", "idle", PowerDownPending, false, false},
		{"idle%", "idle", PoweringDown, false, true},
		{"idle$", "idle", Maint, false, false},
		{"idle@", "idle", Reboot, false, false},
		{"idle^", "idle", Reboot, false, false},
		{"idle-", "idle", Planned, false, false},
		{"mixed", "mixed", 0, false, false},
		{"mixed#", "mixed", PoweringUp, false, true},
		{"mixed*", "mixed", NotResponding, true, false},
		{"mixed-", "mixed", Planned, false, false},
		{"allocated", "allocated", 0, false, false},
		{"allocated+", "allocated", Completing, false, false},
		{"allocated*", "allocated", NotResponding, true, false},
		{"allocated~", "allocated", PoweredDown, false, true},
		{"allocated#", "allocated", PoweringUp, false, true},
		{"completing", "completing", Completing, false, false},
		{"completing*", "completing", Completing | NotResponding, true, false},
		{"down", "down", Down, true, false},
		{"down*", "down", Down | NotResponding, true, false},
		{"down~", "down", Down | PoweredDown, true, true},
		{"down#", "down", Down | PoweringUp, true, true},
		{"down%", "down", Down | PoweringDown, true, true},
		{"down$", "down", Down | Maint, true, false},
		{"drained", "drained", Drain, false, false},
		{"drained*", "drained", Drain | NotResponding, true, false},
		{"drained~", "drained", Drain | PoweredDown, false, true},
		{"drained!", "drained", Drain | PowerDownPending, false, false},
		{"draining", "draining", Drain, false, false},
		{"draining@", "draining", Drain | Reboot, false, false},
		{"draining*", "draining", Drain | NotResponding, true, false},
		{"fail", "fail", Fail, false, false},
		{"fail*", "fail", Fail | NotResponding, true, false},
		{"failing", "failing", Fail, false, false},
		{"inval", "inval", Invalid, false, false},
		{"maint", "maint", Maint, false, false},
		{"maint*", "maint", Maint | NotResponding, true, false},
		{"reboot", "reboot", Reboot, false, false},
		{"reboot^", "reboot", Reboot, false, false},
		{"reboot_issued", "reboot_issued", Reboot, false, false},
		{"planned", "planned", Planned, false, false},
		{"future", "future", 0, false, true},
		{"future~", "future", PoweredDown, false, true},
		{"cloud", "cloud", 0, false, true},
		{"powered_down", "powered_down", PoweredDown, false, true},
		{"powering_up", "powering_up", PoweringUp, false, true},
		{"powering_down", "powering_down", PoweringDown, false, true},
		{"power_down", "power_down", PowerDownPending, false, false},
		{"unknown", "unknown", 0, false, true},
		{"unknown*", "unknown", NotResponding, true, false},
		{"resume", "resume", 0, false, false},
		{"reserved", "reserved", 0, false, false},
		{"perfctrs", "perfctrs", 0, false, false},
		{"IDLE~", "idle", PoweredDown, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			state, flags, err := parseState(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if state != tt.state || flags != tt.flags {
				t.Errorf("got %q %b, want %q %b", state, flags, tt.state, tt.flags)
			}
			n := NodeInfo{State: state, Flags: flags}
			if n.Lost() != tt.lost || n.Absent() != tt.absent {
				t.Errorf("Lost %v Absent %v, want %v %v", n.Lost(), n.Absent(), tt.lost, tt.absent)
			}
		})
	}
	for _, bad := range []string{"", "*", "~#", "idle2", "id le", "idle/"} {
		if _, _, err := parseState(bad); err == nil {
			t.Errorf("parseState(%q) accepted", bad)
		}
	}
}

func TestParseNodes(t *testing.T) {
	// With -N a node shows once per partition.
	out := "onprem-wn-0|mixed|1/1/0/2|2048\n" +
		"onprem-wn-0|mixed|1/1/0/2|2048\n" +
		"cloud-burst-0|idle~|0/0/2/2|4096\n" +
		"cloud-burst-1|drained*|0/0/2/2|4096\n"
	got, err := ParseNodes([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []NodeInfo{
		{Name: "onprem-wn-0", State: "mixed", AllocCPUs: 1, IdleCPUs: 1, TotalCPUs: 2, MemoryMiB: 2048},
		{Name: "cloud-burst-0", State: "idle", Flags: PoweredDown, TotalCPUs: 2, MemoryMiB: 4096},
		{Name: "cloud-burst-1", State: "drained", Flags: Drain | NotResponding, TotalCPUs: 2, MemoryMiB: 4096},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if !got[2].Has(Drain) || got[2].Has(Drain|Down) {
		t.Error("Has")
	}
}

func TestParseNodesErrors(t *testing.T) {
	good := "a|idle|0/2/0/2|100\n"
	tests := []struct{ name, line, want string }{
		{"fields", "b|idle|0/2/0/2", "sinfo line 2: 3 fields, want 4"},
		{"hostlist", "b[1-2]|idle|0/2/0/2|100", `sinfo line 2: bad node name "b[1-2]": want one node per line`},
		{"state", "b|id le|0/2/0/2|100", `sinfo line 2: bad state "id le"`},
		{"cpus", "b|idle|0/2/0|100", `sinfo line 2: bad CPUs "0/2/0"`},
		{"negative cpus", "b|idle|0/-2/0/2|100", `sinfo line 2: bad CPUs "0/-2/0/2"`},
		{"memory", "b|idle|0/2/0/2|1+", `sinfo line 2: bad memory "1+"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNodes([]byte(good + tt.line + "\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
