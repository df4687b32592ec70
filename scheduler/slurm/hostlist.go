package slurm

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MaxHostlist is the most names ExpandHostlist returns; a longer
// expansion is an error (a cluster has far fewer nodes).
const MaxHostlist = 100000

// maxDigits bounds the numbers of a range so they fit an int.
const maxDigits = 9

// maxBrackets bounds the bracket groups of one name (SLURM has at most 5
// dimensions).
const maxBrackets = 8

// ExpandHostlist expands a SLURM hostlist expression into node names, in
// the order written: "cloud-burst-[0-2],onprem-wn-1" → cloud-burst-0,
// cloud-burst-1, cloud-burst-2, onprem-wn-1. A bracket holds numbers and
// ranges separated by commas ("a[1-3,5]"); the width of a range's first
// number pads them all ("n[01-10]" → n01 … n10); several brackets in one
// name multiply ("r[1-2]n[1-2]" → r1n1, r1n2, r2n1, r2n2). The empty
// string is no names.
func ExpandHostlist(s string) ([]string, error) {
	var out []string
	all := s
	for len(s) > 0 {
		// One name expression ends at the first comma outside brackets.
		end, depth := len(s), 0
	scan:
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '[':
				depth++
				if depth > 1 {
					return nil, fmt.Errorf("hostlist %q: nested '['", all)
				}
			case ']':
				depth--
				if depth < 0 {
					return nil, fmt.Errorf("hostlist %q: ']' without '['", all)
				}
			case ',':
				if depth == 0 {
					end = i
					break scan
				}
			}
		}
		if depth != 0 {
			return nil, fmt.Errorf("hostlist %q: '[' without ']'", all)
		}
		// Empty names (",,", a trailing ',') are skipped, as SLURM does.
		if term := s[:end]; term != "" {
			if strings.Count(term, "[") > maxBrackets {
				return nil, fmt.Errorf("hostlist %q: more than %d bracket groups in a name", term, maxBrackets)
			}
			var err error
			if out, err = expandTerm(out, term); err != nil {
				return nil, err
			}
		}
		if end == len(s) {
			break
		}
		s = s[end+1:]
	}
	return out, nil
}

// expandTerm appends the names of one expression without top-level
// commas: "prefix[ranges]rest".
func expandTerm(out []string, term string) ([]string, error) {
	lb := strings.IndexByte(term, '[')
	if lb < 0 {
		if err := checkName(term); err != nil {
			return nil, err
		}
		if len(out) >= MaxHostlist {
			return nil, fmt.Errorf("hostlist expands to more than %d names", MaxHostlist)
		}
		return append(out, term), nil
	}
	rb := lb + strings.IndexByte(term[lb:], ']')
	prefix, body, rest := term[:lb], term[lb+1:rb], term[rb+1:]
	if err := checkName(prefix); err != nil {
		return nil, err
	}
	var nums []string
	for _, r := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := hostNumber(lo, term)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = hostNumber(hi, term); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("hostlist %q: range %s runs backwards", term, r)
			}
		}
		if b-a >= MaxHostlist || len(nums)+b-a >= MaxHostlist {
			return nil, fmt.Errorf("hostlist expands to more than %d names", MaxHostlist)
		}
		for v := a; v <= b; v++ {
			nums = append(nums, fmt.Sprintf("%0*d", len(lo), v))
		}
	}
	for _, n := range nums {
		// The rest may hold more brackets: each number multiplies them.
		var err error
		if out, err = expandTerm(out, prefix+n+rest); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func hostNumber(s, term string) (int, error) {
	if s == "" || len(s) > maxDigits {
		return 0, fmt.Errorf("hostlist %q: bad number %q", term, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("hostlist %q: bad number %q", term, s)
		}
	}
	return strconv.Atoi(s)
}

// checkName rejects characters that cannot be in a name of a hostlist.
func checkName(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == ']' || c == 0x7f {
			return fmt.Errorf("hostlist name %q: bad character %q", s, c)
		}
	}
	return nil
}

// CompressHostlist writes names as a hostlist expression that
// ExpandHostlist turns back into them, sorted and without duplicates:
// names that differ only in a trailing number share brackets
// ("cloud-burst-[0-2],onprem-wn-1"). The order is by the part before the
// trailing number; then a name without a number; then unpadded numbers
// in numeric order; then zero-padded ones ("n01") by width and number.
// Names must not contain '[', ']', ',' or spaces (node names never do).
func CompressHostlist(names []string) string {
	hs := make([]hostName, 0, len(names))
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		hs = append(hs, splitHost(n))
	}
	sortHosts(hs)
	var b strings.Builder
	for i := 0; i < len(hs); {
		h := hs[i]
		j := i + 1
		if h.hasNum {
			for j < len(hs) && hs[j].hasNum && hs[j].prefix == h.prefix && hs[j].width == h.width {
				j++
			}
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j == i+1 {
			b.WriteString(h.name)
			i = j
			continue
		}
		b.WriteString(h.prefix)
		b.WriteByte('[')
		for k := i; k < j; {
			e := k
			for e+1 < j && hs[e+1].num == hs[e].num+1 {
				e++
			}
			if k > i {
				b.WriteByte(',')
			}
			b.WriteString(hs[k].digits)
			if e > k {
				b.WriteByte('-')
				b.WriteString(hs[e].digits)
			}
			k = e + 1
		}
		b.WriteByte(']')
		i = j
	}
	return b.String()
}

// hostName is a name split into a prefix and a trailing number.
type hostName struct {
	name, prefix, digits string
	hasNum               bool
	num                  int
	// width is the digits' length when zero-padded ("01"), else 0.
	width int
}

func splitHost(n string) hostName {
	i := len(n)
	for i > 0 && n[i-1] >= '0' && n[i-1] <= '9' {
		i--
	}
	h := hostName{name: n, prefix: n}
	d := n[i:]
	// A name that could not come back from a bracket stays whole.
	if d == "" || len(d) > maxDigits || strings.ContainsAny(n[:i], "[],") {
		return h
	}
	h.prefix, h.digits, h.hasNum = n[:i], d, true
	h.num, _ = strconv.Atoi(d)
	if len(d) > 1 && d[0] == '0' {
		h.width = len(d)
	}
	return h
}

// sortHosts puts names in CompressHostlist's order.
func sortHosts(hs []hostName) {
	sort.Slice(hs, func(a, b int) bool {
		x, y := hs[a], hs[b]
		switch {
		case x.prefix != y.prefix:
			return x.prefix < y.prefix
		case x.hasNum != y.hasNum:
			return !x.hasNum
		case x.width != y.width:
			return x.width < y.width
		case x.num != y.num:
			return x.num < y.num
		}
		return x.name < y.name
	})
}
