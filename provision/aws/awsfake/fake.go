// Package awsfake is an in-memory Amazon EC2 endpoint for tests. It
// speaks the EC2 Query API as the AWS SDKs do — form-encoded POSTs with
// Action and Version=2016-11-15, SigV4-signed, answered with the XML
// shapes of the EC2 API reference (namespace
// http://ec2.amazonaws.com/doc/2016-11-15/, a requestId in every
// response, <Response><Errors><Error><Code>/<Message></Error></Errors>
// <RequestID> errors) — so a provider reaches it through its endpoint
// override and runs exactly the code it runs against AWS.
//
// It holds VPCs (each with a main route table and a default security
// group), subnets, internet gateways, route tables, security groups,
// instances (idempotent on ClientToken, pending → running after a
// number of describes, shutting-down → terminated, stopped with
// StopInstances through stopping and started again with StartInstances
// through pending), Elastic IPs and
// tags, with the filters hvctl uses (tag:KEY, tag-key, client-token,
// instance-state-name, ...) and EC2's dependency checks
// (DependencyViolation). Faults are injected with Throttle, Fail,
// Capacity, DropResponses and TerminateOutside.
package awsfake

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// OwnerID is the account the fake's resources belong to.
const OwnerID = "123456789012"

// Server is a fake EC2 endpoint. Its methods are safe for concurrent use.
type Server struct {
	// URL is the endpoint: set a provider's endpoint to it.
	URL string
	// AccessKeyID, when set, is the only access key the server accepts
	// (the Credential of each request's SigV4 Authorization header).
	AccessKeyID string
	// Region is the region requests must be signed for (default us-east-1).
	Region string
	// Credentials, when set, map each access key the server knows to
	// its secret key: every request's SigV4 signature is then
	// recomputed and compared, as AWS does (an unknown key, a wrong
	// secret or a changed request fail with AuthFailure for EC2,
	// InvalidAccessKeyId or SignatureDoesNotMatch for S3). Unset: any
	// key is accepted and signatures are not checked. Set it before
	// the first request.
	Credentials map[string]string

	srv *httptest.Server

	mu        sync.Mutex
	seq       int
	vpcs      map[string]*VPC
	subnets   map[string]*Subnet
	igws      map[string]*InternetGateway
	rts       map[string]*RouteTable
	sgs       map[string]*SecurityGroup
	instances map[string]*Instance
	addresses map[string]*Address
	tokens    map[string]string // client token → instance ID
	calls     map[string]int
	requests  []Request
	buckets   map[string]map[string]*object

	throttle      int
	faults        map[string][]*fault
	capacity      map[string]bool
	drops         map[string]int
	bootDescribes int
	termDescribes int
}

// Request is one API call the server received (parameters decoded; user
// data as sent, base64).
type Request struct {
	Action string
	Params map[string]string
}

type fault struct {
	code, message string
	status        int
	n             int
}

// New starts a fake endpoint; Close stops it.
func New() *Server {
	s := &Server{
		Region:    "us-east-1",
		vpcs:      map[string]*VPC{},
		subnets:   map[string]*Subnet{},
		igws:      map[string]*InternetGateway{},
		rts:       map[string]*RouteTable{},
		sgs:       map[string]*SecurityGroup{},
		instances: map[string]*Instance{},
		addresses: map[string]*Address{},
		tokens:    map[string]string{},
		calls:     map[string]int{},
		faults:    map[string][]*fault{},
		capacity:  map[string]bool{},
		drops:     map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// Throttle makes the next n calls fail with HTTP 503 RequestLimitExceeded.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// Fail makes the next n calls of action fail with code and message
// (HTTP 400, or 500/503 for InternalError/Unavailable). n <= 0 clears
// the action's pending faults.
func (s *Server) Fail(action, code, message string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.faults, action)
		return
	}
	status := http.StatusBadRequest
	switch code {
	case "InternalError":
		status = http.StatusInternalServerError
	case "Unavailable", "RequestLimitExceeded":
		status = http.StatusServiceUnavailable
	}
	s.faults[action] = append(s.faults[action], &fault{code: code, message: message, status: status, n: n})
}

