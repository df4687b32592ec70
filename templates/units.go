package templates

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// sizeUnits maps lower-case unit suffixes to their multiplier in bytes.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"pb":  1000 * 1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"pib": 1 << 50,
}

// ParseSize parses a size such as "512MiB", "4GiB", "1TiB", "20GB" or a
// plain number of bytes ("1048576") and returns the size in bytes. Binary
// units (KiB, MiB, GiB, TiB, PiB) are powers of 1024, decimal units (KB,
// MB, GB, TB, PB) powers of 1000; units are case-insensitive and a
// fractional number ("1.5GiB") is allowed when the result is whole bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("%q does not start with a number", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown size unit %q", strings.TrimSpace(t[i:]))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || strings.Count(num, ".") > 1 || strings.HasSuffix(num, ".") || strings.HasPrefix(num, ".") {
		return 0, fmt.Errorf("%q is not a valid number", num)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n.Int64(), nil
}

// FormatSize renders bytes with the largest binary unit that divides it
// exactly ("4GiB", "512MiB", "1000B").
func FormatSize(n int64) string {
	units := []struct {
		name string
		v    int64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n != 0 && n%u.v == 0 {
			return strconv.FormatInt(n/u.v, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// ParseDuration parses a duration as time.ParseDuration does ("5s", "20m",
// "1h30m"), and also accepts whole or fractional days as a leading "d"
// component ("1d", "2d12h"). Negative durations are rejected.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("%q is negative", s)
	}
	var days float64
	if i := strings.IndexByte(t, 'd'); i > 0 {
		d, err := strconv.ParseFloat(t[:i], 64)
		if err != nil || strings.ContainsAny(t[:i], "eE+-xXpP_") || math.IsInf(d, 0) || math.IsNaN(d) {
			return 0, fmt.Errorf("%q is not a valid duration", s)
		}
		days = d
		t = t[i+1:]
		if t == "" {
			t = "0s"
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a valid duration", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	if days > 0 {
		dd := days * float64(24*time.Hour)
		if dd > float64(math.MaxInt64)-float64(d) {
			return 0, fmt.Errorf("%q is too large", s)
		}
		d += time.Duration(dd)
	}
	return d, nil
}
