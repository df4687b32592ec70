package slurm

import (
	"reflect"
	"strings"
	"testing"
)

func TestNodeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"onprem.frontend", "onprem-frontend"},
		{"cloud.burst[3]", "cloud-burst-3"},
		{"cloud.zone-a.burst[0]", "cloud-zone-a-burst-0"},
		{"cloud.zone-a.gpu[12]", "cloud-zone-a-gpu-12"},
		{"Lab_1.Big__Node", "lab-1-big-node"},
		{"a--b.c", "a-b-c"},
		{"[7]", "7"},
		{"...", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := NodeName(tt.in); got != tt.want {
				t.Errorf("NodeName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFeaturesAndPartitions(t *testing.T) {
	tests := []struct{ got, want string }{
		{PartitionName("cloud.zone-a"), "cloud-zone-a"},
		{PartitionName("OnPrem"), "onprem"},
		{SiteFeature("cloud.zone-a"), "cloud_zone_a"},
		{SiteFeature("onprem"), "onprem"},
		{LabelFeature("arch", "x86_64"), "arch_x86_64"},
		{LabelFeature("gpu.type", "A100 80GB"), "gpu_type_A100_80GB"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestNodes(t *testing.T) {
	c := load(t, labTemplate)
	nodes, err := Nodes(c)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		member, name, site, pool string
		cpus                     int
		mib                      int64
		gpus                     int
		cloud                    bool
	}
	var got []row
	for _, n := range nodes {
		got = append(got, row{n.MemberID, n.Name, n.Site, n.Pool, n.CPUs, n.MemoryMiB, n.GPUs, n.Cloud})
	}
	// The hub/manager and the gateway are no workers; "login" has no
	// roles, so it is one.
	want := []row{
		{"onprem.login", "onprem-login", "onprem", "", 4, 8192, 0, false},
		{"onprem.wn[0]", "onprem-wn-0", "onprem", "onprem.wn", 2, 2048, 0, false},
		{"onprem.wn[1]", "onprem-wn-1", "onprem", "onprem.wn", 2, 2048, 0, false},
		{"cloud.burst[0]", "cloud-burst-0", "cloud", "cloud.burst", 2, 4096, 0, true},
		{"cloud.burst[1]", "cloud-burst-1", "cloud", "cloud.burst", 2, 4096, 0, true},
		{"cloud.burst[2]", "cloud-burst-2", "cloud", "cloud.burst", 2, 4096, 0, true},
		{"cloud.zone-a.gpu[0]", "cloud-zone-a-gpu-0", "cloud.zone-a", "cloud.zone-a.gpu", 8, 16384, 1, true},
		{"cloud.zone-a.gpu[1]", "cloud-zone-a-gpu-1", "cloud.zone-a", "cloud.zone-a.gpu", 8, 16384, 1, true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Nodes:\n got %v\nwant %v", got, want)
	}
	if !reflect.DeepEqual(nodes[1].Labels, map[string]string{"arch": "x86_64"}) {
		t.Errorf("wn labels = %v", nodes[1].Labels)
	}
}

func TestNodesWorkerRole(t *testing.T) {
	src := strings.Replace(labTemplate, `roles     = ["hub", "manager"]`, `roles     = ["hub", "manager", "worker"]`, 1)
	nodes, err := Nodes(load(t, src))
	if err != nil {
		t.Fatal(err)
	}
	if nodes[0].MemberID != "onprem.frontend" {
		t.Errorf("a hub with the worker role is a compute node: first node is %s", nodes[0].MemberID)
	}
}

func TestNodesNameCollision(t *testing.T) {
	tests := []struct {
		name, extra string
		want        []string
	}{
		{"named node against a pool slot", `node "wn-1" {}`, []string{"onprem.wn[1]", "onprem.wn-1", "onprem-wn-1"}},
		{"case and underscores", `node "Login" {}`, []string{"onprem.login", "onprem.Login", "onprem-login"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(labTemplate, `    pool "wn" {`, "    "+tt.extra+"\n    pool \"wn\" {", 1)
			_, err := Nodes(load(t, src))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func TestMemberOf(t *testing.T) {
	c := load(t, labTemplate)
	for name, want := range map[string]string{
		"cloud-zone-a-gpu-1": "cloud.zone-a.gpu[1]",
		"onprem-login":       "onprem.login",
		"onprem-frontend":    "", // the controller is no compute node
		"cloud-burst-3":      "", // beyond max
	} {
		got, ok := MemberOf(c, name)
		if got != want || ok != (want != "") {
			t.Errorf("MemberOf(%s) = %q, %v; want %q", name, got, ok, want)
		}
	}
}
