package manager

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// HeaderLeader is the header a manager replica that is not the leader
// sets on its 421 answer: the leader's URL, "" when it is not known.
const HeaderLeader = "X-Hvctl-Leader"

// Client limits: every call has a per-attempt timeout suited to it and a
// bound on the response it reads.
const (
	DefaultCallTimeout = 15 * time.Second
	DefaultMaxResponse = 16 << 20
	// dialTimeout bounds connecting to one endpoint, so a dead one
	// costs seconds, not the whole call, before the next is tried.
	dialTimeout = 4 * time.Second
	maxBackoff  = 2 * time.Second
)

// Client is the one HTTP client of the manager API: the CLI, the node
// agents, a site's local manager (for the global tier) and the global
// manager (for each site's local manager) all call through it. It holds
// the list of endpoints of a replicated service, follows a follower's
// 421 to the leader, moves to the next endpoint with backoff when one
// cannot be reached, and decodes every error answer into an *APIError.
//
// A Client is safe for concurrent use. WithToken returns a view sharing
// its connections and endpoint list.
type Client struct {
	hc    *http.Client
	token string
	eps   *endpoints
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Endpoints are base URLs ("https://198.18.0.2:51821"); the first
	// is tried first.
	Endpoints []string
	// Token is sent as "Authorization: Bearer TOKEN" ("" = none).
	Token string
	// TLS verifies the manager's certificate (nil: plain HTTP, as for a
	// local manager over the overlay).
	TLS *tls.Config
	// Transport replaces the default transport (tests).
	Transport http.RoundTripper
	// OnEndpoints is called with the new list whenever it changes
	// (from a join or heartbeat answer, or a 421 naming a new leader).
	OnEndpoints func([]string)
}

type endpoints struct {
	mu       sync.Mutex
	list     []string
	cur      int
	onChange func([]string)
}

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) *Client {
	rt := cfg.Transport
	if rt == nil {
		rt = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       cfg.TLS,
			TLSHandshakeTimeout:   10 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   8,
			ExpectContinueTimeout: time.Second,
		}
	}
	c := &Client{hc: &http.Client{Transport: rt}, token: cfg.Token, eps: &endpoints{onChange: cfg.OnEndpoints}}
	c.eps.set(cfg.Endpoints, false)
	return c
}

// WithToken returns a client that sends token, sharing c's connections
// and endpoints.
func (c *Client) WithToken(token string) *Client {
	d := *c
	d.token = token
	return &d
}

// Endpoints returns the endpoint list, the one in use first.
func (c *Client) Endpoints() []string {
	c.eps.mu.Lock()
	defer c.eps.mu.Unlock()
	out := make([]string, 0, len(c.eps.list))
	for i := range c.eps.list {
		out = append(out, c.eps.list[(c.eps.cur+i)%len(c.eps.list)])
	}
	return out
}

// SetEndpoints replaces the endpoint list (a join or heartbeat answer
// names every manager). The endpoint in use stays in use if it is still
// listed. An empty list is ignored: a client never forgets every
// manager.
func (c *Client) SetEndpoints(list []string) { c.eps.set(list, true) }

func normalize(list []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range list {
		u = strings.TrimSuffix(strings.TrimSpace(u), "/")
		if u == "" || seen[u] {
			continue
		}
		seen[u] = true
		out = append(out, u)
	}
	return out
}

func (e *endpoints) set(list []string, notify bool) {
	list = normalize(list)
	if len(list) == 0 {
		return
	}
	e.mu.Lock()
	cur := ""
	if len(e.list) > 0 {
		cur = e.list[e.cur]
	}
	same := len(list) == len(e.list)
	for i := range list {
		if same && list[i] != e.list[i] {
			same = false
		}
	}
	e.list, e.cur = list, 0
	for i, u := range list {
		if u == cur {
			e.cur = i
		}
	}
	f := e.onChange
	e.mu.Unlock()
	if notify && !same && f != nil {
		f(append([]string(nil), list...))
	}
}

func (e *endpoints) current() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) == 0 {
		return ""
	}
	return e.list[e.cur]
}

// next moves past base (if it is still the one in use).
func (e *endpoints) next(base string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) > 0 && e.list[e.cur] == base {
		e.cur = (e.cur + 1) % len(e.list)
	}
}

