package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

func init() { provision.Register("sim", New) }

// Unlimited is the Capacity that puts no limit on a site.
const Unlimited = -1

// Settings are a sim provider block's settings, defaults filled in.
type Settings struct {
	// BootTime is how long a machine stays "pending" after Create.
	BootTime time.Duration // boot_time, default 0s
	// APIRate is the API calls per second the sim allows; 0 = unlimited.
	APIRate float64 // api_rate
	// FailRate is the probability that an API call fails with a
	// transient error before changing anything.
	FailRate float64 // fail_rate, 0..1
	// Capacity is the most live machines one site may hold; Unlimited
	// (the default) for no limit.
	Capacity int // capacity
	// BootFailRate is the probability that a machine ends "failed"
	// instead of "running".
	BootFailRate float64 // boot_fail_rate, 0..1
	// Seed drives every random choice. Default: a hash of the cluster
	// name and the provider reference, so runs are reproducible.
	Seed int64 // seed
}

// settingNames are the arguments a sim provider block accepts.
var settingNames = []string{"api_rate", "boot_fail_rate", "boot_time", "capacity", "fail_rate", "seed"}

// New is the sim's provision.Factory: it checks cfg's settings and opens
// the world under env.StateDir.
func New(cfg *templates.Provider, env *provision.Env) (provision.Provider, hcl.Diagnostics) {
	s, diags := ParseSettings(cfg, env)
	if diags.HasErrors() {
		return nil, diags
	}
	return Open(env, s, nil), diags
}

// DefaultSettings returns the settings of an empty provider block.
func DefaultSettings() Settings { return Settings{Capacity: Unlimited} }

// ParseSettings checks a sim provider block. Each bad value is an error
// diagnostic whose Subject is that argument's source range.
func ParseSettings(cfg *templates.Provider, env *provision.Env) (Settings, hcl.Diagnostics) {
	s := DefaultSettings()
	var diags hcl.Diagnostics
	subject := func(name string) *hcl.Range {
		if r, ok := cfg.AttrRanges[name]; ok {
			return &r
		}
		r := cfg.DeclRange
		return &r
	}
	bad := func(name, detail string) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   detail,
			Subject:  subject(name),
		})
	}
	names := make([]string, 0, len(cfg.Attrs))
	for name := range cfg.Attrs {
		names = append(names, name)
	}
	sort.Strings(names)
	seeded := false
	for _, name := range names {
		v := cfg.Attrs[name]
		if v.IsNull() {
			continue
		}
		if !v.IsWhollyKnown() {
			bad(name, fmt.Sprintf("The value of %s must be known when the provider is configured.", name))
			continue
		}
		switch name {
		case "boot_time":
			str, ok := asString(v)
			d, err := time.ParseDuration(str)
			switch {
			case !ok || err != nil:
				bad(name, fmt.Sprintf("boot_time = %s: must be a duration like \"2s\".", show(v)))
			case d < 0:
				bad(name, fmt.Sprintf("boot_time = %s: must not be negative.", show(v)))
			default:
				s.BootTime = d
			}
		case "api_rate":
			f, ok := asNumber(v)
			if !ok || f < 0 {
				bad(name, fmt.Sprintf("api_rate = %s: must be a number of API calls per second, at least 0 (0 = unlimited).", show(v)))
				continue
			}
			s.APIRate = f
		case "fail_rate", "boot_fail_rate":
			f, ok := asNumber(v)
			if !ok || f < 0 || f > 1 {
				bad(name, fmt.Sprintf("%s = %s: must be a probability between 0 and 1.", name, show(v)))
				continue
			}
			if name == "fail_rate" {
				s.FailRate = f
			} else {
				s.BootFailRate = f
			}
		case "capacity":
			f, ok := asNumber(v)
			if !ok || f < 0 || f != math.Trunc(f) || f > math.MaxInt32 {
				bad(name, fmt.Sprintf("capacity = %s: must be a whole number of machines per site, at least 0.", show(v)))
				continue
			}
			s.Capacity = int(f)
		case "seed":
			f, ok := asNumber(v)
			if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				bad(name, fmt.Sprintf("seed = %s: must be a whole number.", show(v)))
				continue
			}
			s.Seed = int64(f)
			seeded = true
		default:
			detail := fmt.Sprintf("The sim provider has no argument %q.", name)
			if near := nearest(name, settingNames); near != "" {
				detail += fmt.Sprintf(" Did you mean %q?", near)
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument",
				Detail:   detail,
				Subject:  subject(name),
			})
		}
	}
	if !seeded {
		h := fnv.New64a()
		cluster := ""
		if env != nil {
			cluster = env.Cluster
		}
		fmt.Fprintf(h, "%s\x00%s", cluster, cfg.Ref())
		s.Seed = int64(h.Sum64() >> 1)
	}
	return s, diags
}

func asString(v cty.Value) (string, bool) {
	c, err := convert.Convert(v, cty.String)
	if err != nil || c.IsNull() {
		return "", false
	}
	return c.AsString(), true
}

func asNumber(v cty.Value) (float64, bool) {
	c, err := convert.Convert(v, cty.Number)
	if err != nil || c.IsNull() {
		return 0, false
	}
	f, _ := c.AsBigFloat().Float64()
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// show renders a value for a diagnostic detail.
func show(v cty.Value) string { return provision.ShowValue(v) }

// nearest returns the candidate closest to name, or "" when none is close.
func nearest(name string, candidates []string) string { return provision.Nearest(name, candidates) }
