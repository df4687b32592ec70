package provision

import (
	"reflect"
	"testing"
)

func TestTargetChanges(t *testing.T) {
	cs := []*Change{
		{Address: "site.a.network"},
		{Address: "site.a.node.hub", Deps: []string{"site.a.network"}},
		{Address: "site.a.pool.wn.node[0]", Deps: []string{"site.a.network", "site.a.node.hub"}},
		{Address: "site.b.network"},
	}
	cases := []struct {
		name    string
		targets []string
		destroy bool
		want    []string
	}{
		{"none keeps all", nil, false, []string{"site.a.network", "site.a.node.hub", "site.a.pool.wn.node[0]", "site.b.network"}},
		{"a worker and what it needs", []string{"site.a.pool.wn.node[0]"}, false, []string{"site.a.network", "site.a.node.hub", "site.a.pool.wn.node[0]"}},
		{"a network alone", []string{"site.b.network"}, false, []string{"site.b.network"}},
		{"destroying a network takes what lives on it", []string{"site.a.network"}, true, []string{"site.a.network", "site.a.node.hub", "site.a.pool.wn.node[0]"}},
		{"destroying a worker takes only it", []string{"site.a.pool.wn.node[0]"}, true, []string{"site.a.pool.wn.node[0]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, x := range targetChanges(cs, c.targets, c.destroy) {
				got = append(got, x.Address)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}
