package provision

import (
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Version is hvctl's version, set by the linker (-X) or left as dev.
var Version = "0.1.0-dev"

// Attribute schema known to the engine, by kind: which attributes are
// computed by the provider (known after apply) and which are sensitive.
var (
	computedAttrs = map[Kind][]string{
		KindInstance: {"private_ip", "public_address", "state"},
		KindNetwork:  {},
	}
	sensitiveAttrs = map[string]bool{
		"user_data": true, "join_token": true, "wg_private_key": true, "password": true,
		"cluster_secret": true, "tls_key": true, "replica_key": true,
	}
	// internalAttrs are added at apply time by Engine.Prepare (how a node
	// finds and joins its cluster). They are never diffed and never shown
	// in plans; sensitive ones are redacted everywhere else.
	internalAttrs = map[string]bool{
		"join_token": true, "cluster_secret": true, "template": true, "manager_url": true, "overlay_port": true,
		"tls_cert": true, "tls_key": true, "cluster_ca": true, "elastic_token": true,
		"overlay_cidr": true, "hvctl_command": true,
		"replica_cert": true, "replica_key": true, "raft_bootstrap": true, "raft_witness": true, "manager_urls": true,
	}
)

// IsInternal reports whether an attribute is bootstrap data added at
// apply time rather than configuration.
func IsInternal(attr string) bool { return internalAttrs[attr] }

// IsSecret reports whether an attribute's (or a provider setting's)
// value is a secret: it is never shown in plans, JSON, logs or status,
// and providers keep it out of their own records (the local world file,
// tags). The named ones, and any whose name says so: *token*, *secret*,
// *password*, *passphrase*, *private_key*, *_key (but not *public_key).
func IsSecret(attr string) bool {
	n := strings.ToLower(attr)
	if sensitiveAttrs[n] {
		return true
	}
	for _, part := range []string{"token", "secret", "password", "passphrase", "private_key"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return strings.HasSuffix(n, "_key") && !strings.HasSuffix(n, "public_key")
}

// PublicAttrs copies attrs without their secrets (IsSecret): what a
// provider may keep in its own records and list.
func PublicAttrs[V any](attrs map[string]V) map[string]any {
	if len(attrs) == 0 {
		return nil
	}
	out := make(map[string]any, len(attrs))
	for k, v := range attrs {
		if !IsSecret(k) {
			out[k] = v
		}
	}
	return out
}

// normalizeAttrs converts JSON-decoded values (json.Number, []any,
// map[string]any) to the engine's types.
func normalizeAttrs(a Attrs) Attrs {
	if a == nil {
		return nil
	}
	out := make(Attrs, len(a))
	for k, v := range a {
		out[k] = normalizeValue(v)
	}
	return out
}

func normalizeValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, _ := strconv.ParseFloat(string(x), 64)
		return f
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
		return x
	case int:
		return int64(x)
	case []any:
		s := make([]string, 0, len(x))
		for _, e := range x {
			if str, ok := e.(string); ok {
				s = append(s, str)
			} else {
				b, _ := json.Marshal(e)
				s = append(s, string(b))
			}
		}
		return s
	case map[string]any:
		m := make(map[string]string, len(x))
		for k, e := range x {
			if str, ok := e.(string); ok {
				m[k] = str
			} else {
				b, _ := json.Marshal(e)
				m[k] = string(b)
			}
		}
		return m
	}
	return v
}

// valueEqual compares attribute values, numbers numerically.
func valueEqual(a, b any) bool {
	a, b = normalizeValue(a), normalizeValue(b)
	if fa, ok := toFloat(a); ok {
		fb, ok := toFloat(b)
		return ok && fa == fb
	}
	switch x := a.(type) {
	case []string:
		y, ok := b.([]string)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	case map[string]string:
		y, ok := b.(map[string]string)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	}
	return a == b
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// lessAddr orders addresses naturally: node[2] before node[10].
func lessAddr(a, b string) bool {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			i, j := 0, 0
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			na, _ := strconv.Atoi(a[:i])
			nb, _ := strconv.Atoi(b[:j])
			if na != nb {
				return na < nb
			}
			a, b = a[i:], b[j:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// SortAddresses sorts addresses naturally.
func SortAddresses(s []string) { sort.Slice(s, func(i, j int) bool { return lessAddr(s[i], s[j]) }) }