// Capacity sets whether RunInstances of an instance type fails with
// InsufficientInstanceCapacity (on = true) until turned off.
func (s *Server) Capacity(instanceType string, short bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capacity[instanceType] = short
}

// DropResponses makes the next n calls of action do their work and then
// lose the response (the connection is closed), as when a client
// crashes or the network fails after the cloud acted.
func (s *Server) DropResponses(action string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops[action] = n
}

// BootAfter makes new instances stay pending for k DescribeInstances
// calls that include them; 0 (the default) runs them at the first.
func (s *Server) BootAfter(k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bootDescribes = k
}

// TerminateOutside terminates an instance as someone else would (the
// console, a spot reclaim): hvctl did not ask.
func (s *Server) TerminateOutside(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instances[id]
	if in == nil {
		return fmt.Errorf("no instance %s", id)
	}
	s.terminate(in)
	in.State = "terminated"
	in.StateReasonCode, in.StateReasonMessage = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
	return nil
}

// TotalCalls returns how many API calls were made, of every action
// (faults included).
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// Calls returns how many times action was called (faults included).
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// Requests returns every call received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Counts returns how many resources exist, by kind: "vpc", "subnet",
// "internet-gateway", "route-table" (not counting VPCs' main tables),
// "security-group" (not counting default groups), "instance" (not
// terminated), "address" (Elastic IPs).
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]int{"vpc": len(s.vpcs), "subnet": len(s.subnets), "internet-gateway": len(s.igws), "address": len(s.addresses)}
	for _, rt := range s.rts {
		if !rt.main {
			c["route-table"]++
		}
	}
	for _, g := range s.sgs {
		if g.Name != "default" {
			c["security-group"]++
		}
	}
	for _, in := range s.instances {
		if in.State != "terminated" {
			c["instance"]++
		}
	}
	return c
}

