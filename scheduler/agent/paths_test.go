package agent

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/hvctl/hvctl/scheduler/manager"
)

func TestPathTracker(t *testing.T) {
	a := manager.ProbeTarget{Node: "core.hub", Address: netip.MustParseAddr("10.203.0.1")}
	b := manager.ProbeTarget{Node: "edge.gw", Address: netip.MustParseAddr("10.203.0.2")}
	t0 := time.Unix(1e9, 0)
	type round struct {
		targets []manager.ProbeTarget
		down    []string // targets that do not answer this round
	}
	tests := []struct {
		name   string
		rounds []round
		want   map[string]manager.PathHealth // by target; nil = absent
	}{
		{"all answer", []round{{[]manager.ProbeTarget{a, b}, nil}, {[]manager.ProbeTarget{a, b}, nil}},
			map[string]manager.PathHealth{
				"core.hub": {To: "core.hub", Address: a.Address, OK: true, LastAnswer: t0.Add(time.Second), Sent: 2},
				"edge.gw":  {To: "edge.gw", Address: b.Address, OK: true, LastAnswer: t0.Add(time.Second), Sent: 2},
			}},
		{"a path goes dead", []round{{[]manager.ProbeTarget{a, b}, nil}, {[]manager.ProbeTarget{a, b}, []string{"edge.gw"}}, {[]manager.ProbeTarget{a, b}, []string{"edge.gw"}}},
			map[string]manager.PathHealth{
				"core.hub": {To: "core.hub", Address: a.Address, OK: true, LastAnswer: t0.Add(2 * time.Second), Sent: 3},
				"edge.gw":  {To: "edge.gw", Address: b.Address, OK: false, LastAnswer: t0, Sent: 3, Lost: 2},
			}},
		{"never answered", []round{{[]manager.ProbeTarget{b}, []string{"edge.gw"}}},
			map[string]manager.PathHealth{"edge.gw": {To: "edge.gw", Address: b.Address, Sent: 1, Lost: 1}}},
		{"a dropped target is forgotten", []round{{[]manager.ProbeTarget{a, b}, nil}, {[]manager.ProbeTarget{a}, nil}},
			map[string]manager.PathHealth{"core.hub": {To: "core.hub", Address: a.Address, OK: true, LastAnswer: t0.Add(time.Second), Sent: 2}}},
		{"the window keeps the last probes", slices.Repeat([]round{{[]manager.ProbeTarget{b}, []string{"edge.gw"}}}, pathWindow+5),
			map[string]manager.PathHealth{"edge.gw": {To: "edge.gw", Address: b.Address, Sent: pathWindow, Lost: pathWindow}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pt pathTracker
			for i, r := range tt.rounds {
				now := t0.Add(time.Duration(i) * time.Second)
				ping := func(_ context.Context, dst netip.Addr) error {
					for _, d := range r.down {
						for _, tg := range r.targets {
							if tg.Node == d && tg.Address == dst {
								return errors.New("no reply")
							}
						}
					}
					return nil
				}
				pt.probeAll(context.Background(), r.targets, ping, func() time.Time { return now })
			}
			got := map[string]manager.PathHealth{}
			for _, h := range pt.report() {
				got[h.To] = h
			}
			if len(got) != len(tt.want) {
				t.Errorf("report = %+v, want %+v", got, tt.want)
			}
			for k, w := range tt.want {
				if g := got[k]; g != w {
					t.Errorf("%s: %+v, want %+v", k, g, w)
				}
			}
		})
	}
}
