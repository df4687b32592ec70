package provision

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// Attribute accessors. They accept the shapes attributes take in memory
// (string, int64, []string, ...) and after a JSON round trip (float64,
// json.Number, []any, map[string]any); a missing attribute is the zero
// value.

// Str returns attribute k as a string ("" when missing).
func (a Attrs) Str(k string) string {
	switch v := a[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// Int returns attribute k as a whole number (0 when missing or not one).
func (a Attrs) Int(k string) int64 {
	switch v := a[k].(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case float64:
		return int64(v)
	case json.Number:
		f, _ := strconv.ParseFloat(string(v), 64)
		return int64(f)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// Bool returns attribute k as a bool.
func (a Attrs) Bool(k string) bool {
	switch v := a[k].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}

// Strings returns attribute k as a list of strings (a copy).
func (a Attrs) Strings(k string) []string {
	switch v := a[k].(type) {
	case []string:
		return append([]string(nil), v...)
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

// Map returns attribute k as a map of strings (a copy).
func (a Attrs) Map(k string) map[string]string {
	switch v := a[k].(type) {
	case map[string]string:
		out := make(map[string]string, len(v))
		for x, y := range v {
			out[x] = y
		}
		return out
	case map[string]any:
		out := make(map[string]string, len(v))
		for x, y := range v {
			out[x] = fmt.Sprint(y)
		}
		return out
	}
	return nil
}

// InstanceSpec is what an instance's attributes ask of a machine, typed:
// providers decode it once (InstanceOf) instead of picking attributes
// one by one. The attribute names are the ones the resource graph sets.
type InstanceSpec struct {
	Name      string            // name
	Site      string            // site (path)
	Pool      string            // pool, "" for a node
	Roles     []string          // roles, default ["worker"]
	Labels    map[string]string // labels
	PublicIP  bool              // public_ip
	Type      string            // instance_type
	CPUs      int               // cpus
	MemoryMiB int64             // memory_mib
	GPUs      int               // gpus
	GPUType   string            // gpu_type
	DiskGiB   int64             // disk_gib
	Image     string            // image
	Price     float64           // price
	Spot      bool              // spot
	UserData  string            // user_data
	Host      string            // host: the machine of a static node
}

// InstanceOf decodes an instance's attributes.
func InstanceOf(a Attrs) InstanceSpec {
	s := InstanceSpec{
		Name: a.Str("name"), Site: a.Str("site"), Pool: a.Str("pool"), Roles: a.Strings("roles"), Labels: a.Map("labels"),
		PublicIP: a.Bool("public_ip"), Type: a.Str("instance_type"), CPUs: int(a.Int("cpus")), MemoryMiB: a.Int("memory_mib"),
		GPUs: int(a.Int("gpus")), GPUType: a.Str("gpu_type"), DiskGiB: a.Int("disk_gib"), Image: a.Str("image"),
		Spot: a.Bool("spot"), UserData: a.Str("user_data"), Host: a.Str("host"),
	}
	if f, ok := toFloat(normalizeValue(a["price"])); ok {
		s.Price = f
	}
	if len(s.Roles) == 0 {
		s.Roles = []string{"worker"}
	}
	return s
}

// HasRole reports whether the instance has role r.
func (s InstanceSpec) HasRole(r string) bool { return slices.Contains(s.Roles, r) }
