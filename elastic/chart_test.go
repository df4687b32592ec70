package elastic

import "testing"

func TestClockAndSteps(t *testing.T) {
	for _, tt := range []struct {
		sec  float64
		want string
	}{{0, "0"}, {45, "45s"}, {1800, "30m"}, {90, "1m30s"}, {3600, "1h"}, {5400, "1h30m"}, {9000, "2h30m"}, {172800, "2d"}} {
		if got := clock(tt.sec); got != tt.want {
			t.Errorf("clock(%v) = %q, want %q", tt.sec, got, tt.want)
		}
	}
	for _, tt := range []struct {
		v    float64
		n    int
		want float64
	}{{5, 5, 1}, {1000, 5, 200}, {0.389, 5, 0.1}, {7, 5, 2}, {0, 5, 1}} {
		if got := niceStep(tt.v, tt.n); got < tt.want*0.999 || got > tt.want*1.001 {
			t.Errorf("niceStep(%v, %d) = %v, want %v", tt.v, tt.n, got, tt.want)
		}
	}
	for _, tt := range []struct{ span, want float64 }{{40, 5}, {600, 60}, {9000, 900}, {36000, 3600}} {
		if got := timeStep(tt.span); got != tt.want {
			t.Errorf("timeStep(%v) = %v, want %v", tt.span, got, tt.want)
		}
	}
}
