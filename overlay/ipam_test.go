package overlay_test

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/overlay"
)

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s[%d]", prefix, i))
	}
	return out
}

func TestAllocateStable(t *testing.T) {
	cidr := netip.MustParsePrefix("10.200.0.0/24")
	hub := []string{"onprem.frontend"}
	steps := []struct {
		name  string
		nodes []string
	}{
		{"initial", slices.Concat(hub, ids("aws.burst", 0, 5))},
		{"scale up", slices.Concat(hub, ids("aws.burst", 0, 5), ids("cloud.gpu", 0, 3))},
		{"scale down", slices.Concat(hub, ids("aws.burst", 2, 4), ids("cloud.gpu", 0, 3))},
		{"scale up again", slices.Concat(hub, ids("aws.burst", 2, 9), ids("cloud.gpu", 0, 3))},
		{"reordered", slices.Concat(ids("cloud.gpu", 0, 3), ids("aws.burst", 2, 9), hub)},
	}
	var prev map[string]netip.Addr
	for _, st := range steps {
		got, err := overlay.Allocate(cidr, prev, st.nodes)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if len(got) != len(st.nodes) {
			t.Errorf("%s: %d allocations for %d nodes", st.name, len(got), len(st.nodes))
		}
		owner := map[netip.Addr]string{}
		for id, a := range got {
			if o, ok := owner[a]; ok {
				t.Errorf("%s: %s given to %s and %s", st.name, a, o, id)
			}
			owner[a] = id
			if !cidr.Contains(a) || a == cidr.Addr() || a == netip.MustParseAddr("10.200.0.255") {
				t.Errorf("%s: %s got unusable %s", st.name, id, a)
			}
			if old, ok := prev[id]; ok && old != a {
				t.Errorf("%s: %s moved from %s to %s", st.name, id, old, a)
			}
		}
		again, _ := overlay.Allocate(cidr, prev, st.nodes)
		if !maps.Equal(got, again) {
			t.Errorf("%s: not deterministic", st.name)
		}
		prev = got
	}
	if prev["onprem.frontend"] != netip.MustParseAddr("10.200.0.1") {
		t.Errorf("first node got %s, want the first address", prev["onprem.frontend"])
	}
}

func TestAllocateErrors(t *testing.T) {
	tests := []struct {
		name  string
		cidr  string
		prev  map[string]netip.Addr
		nodes []string
		want  string
	}{
		{"full /30", "10.0.0.0/30", nil, []string{"a", "b", "c"}, "is full"},
		{"duplicate node", "10.0.0.0/24", nil, []string{"a", "a"}, "listed twice"},
		{"duplicate in state", "10.0.0.0/24", map[string]netip.Addr{"a": netip.MustParseAddr("10.0.0.5"), "b": netip.MustParseAddr("10.0.0.5")}, []string{"a", "b"}, "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := overlay.Allocate(netip.MustParsePrefix(tt.cidr), tt.prev, tt.nodes)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestAllocateRenumbered(t *testing.T) {
	prev := map[string]netip.Addr{"a": netip.MustParseAddr("10.1.0.7"), "b": netip.MustParseAddr("10.2.0.9")}
	got, err := overlay.Allocate(netip.MustParsePrefix("10.2.0.0/24"), prev, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got["b"] != prev["b"] || got["a"] != netip.MustParseAddr("10.2.0.1") {
		t.Errorf("renumbered: %v", got)
	}
}

func TestAllocateIPv6(t *testing.T) {
	got, err := overlay.Allocate(netip.MustParsePrefix("fd00:200::/64"), nil, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got["a"] != netip.MustParseAddr("fd00:200::1") || got["b"] != netip.MustParseAddr("fd00:200::2") {
		t.Errorf("got %v", got)
	}
}
