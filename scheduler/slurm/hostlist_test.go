package slurm

import (
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The expansions are what scontrol show hostnames (SLURM 22.05) prints.
func TestExpandHostlist(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"onprem-login", []string{"onprem-login"}},
		{"cloud-burst-[0-2],onprem-wn-1", []string{"cloud-burst-0", "cloud-burst-1", "cloud-burst-2", "onprem-wn-1"}},
		{"n[8-10]", []string{"n8", "n9", "n10"}},
		{"n[08-10]", []string{"n08", "n09", "n10"}},
		{"n[001-3]", []string{"n001", "n002", "n003"}},
		{"n[1-03]", []string{"n1", "n2", "n3"}},
		{"a[1-3,5]", []string{"a1", "a2", "a3", "a5"}},
		{"n[9-10,08]", []string{"n9", "n10", "n08"}},
		{"r[1-2]n[1-2]", []string{"r1n1", "r1n2", "r2n1", "r2n2"}},
		{"n[1-3],n2", []string{"n1", "n2", "n3", "n2"}},
		{"a,,b,", []string{"a", "b"}},
		{"n[7]", []string{"n7"}},
		{"[1-2]", []string{"1", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ExpandHostlist(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpandHostlistErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"n[10-8]", "runs backwards"},
		{"x[]", `bad number ""`},
		{"n[1,,2]", `bad number ""`},
		{"n[-1]", `bad number ""`},
		{"n[1-]", `bad number ""`},
		{"n[a]", `bad number "a"`},
		{"n[1-2", "'[' without ']'"},
		{"n1-2]", "']' without '['"},
		{"n[[1]]", "nested"},
		{"n[1234567890]", "bad number"},
		{"a b", "bad character"},
		{"n[0-99999],m[0-1]", "more than 100000 names"},
		{"n[0-999]m[0-999]", "more than 100000 names"},
		{"a[1]b[1]c[1]d[1]e[1]f[1]g[1]h[1]i[1]", "more than 8 bracket groups"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ExpandHostlist(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, %v; want an error containing %q", got, err, tt.want)
			}
		})
	}
}

func TestCompressHostlist(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"onprem-login"}, "onprem-login"},
		{[]string{"onprem-wn-1", "cloud-burst-2", "cloud-burst-0", "cloud-burst-1", "onprem-login"}, "cloud-burst-[0-2],onprem-login,onprem-wn-1"},
		{[]string{"n1", "n2", "n3", "n5"}, "n[1-3,5]"},
		{[]string{"n9", "n10", "n08"}, "n[9-10],n08"},
		{[]string{"n01", "n02", "n1", "n2"}, "n[1-2],n[01-02]"},
		{[]string{"a", "a1", "a", ""}, "a,a1"},
		{[]string{"n10", "n9", "n011"}, "n[9-10],n011"},
		{[]string{"x0", "x00", "x000"}, "x0,x00,x000"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			if got := CompressHostlist(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// sortedUnique is names in CompressHostlist's order: by the part before
// the trailing number, unpadded numbers before padded ones, then by
// number.
func sortedUnique(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	key := func(n string) (string, int, int, int) {
		i := len(n)
		for i > 0 && n[i-1] >= '0' && n[i-1] <= '9' {
			i--
		}
		d := n[i:]
		if d == "" || len(d) > maxDigits {
			return n, -1, 0, 0
		}
		v, _ := strconv.Atoi(d)
		w := 0
		if len(d) > 1 && d[0] == '0' {
			w = len(d)
		}
		return n[:i], 0, w, v
	}
	sort.Slice(out, func(a, b int) bool {
		pa, ha, wa, va := key(out[a])
		pb, hb, wb, vb := key(out[b])
		switch {
		case pa != pb:
			return pa < pb
		case ha != hb:
			return ha < hb
		case wa != wb:
			return wa < wb
		}
		return va < vb
	})
	return out
}

func TestHostlistRoundTrip(t *testing.T) {
	sets := [][]string{
		{"cloud-burst-3", "cloud-burst-0", "cloud-burst-1", "onprem-wn-1", "onprem-login", "cloud-zone-a-gpu-0"},
		{"n1", "n01", "n001", "n2", "n02", "n10", "n100", "n099"},
		{"a", "b", "a", "c7", "c7"},
		{"r1n1", "r1n2", "r2n1"},
	}
	rng := rand.New(rand.NewSource(1))
	prefixes := []string{"cloud-burst-", "onprem-wn-", "n", "x-1-", "solo"}
	for i := 0; i < 200; i++ {
		var set []string
		for j := rng.Intn(30); j > 0; j-- {
			p := prefixes[rng.Intn(len(prefixes))]
			switch rng.Intn(4) {
			case 0:
				set = append(set, p)
			case 1:
				set = append(set, fmt.Sprintf("%s%02d", p, rng.Intn(120)))
			default:
				set = append(set, fmt.Sprintf("%s%d", p, rng.Intn(40)))
			}
		}
		sets = append(sets, set)
	}
	for _, set := range sets {
		c := CompressHostlist(set)
		got, err := ExpandHostlist(c)
		if err != nil {
			t.Fatalf("expand(compress(%q)) = expand(%q): %v", set, c, err)
		}
		if want := sortedUnique(set); !reflect.DeepEqual(got, want) {
			t.Fatalf("expand(compress(%q)) = expand(%q) = %q, want %q", set, c, got, want)
		}
	}
}
