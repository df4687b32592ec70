package provision

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hvctl/hvctl/templates"
)

// Kind is the kind of a resource, independent of the provider:
// the resource type shown in plans is "<provider type>_<kind>".
type Kind string

const (
	KindNetwork  Kind = "network"  // a site's private network
	KindInstance Kind = "instance" // a machine (node)
)

// Attrs are a resource's attributes. Values are JSON-compatible:
// string, bool, int64, float64, []string, map[string]string.
type Attrs map[string]any

// Provider creates, reads and deletes the resources of one provider
// configuration. Every method is required. Optional abilities are
// separate interfaces (Updater, Waiter) found by type assertion.
//
// Implementations must be safe for concurrent use: apply calls them from
// several goroutines at once.
type Provider interface {
	// Limits reports the provider's API rate limit; the engine paces its
	// calls to stay under it.
	Limits() Limits

	// Create makes a resource. It must be idempotent on req.ClientToken:
	// a second Create with the same token returns the resource the first
	// one made (even if the first caller crashed before recording it)
	// instead of making another.
	Create(ctx context.Context, req *CreateRequest) (*CreateResponse, error)

	// Read returns the current state of a resource, by ID, or by
	// ClientToken when ID is empty (to find a resource whose Create
	// result was never recorded). A resource that no longer exists
	// (deleted, terminated) is reported with Exists = false, not an error.
	Read(ctx context.Context, req *ReadRequest) (*ReadResponse, error)

	// Delete removes a resource. Deleting a resource that is already gone
	// is not an error.
	Delete(ctx context.Context, req *DeleteRequest) error
}

// Updater is implemented by providers that can change some attributes
// of a resource in place. Without it, every change is a replacement.
type Updater interface {
	// Updatable reports whether attribute attr of kind can change in place.
	Updatable(kind Kind, attr string) bool
	Update(ctx context.Context, req *UpdateRequest) (*UpdateResponse, error)
}

// Waiter is implemented by providers whose resources become usable some
// time after Create returns (a machine boots). Apply calls WaitReady
// after Create and shows progress while it waits.
type Waiter interface {
	// WaitReady blocks until the resource is ready, returns its final
	// attributes, or fails (boot failure, ctx done).
	WaitReady(ctx context.Context, req *ReadRequest) (*ReadResponse, error)
}

// Stopper is implemented by providers that can stop a machine and start
// it again with its disk and private address kept (EC2 StopInstances,
// Nova os-stop, a local node's processes ended). A stopped instance
// reads back with attribute state = "stopped", and a started one with
// state = "running". The elastic daemon stops an idle node of a pool
// whose provider can, instead of destroying it, when getting it back
// with a start costs less than a new node (docs/elastic.md).
type Stopper interface {
	// StopCost reports whether an instance with attrs (as the state
	// records them) can be stopped, and if so what a start takes and a
	// stopped machine costs. A provider whose setting turns stopping
	// off, or an instance that cannot stop (spot), answers false.
	StopCost(attrs Attrs) (StopCost, bool)
	// Stop stops a running instance and returns once it is stopped.
	// Stopping a stopped instance is not an error.
	Stop(ctx context.Context, req *PowerRequest) error
	// Start starts a stopped instance and returns once it runs, with
	// its attributes as Read reports them (a public address may have
	// changed). Starting a running instance is not an error.
	Start(ctx context.Context, req *PowerRequest) (*ReadResponse, error)
}

// StopCost is what stopping a machine instead of destroying it costs.
type StopCost struct {
	// StartTime is how long a start takes until the machine runs work
	// again (a new machine's boot and setup are not repeated).
	StartTime time.Duration
	// StoppedPrice is the hourly price of the machine while stopped
	// (its disk), in the unit of the instance's price.
	StoppedPrice float64
}

// PowerRequest names an instance to stop or start.
type PowerRequest struct {
	Address string
	ID      string
	// Attrs are the attributes the state records for it.
	Attrs Attrs
}

// Lister is implemented by providers that can list a cluster's
// resources in a few calls (EC2 DescribeInstances filtered by the
// cluster's tag, say). Refresh then reads a whole cluster page by page
// instead of one Read per resource; each page is one API call. A
// resource the listing does not show is read on its own before it is
// called gone, so a listing that lags (EC2 is eventually consistent)
// never loses a machine.
type Lister interface {
	List(ctx context.Context, req *ListRequest) (*ListPage, error)
}

// ListRequest asks for one page of a cluster's resources.
type ListRequest struct {
	Cluster string
	// PageToken is the previous page's NextPageToken; "" for the first.
	PageToken string
}

// ListPage is one page of a listing.
type ListPage struct {
	// Kinds are the resource kinds the listing covers; resources of
	// other kinds are read one by one.
	Kinds []Kind
	// Items are the live resources on this page.
	Items []Listed
	// NextPageToken is "" on the last page.
	NextPageToken string
}

