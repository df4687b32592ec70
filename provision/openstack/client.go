package openstack

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	gcos "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config"

	"github.com/hvctl/hvctl/provision"
)

type tlsConfig struct {
	cfg      *tls.Config
	insecure bool
}

// Provider is one openstack provider configuration. It is safe for
// concurrent use. It logs in on its first API call, and again when the
// token expires.
type Provider struct {
	ref string
	s   Settings
	env *provision.Env
	ao  gophercloud.AuthOptions
	eo  gophercloud.EndpointOpts
	tls *tlsConfig

	// Timing are the provider's waits (DefaultTiming unless changed
	// before the first call).
	Timing Timing
	// HTTPClient, when set before the first call, carries every request.
	HTTPClient *http.Client

	mu      sync.Mutex
	compute *gophercloud.ServiceClient
	network *gophercloud.ServiceClient
	image   *gophercloud.ServiceClient
	ext     *extNet // resolved external network, nil until looked up
	flavors []flavor
	images  map[string]string
	rmu     sync.Mutex // serializes subnet host-route edits
}

type extNet struct{ id, name string }

var (
	_ provision.Provider  = (*Provider)(nil)
	_ provision.Waiter    = (*Provider)(nil)
	_ provision.Lister    = (*Provider)(nil)
	_ provision.AgentHost = (*Provider)(nil)
	_ provision.Collector = (*Provider)(nil)
	_ provision.Stopper   = (*Provider)(nil)
)

func open(env *provision.Env, ref string, s Settings, ao gophercloud.AuthOptions, eo gophercloud.EndpointOpts, tc *tlsConfig) *Provider {
	if env == nil {
		env = &provision.Env{}
	}
	return &Provider{ref: ref, s: s, env: env, ao: ao, eo: eo, tls: tc, Timing: DefaultTiming, images: map[string]string{}}
}

// Settings returns the provider's settings.
func (p *Provider) Settings() Settings { return p.s }

// Limits: Nova and Neutron rate limits are the operator's choice (often
// none, sometimes a few requests per second per project behind haproxy);
// hvctl starts at most 10 operations a second (each is several API
// calls) and backs off on 429.
func (p *Provider) Limits() provision.Limits { return provision.Limits{APIRate: 10, Burst: 10} }

// RunsAgents is true: servers start hvctl agent from cloud-init.
func (p *Provider) RunsAgents() bool { return true }

// clients logs in (once) and returns the service clients.
func (p *Provider) clients(ctx context.Context) (compute, network, image *gophercloud.ServiceClient, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.compute != nil {
		return p.compute, p.network, p.image, nil
	}
	hc := http.Client{Timeout: 2 * time.Minute}
	if p.HTTPClient != nil {
		hc = *p.HTTPClient
	}
	var pc *gophercloud.ProviderClient
	var tcfg *tls.Config
	if p.tls != nil {
		tcfg = p.tls.cfg
		if p.tls.insecure {
			if tcfg == nil {
				tcfg = &tls.Config{}
			}
			tcfg.InsecureSkipVerify = true
		}
	}
	if tcfg != nil {
		pc, err = config.NewProviderClient(ctx, p.ao, config.WithHTTPClient(hc), config.WithTLSConfig(tcfg))
	} else {
		pc, err = config.NewProviderClient(ctx, p.ao, config.WithHTTPClient(hc))
	}
	if err != nil {
		return nil, nil, nil, p.authError(err)
	}
	pc.MaxBackoffRetries = uint(p.Timing.Retries)
	pc.RetryBackoffFunc = p.backoff
	pc.RetryFunc = p.retry
	if p.s.Endpoint != "" {
		base := strings.TrimSuffix(p.s.Endpoint, "/")
		p.compute = &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: base + "/compute/v2.1/", Type: "compute"}
		p.network = &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: base + "/network/", ResourceBase: base + "/network/v2.0/", Type: "network"}
		p.image = &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: base + "/image/", ResourceBase: base + "/image/v2/", Type: "image"}
		return p.compute, p.network, p.image, nil
	}
	c, err := gcos.NewComputeV2(pc, p.eo)
	if err != nil {
		return nil, nil, nil, p.catalogError("compute", err)
	}
	n, err := gcos.NewNetworkV2(pc, p.eo)
	if err != nil {
		return nil, nil, nil, p.catalogError("network", err)
	}
	i, err := gcos.NewImageV2(pc, p.eo)
	if err != nil {
		i = nil // Glance is only needed to look images up by name
	}
	p.compute, p.network, p.image = c, n, i
	return c, n, i, nil
}

func (p *Provider) catalogError(service string, err error) error {
	if m := mapError("discover the "+service+" endpoint", err); provision.IsRetryable(m) {
		return m
	}
	region := p.eo.Region
	if region == "" {
		region = "any region"
	}
	return fmt.Errorf("openstack: the service catalog of %s has no %s endpoint for %s (interface %s): %v; check region (region_name in clouds.yaml, OS_REGION_NAME or region = ...)",
		p.ao.IdentityEndpoint, service, region, orPublic(string(p.eo.Availability)), err)
}

func orPublic(s string) string {
	if s == "" {
		return "public"
	}
	return s
}

func (p *Provider) authError(err error) error {
	who := p.ao.Username
	if who == "" && p.ao.ApplicationCredentialID != "" {
		who = "application credential " + p.ao.ApplicationCredentialID
	}
	src := "OS_* variables"
	if p.s.CloudsFile != "" {
		src = p.s.CloudsFile
	}
	code := 0
	var ue gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &ue) {
		code = ue.Actual
	}
	if code == 401 {
		return fmt.Errorf("openstack: Keystone at %s refused the credentials of %s (from %s): check username, password and project", p.ao.IdentityEndpoint, who, src)
	}
	if m := mapError("log in to "+p.ao.IdentityEndpoint, err); provision.IsRetryable(m) {
		return m
	}
	return fmt.Errorf("openstack: log in to %s as %s (credentials from %s): %s", p.ao.IdentityEndpoint, who, src, cleanMessage(err))
}

// backoff is gophercloud's RetryBackoffFunc (429): wait Retry-After (or
// an exponential delay), capped at Timing.MaxBackoff.
func (p *Provider) backoff(ctx context.Context, e *gophercloud.ErrUnexpectedResponseCode, _ error, n uint) error {
	d := time.Duration(1<<min(n, 10)) * 100 * time.Millisecond
	if ra := e.ResponseHeader.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil {
			d = time.Duration(secs) * time.Second
		}
	}
	if d > p.Timing.MaxBackoff {
		d = p.Timing.MaxBackoff
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// retry is gophercloud's RetryFunc: it retries a 503 of an idempotent
// request a few times. POSTs are left to the engine, whose retry goes
// through Create's lookup first, so a POST that did its work is never
// repeated blindly.
func (p *Provider) retry(ctx context.Context, method, _ string, _ *gophercloud.RequestOpts, err error, n uint) error {
	var ue gophercloud.ErrUnexpectedResponseCode
	if method == http.MethodPost || int(n) > p.Timing.Retries || !errors.As(err, &ue) || ue.Actual != http.StatusServiceUnavailable {
		return err
	}
	d := time.Duration(1<<min(n, 10)) * 100 * time.Millisecond
	if d > p.Timing.MaxBackoff {
		d = p.Timing.MaxBackoff
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// QuotaError is a request the project's quota does not allow.
type QuotaError struct {
	Resource string // instances, cores, ram, floatingip, port, ...
	Message  string // the service's message
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("openstack: the project's %s quota is exhausted (%s). See `openstack quota show` (and `openstack limits show --absolute`); "+
		"free some %s or ask the cloud's operators to raise the quota", e.Resource, e.Message, e.Resource)
}

var quotaRE = []*regexp.Regexp{
	regexp.MustCompile(`Quota exceeded for (?:resources: \[)?'?([A-Za-z_]+)`),
	regexp.MustCompile(`(?i)maximum number of ([a-z_ ]+) allowed`),
}

// mapError turns a gophercloud error into hvctl's: transient HTTP codes
// are *provision.RetryableError, quota errors *QuotaError, others carry
// the service's message. Request bodies are never included (they may
// hold user_data with secrets).
func mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ue gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &ue) {
		var ne net.Error
		if errors.As(err, &ne) {
			return &provision.RetryableError{Err: fmt.Errorf("openstack: %s: %v", op, err)}
		}
		return fmt.Errorf("openstack: %s: %w", op, err)
	}
	typ, msg := serviceMessage(ue.Body)
	if msg == "" {
		msg = http.StatusText(ue.Actual)
	}
	switch {
	case ue.Actual == 429 || ue.Actual == 500 || ue.Actual == 502 || ue.Actual == 503 || ue.Actual == 504:
		return &provision.RetryableError{Err: fmt.Errorf("openstack: %s: HTTP %d: %s", op, ue.Actual, msg)}
	case typ == "OverQuota" || strings.Contains(msg, "Quota exceeded") ||
		(ue.Actual == 403 || ue.Actual == 409 || ue.Actual == 413) && strings.Contains(strings.ToLower(msg), "quota"):
		res := "resource"
		for _, re := range quotaRE {
			if m := re.FindStringSubmatch(msg); m != nil {
				res = m[1]
				break
			}
		}
		return &QuotaError{Resource: res, Message: msg}
	}
	return &apiError{op: op, code: ue.Actual, typ: typ, msg: msg}
}

type apiError struct {
	op, typ, msg string
	code         int
}

func (e *apiError) Error() string {
	t := ""
	if e.typ != "" {
		t = e.typ + ": "
	}
	return fmt.Sprintf("openstack: %s: %s%s (HTTP %d)", e.op, t, e.msg, e.code)
}

func isNotFound(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code == 404
	}
	return gophercloud.ResponseCodeIs(err, 404)
}

func isConflict(err error, code int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.code == code
}

// serviceMessage extracts the type and message of an OpenStack error
// body: Nova {"forbidden": {"message": ...}}, Neutron {"NeutronError":
// {"type": ..., "message": ...}}, Keystone {"error": {"message": ...}}.
func serviceMessage(body []byte) (typ, msg string) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		s := strings.TrimSpace(string(body))
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		return "", s
	}
	for _, v := range m {
		var inner struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		}
		if json.Unmarshal(v, &inner) == nil && inner.Message != "" {
			return inner.Type, inner.Message
		}
	}
	return "", ""
}

func cleanMessage(err error) string {
	var ue gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &ue) {
		_, msg := serviceMessage(ue.Body)
		return fmt.Sprintf("HTTP %d: %s", ue.Actual, msg)
	}
	return err.Error()
}