// follow makes leader the endpoint in use, adding it to the list.
func (e *endpoints) follow(leader string) {
	leader = strings.TrimSuffix(leader, "/")
	e.mu.Lock()
	for i, u := range e.list {
		if u == leader {
			e.cur = i
			e.mu.Unlock()
			return
		}
	}
	e.list = append(e.list, leader)
	e.cur = len(e.list) - 1
	list := append([]string(nil), e.list...)
	f := e.onChange
	e.mu.Unlock()
	if f != nil {
		f(list)
	}
}

// APIError is an error answer of the manager API: the HTTP status and
// the body's {"error", "field"}.
type APIError struct {
	Method, Path string
	// URL is the endpoint that answered.
	URL     string
	Status  int
	Message string
	Field   string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), msg)
}

// Detail is the message with the field it is about, without the request.
func (e *APIError) Detail() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Field != "" {
		return e.Field + ": " + msg
	}
	return msg
}

// Hint says what to do about the error.
func (e *APIError) Hint() string {
	switch {
	case e.Status == http.StatusUnauthorized:
		return "The manager at " + e.URL + " refused the credential. Is this the state of the cluster running there? hvctl reads the cluster token from the state."
	case e.Status == http.StatusBadRequest && e.Field != "":
		return "Fix " + e.Field + " and try again."
	case e.Status == http.StatusNotFound:
		return "Check the name or ID (hvctl jobs lists jobs, hvctl status lists nodes)."
	case e.Status == http.StatusRequestEntityTooLarge:
		return "The request is larger than the manager accepts; split it or make it smaller."
	case e.Status == http.StatusMisdirectedRequest:
		return "No manager replica knows a leader yet (an election is under way); try again in a few seconds."
	case e.Status >= 500:
		return "The manager at " + e.URL + " could not do it; its log is the hub agent's log in the state directory."
	}
	return ""
}

// StatusOf is the HTTP status of an *APIError in err's chain, else 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// UnreachableError is a call that no endpoint answered before its
// deadline.
type UnreachableError struct {
	Method, Path string
	Endpoints    []string
	Last         error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%s %s: no manager answered (tried %s): %v", e.Method, e.Path, strings.Join(e.Endpoints, ", "), e.Last)
}

func (e *UnreachableError) Unwrap() error { return e.Last }

// Call is one request. Zero values take the defaults.
type Call struct {
	Method, Path string
	// In is the JSON body; Body, when set, opens a raw one (called again
	// for every attempt).
	In          any
	Body        func() (io.ReadCloser, int64, error)
	ContentType string
	Header      http.Header
	// Out receives the decoded JSON answer; a *[]byte receives it raw.
	Out any
	// Timeout bounds each attempt (default DefaultCallTimeout); Total
	// bounds the call with its retries on other endpoints (default
	// Timeout + 5 s, at least 20 s: a new leader serves within 10 s).
	Timeout, Total time.Duration
	// MaxResponse bounds the answer (default DefaultMaxResponse).
	MaxResponse int64
	// Retry makes the call safe to send again after it may have reached
	// a server (GET, HEAD, or a request with an idempotency key); other
	// calls move to another endpoint only when the connection failed.
	Retry bool
}

// Do sends c, following the leader and failing over, and decodes the
// answer into c.Out.
func (cl *Client) Do(ctx context.Context, c *Call) error {
	resp, cancel, err := cl.open(ctx, c)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	max := c.MaxResponse
	if max <= 0 {
		max = DefaultMaxResponse
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer from %s: %w", c.Method, c.Path, resp.Request.URL.Host, err)
	}
	if int64(len(b)) > max {
		return fmt.Errorf("%s %s: the answer from %s is larger than %d bytes", c.Method, c.Path, resp.Request.URL.Host, max)
	}
	switch out := c.Out.(type) {
	case nil:
	case *[]byte:
		*out = b
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: bad answer from %s: %w", c.Method, c.Path, resp.Request.URL.Host, err)
		}
	}
	return nil
}

