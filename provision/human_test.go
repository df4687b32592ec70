package provision

import (
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{850 * time.Millisecond, "850ms"},
		{12 * time.Second, "12s"},
		{59*time.Second + 600*time.Millisecond, "1m"},
		{time.Minute, "1m"},
		{3*time.Minute + 5*time.Second, "3m05s"},
		{20 * time.Minute, "20m"},
		{time.Hour + 5*time.Minute + 10*time.Second, "1h05m"},
		{2*time.Hour + 30*time.Minute, "2h30m"},
		{26 * time.Hour, "26h"},
		{-90 * time.Second, "-1m30s"},
	}
	for _, c := range cases {
		if got := HumanDuration(c.d); got != c.want {
			t.Errorf("HumanDuration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestCountsText(t *testing.T) {
	cases := []struct {
		in   map[string]int
		want string
	}{
		{map[string]int{"": 8, "onprem": 16}, "onprem 16, unrouted 8"},
		{map[string]int{"b": 2, "a": 2, "c": 5}, "c 5, a 2, b 2"},
		{map[string]int{}, ""},
	}
	for _, c := range cases {
		if got := CountsText(c.in, "unrouted"); got != c.want {
			t.Errorf("CountsText(%v) = %q, want %q", c.in, got, c.want)
		}
	}
	if Plural(1, "node", "nodes") != "1 node" || Plural(3, "node", "nodes") != "3 nodes" || Plural(0, "job", "jobs") != "0 jobs" {
		t.Error("Plural")
	}
}
