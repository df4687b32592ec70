package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

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
	// StartTime, when set, lets the sim stop machines and start them
	// again (provision.Stopper); a start takes this long. 0 (the
	// default): machines cannot stop, like a cloud without stop.
	StartTime time.Duration // start_time
	// StoppedPrice is what a stopped machine costs per hour (its disk).
	StoppedPrice float64 // stopped_price
	// World is the directory of the world file (DIR/world.json), made
	// absolute against the directory of the file with the provider
	// block; "" for HVCTL_SIM_WORLD, else the state directory. Working
	// directories whose providers name one world share one fake cloud.
	World string // world
}

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
	schema := provision.Schema{Provider: "sim", Settings: []provision.Setting{
		{Name: "boot_time", Into: &s.BootTime, Must: `must be a duration like "2s"`},
		{Name: "api_rate", Into: &s.APIRate, Valid: provision.Between(0, math.MaxFloat64),
			Must: "must be a number of API calls per second, at least 0 (0 = unlimited)"},
		{Name: "fail_rate", Into: &s.FailRate, Valid: provision.Between(0, 1), Must: "must be a probability between 0 and 1"},
		{Name: "boot_fail_rate", Into: &s.BootFailRate, Valid: provision.Between(0, 1), Must: "must be a probability between 0 and 1"},
		{Name: "capacity", Into: &s.Capacity, Valid: provision.Between(0, math.MaxInt32),
			Must: "must be a whole number of machines per site, at least 0"},
		{Name: "start_time", Into: &s.StartTime, Must: `must be a duration like "1m" (0 = machines cannot stop)`},
		{Name: "stopped_price", Into: &s.StoppedPrice, Valid: provision.Between(0, math.MaxFloat64),
			Must: "must be a price per hour, at least 0"},
		{Name: "seed", Into: &s.Seed, Must: "must be a whole number"},
		{Name: "world", Into: &s.World, Valid: func(v any) bool { return strings.TrimSpace(v.(string)) != "" },
			Must: "must be a directory for the sim world's file (world.json), relative to this file or absolute"},
	}}
	diags := schema.Decode(cfg)
	if s.World != "" && !filepath.IsAbs(s.World) && cfg.DeclRange.Filename != "" {
		s.World = filepath.Join(filepath.Dir(cfg.DeclRange.Filename), s.World)
	}
	if s.World != "" {
		if abs, err := filepath.Abs(s.World); err == nil {
			s.World = abs
		}
	}
	if !provision.Given(cfg, "seed") {
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