// Listed is one live resource of a listing, with the attributes Read
// would report for it.
type Listed struct {
	Kind        Kind
	ID          string
	ClientToken string
	Attrs       Attrs
}

// Limits are a provider's API limits.
type Limits struct {
	// APIRate is the sustained API calls per second; 0 = unlimited.
	APIRate float64
	// Burst is how many calls may go at once before APIRate applies.
	Burst int
}

// CreateRequest asks a provider to create one resource.
type CreateRequest struct {
	Address     string // stable hvctl address, e.g. site.aws.pool.burst.node[2]
	Kind        Kind
	Cluster     string
	Lineage     string
	ClientToken string // idempotency token derived from address and lineage
	Attrs       Attrs  // desired attributes (see resource.go for each kind)
	// Deps are the provider IDs of the resources this one depends on,
	// by address (the site network of an instance, say).
	Deps map[string]string
	// ExpiresAt is the cluster's ttl expiry, zero when none: providers
	// record it (tags) so `hvctl gc` can find expired clusters.
	ExpiresAt time.Time
}

// CreateResponse is what Create made.
type CreateResponse struct {
	ID    string
	Attrs Attrs // computed attributes (addresses, state, ...)
}

// ReadRequest identifies a resource to read.
type ReadRequest struct {
	Address     string
	Kind        Kind
	ID          string
	ClientToken string
	// Attrs are the attributes the state records for the resource; for
	// a pending intent (no ID yet), those it is being created with, so
	// a provider whose machine is named by its attributes (the static
	// provider's host) can find what the token made without keeping a
	// record of its own.
	Attrs Attrs
}

// ReadResponse is a resource's current state.
type ReadResponse struct {
	Exists bool
	ID     string
	Attrs  Attrs
}

// UpdateRequest changes attributes in place.
type UpdateRequest struct {
	Address string
	Kind    Kind
	ID      string
	Before  Attrs
	After   Attrs
}

// UpdateResponse is the result of an in-place update.
type UpdateResponse struct {
	Attrs Attrs
}

// DeleteRequest removes a resource.
type DeleteRequest struct {
	Address string
	Kind    Kind
	ID      string
}

// CapacityError is the typed error a provider returns when the cloud has
// no capacity for a request (EC2 InsufficientInstanceCapacity, OpenStack
// "No valid host", sim `capacity`). The elastic daemon fails over on it.
type CapacityError struct {
	Provider string
	Detail   string
}

func (e *CapacityError) Error() string {
	return fmt.Sprintf("%s: insufficient capacity: %s", e.Provider, e.Detail)
}

// RetryableError marks a transient error (throttling, a 5xx): the engine
// retries it with backoff.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() + " (retryable)" }
func (e *RetryableError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is transient.
func IsRetryable(err error) bool {
	var r *RetryableError
	return errors.As(err, &r)
}

// ErrNotFound is returned by Update when the resource has gone.
var ErrNotFound = errors.New("resource not found")

// Env is what a provider factory gets besides its configuration.
type Env struct {
	// StateDir is the directory holding the state file (.hvctl); providers
	// with local worlds (sim, local) keep their files under it.
	StateDir string
	Cluster  string
	// Clock is the time source; nil means time.Now.
	Clock func() time.Time
}

// Now returns the Env's clock reading.
func (e *Env) Now() time.Time {
	if e.Clock != nil {
		return e.Clock()
	}
	return time.Now()
}

// Factory builds a provider from its template configuration, checking
// the provider's own settings; errors are diagnostics that point at the
// provider block.
type Factory func(cfg *templates.Provider, env *Env) (Provider, hcl.Diagnostics)

var (
	factoriesMu sync.Mutex
	factories   = map[string]Factory{}
)

// Register makes a provider type available. Provider packages call it
// from init.
func Register(typ string, f Factory) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	factories[typ] = f
}

// Lookup returns the factory for a provider type.
func Lookup(typ string) (Factory, bool) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	f, ok := factories[typ]
	return f, ok
}

// Registered lists the registered provider types.
func Registered() []string {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	var out []string
	for t := range factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Collector is implemented by providers that can find every resource
// hvctl made with them, by the tags (or metadata) hvctl puts on each:
// `hvctl gc` uses it to destroy clusters whose ttl has passed, even when
// their state is lost.
type Collector interface {
	// Owned lists the live resources hvctl made with this provider
	// configuration, whatever their cluster.
	Owned(ctx context.Context) ([]Owned, error)
}

// Owned is one resource a Collector found.
type Owned struct {
	ID        string    `json:"id"`
	Kind      Kind      `json:"kind"`
	Address   string    `json:"address"`
	Cluster   string    `json:"cluster"`
	Lineage   string    `json:"lineage,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: no ttl
}