// Instances returns copies of every instance, terminated ones included,
// ordered by ID.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.instances))
	for _, in := range s.instances {
		c := *in
		c.Tags = copyMap(in.Tags)
		c.Groups = append([]string(nil), in.Groups...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Addresses returns copies of every Elastic IP.
func (s *Server) Addresses() []Address {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Address
	for _, a := range s.addresses {
		c := *a
		c.Tags = copyMap(a.Tags)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AllocationID < out[j].AllocationID })
	return out
}

// Tags returns the tags of any resource by ID, or nil.
func (s *Server) Tags(id string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tagsOf(id); t != nil {
		return copyMap(*t)
	}
	return nil
}

// SecurityGroupRules lists a group's ingress rules as
// "proto from-to source" strings.
func (s *Server) SecurityGroupRules(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.sgs[id]
	if g == nil {
		return nil
	}
	var out []string
	for _, p := range g.Ingress {
		out = append(out, p.String())
	}
	return out
}

// Routes lists a route table's routes as "destination target" strings.
func (s *Server) Routes(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.rts[id]
	if rt == nil {
		return nil
	}
	var out []string
	for _, r := range rt.Routes {
		out = append(out, r.Destination+" "+r.target())
	}
	return out
}

// --- resources ---

// VPC is a fake VPC.
type VPC struct {
	ID, CIDR string
	// Secondary CIDR blocks by association ID (the primary's association
	// is ID+"-cidr0").
	Secondary map[string]string
	Tags      map[string]string
}

// cidrs are the VPC's blocks, primary first.
func (v *VPC) cidrs() []netip.Prefix {
	out := []netip.Prefix{netip.MustParsePrefix(v.CIDR)}
	for _, a := range sortedKeys(v.Secondary) {
		out = append(out, netip.MustParsePrefix(v.Secondary[a]))
	}
	return out
}

// Subnet is a fake subnet.
type Subnet struct {
	ID, VpcID, CIDR, AZ string
	Tags                map[string]string
	next                int // next host offset to hand out
}

// InternetGateway is a fake internet gateway.
type InternetGateway struct {
	ID, VpcID string // VpcID: attached to, or ""
	Tags      map[string]string
}

// Route is one route of a route table.
type Route struct {
	Destination, GatewayID, NetworkInterfaceID, InstanceID string
}

func (r Route) target() string {
	switch {
	case r.GatewayID != "":
		return r.GatewayID
	case r.NetworkInterfaceID != "":
		return r.NetworkInterfaceID
	}
	return r.InstanceID
}

// RouteTable is a fake route table.
type RouteTable struct {
	ID, VpcID    string
	Routes       []Route
	Associations map[string]string // association ID → subnet ID
	Tags         map[string]string
	main         bool
	mainAssoc    string
}

// Permission is one ingress rule.
type Permission struct {
	Protocol   string
	From, To   int
	CIDR       string
	SourceSG   string
	Descriptor string
}

// String renders the rule as "proto from-to source".
func (p Permission) String() string {
	src := p.CIDR
	if p.SourceSG != "" {
		src = p.SourceSG
	}
	return fmt.Sprintf("%s %d-%d %s", p.Protocol, p.From, p.To, src)
}

// SecurityGroup is a fake security group.
type SecurityGroup struct {
	ID, Name, Description, VpcID string
	Ingress                      []Permission
	Tags                         map[string]string
}

// Instance is a fake instance.
type Instance struct {
	ID, ImageID, Type, KeyName          string
	SubnetID, VpcID, ENI                string
	PrivateIP, PublicIP                 string // PublicIP: ephemeral or Elastic
	ephemeralIP                         string
	ClientToken                         string
	State                               string // pending running stopping stopped shutting-down terminated
	StateReasonCode, StateReasonMessage string
	SourceDestCheck                     bool
	Groups                              []string
	Tags                                map[string]string
	UserData                            string // decoded
	Spot                                bool
	IamInstanceProfile                  string
	Launched                            time.Time
	describes                           int
	ran                                 bool // reached running once
	publicAtLaunch                      bool // launched with an ephemeral public IP
}

// Address is a fake Elastic IP.
type Address struct {
	AllocationID, PublicIP, AssociationID, InstanceID string
	Tags                                              map[string]string
}

// --- serving ---

type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if isS3(r) {
		s.serveS3(w, r, body)
		return
	}
	if r.Method != http.MethodPost {
		s.writeError(w, &apiError{http.StatusBadRequest, "InvalidAction", "the Query API takes POST"}, "")
		return
	}
	if f := s.verifySigV4(r, body, "ec2"); f != nil {
		s.writeError(w, &apiError{f.status, f.code, f.message}, "")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeError(w, errf("MalformedQueryString", "%v", err), "")
		return
	}
	params := map[string]string{}
	for k, v := range r.PostForm {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	action := params["Action"]
	s.mu.Lock()
	s.seq++
	reqID := fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq)
	s.calls[action]++
	s.requests = append(s.requests, Request{Action: action, Params: params})
	if err := s.checkAuth(r); err != nil {
		s.mu.Unlock()
		s.writeError(w, err, reqID)
		return
	}
	if params["Version"] != APIVersion {
		s.mu.Unlock()
		s.writeError(w, errf("InvalidParameterValue", "Version %q is not supported; use %s", params["Version"], APIVersion), reqID)
		return
	}
	if s.throttle > 0 {
		s.throttle--
		s.mu.Unlock()
		s.writeError(w, &apiError{http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded."}, reqID)
		return
	}
	if fs := s.faults[action]; len(fs) > 0 {
		f := fs[0]
		f.n--
		if f.n <= 0 {
			s.faults[action] = fs[1:]
		}
		s.mu.Unlock()
		s.writeError(w, &apiError{f.status, f.code, f.message}, reqID)
		return
	}
	h := handlers[action]
	if h == nil {
		s.mu.Unlock()
		s.writeError(w, errf("InvalidAction", "The action %s is not valid for this web service.", action), reqID)
		return
	}
	inner, err := h(s, form(params))
	drop := false
	if err == nil && s.drops[action] > 0 {
		s.drops[action]--
		drop = true
	}
	s.mu.Unlock()
	if err != nil {
		s.writeError(w, err, reqID)
		return
	}
	if drop {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	b, _ := xml.Marshal(response{XMLName: xml.Name{Local: action + "Response"}, Xmlns: Namespace, RequestID: reqID, Inner: inner})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Write([]byte(xml.Header))
	w.Write(b)
}

// checkAuth checks the SigV4 Authorization header's credential scope.
func (s *Server) checkAuth(r *http.Request) *apiError {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		return &apiError{http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials"}
	}
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return &apiError{http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials"}
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/") // AKID/date/region/ec2/aws4_request
	if len(parts) != 5 || parts[3] != "ec2" {
		return &apiError{http.StatusUnauthorized, "AuthFailure", "malformed credential scope"}
	}
	if s.AccessKeyID != "" && parts[0] != s.AccessKeyID {
		return &apiError{http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials"}
	}
	if s.Region != "" && parts[2] != s.Region {
		return &apiError{http.StatusUnauthorized, "AuthFailure", fmt.Sprintf("the credential scope names region %s, not %s", parts[2], s.Region)}
	}
	return nil
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError, reqID string) {
	b, _ := xml.Marshal(errorResponse{Errors: []xError{{Code: e.code, Message: e.message}}, RequestID: reqID})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	w.Write([]byte(xml.Header))
	w.Write(b)
}

// --- request parameters ---

type form map[string]string

func (f form) get(k string) string { return f[k] }

// list returns prefix.1, prefix.2, ... until one is missing.
func (f form) list(prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := f[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

// count returns how many prefix.N.* members there are.
func (f form) count(prefix string) int {
	n := 0
	for i := 1; ; i++ {
		p := prefix + "." + strconv.Itoa(i) + "."
		found := false
		for k := range f {
			if strings.HasPrefix(k, p) {
				found = true
				break
			}
		}
		if !found {
			return n
		}
		n++
	}
}

// tags returns the tags of TagSpecification.N for resource type rt.
func (f form) tags(rt string) map[string]string {
	out := map[string]string{}
	for i := 1; i <= f.count("TagSpecification"); i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		if f[p+".ResourceType"] != rt {
			continue
		}
		for j := 1; j <= f.count(p+".Tag"); j++ {
			q := p + ".Tag." + strconv.Itoa(j)
			out[f[q+".Key"]] = f[q+".Value"]
		}
	}
	return out
}

type filterSpec struct {
	name   string
	values []string
}

func (f form) filters() []filterSpec {
	var out []filterSpec
	for i := 1; i <= f.count("Filter"); i++ {
		p := "Filter." + strconv.Itoa(i)
		out = append(out, filterSpec{f[p+".Name"], f.list(p + ".Value")})
	}
	return out
}

// match reports whether a resource passes every filter: fields returns
// its values for a filter name (ok = false: unsupported filter).
func match(fs []filterSpec, tags map[string]string, fields func(string) ([]string, bool)) (bool, *apiError) {
	for _, f := range fs {
		var have []string
		switch {
		case strings.HasPrefix(f.name, "tag:"):
			if v, ok := tags[f.name[4:]]; ok {
				have = []string{v}
			}
		case f.name == "tag-key":
			for k := range tags {
				have = append(have, k)
			}
		default:
			var ok bool
			if have, ok = fields(f.name); !ok {
				return false, errf("InvalidParameterValue", "The filter '%s' is invalid", f.name)
			}
		}
		found := false
		for _, h := range have {
			for _, v := range f.values {
				if h == v || wildcard(v, h) {
					found = true
				}
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

func wildcard(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return false
	}
	pre, post, _ := strings.Cut(pattern, "*")
	return strings.HasPrefix(s, pre) && strings.HasSuffix(s, post) && len(s) >= len(pre)+len(post)
}

// --- helpers ---

func (s *Server) id(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%017x", prefix, 0xf00d0000+s.seq)
}

func (s *Server) tagsOf(id string) *map[string]string {
	switch {
	case s.vpcs[id] != nil:
		return &s.vpcs[id].Tags
	case s.subnets[id] != nil:
		return &s.subnets[id].Tags
	case s.igws[id] != nil:
		return &s.igws[id].Tags
	case s.rts[id] != nil:
		return &s.rts[id].Tags
	case s.sgs[id] != nil:
		return &s.sgs[id].Tags
	case s.instances[id] != nil:
		return &s.instances[id].Tags
	case s.addresses[id] != nil:
		return &s.addresses[id].Tags
	}
	return nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func ret() []byte { return el("return", true) }

func decodeUserData(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return s
	}
	return string(b)
}

func parsePrefix(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	return p, err == nil && p.Addr().Is4() && p == p.Masked()
}

func overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }
