package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/scheduler"
)

// Per-call limits of the typed methods.
const (
	// A long poll waits this much longer than the wait it asks for.
	pollSlack = 15 * time.Second
	// Downloads and uploads of datasets and results.
	transferTimeout = 10 * time.Minute
	// A page of the job list.
	jobPageTimeout = 30 * time.Second
	// DefaultJobPage is how many jobs a page holds.
	DefaultJobPage = 1000
	// MaxJobPage is the most a page may hold.
	MaxJobPage = 10000
)

// HeaderIdempotencyKey carries a submit's idempotency key: a submit
// retried with the same key returns the jobs of the first, never new
// ones.
const HeaderIdempotencyKey = "Idempotency-Key"

// NewIdempotencyKey returns a random key for one submit.
func NewIdempotencyKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// SubmitTimeout is how long one submit attempt of count jobs may take:
// the manager expands and routes every job of an array before it
// answers.
func SubmitTimeout(count int) time.Duration {
	return 30*time.Second + time.Duration(max(count, 1))*time.Millisecond
}

// PutTemplate gives the managers the cluster's template (cluster
// token): they keep it in the control log and use it from then on.
func (c *Client) PutTemplate(ctx context.Context, t *Template) error {
	return c.Do(ctx, &Call{Method: "PUT", Path: "/v1/template", In: t, Retry: true})
}

// GrantReplica gives the template's witness, made before it was the
// witness, its replica certificate (cluster token).
func (c *Client) GrantReplica(ctx context.Context, member string, g *ReplicaGrant) error {
	return c.Do(ctx, &Call{Method: "PUT", Path: "/v1/nodes/" + url.PathEscape(member) + "/replica", In: g, Retry: true})
}

// Nodes lists the cluster's members (cluster token).
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out struct {
		Nodes []Node `json:"nodes"`
	}
	err := c.Do(ctx, &Call{Method: "GET", Path: "/v1/nodes", Out: &out, Retry: true})
	return out.Nodes, err
}

// RemoveNode removes a member (cluster token).
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	return c.Do(ctx, &Call{Method: "DELETE", Path: "/v1/nodes/" + url.PathEscape(id), Retry: true})
}

// Drain stops (on) or restarts the queue system giving node id work.
func (c *Client) Drain(ctx context.Context, id string, on bool) error {
	return c.Do(ctx, &Call{Method: "POST", Path: "/v1/nodes/" + url.PathEscape(id) + "/drain", In: map[string]bool{"drain": on}, Retry: true})
}

// Queue reads the queue-depth signals.
func (c *Client) Queue(ctx context.Context) (scheduler.Signals, error) {
	var sig scheduler.Signals
	err := c.Do(ctx, &Call{Method: "GET", Path: "/v1/queue", Out: &sig, Retry: true})
	return sig, err
}

// SubmitSummary is the answer to a submit that asked for a summary
// (?summary=1): an array of 100,000 jobs is a few hundred bytes, not
// every job.
type SubmitSummary struct {
	Count   int    `json:"count"`
	ArrayID string `json:"array_id,omitempty"`
	First   string `json:"first"`
	Last    string `json:"last"`
	// BySite counts the jobs by the site they were given to ("" =
	// waiting for room).
	BySite map[string]int `json:"by_site"`
	// Replayed is set when the key had been seen: these are the jobs
	// of the first submit.
	Replayed bool `json:"replayed,omitempty"`
}

