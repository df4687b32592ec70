package provision

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// HumanDuration writes d as people read it: "850ms", "12s", "3m", "3m05s",
// "1h05m", "26h" (seconds are dropped from an hour on, and a zero
// remainder is not written: never Go's "1m0s").
func HumanDuration(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	if d >= time.Second {
		d = d.Round(time.Second) // 59.6s is 1m
	}
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return neg + d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%s%ds", neg, int(d/time.Second))
	case d < time.Hour:
		m, s := int(d/time.Minute), int(d%time.Minute/time.Second)
		if s == 0 {
			return fmt.Sprintf("%s%dm", neg, m)
		}
		return fmt.Sprintf("%s%dm%02ds", neg, m, s)
	default:
		d = d.Round(time.Minute)
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%s%dh", neg, h)
		}
		return fmt.Sprintf("%s%dh%02dm", neg, h, m)
	}
}

// Plural is "1 node", "2 nodes": n and the word, singular for one.
func Plural(n int, singular, plural string) string {
	if n == 1 {
		return "1 " + singular
	}
	return fmt.Sprintf("%d %s", n, plural)
}

// CountsText writes counts by name as "onprem 16, cloud 8" (largest
// first, then by name), naming an empty key as empty; never a Go map.
func CountsText(counts map[string]int, empty string) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := k
		if name == "" {
			name = empty
		}
		parts[i] = fmt.Sprintf("%s %d", name, counts[k])
	}
	return strings.Join(parts, ", ")
}