// Open sends c and returns the answer's body for streaming (a download);
// the caller closes it. Only 2xx answers are returned.
func (cl *Client) Open(ctx context.Context, c *Call) (io.ReadCloser, int64, error) {
	resp, cancel, err := cl.open(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	return &cancelBody{resp.Body, cancel}, resp.ContentLength, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

// open runs the attempts of c and returns the first 2xx answer; the
// returned cancel ends the attempt's context once the body is read.
func (cl *Client) open(ctx context.Context, c *Call) (*http.Response, context.CancelFunc, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	total := c.Total
	if total <= 0 {
		total = max(timeout+5*time.Second, 20*time.Second)
	}
	ctx, cancelAll := context.WithTimeout(ctx, total)
	var body []byte
	if c.In != nil {
		b, err := json.Marshal(c.In)
		if err != nil {
			cancelAll()
			return nil, nil, fmt.Errorf("%s %s: encode the request: %w", c.Method, c.Path, err)
		}
		body = b
	}
	backoff := 100 * time.Millisecond
	var last error
	var tried []string
	hops := 0
	for {
		base := cl.eps.current()
		if base == "" {
			cancelAll()
			return nil, nil, fmt.Errorf("%s %s: no manager endpoint is known", c.Method, c.Path)
		}
		if !contains(tried, base) {
			tried = append(tried, base)
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := cl.attempt(actx, base, c, body)
		if err == nil && resp.StatusCode/100 == 2 {
			return resp, func() { cancel(); cancelAll() }, nil
		}
		sent := true
		if err != nil {
			cancel()
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				cancelAll()
				return nil, nil, fmt.Errorf("%s %s: %w", c.Method, c.Path, ctx.Err())
			}
			sent = !isDialError(err)
			last = fmt.Errorf("%s: %w", base, err)
			if sent && !c.Retry {
				cancelAll()
				return nil, nil, fmt.Errorf("%s %s at %s: %w", c.Method, c.Path, base, err)
			}
			cl.eps.next(base)
		} else {
			ae := decodeError(resp, c, base)
			cancel()
			if resp.StatusCode != http.StatusMisdirectedRequest {
				cancelAll()
				return nil, nil, ae.APIError
			}
			leader := resp.Header.Get(HeaderLeader)
			if leader == "" {
				leader = ae.leader
			}
			last = fmt.Errorf("%s: not the leader", base)
			if leader != "" && strings.TrimSuffix(leader, "/") != base && hops < 8 {
				hops++
				cl.eps.follow(leader)
				continue // straight to the leader
			}
			cl.eps.next(base)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			cancelAll()
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return nil, nil, fmt.Errorf("%s %s: %w", c.Method, c.Path, parent)
			}
			return nil, nil, &UnreachableError{Method: c.Method, Path: c.Path, Endpoints: tried, Last: last}
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (cl *Client) attempt(ctx context.Context, base string, c *Call, body []byte) (*http.Response, error) {
	var rd io.Reader
	var n int64 = -1
	if body != nil {
		rd, n = bytes.NewReader(body), int64(len(body))
	}
	if c.Body != nil {
		b, size, err := c.Body()
		if err != nil {
			return nil, err
		}
		rd, n = b, size
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, base+c.Path, rd)
	if err != nil {
		if cl, ok := rd.(io.Closer); ok {
			cl.Close()
		}
		return nil, err
	}
	if n >= 0 {
		req.ContentLength = n
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	switch {
	case c.ContentType != "":
		req.Header.Set("Content-Type", c.ContentType)
	case body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	return cl.hc.Do(req)
}

type apiErrorBody struct {
	Error  string `json:"error"`
	Field  string `json:"field"`
	Leader string `json:"leader"`
}

type decodedError struct {
	*APIError
	leader string
}

func decodeError(resp *http.Response, c *Call, base string) decodedError {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ae := &APIError{Method: c.Method, Path: c.Path, URL: base, Status: resp.StatusCode}
	var e apiErrorBody
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		ae.Message, ae.Field = e.Error, e.Field
	} else {
		ae.Message = strings.TrimSpace(string(b))
		if len(ae.Message) > 200 {
			ae.Message = ae.Message[:200] + "..."
		}
	}
	return decodedError{ae, e.Leader}
}

// isDialError reports whether err happened before the request could
// reach a server: connecting failed, so it is safe to send elsewhere.
func isDialError(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		var dns *net.DNSError
		if errors.As(ue.Err, &dns) {
			return true
		}
	}
	return false
}