// Submit submits spec with an idempotency key (a new one when key is
// ""): attempts that time out or lose their connection are sent again
// with the same key, so the jobs are made once.
func (c *Client) Submit(ctx context.Context, spec *scheduler.Spec, key string) (*SubmitSummary, error) {
	if key == "" {
		key = NewIdempotencyKey()
	}
	t := SubmitTimeout(spec.Count)
	var out SubmitSummary
	err := c.Do(ctx, &Call{Method: "POST", Path: "/v1/jobs?summary=1", In: spec, Out: &out,
		Header: http.Header{HeaderIdempotencyKey: {key}}, Timeout: t, Total: 3 * t, Retry: true})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// JobsQuery selects a page of the job list.
type JobsQuery struct {
	State scheduler.State
	// Array keeps the jobs of one array job (or the one job of that ID).
	Array string
	// After is the ID of the last job of the previous page.
	After string
	Limit int
}

func (q JobsQuery) path() string {
	v := url.Values{}
	if q.State != "" {
		v.Set("state", string(q.State))
	}
	if q.Array != "" {
		v.Set("array", q.Array)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultJobPage
	}
	v.Set("limit", strconv.Itoa(limit))
	return "/v1/jobs?" + v.Encode()
}

// JobPage is one page of the job list, in submission order; Next is the
// After of the next page, "" on the last.
type JobPage struct {
	Jobs []*scheduler.Job `json:"jobs"`
	Next string           `json:"next,omitempty"`
}

// Jobs reads one page of the job list.
func (c *Client) Jobs(ctx context.Context, q JobsQuery) (*JobPage, error) {
	var p JobPage
	err := c.Do(ctx, &Call{Method: "GET", Path: q.path(), Out: &p, Timeout: jobPageTimeout, Retry: true})
	return &p, err
}

// EachJob calls f for every job q selects, page by page.
func (c *Client) EachJob(ctx context.Context, q JobsQuery, f func(*scheduler.Job) error) error {
	for {
		p, err := c.Jobs(ctx, q)
		if err != nil {
			return err
		}
		for _, j := range p.Jobs {
			if err := f(j); err != nil {
				return err
			}
		}
		if p.Next == "" || len(p.Jobs) == 0 {
			return nil
		}
		q.After = p.Next
	}
}

// Job reads one job.
func (c *Client) Job(ctx context.Context, id string) (*scheduler.Job, error) {
	var j scheduler.Job
	err := c.Do(ctx, &Call{Method: "GET", Path: "/v1/jobs/" + url.PathEscape(id), Out: &j, Retry: true})
	return &j, err
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) (*scheduler.Job, error) {
	var j scheduler.Job
	err := c.Do(ctx, &Call{Method: "POST", Path: "/v1/jobs/" + url.PathEscape(id) + "/cancel", Out: &j, Retry: true, Timeout: 40 * time.Second})
	return &j, err
}

// Logs reads a job's captured output (at most scheduler.MaxOutput and
// a little).
func (c *Client) Logs(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := c.Do(ctx, &Call{Method: "GET", Path: "/v1/jobs/" + url.PathEscape(id) + "/logs", Out: &b, Retry: true,
		Timeout: 40 * time.Second, MaxResponse: 2*scheduler.MaxOutput + 64<<10})
	return b, err
}

// Overlay reads every member's peer set into out (its JSON form).
func (c *Client) Overlay(ctx context.Context, out any) error {
	return c.Do(ctx, &Call{Method: "GET", Path: "/v1/overlay", Out: out, Retry: true})
}

// Join joins with the client's token as the node credential ("" = join
// with req.Token). The endpoint list is updated from the answer.
func (c *Client) Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error) {
	var out struct {
		JoinResponse
		Managers []string `json:"managers"`
	}
	// A join token is spent by the first request that reaches the
	// manager: only a rejoin with a credential is sent again.
	err := c.Do(ctx, &Call{Method: "POST", Path: "/v1/join", In: req, Out: &out, Retry: c.token != ""})
	if err != nil {
		return nil, err
	}
	c.SetEndpoints(out.Managers)
	return &out.JoinResponse, nil
}

// PeersAnswer is a long-poll answer: the node's peer set once the
// registry moved past the version asked for.
type PeersAnswer struct {
	Version  uint64           `json:"version"`
	PeerSet  *overlay.PeerSet `json:"peer_set"`
	Runtime  Runtime          `json:"runtime"`
	Managers []string         `json:"managers,omitempty"`
}

// Peers long-polls the node's peer set past version since, waiting up
// to wait.
func (c *Client) Peers(ctx context.Context, since uint64, wait time.Duration) (*PeersAnswer, error) {
	var out PeersAnswer
	err := c.Do(ctx, &Call{Method: "GET", Path: fmt.Sprintf("/v1/peers?version=%d&wait=%s", since, wait), Out: &out,
		Timeout: wait + pollSlack, Retry: true})
	if err != nil {
		return nil, err
	}
	c.SetEndpoints(out.Managers)
	return &out, nil
}

// Heartbeat reports a heartbeat; the endpoint list is updated from the
// answer.
func (c *Client) Heartbeat(ctx context.Context, hb *Heartbeat) error {
	var out struct {
		Managers []string `json:"managers"`
	}
	if err := c.Do(ctx, &Call{Method: "POST", Path: "/v1/heartbeat", In: hb, Out: &out, Retry: true, Timeout: 10 * time.Second}); err != nil {
		return err
	}
	c.SetEndpoints(out.Managers)
	return nil
}

// Leave removes the node from the cluster.
func (c *Client) Leave(ctx context.Context) error {
	return c.Do(ctx, &Call{Method: "POST", Path: "/v1/leave", Retry: true})
}

// PutResult uploads the file at path as job's result name (a node
// credential, and the result grant its site gave the attempt).
func (c *Client) PutResult(ctx context.Context, job, name, path, grant string) error {
	open := func() (io.ReadCloser, int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	}
	return c.Do(ctx, &Call{Method: "PUT", Path: "/v1/jobs/" + url.PathEscape(job) + "/results/" + url.PathEscape(name),
		Body: open, ContentType: "application/octet-stream", Header: http.Header{ResultGrantHeader: {grant}}, Timeout: transferTimeout, Retry: true})
}

