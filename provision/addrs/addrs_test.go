package addrs

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		addr, member string
		want         Resource
		err          string
	}{
		{"site.onprem.network", "onprem", NetworkOf([]string{"onprem"}), ""},
		{"site.onprem.node.frontend", "onprem.frontend", NodeOf([]string{"onprem"}, "frontend"), ""},
		{"site.cloud.pool.burst.node[2]", "cloud.burst[2]", SlotOf([]string{"cloud"}, "burst", 2), ""},
		{"site.cloud.site.zone-a.pool.gpu.node[0]", "cloud.zone-a.gpu[0]", SlotOf([]string{"cloud", "zone-a"}, "gpu", 0), ""},
		{"site.campus.site.lab.site.rack.node.gw", "campus.lab.rack.gw", NodeOf([]string{"campus", "lab", "rack"}, "gw"), ""},
		{"onprem.node.frontend", "", Resource{}, "does not start with site.NAME"},
		{"site.onprem.pool.wn.node[-1]", "", Resource{}, "is not a pool slot"},
		{"site.onprem.pool.wn.node[01]", "", Resource{}, "is not a pool slot"},
		{"site.onprem.pool.wn.node[x]", "", Resource{}, "is not a pool slot"},
		{"site.onprem.node", "", Resource{}, "after the site comes"},
		{"site.on prem.network", "", Resource{}, "is not a site name"},
		{"site.onprem.network.extra", "", Resource{}, "after the site comes"},
	}
	for _, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			got, err := Parse(c.addr)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Parse(%q) err = %v, want %q", c.addr, err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", c.addr, got, err, c.want)
			}
			if got.String() != c.addr {
				t.Errorf("String() = %q, want %q", got.String(), c.addr)
			}
			if got.MemberID() != c.member {
				t.Errorf("MemberID() = %q, want %q", got.MemberID(), c.member)
			}
			if got.Kind != Network {
				back, err := ParseMember(c.member)
				if err != nil || back.String() != c.addr {
					t.Errorf("ParseMember(%q) = %v, %v; want %s", c.member, back, err, c.addr)
				}
			}
		})
	}
	for _, bad := range []string{"onprem", "onprem.wn[", "onprem.wn[1", "onprem.[1]", "on prem.x", "a..b"} {
		if _, err := ParseMember(bad); err == nil {
			t.Errorf("ParseMember(%q) accepted", bad)
		}
	}
}

// FuzzParse: whatever Parse accepts prints back as itself, and its
// member ID parses back to the same address.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"site.onprem.network", "site.a.site.b.pool.p.node[3]", "site.x.node.y", "site.a.pool.b.node[01]", "site..network"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, r.String())
		}
		if r.Kind == Network {
			return
		}
		back, err := ParseMember(r.MemberID())
		if err != nil || back.String() != s {
			t.Fatalf("member %q of %q parses to %v, %v", r.MemberID(), s, back, err)
		}
	})
}
