package templates

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"512MiB", 512 << 20, false},
		{"4GiB", 4 << 30, false},
		{"1TiB", 1 << 40, false},
		{"20GB", 20e9, false},
		{"1.5GiB", 3 << 29, false},
		{"4 gib", 4 << 30, false},
		{"100KB", 100e3, false},
		{"1048576", 1 << 20, false},
		{"0", 0, false},
		{"7B", 7, false},
		{"", 0, true},
		{"GiB", 0, true},
		{"4 gigs", 0, true},
		{"-1GiB", 0, true},
		{"1.5B", 0, true},
		{"1..5GiB", 0, true},
		{"99999999PiB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{4 << 30: "4GiB", 512 << 20: "512MiB", 1000: "1000B", 0: "0B", 1 << 40: "1TiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"5s", 5 * time.Second, false},
		{"20m", 20 * time.Minute, false},
		{"6h", 6 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"1d", 24 * time.Hour, false},
		{"2d12h", 60 * time.Hour, false},
		{"0", 0, false},
		{"", 0, true},
		{"5", 0, true},
		{"6 hours", 0, true},
		{"-5s", 0, true},
		{"d", 0, true},
		{"1e3d", 0, true},
		{"999999999999d", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