// DatasetSize returns a dataset's size, or 0 when it cannot be read.
func (c *Client) DatasetSize(ctx context.Context, name string) int64 {
	body, n, err := c.Open(ctx, &Call{Method: "HEAD", Path: "/v1/datasets/" + url.PathEscape(name), Retry: true, Timeout: 10 * time.Second, Total: 20 * time.Second})
	if err != nil {
		return 0
	}
	body.Close()
	return max(n, 0)
}

// Download copies a dataset to path (atomically: a temporary file in
// its directory, renamed).
func (c *Client) Download(ctx context.Context, name, path string) error {
	body, _, err := c.Open(ctx, &Call{Method: "GET", Path: "/v1/datasets/" + url.PathEscape(name), Retry: true, Timeout: transferTimeout})
	if err != nil {
		return fmt.Errorf("fetch dataset %s: %w", name, err)
	}
	defer body.Close()
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("fetch dataset %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

// Work long-polls a site's local manager for work for node (a site
// credential), telling it the attempts the node runs (a new local
// manager adopts them instead of running them again).
func (c *Client) Work(ctx context.Context, node scheduler.Node, running []scheduler.RunningJob, wait time.Duration) ([]scheduler.Work, error) {
	var works []scheduler.Work
	// Not retried: work handed out on a lost answer comes back when the
	// local manager loses the node's attempt.
	err := c.Do(ctx, &Call{Method: "POST", Path: "/v1/work?wait=" + wait.String(), In: PollRequest{Node: node, Running: running}, Out: &works, Timeout: wait + pollSlack})
	return works, err
}

// Report reports on a job to the site's local manager (a site
// credential); a report is safe to send again.
func (c *Client) Report(ctx context.Context, rep scheduler.Report) error {
	return c.Do(ctx, &Call{Method: "POST", Path: "/v1/report", In: rep, Retry: true})
}

// SiteLink is the global manager's link to a site's local manager
// (scheduler.SiteLink), through a Client with the site's admin token.
type SiteLink struct {
	C *Client
	// Context bounds every call (the manager's life); nil = Background.
	Context context.Context
}

// Per-call limits of the site link: a state read is small and frequent;
// an enqueue carries a batch of jobs.
const (
	siteStateTimeout   = 10 * time.Second
	siteEnqueueTimeout = 30 * time.Second
)

func (l *SiteLink) ctx() context.Context {
	if l.Context != nil {
		return l.Context
	}
	return context.Background()
}

// Enqueue hands jobs to the site, in batches that fit the site's
// MaxSiteBatchBytes (any job that passed submit fits in one).
func (l *SiteLink) Enqueue(jobs []*scheduler.Job) error {
	return l.batches("/v1/site/jobs", jobs)
}

func (l *SiteLink) batches(path string, jobs []*scheduler.Job) error {
	for len(jobs) > 0 {
		n, size := 0, 2
		for n < len(jobs) {
			b, err := json.Marshal(jobs[n])
			if err != nil {
				return err
			}
			if n > 0 && size+len(b)+1 > MaxSiteBatchBytes/2 {
				break
			}
			size += len(b) + 1
			n++
		}
		if err := l.C.Do(l.ctx(), &Call{Method: "POST", Path: path, In: jobs[:n], Timeout: siteEnqueueTimeout, Total: siteEnqueueTimeout}); err != nil {
			return err
		}
		jobs = jobs[n:]
	}
	return nil
}

// Seed gives a new local manager the site's jobs from the global table
// (scheduler.SiteSeeder), in batches like Enqueue.
func (l *SiteLink) Seed(jobs []*scheduler.Job) error {
	return l.batches("/v1/site/seed", jobs)
}

// Cancel cancels a job at the site.
func (l *SiteLink) Cancel(id string) error {
	return l.C.Do(l.ctx(), &Call{Method: "POST", Path: "/v1/site/jobs/" + url.PathEscape(id) + "/cancel", Retry: true, Total: DefaultCallTimeout})
}

// State reads the site's state.
func (l *SiteLink) State(since uint64) (scheduler.SiteState, error) {
	var s scheduler.SiteState
	err := l.C.Do(l.ctx(), &Call{Method: "GET", Path: "/v1/site/state?since=" + strconv.FormatUint(since, 10), Out: &s,
		Timeout: siteStateTimeout, Total: siteStateTimeout, MaxResponse: 64 << 20, Retry: true})
	return s, err
}

// Output reads a job's output.
func (l *SiteLink) Output(id string) ([]byte, error) {
	var b []byte
	err := l.C.Do(l.ctx(), &Call{Method: "GET", Path: "/v1/site/jobs/" + url.PathEscape(id) + "/output", Out: &b, Retry: true,
		MaxResponse: 2*scheduler.MaxOutput + 64<<10})
	return b, err
}
