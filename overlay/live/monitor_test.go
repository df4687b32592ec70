package live

import (
	"testing"
	"time"
)

func TestChooseHub(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	up := func(since time.Duration) *Health { return &Health{Up: true, UpSince: now.Add(-since)} }
	down := func(fails int) *Health { return &Health{Fails: fails} }
	hubs := []string{"a", "b", "c"}
	tests := []struct {
		name   string
		active string
		health map[string]*Health
		want   string
	}{
		{"all up stays on primary", "a", map[string]*Health{"a": up(time.Hour), "b": up(time.Hour)}, "a"},
		{"unknown health keeps active", "", nil, "a"},
		{"one miss is not enough", "a", map[string]*Health{"a": down(1), "b": up(time.Hour)}, "a"},
		{"primary fails over to b", "a", map[string]*Health{"a": down(3), "b": up(time.Hour)}, "b"},
		{"skips a dead backup", "a", map[string]*Health{"a": down(3), "b": down(5), "c": up(time.Minute)}, "c"},
		{"nowhere to go", "a", map[string]*Health{"a": down(9), "b": down(9), "c": down(9)}, "a"},
		{"primary back too recently", "b", map[string]*Health{"a": up(10 * time.Second), "b": up(time.Hour)}, "b"},
		{"primary back long enough", "b", map[string]*Health{"a": up(30 * time.Second), "b": up(time.Hour)}, "a"},
		{"fail back to b before a", "c", map[string]*Health{"a": down(4), "b": up(time.Minute), "c": up(time.Hour)}, "b"},
		{"backup dies, primary recovering", "b", map[string]*Health{"a": up(time.Second), "b": down(3)}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ChooseHub(hubs, tt.active, tt.health, now, 3, 30*time.Second); got != tt.want {
				t.Errorf("ChooseHub = %q, want %q", got, tt.want)
			}
		})
	}
	if got := ChooseHub(hubs, "b", map[string]*Health{"a": up(time.Hour), "b": up(time.Hour)}, now, 3, -1); got != "b" {
		t.Errorf("failback disabled: got %q", got)
	}
}
