package slurm

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/hvctl/hvctl/scheduler"
)

func mustNodes(t *testing.T, out string) []NodeInfo {
	t.Helper()
	n, err := ParseNodes([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSignalsDemand(t *testing.T) {
	nodes, err := Nodes(load(t, labTemplate))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	r := Reading{Time: t0, Pending: []Pending{
		{JobID: "1", CPUs: 4, Nodes: 1, MemoryMiB: 2048, Submitted: t0.Add(-time.Minute), Partitions: []string{"all"}, Reason: "Resources"},
		{JobID: "2", CPUs: 4, Nodes: 1, MemoryMiB: 2048, Submitted: t0.Add(-2 * time.Minute), Partitions: []string{"all"}, Reason: "Priority"},
		// Two nodes of 8 CPUs each, on GPU nodes of the cloud site.
		{JobID: "3", CPUs: 15, Nodes: 2, MemoryMiB: 4096, Submitted: t0.Add(-time.Second), Partitions: []string{"cloud"}, Reason: "Resources", Features: "gpu_a100"},
		// A site feature pins, label features become labels.
		{JobID: "4", CPUs: 1, Nodes: 1, Submitted: t0.Add(-3 * time.Second), Partitions: []string{"all"}, Reason: "Resources", Features: "cloud_zone_a&arch_x86_64"},
		// A sub-site feature refines a partition pin; an OR constraint is ignored.
		{JobID: "5", CPUs: 1, Nodes: 1, Submitted: t0.Add(-4 * time.Second), Partitions: []string{"cloud"}, Reason: "Resources", Features: "cloud_zone_a"},
		{JobID: "6", CPUs: 1, Nodes: 1, Submitted: t0.Add(-5 * time.Second), Partitions: []string{"onprem"}, Reason: "Resources", Features: "onprem|cloud"},
		// Two sites' partitions: anywhere. No submit time: now.
		{JobID: "7", CPUs: 1, Nodes: 1, Partitions: []string{"onprem", "cloud"}, Reason: "Resources"},
		// Held: no demand.
		{JobID: "8", CPUs: 64, Nodes: 1, Submitted: t0.Add(-time.Hour), Partitions: []string{"all"}, Reason: "JobHeldUser"},
	}}
	got := Signals(r, nodes, nil).Waiting
	want := scheduler.SiteSignals{
		PendingJobs:  7,
		PendingSlots: 4 + 4 + 15 + 1 + 1 + 1 + 1,
		Demand: []scheduler.DemandGroup{
			{Count: 1, Resources: scheduler.Resources{CPUs: 1}, Oldest: t0},
			{Count: 1, Resources: scheduler.Resources{CPUs: 1}, Oldest: t0.Add(-4 * time.Second), Site: "cloud.zone-a"},
			{Count: 1, Resources: scheduler.Resources{CPUs: 1}, Oldest: t0.Add(-5 * time.Second), Site: "onprem"},
			{Count: 1, Resources: scheduler.Resources{CPUs: 1, Labels: map[string]string{"arch": "x86_64"}}, Oldest: t0.Add(-3 * time.Second), Site: "cloud.zone-a"},
			{Count: 2, Resources: scheduler.Resources{CPUs: 4, MemoryMiB: 2048}, Oldest: t0.Add(-2 * time.Minute)},
			{Count: 2, Resources: scheduler.Resources{CPUs: 8, MemoryMiB: 4096, Labels: map[string]string{"gpu": "a100"}}, Oldest: t0.Add(-time.Second), Site: "cloud"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("waiting:\n%s\nwant\n%s", g, w)
	}
}

func TestSignalsNodesAndIdle(t *testing.T) {
	nodes, err := Nodes(load(t, labTemplate))
	if err != nil {
		t.Fatal(err)
	}
	var idle IdleTracker
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

	// Reading 1: wn-0 runs a job; burst-1 is powered down and gpu-0
	// powering up (no slurmd yet), gpu-1 not shown; burst-2 is lost;
	// "stranger" is no node of the cluster.
	r1 := Reading{Time: t0, Running: map[string]int{"onprem-wn-0": 1, "stranger": 3},
		Nodes: mustNodes(t, "onprem-login|idle|0/4/0/4|8192\n"+
			"onprem-wn-0|mixed|1/1/0/2|2048\n"+
			"onprem-wn-1|idle|0/2/0/2|2048\n"+
			"cloud-burst-0|idle|0/2/0/2|4096\n"+
			"cloud-burst-1|idle~|0/0/2/2|4096\n"+
			"cloud-burst-2|down*|0/0/2/2|4096\n"+
			"cloud-zone-a-gpu-0|idle#|0/0/8/8|16384\n"+
			"stranger|idle|0/1/0/1|1\n")}
	s1 := Signals(r1, nodes, &idle)
	if !s1.Time.Equal(t0) || s1.Cache.FetchesByTier == nil {
		t.Errorf("time %v, cache %v", s1.Time, s1.Cache)
	}
	type nodeRow struct {
		id      string
		used    int
		running int
		lost    bool
		idleFor float64
	}
	type siteRow struct {
		site          string
		free, running int
		nodes         []nodeRow
	}
	rows := func(s scheduler.Signals) []siteRow {
		var out []siteRow
		for _, ss := range s.Sites {
			r := siteRow{site: ss.Site, free: ss.FreeSlots, running: ss.RunningJobs}
			for _, n := range ss.Nodes {
				r.nodes = append(r.nodes, nodeRow{n.ID, n.UsedCPUs, n.Running, n.Lost, n.IdleFor})
			}
			out = append(out, r)
		}
		return out
	}
	want1 := []siteRow{
		{"cloud", 2, 0, []nodeRow{{"cloud.burst[0]", 0, 0, false, 0}, {"cloud.burst[2]", 0, 0, true, 0}}},
		{"cloud.zone-a", 0, 0, nil},
		{"onprem", 7, 1, []nodeRow{{"onprem.login", 0, 0, false, 0}, {"onprem.wn[0]", 1, 1, false, 0}, {"onprem.wn[1]", 0, 0, false, 0}}},
	}
	if got := rows(s1); !reflect.DeepEqual(got, want1) {
		t.Errorf("reading 1:\n got %+v\nwant %+v", got, want1)
	}
	wn0 := s1.Sites[2].Nodes[1]
	if wn0.CPUs != 2 || wn0.MemoryMiB != 2048 || wn0.Pool != "onprem.wn" || wn0.Site != "onprem" || wn0.Labels["arch"] != "x86_64" {
		t.Errorf("wn[0] capacity/identity: %+v", wn0.Node)
	}

	// Reading 2, 30 s later: wn-0 finished, wn-1 took a job, burst-2
	// was powered down, the others stayed idle.
	r2 := Reading{Time: t0.Add(30 * time.Second), Running: map[string]int{"onprem-wn-1": 1},
		Nodes: mustNodes(t, "onprem-login|idle|0/4/0/4|8192\n"+
			"onprem-wn-0|idle|0/2/0/2|2048\n"+
			"onprem-wn-1|allocated|2/0/0/2|2048\n"+
			"cloud-burst-0|idle|0/2/0/2|4096\n"+
			"cloud-burst-2|idle~|0/0/2/2|4096\n")}
	want2 := []siteRow{
		{"cloud", 2, 0, []nodeRow{{"cloud.burst[0]", 0, 0, false, 30}}},
		{"cloud.zone-a", 0, 0, nil},
		{"onprem", 6, 1, []nodeRow{{"onprem.login", 0, 0, false, 30}, {"onprem.wn[0]", 0, 0, false, 0}, {"onprem.wn[1]", 2, 1, false, 0}}},
	}
	if got := rows(Signals(r2, nodes, &idle)); !reflect.DeepEqual(got, want2) {
		t.Errorf("reading 2:\n got %+v\nwant %+v", got, want2)
	}

	// Reading 3, 10 s later: burst-2 is back and idle: its clock starts
	// again; wn-0 has been idle since reading 2.
	r3 := Reading{Time: t0.Add(40 * time.Second), Running: map[string]int{"onprem-wn-1": 1},
		Nodes: mustNodes(t, "onprem-login|idle|0/4/0/4|8192\n"+
			"onprem-wn-0|idle|0/2/0/2|2048\n"+
			"onprem-wn-1|allocated|2/0/0/2|2048\n"+
			"cloud-burst-0|idle|0/2/0/2|4096\n"+
			"cloud-burst-2|idle|0/2/0/2|4096\n")}
	want3 := []siteRow{
		{"cloud", 4, 0, []nodeRow{{"cloud.burst[0]", 0, 0, false, 40}, {"cloud.burst[2]", 0, 0, false, 0}}},
		{"cloud.zone-a", 0, 0, nil},
		{"onprem", 6, 1, []nodeRow{{"onprem.login", 0, 0, false, 40}, {"onprem.wn[0]", 0, 0, false, 10}, {"onprem.wn[1]", 2, 1, false, 0}}},
	}
	if got := rows(Signals(r3, nodes, &idle)); !reflect.DeepEqual(got, want3) {
		t.Errorf("reading 3:\n got %+v\nwant %+v", got, want3)
	}
}

// A drained node has no free slots for SLURM's placement.
func TestSignalsFreeSlotsSkipDrained(t *testing.T) {
	nodes, err := Nodes(load(t, labTemplate))
	if err != nil {
		t.Fatal(err)
	}
	r := Reading{Time: time.Unix(0, 0), Nodes: mustNodes(t, "onprem-wn-0|drained|0/2/0/2|2048\nonprem-wn-1|idle|0/2/0/2|2048\n")}
	s := Signals(r, nodes, nil)
	for _, ss := range s.Sites {
		if ss.Site == "onprem" && (ss.FreeSlots != 2 || len(ss.Nodes) != 2) {
			t.Errorf("onprem: %d free slots over %d nodes, want 2 over 2", ss.FreeSlots, len(ss.Nodes))
		}
	}
}
