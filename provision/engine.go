package provision

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/time/rate"

	"github.com/hvctl/hvctl/templates"
)

// AgentHost is implemented by providers whose machines run hvctl agent
// (local, clouds); the sim does not. up waits for their agents to join.
type AgentHost interface {
	RunsAgents() bool
}

// HostLocal is implemented by providers whose machines run on the host
// hvctl itself runs on (the local provider). The cluster manager can then
// run hvctl against the cluster's own state and template: it starts the
// elastic daemon, and SLURM's power-saving programs call hvctl. Cloud
// machines cannot (they hold no cloud credentials), and there the daemon
// runs where hvctl runs.
type HostLocal interface {
	// HostCommand wraps argv so that, started on one of the provider's
	// machines, it runs as hvctl runs here (the local provider: in this
	// host's network namespace).
	HostCommand(argv []string) []string
}

// ParallelismAuto (the default) bounds operations making API calls by
// the providers' declared limits: per provider the larger of AutoSlots
// and its burst.
const ParallelismAuto = -1

// DefaultParallelism is apply's default bound on API calls in flight.
const DefaultParallelism = ParallelismAuto

// AutoSlots is the least number of calls in flight per provider with
// ParallelismAuto.
const AutoSlots = 10

// UI receives apply progress. Implementations must be safe for
// concurrent use.
type UI interface {
	// Started is called when an operation on addr begins.
	Started(addr string, a Action)
	// Progress is called every ProgressInterval while it runs.
	Progress(addr string, a Action, elapsed time.Duration)
	// Finished is called when it ends; err is nil on success.
	Finished(addr string, a Action, id string, elapsed time.Duration, err error)
}

// Engine plans and applies a configuration against a state store.
type Engine struct {
	Config *templates.Config
	Store  *Store
	// Parallelism bounds the operations making provider API calls at
	// once; ParallelismAuto derives the bound from the providers'
	// declared limits; 0 means unlimited. Waiting for a machine to boot
	// holds no slot: any number of operations wait in parallel, and the
	// providers' API rates pace the calls.
	Parallelism int
	UI          UI
	// ProgressInterval is how often UI.Progress is called (default 10s).
	ProgressInterval time.Duration
	// MaxRetries bounds retries of retryable provider errors (default 8).
	MaxRetries int
	// ExpiresAt is the cluster's expiry (its ttl from when it was first
	// created), recorded on every resource for `hvctl gc`; zero means
	// now + ttl at each create.
	ExpiresAt time.Time

	// Prepare, when set, is called before each create with the state
	// locked; the attributes it returns are added to the create request
	// and recorded (they are internal: see IsInternal). The CLI uses it
	// to hand nodes their join token and the hub its manager settings.
	Prepare func(st *State, c *Change, p Provider) (Attrs, error)

	providers map[string]Provider
	limiters  map[string]*rate.Limiter
	stateMu   sync.Mutex
	commits   committer
}

// NewEngine configures every provider of cfg (each checks its own
// settings) and returns an engine. cfg may be nil for state-only work;
// providers can then be added with AddProvider.
func NewEngine(cfg *templates.Config, store *Store) (*Engine, hcl.Diagnostics) {
	e := &Engine{Config: cfg, Store: store, Parallelism: DefaultParallelism,
		providers: map[string]Provider{}, limiters: map[string]*rate.Limiter{}}
	if cfg == nil {
		return e, nil
	}
	var diags hcl.Diagnostics
	env := &Env{StateDir: store.Dir()}
	if cfg.Cluster != nil {
		env.Cluster = cfg.Cluster.Name
	}
	for _, pc := range cfg.Providers {
		f, ok := Lookup(pc.Type)
		if !ok {
			rng := pc.DeclRange
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Provider %q is not available", pc.Type),
				Detail:   fmt.Sprintf("This build of hvctl has the providers %s; %s is not one of them.", strings.Join(Registered(), ", "), pc.Type),
				Subject:  &rng,
			})
			continue
		}
		p, d := f(pc, env)
		diags = append(diags, d...)
		if p != nil && !d.HasErrors() {
			e.AddProvider(pc.Ref(), p)
		}
	}
	return e, diags
}

// AddProvider registers a configured provider under its reference
// (provider.TYPE.NAME).
func (e *Engine) AddProvider(ref string, p Provider) {
	e.providers[ref] = p
	l := p.Limits()
	if l.APIRate > 0 {
		b := l.Burst
		if b < 1 {
			b = 1
		}
		e.limiters[ref] = rate.NewLimiter(rate.Limit(l.APIRate), b)
	}
}

// Provider returns the configured provider for ref.
func (e *Engine) Provider(ref string) (Provider, bool) {
	p, ok := e.providers[ref]
	return p, ok
}

func (e *Engine) provider(ref string) (Provider, error) {
	p, ok := e.providers[ref]
	if !ok {
		return nil, fmt.Errorf("the state has resources of %s, which is not in the configuration: add its provider block back so hvctl can manage them", ref)
	}
	return p, nil
}

// call runs one provider API call under the provider's rate limit,
// retrying retryable errors with jittered exponential backoff.
func (e *Engine) call(ctx context.Context, ref string, f func(context.Context) error) error {
	max := e.MaxRetries
	if max == 0 {
		max = 8
	}
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if l := e.limiters[ref]; l != nil {
			if err := l.Wait(ctx); err != nil {
				return err
			}
		}
		err := f(ctx)
		if err == nil || !IsRetryable(err) || attempt >= max {
			return err
		}
		sleep := delay/2 + time.Duration(rand.Int64N(int64(delay)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(sleep):
		}
		if delay < 10*time.Second {
			delay *= 2
		}
	}
}

// slots is how many operations may be making API calls at once.
func (e *Engine) slots() int {
	if e.Parallelism >= 0 {
		return e.Parallelism
	}
	n := 0
	for _, p := range e.providers {
		n += max(AutoSlots, p.Limits().Burst)
	}
	return max(n, AutoSlots)
}

// forEach runs f for 0..n-1 with the engine's parallelism and returns
// the first error.
func (e *Engine) forEach(ctx context.Context, n int, f func(context.Context, int) error) error {
	par := e.slots()
	if par <= 0 || par > n {
		par = n
	}
	if par == 0 {
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
