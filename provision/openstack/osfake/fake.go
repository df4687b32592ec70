// Package osfake is an in-memory OpenStack cloud behind an httptest
// server, for testing hvctl's openstack provider through gophercloud's
// real code paths: a Keystone v3 password login that returns a token and a
// service catalog pointing back at the fake (so endpoint discovery is
// exercised), then Nova (servers, flavors), Neutron (networks, subnets,
// ports, routers, security groups and rules, floating IPs, tags) and
// Glance (image lookup by name) JSON, shaped as in the OpenStack API
// reference. Servers stop and start with the os-stop and os-start
// actions, as in Nova: ACTIVE, task_state powering-off, then SHUTOFF
// (and back through powering-on); an action the server's state does not
// allow is a 409 conflictingRequest.
//
// Fault knobs: Throttle (429 with Retry-After, or 503, for the next N API
// calls), NoValidHost (servers of a flavor go to ERROR with the
// scheduler's fault), GuestPowersOff (servers of a flavor go SHUTOFF
// instead of ACTIVE when they boot), SetQuota (403 / 409 OverQuota with the services'
// messages), SetBuildPolls (BUILD for K reads, then ACTIVE),
// SetPowerPolls (a stop or start in progress for K reads),
// LoseResponses (do the work, then answer 500, as when a proxy drops the
// reply) and DeleteServer (a server deleted outside hvctl).
package osfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fixed identities of the fake cloud.
const (
	Region        = "RegionOne"
	ProjectID     = "7e5a1c0f0c2c4d5e9f0a1b2c3d4e5f60"
	ProjectName   = "hvctl-ci"
	Username      = "ci-user"
	Password      = "ci-password"
	ImageID       = "5d1b0a8e-1111-4c0c-9a55-2f7e0c6d0a01"
	ImageName     = "debian-12-hvctl"
	PublicNetID   = "e1f0c5b2-2222-4c3d-8e1f-000000000001"
	PublicNetName = "public"
)

// Flavors the fake offers: name → vcpus, ram MiB.
var Flavors = []struct {
	ID, Name string
	VCPUs    int
	RAM      int
}{
	{"f1", "m1.small", 1, 2048},
	{"f2", "m1.medium", 2, 4096},
	{"f3", "m1.large", 4, 8192},
	{"f4", "g1.xlarge", 16, 65536},
}

// Server is the fake cloud.
type Server struct {
	URL string // base URL; Keystone is at URL+"/identity/v3"

	srv *httptest.Server
	mu  sync.Mutex

	token   string
	seq     int
	objs    map[string]map[string]map[string]any // neutron collection → id → object
	order   map[string][]string
	servers map[string]*server
	sorder  []string

	throttle       int
	throttleStatus int
	noValidHost    map[string]bool // flavor IDs
	powersOff      map[string]bool // flavor IDs whose guests power off at boot
	quota          map[string]int
	buildPolls     int
	powerPolls     int
	lose           []loseRule
	calls          []string // "METHOD /path" of every API call
	nextFIP        int
	maxLimit       int // Nova's max_limit: the largest page of a list
}

// DefaultMaxLimit is Nova's default max_limit ([api] max_limit).
const DefaultMaxLimit = 1000

// SetMaxLimit sets Nova's max_limit, the largest page a server list
// returns whatever limit the client asks for (an operator setting;
// default 1,000).
func (s *Server) SetMaxLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxLimit = n
}

type loseRule struct {
	method, path string
	n            int
}

type server struct {
	ID, Name, FlavorID, ImageID, AZ, KeyName string
	Status                                   string
	Metadata                                 map[string]string
	Tags                                     []string // microversion 2.52 and later
	UserData                                 string   // base64, as sent
	Ports                                    []string
	Fault                                    map[string]any
	polls                                    int
	Created                                  time.Time

	// TaskState is Nova's task_state: "powering-off" or "powering-on"
	// while a stop or start is in progress, else "".
	TaskState string
}

// New starts a fake cloud; Close it when done.
func New() *Server {
	s := &Server{
		token: "gAAAAAB-fake-token", objs: map[string]map[string]map[string]any{}, order: map[string][]string{},
		servers: map[string]*server{}, noValidHost: map[string]bool{}, powersOff: map[string]bool{}, quota: map[string]int{},
	}
	for _, c := range collections {
		s.objs[c.path] = map[string]map[string]any{}
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	// The provider network floating IPs come from.
	s.put("networks", PublicNetID, map[string]any{
		"id": PublicNetID, "name": PublicNetName, "router:external": true, "status": "ACTIVE",
		"admin_state_up": true, "shared": false, "subnets": []any{"e1f0c5b2-2222-4c3d-8e1f-000000000002"},
		"tags": []any{}, "project_id": "admin", "tenant_id": "admin",
	})
	s.put("subnets", "e1f0c5b2-2222-4c3d-8e1f-000000000002", map[string]any{
		"id": "e1f0c5b2-2222-4c3d-8e1f-000000000002", "name": "public-subnet", "network_id": PublicNetID,
		"cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1", "ip_version": 4, "host_routes": []any{},
		"tags": []any{}, "enable_dhcp": false, "project_id": "admin", "tenant_id": "admin",
	})
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Token is the token the fake's Keystone hands out, for tests that
// call the API without gophercloud (X-Auth-Token).
func (s *Server) Token() string { return s.token }

// AuthURL is Keystone's versioned endpoint.
func (s *Server) AuthURL() string { return s.URL + "/identity/v3" }

// CloudsYAML is a clouds.yaml with one entry, name, for this cloud.
func (s *Server) CloudsYAML(name string) string {
	return fmt.Sprintf(`clouds:
  %s:
    auth:
      auth_url: %s
      username: %s
      password: %s
      project_name: %s
      user_domain_name: Default
      project_domain_name: Default
    region_name: %s
    interface: public
    identity_api_version: 3
`, name, s.AuthURL(), Username, Password, ProjectName, Region)
}

// Throttle makes the next n API calls (not logins) fail with status
// (429 with Retry-After: 1, or 503).
func (s *Server) Throttle(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle, s.throttleStatus = n, status
}

// NoValidHost makes servers of flavor (name or ID) fail scheduling.
func (s *Server) NoValidHost(flavor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range Flavors {
		if f.Name == flavor || f.ID == flavor {
			s.noValidHost[f.ID] = true
		}
	}
}

// GuestPowersOff makes servers of flavor (name or ID) go from BUILD to
// SHUTOFF, as a guest that halts during its first boot does (Nova's
// power-state sync then stops the instance).
func (s *Server) GuestPowersOff(flavor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range Flavors {
		if f.Name == flavor || f.ID == flavor {
			s.powersOff[f.ID] = true
		}
	}
}

// SetQuota limits a resource: Nova's "instances", "cores", "ram" (MiB),
// or a Neutron resource ("floatingip", "port", "network", "router",
// "security_group").
func (s *Server) SetQuota(resource string, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quota[resource] = limit
}

// SetBuildPolls keeps new servers in BUILD for k reads.
func (s *Server) SetBuildPolls(k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buildPolls = k
}

// SetPowerPolls keeps a server that is stopping or starting in its
// task state (ACTIVE powering-off, SHUTOFF powering-on) for k reads.
func (s *Server) SetPowerPolls(k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.powerPolls = k
}

// LoseResponses makes the next n calls of method on paths ending in
// suffix (e.g. "POST", "/servers") do their work and then answer 500.
func (s *Server) LoseResponses(method, suffix string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose = append(s.lose, loseRule{method, suffix, n})
}

// DeleteServer deletes a server as if someone did it outside hvctl.
func (s *Server) DeleteServer(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteServer(id)
}

// ServerInfo is what tests may inspect of a server.
type ServerInfo struct {
	ID, Name, Status, Flavor, Image string
	TaskState                       string
	Metadata                        map[string]string
	UserData                        string // decoded
	Ports                           []string
}

// Servers lists the live servers in creation order.
func (s *Server) Servers() []ServerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ServerInfo
	for _, id := range s.sorder {
		v := s.servers[id]
		if v == nil {
			continue
		}
		ud, _ := base64.StdEncoding.DecodeString(v.UserData)
		out = append(out, ServerInfo{ID: v.ID, Name: v.Name, Status: v.Status, TaskState: v.TaskState, Flavor: v.FlavorID, Image: v.ImageID,
			Metadata: v.Metadata, UserData: string(ud), Ports: append([]string(nil), v.Ports...)})
	}
	return out
}

// Objects lists the live Neutron objects of a collection ("networks",
// "subnets", "ports", "routers", "security-groups",
// "security-group-rules", "floatingips"), the pre-made public network
// and subnet left out.
func (s *Server) Objects(collection string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, id := range s.order[collection] {
		o := s.objs[collection][id]
		if o == nil || id == PublicNetID || o["network_id"] == PublicNetID && collection == "subnets" {
			continue
		}
		out = append(out, clone(o))
	}
	return out
}

// Leftovers describes every object the fake holds besides its own
// public network: empty after a clean destroy.
func (s *Server) Leftovers() []string {
	var out []string
	for _, id := range s.Servers() {
		out = append(out, "server "+id.Name+" "+id.ID)
	}
	for _, c := range collections {
		for _, o := range s.Objects(c.path) {
			out = append(out, fmt.Sprintf("%s %v %v", c.singular, o["name"], o["id"]))
		}
	}
	return out
}

// TotalCalls counts every API call (logins included).
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Calls counts the API calls with method whose path ends in suffix.
func (s *Server) Calls(method, suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		m, p, _ := strings.Cut(c, " ")
		if m == method && strings.HasSuffix(p, suffix) {
			n++
		}
	}
	return n
}

// ---- HTTP ----

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	path := r.URL.Path
	if strings.HasPrefix(path, "/identity") {
		s.keystone(w, r, strings.TrimPrefix(path, "/identity"), body)
		return
	}
	if r.Header.Get("X-Auth-Token") != s.token {
		writeJSON(w, 401, map[string]any{"error": map[string]any{"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, r.Method+" "+path)
	if s.throttle > 0 {
		s.throttle--
		if s.throttleStatus == 429 {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, map[string]any{"overLimit": map[string]any{"code": 429, "message": "Over limit", "retryAfter": "1"}})
		} else {
			writeJSON(w, s.throttleStatus, map[string]any{"error": map[string]any{"code": s.throttleStatus, "message": "Service Unavailable"}})
		}
		return
	}
	rec := &recorder{header: http.Header{}, status: 200}
	switch {
	case r.Method == "GET" && (path == "/network" || path == "/network/"):
		writeJSON(rec, 200, map[string]any{"versions": []any{map[string]any{"id": "v2.0", "status": "CURRENT",
			"links": []any{map[string]any{"rel": "self", "href": s.URL + "/network/v2.0/"}}}}})
	case r.Method == "GET" && (path == "/image" || path == "/image/"):
		writeJSON(rec, 300, map[string]any{"versions": []any{map[string]any{"id": "v2.16", "status": "CURRENT",
			"links": []any{map[string]any{"rel": "self", "href": s.URL + "/image/v2/"}}}}})
	case strings.HasPrefix(path, "/compute/v2.1"):
		s.nova(rec, r, strings.TrimPrefix(path, "/compute/v2.1"), body)
	case strings.HasPrefix(path, "/network/v2.0"):
		s.neutron(rec, r, strings.TrimPrefix(path, "/network/v2.0"), body)
	case strings.HasPrefix(path, "/image/v2/images"):
		s.glance(rec, r)
	default:
		writeJSON(rec, 404, map[string]any{"itemNotFound": map[string]any{"code": 404, "message": "no such endpoint " + path}})
	}
	for i := range s.lose {
		l := &s.lose[i]
		if l.n > 0 && l.method == r.Method && strings.HasSuffix(path, l.path) && rec.status < 300 {
			l.n--
			writeJSON(w, 500, map[string]any{"computeFault": map[string]any{"code": 500, "message": "Unexpected API Error (the response was lost)"}})
			return
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	w.Write(rec.body)
}

type recorder struct {
	header http.Header
	status int
	body   []byte
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { r.body = append(r.body, b...); return len(b), nil }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if v != nil {
		json.NewEncoder(w).Encode(v)
	}
}

// ---- Keystone ----

func (s *Server) keystone(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	switch {
	case r.Method == "GET" && (path == "" || path == "/"):
		writeJSON(w, 300, map[string]any{"versions": map[string]any{"values": []any{map[string]any{
			"id": "v3.14", "status": "stable", "links": []any{map[string]any{"rel": "self", "href": s.AuthURL() + "/"}},
		}}}})
	case r.Method == "POST" && path == "/v3/auth/tokens":
		var req struct {
			Auth struct {
				Identity struct {
					Methods  []string `json:"methods"`
					Password struct {
						User struct {
							Name     string `json:"name"`
							ID       string `json:"id"`
							Password string `json:"password"`
						} `json:"user"`
					} `json:"password"`
				} `json:"identity"`
				Scope struct {
					Project struct {
						Name string `json:"name"`
						ID   string `json:"id"`
					} `json:"project"`
				} `json:"scope"`
			} `json:"auth"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSON(w, 400, map[string]any{"error": map[string]any{"code": 400, "message": "malformed JSON"}})
			return
		}
		u := req.Auth.Identity.Password.User
		if u.Name != Username || u.Password != Password {
			writeJSON(w, 401, map[string]any{"error": map[string]any{"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})
			return
		}
		if p := req.Auth.Scope.Project; p.Name != ProjectName && p.ID != ProjectID {
			writeJSON(w, 401, map[string]any{"error": map[string]any{"code": 401, "title": "Unauthorized", "message": "User has no access to project " + p.Name + p.ID}})
			return
		}
		ep := func(typ, name, url string) map[string]any {
			return map[string]any{"id": typ + "-svc", "type": typ, "name": name, "endpoints": []any{
				map[string]any{"id": typ + "-pub", "interface": "public", "region": Region, "region_id": Region, "url": url},
				map[string]any{"id": typ + "-int", "interface": "internal", "region": Region, "region_id": Region, "url": "http://internal.invalid/" + typ},
			}}
		}
		now := time.Now().UTC()
		w.Header().Set("X-Subject-Token", s.token)
		writeJSON(w, 201, map[string]any{"token": map[string]any{
			"methods": []string{"password"}, "issued_at": now.Format(time.RFC3339), "expires_at": now.Add(time.Hour).Format(time.RFC3339),
			"user":    map[string]any{"id": "u-ci", "name": Username, "domain": map[string]any{"id": "default", "name": "Default"}},
			"project": map[string]any{"id": ProjectID, "name": ProjectName, "domain": map[string]any{"id": "default", "name": "Default"}},
			"roles":   []any{map[string]any{"id": "r-member", "name": "member"}},
			"catalog": []any{
				ep("identity", "keystone", s.AuthURL()),
				ep("compute", "nova", s.URL+"/compute/v2.1"),
				ep("network", "neutron", s.URL+"/network"),
				ep("image", "glance", s.URL+"/image"),
			},
		}})
	default:
		writeJSON(w, 404, map[string]any{"error": map[string]any{"code": 404, "message": "not found"}})
	}
}

// ---- Glance ----

func (s *Server) glance(w http.ResponseWriter, r *http.Request) {
	img := map[string]any{"id": ImageID, "name": ImageName, "status": "active", "visibility": "public", "disk_format": "qcow2", "container_format": "bare", "tags": []any{}}
	var list []any
	if n := r.URL.Query().Get("name"); n == "" || n == ImageName {
		list = append(list, img)
	}
	if list == nil {
		list = []any{}
	}
	writeJSON(w, 200, map[string]any{"images": list, "first": "/v2/images", "schema": "/v2/schemas/images"})
}

// ---- Nova ----

func novaErr(w http.ResponseWriter, code int, kind, msg string) {
	writeJSON(w, code, map[string]any{kind: map[string]any{"code": code, "message": msg}})
}

func (s *Server) nova(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == "GET" && path == "/flavors/detail":
		var fl []any
		for _, f := range Flavors {
			fl = append(fl, map[string]any{"id": f.ID, "name": f.Name, "vcpus": f.VCPUs, "ram": f.RAM, "disk": 20, "swap": "", "os-flavor-access:is_public": true, "OS-FLV-EXT-DATA:ephemeral": 0, "rxtx_factor": 1.0})
		}
		writeJSON(w, 200, map[string]any{"flavors": fl})
	case r.Method == "GET" && path == "/servers/detail":
		q := r.URL.Query()
		var re *regexp.Regexp
		if n := q.Get("name"); n != "" {
			re, _ = regexp.Compile(n)
		}
		var tags []string
		if t := q.Get("tags"); t != "" {
			if !microversionAtLeast(r, 26) {
				novaErr(w, 400, "badRequest", "Invalid filter field: tags.")
				return
			}
			tags = strings.Split(t, ",")
		}
		limit := 0
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				novaErr(w, 400, "badRequest", "limit param must be an integer")
				return
			}
			limit = n
		}
		// As Nova: the page is min(limit, max_limit), and a full page
		// links to the next (which may be empty).
		maxLimit := s.maxLimit
		if maxLimit <= 0 {
			maxLimit = DefaultMaxLimit
		}
		if limit == 0 || limit > maxLimit {
			limit = maxLimit
		}
		marker := q.Get("marker")
		if marker != "" && s.servers[marker] == nil {
			novaErr(w, 400, "badRequest", "marker ["+marker+"] not found")
			return
		}
		list := []any{}
		var last string
		past := marker == ""
		for _, id := range s.sorder {
			v := s.servers[id]
			if !past {
				past = id == marker
				continue
			}
			if v == nil || re != nil && !re.MatchString(v.Name) || !hasAll(v.Tags, tags) {
				continue
			}
			if len(list) == limit {
				break
			}
			list = append(list, s.serverJSON(v, false))
			last = id
		}
		out := map[string]any{"servers": list}
		if len(list) == limit {
			next := *r.URL
			nq := next.Query()
			nq.Set("marker", last)
			next.RawQuery = nq.Encode()
			out["servers_links"] = []any{map[string]any{"rel": "next", "href": s.URL + "/compute/v2.1" + "/servers/detail?" + next.RawQuery}}
		}
		writeJSON(w, 200, out)
	case r.Method == "POST" && path == "/servers":
		s.createServer(w, r, body)
	case len(parts) == 3 && parts[0] == "servers" && parts[2] == "action" && r.Method == "POST":
		v := s.servers[parts[1]]
		if v == nil {
			novaErr(w, 404, "itemNotFound", "Instance "+parts[1]+" could not be found.")
			return
		}
		s.serverAction(w, v, body)
	case len(parts) == 2 && parts[0] == "servers":
		v := s.servers[parts[1]]
		if v == nil {
			novaErr(w, 404, "itemNotFound", "Instance "+parts[1]+" could not be found.")
			return
		}
		switch r.Method {
		case "GET":
			writeJSON(w, 200, map[string]any{"server": s.serverJSON(v, true)})
		case "DELETE":
			s.deleteServer(v.ID)
			w.WriteHeader(204)
		default:
			novaErr(w, 405, "badMethod", "method not allowed")
		}
	default:
		novaErr(w, 404, "itemNotFound", "not found: "+r.Method+" "+path)
	}
}

// microversionAtLeast reports whether the request asks for compute
// microversion 2.minor or later.
func microversionAtLeast(r *http.Request, minor int) bool {
	v := r.Header.Get("X-OpenStack-Nova-API-Version")
	if v == "" {
		v = strings.TrimSpace(strings.TrimPrefix(r.Header.Get("OpenStack-API-Version"), "compute"))
	}
	if v == "latest" {
		return true
	}
	maj, min, ok := strings.Cut(v, ".")
	n, err := strconv.Atoi(min)
	return ok && maj == "2" && err == nil && n >= minor
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (s *Server) createServer(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Server struct {
			Name      string            `json:"name"`
			ImageRef  string            `json:"imageRef"`
			FlavorRef string            `json:"flavorRef"`
			UserData  string            `json:"user_data"`
			Metadata  map[string]string `json:"metadata"`
			Tags      []string          `json:"tags"`
			AZ        string            `json:"availability_zone"`
			KeyName   string            `json:"key_name"`
			Networks  []struct {
				Port string `json:"port"`
				UUID string `json:"uuid"`
			} `json:"networks"`
		} `json:"server"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		novaErr(w, 400, "badRequest", "Invalid JSON: "+err.Error())
		return
	}
	q := req.Server
	var flavor *struct {
		ID, Name string
		VCPUs    int
		RAM      int
	}
	for i := range Flavors {
		if Flavors[i].ID == q.FlavorRef {
			flavor = &Flavors[i]
		}
	}
	switch {
	case q.Name == "":
		novaErr(w, 400, "badRequest", "Invalid input for field/attribute name.")
		return
	case flavor == nil:
		novaErr(w, 400, "badRequest", "Flavor "+q.FlavorRef+" could not be found.")
		return
	case q.ImageRef != ImageID:
		novaErr(w, 400, "badRequest", "Image "+q.ImageRef+" could not be found.")
		return
	case len(q.Networks) == 0:
		novaErr(w, 400, "badRequest", "Multiple possible networks found, use a Network ID to be more specific.")
		return
	}
	if ud := q.UserData; ud != "" {
		if _, err := base64.StdEncoding.DecodeString(ud); err != nil {
			novaErr(w, 400, "badRequest", "User data needs to be valid base 64.")
			return
		}
		if len(ud) > 65535 {
			novaErr(w, 400, "badRequest", "Invalid input for field/attribute user_data. Value: too long")
			return
		}
	}
	if len(q.Tags) > 0 && !microversionAtLeast(r, 52) {
		novaErr(w, 400, "badRequest", "Invalid input for field/attribute server. Value: Additional properties are not allowed ('tags' was unexpected)")
		return
	}
	for _, t := range q.Tags {
		if t == "" || len(t) > 60 || strings.ContainsAny(t, ",/") {
			novaErr(w, 400, "badRequest", fmt.Sprintf("Invalid input for field/attribute tags. Value: %q", t))
			return
		}
	}
	for k, v := range q.Metadata {
		if len(k) > 255 || len(v) > 255 {
			novaErr(w, 400, "badRequest", "Invalid input for field/attribute metadata.")
			return
		}
	}
	// Quotas.
	used := map[string]int{}
	for _, v := range s.servers {
		used["instances"]++
		for _, f := range Flavors {
			if f.ID == v.FlavorID {
				used["cores"] += f.VCPUs
				used["ram"] += f.RAM
			}
		}
	}
	want := map[string]int{"instances": 1, "cores": flavor.VCPUs, "ram": flavor.RAM}
	for _, res := range []string{"instances", "cores", "ram"} {
		if lim, ok := s.quota[res]; ok && used[res]+want[res] > lim {
			novaErr(w, 403, "forbidden", fmt.Sprintf("Quota exceeded for %s: Requested %d, but already used %d of %d %s", res, want[res], used[res], lim, res))
			return
		}
	}
	var ports []string
	for _, n := range q.Networks {
		p := s.objs["ports"][n.Port]
		if n.Port == "" || p == nil {
			novaErr(w, 400, "badRequest", "Port id "+n.Port+" could not be found.")
			return
		}
		if d, _ := p["device_id"].(string); d != "" {
			novaErr(w, 409, "conflictingRequest", "Port "+n.Port+" is still in use.")
			return
		}
		ports = append(ports, n.Port)
	}
	s.seq++
	id := fmt.Sprintf("9a1c%04x-5e5e-4a4a-8b8b-%012x", s.seq, s.seq)
	v := &server{ID: id, Name: q.Name, FlavorID: flavor.ID, ImageID: q.ImageRef, AZ: q.AZ, KeyName: q.KeyName,
		Status: "BUILD", Metadata: q.Metadata, Tags: q.Tags, UserData: q.UserData, Ports: ports, polls: s.buildPolls, Created: time.Now().UTC()}
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	for _, pid := range ports {
		s.objs["ports"][pid]["device_id"] = id
		s.objs["ports"][pid]["device_owner"] = "compute:nova"
		s.objs["ports"][pid]["status"] = "ACTIVE"
	}
	if s.noValidHost[flavor.ID] {
		v.Status = "ERROR"
		v.Fault = map[string]any{"code": 500, "created": time.Now().UTC().Format(time.RFC3339),
			"message": "No valid host was found. There are not enough hosts available."}
		for _, pid := range ports {
			s.objs["ports"][pid]["device_id"] = ""
			s.objs["ports"][pid]["device_owner"] = ""
			s.objs["ports"][pid]["status"] = "DOWN"
		}
	}
	s.servers[id] = v
	s.sorder = append(s.sorder, id)
	writeJSON(w, 202, map[string]any{"server": map[string]any{
		"id": id, "adminPass": "fakePass123", "OS-DCF:diskConfig": "MANUAL", "security_groups": []any{map[string]any{"name": "default"}},
		"links": []any{map[string]any{"rel": "self", "href": s.URL + "/compute/v2.1/servers/" + id}},
	}})
}

// vmState is Nova's vm_state for a server status.
func vmState(status string) string {
	switch status {
	case "BUILD":
		return "building"
	case "SHUTOFF":
		return "stopped"
	}
	return strings.ToLower(status)
}

// powerState is Nova's power_state (1 RUNNING, 4 SHUTDOWN, 0 NOSTATE).
func powerState(v *server) int {
	switch v.Status {
	case "ACTIVE":
		return 1
	case "SHUTOFF":
		return 4
	}
	return 0
}

// serverAction is POST /servers/{id}/action for os-stop and os-start:
// 202 with no body, the server then in its task state until the
// transition completes on a later read; 409 conflictingRequest, with
// Nova's message, when its vm_state or task_state does not allow the
// action (os-stop needs ACTIVE or ERROR, os-start SHUTOFF, both no task
// in progress).
func (s *Server) serverAction(w http.ResponseWriter, v *server, body []byte) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || len(req) != 1 {
		novaErr(w, 400, "badRequest", "Malformed request body")
		return
	}
	var action string
	for k := range req {
		action = k
	}
	var allowed []string
	var task, verb string
	switch action {
	case "os-stop":
		allowed, task, verb = []string{"ACTIVE", "ERROR"}, "powering-off", "stop"
	case "os-start":
		allowed, task, verb = []string{"SHUTOFF"}, "powering-on", "start"
	default:
		novaErr(w, 400, "badRequest", "There is no such action: "+action)
		return
	}
	switch {
	case !slices.Contains(allowed, v.Status):
		novaErr(w, 409, "conflictingRequest", fmt.Sprintf("Cannot '%s' instance %s while it is in vm_state %s", verb, v.ID, vmState(v.Status)))
		return
	case v.TaskState != "":
		novaErr(w, 409, "conflictingRequest", fmt.Sprintf("Cannot '%s' instance %s while it is in task_state %s", verb, v.ID, v.TaskState))
		return
	}
	v.TaskState, v.polls = task, s.powerPolls
	w.WriteHeader(202)
}

func (s *Server) deleteServer(id string) bool {
	v := s.servers[id]
	if v == nil {
		return false
	}
	for _, pid := range v.Ports {
		if p := s.objs["ports"][pid]; p != nil && p["device_id"] == id {
			p["device_id"], p["device_owner"], p["status"] = "", "", "DOWN"
		}
	}
	delete(s.servers, id)
	return true
}

func (s *Server) serverJSON(v *server, poll bool) map[string]any {
	if poll && v.Status == "BUILD" {
		if v.polls > 0 {
			v.polls--
		} else if s.powersOff[v.FlavorID] {
			v.Status = "SHUTOFF"
		} else {
			v.Status = "ACTIVE"
		}
	}
	if poll && v.TaskState != "" {
		if v.polls > 0 {
			v.polls--
		} else {
			v.Status = map[string]string{"powering-off": "SHUTOFF", "powering-on": "ACTIVE"}[v.TaskState]
			v.TaskState = ""
			v.Fault = nil
		}
	}
	addrs := map[string]any{}
	for _, pid := range v.Ports {
		p := s.objs["ports"][pid]
		if p == nil {
			continue
		}
		net := s.objs["networks"][p["network_id"].(string)]
		name := "net"
		if net != nil {
			name, _ = net["name"].(string)
		}
		var list []any
		for _, ip := range fixedIPs(p) {
			list = append(list, map[string]any{"version": 4, "addr": ip, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": p["mac_address"]})
		}
		for _, fid := range s.order["floatingips"] {
			if f := s.objs["floatingips"][fid]; f != nil && f["port_id"] == pid {
				list = append(list, map[string]any{"version": 4, "addr": f["floating_ip_address"], "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": p["mac_address"]})
			}
		}
		addrs[name] = list
	}
	out := map[string]any{
		"id": v.ID, "name": v.Name, "status": v.Status, "tenant_id": ProjectID, "user_id": "u-ci",
		"metadata": v.Metadata, "tags": toAny(v.Tags), "addresses": addrs, "key_name": nilIfEmpty(v.KeyName),
		"flavor":  map[string]any{"id": v.FlavorID, "links": []any{}},
		"image":   map[string]any{"id": v.ImageID, "links": []any{}},
		"created": v.Created.Format(time.RFC3339), "updated": v.Created.Format(time.RFC3339),
		"hostId": "", "accessIPv4": "", "accessIPv6": "", "progress": 0,
		"OS-EXT-AZ:availability_zone": v.AZ, "OS-EXT-STS:vm_state": vmState(v.Status),
		"OS-EXT-STS:task_state": nilIfEmpty(v.TaskState), "OS-EXT-STS:power_state": powerState(v),
		"links": []any{map[string]any{"rel": "self", "href": s.URL + "/compute/v2.1/servers/" + v.ID}},
	}
	if v.Fault != nil {
		out["fault"] = v.Fault
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ---- Neutron ----

type collection struct{ path, singular, plural string }

var collections = []collection{
	{"networks", "network", "networks"},
	{"subnets", "subnet", "subnets"},
	{"ports", "port", "ports"},
	{"routers", "router", "routers"},
	{"security-groups", "security_group", "security_groups"},
	{"security-group-rules", "security_group_rule", "security_group_rules"},
	{"floatingips", "floatingip", "floatingips"},
}

func collectionOf(path string) (collection, bool) {
	for _, c := range collections {
		if c.path == path {
			return c, true
		}
	}
	return collection{}, false
}

var quotaKey = map[string]string{"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router",
	"security-groups": "security_group", "security-group-rules": "security_group_rule", "floatingips": "floatingip"}

func neutronErr(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, map[string]any{"NeutronError": map[string]any{"type": typ, "message": msg, "detail": ""}})
}

func (s *Server) put(coll, id string, o map[string]any) {
	if _, ok := s.objs[coll][id]; !ok {
		s.order[coll] = append(s.order[coll], id)
	}
	s.objs[coll][id] = o
}

func (s *Server) newID(prefix int) string {
	s.seq++
	return fmt.Sprintf("%08x-%04x-4000-8000-%012x", prefix, s.seq&0xffff, s.seq)
}

func (s *Server) neutron(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	c, ok := collectionOf(parts[0])
	if !ok {
		neutronErr(w, 404, "HTTPNotFound", "The resource could not be found.")
		return
	}
	switch {
	case len(parts) == 1 && r.Method == "GET":
		s.list(w, c, r)
	case len(parts) == 1 && r.Method == "POST":
		var req map[string]map[string]any
		if err := json.Unmarshal(body, &req); err != nil || req[c.singular] == nil {
			neutronErr(w, 400, "BadRequest", "Bad "+c.singular+" request: malformed body")
			return
		}
		if lim, ok := s.quota[quotaKey[c.path]]; ok && len(s.objs[c.path]) >= lim {
			neutronErr(w, 409, "OverQuota", fmt.Sprintf("Quota exceeded for resources: ['%s'].", quotaKey[c.path]))
			return
		}
		s.create(w, c, req[c.singular])
	case len(parts) >= 2:
		o := s.objs[c.path][parts[1]]
		if o == nil {
			neutronErr(w, 404, strings.ReplaceAll(strings.Title(strings.ReplaceAll(c.singular, "_", " ")), " ", "")+"NotFound",
				fmt.Sprintf("%s %s could not be found.", strings.Title(strings.ReplaceAll(c.singular, "_", " ")), parts[1]))
			return
		}
		switch {
		case len(parts) == 2 && r.Method == "GET":
			writeJSON(w, 200, map[string]any{c.singular: clone(o)})
		case len(parts) == 2 && r.Method == "PUT":
			var req map[string]map[string]any
			if err := json.Unmarshal(body, &req); err != nil || req[c.singular] == nil {
				neutronErr(w, 400, "BadRequest", "malformed body")
				return
			}
			for k, v := range req[c.singular] {
				o[k] = v
			}
			o["revision_number"] = toInt(o["revision_number"]) + 1
			writeJSON(w, 200, map[string]any{c.singular: clone(o)})
		case len(parts) == 2 && r.Method == "DELETE":
			s.delete(w, c, o)
		case len(parts) >= 3 && parts[2] == "tags":
			s.tags(w, r, o, parts, body)
		case len(parts) == 3 && c.path == "routers" && r.Method == "PUT":
			s.routerInterface(w, o, parts[2], body)
		default:
			neutronErr(w, 404, "HTTPNotFound", "The resource could not be found.")
		}
	default:
		neutronErr(w, 405, "HTTPMethodNotAllowed", "method not allowed")
	}
}

var listControl = map[string]bool{"tags": true, "tags-any": true, "not-tags": true, "not-tags-any": true, "fields": true, "limit": true, "marker": true, "sort_key": true, "sort_dir": true, "page_reverse": true}

func (s *Server) list(w http.ResponseWriter, c collection, r *http.Request) {
	q := r.URL.Query()
	out := []any{}
	for _, id := range s.order[c.path] {
		o := s.objs[c.path][id]
		if o == nil || !match(o, q) {
			continue
		}
		out = append(out, clone(o))
	}
	writeJSON(w, 200, map[string]any{c.plural: out})
}

func match(o map[string]any, q map[string][]string) bool {
	for k, vs := range q {
		if listControl[k] {
			continue
		}
		got := fmt.Sprint(o[k])
		if o[k] == nil {
			got = ""
		}
		if !contains(vs, got) {
			return false
		}
	}
	tags := strs(o["tags"])
	for _, t := range splitTags(q["tags"]) {
		if !contains(tags, t) {
			return false
		}
	}
	if any := splitTags(q["tags-any"]); len(any) > 0 {
		hit := false
		for _, t := range any {
			hit = hit || contains(tags, t)
		}
		if !hit {
			return false
		}
	}
	return true
}

func splitTags(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, t := range strings.Split(v, ",") {
			if t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func (s *Server) create(w http.ResponseWriter, c collection, in map[string]any) {
	o := clone(in)
	base := map[string]any{"project_id": ProjectID, "tenant_id": ProjectID, "tags": []any{}, "revision_number": 1,
		"created_at": time.Now().UTC().Format(time.RFC3339), "description": ""}
	for k, v := range base {
		if _, ok := o[k]; !ok {
			o[k] = v
		}
	}
	if _, ok := o["name"]; !ok {
		o["name"] = ""
	}
	if t, ok := in["tags"]; ok { // tag-creation extension
		o["tags"] = t
	}
	status := 201
	switch c.path {
	case "networks":
		o["id"] = s.newID(1)
		o["status"], o["subnets"], o["admin_state_up"], o["router:external"], o["shared"], o["mtu"] = "ACTIVE", []any{}, true, false, false, 1450
	case "subnets":
		netID, _ := o["network_id"].(string)
		net := s.objs["networks"][netID]
		if net == nil {
			neutronErr(w, 404, "NetworkNotFound", "Network "+netID+" could not be found.")
			return
		}
		pfx, err := netip.ParsePrefix(fmt.Sprint(o["cidr"]))
		if err != nil {
			neutronErr(w, 400, "BadRequest", "Invalid input for cidr.")
			return
		}
		o["id"] = s.newID(2)
		o["gateway_ip"] = pfx.Addr().Next().String()
		if _, ok := o["host_routes"]; !ok {
			o["host_routes"] = []any{}
		}
		if _, ok := o["enable_dhcp"]; !ok {
			o["enable_dhcp"] = true
		}
		o["allocation_pools"] = []any{}
		o["next_ip"] = 10
		net["subnets"] = append(toAnySlice(net["subnets"]), o["id"])
	case "ports":
		netID, _ := o["network_id"].(string)
		net := s.objs["networks"][netID]
		if net == nil {
			neutronErr(w, 404, "NetworkNotFound", "Network "+netID+" could not be found.")
			return
		}
		subs := toAnySlice(net["subnets"])
		if len(subs) == 0 {
			neutronErr(w, 400, "BadRequest", "No subnet on network "+netID)
			return
		}
		sub := s.objs["subnets"][subs[0].(string)]
		ip := s.allocIP(sub)
		if fi := toAnySlice(o["fixed_ips"]); len(fi) > 0 {
			if m, ok := fi[0].(map[string]any); ok && m["ip_address"] != nil {
				ip = m["ip_address"].(string)
			}
		}
		o["id"] = s.newID(3)
		o["fixed_ips"] = []any{map[string]any{"subnet_id": sub["id"], "ip_address": ip}}
		o["mac_address"] = fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", s.seq>>16&0xff, s.seq>>8&0xff, s.seq&0xff)
		o["status"] = "DOWN"
		o["admin_state_up"] = true
		for _, k := range []string{"device_id", "device_owner"} {
			if _, ok := o[k]; !ok {
				o[k] = ""
			}
		}
		if _, ok := o["allowed_address_pairs"]; !ok {
			o["allowed_address_pairs"] = []any{}
		}
		if _, ok := o["security_groups"]; !ok {
			o["security_groups"] = []any{}
		}
		for _, sg := range strs(o["security_groups"]) {
			if s.objs["security-groups"][sg] == nil {
				neutronErr(w, 404, "SecurityGroupNotFound", "Security group "+sg+" does not exist")
				return
			}
		}
		if _, ok := o["port_security_enabled"]; !ok {
			o["port_security_enabled"] = true
		}
	case "routers":
		o["id"] = s.newID(4)
		o["status"], o["admin_state_up"] = "ACTIVE", true
		if gi, ok := o["external_gateway_info"].(map[string]any); ok {
			ext := s.objs["networks"][fmt.Sprint(gi["network_id"])]
			if ext == nil || ext["router:external"] != true {
				neutronErr(w, 400, "BadRequest", fmt.Sprintf("Network %v is not a valid external network.", gi["network_id"]))
				return
			}
		} else {
			o["external_gateway_info"] = nil
		}
	case "security-groups":
		o["id"] = s.newID(5)
		o["stateful"] = true
		var rules []any
		for _, et := range []string{"IPv4", "IPv6"} {
			rid := s.newID(6)
			rule := map[string]any{"id": rid, "security_group_id": o["id"], "direction": "egress", "ethertype": et,
				"protocol": nil, "port_range_min": nil, "port_range_max": nil, "remote_ip_prefix": nil, "remote_group_id": nil,
				"project_id": ProjectID, "tenant_id": ProjectID, "description": "", "revision_number": 0}
			s.put("security-group-rules", rid, rule)
			rules = append(rules, clone(rule))
		}
		o["security_group_rules"] = rules
	case "security-group-rules":
		sgID := fmt.Sprint(o["security_group_id"])
		if s.objs["security-groups"][sgID] == nil {
			neutronErr(w, 404, "SecurityGroupNotFound", "Security group "+sgID+" does not exist")
			return
		}
		for _, k := range []string{"protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id"} {
			if _, ok := o[k]; !ok {
				o[k] = nil
			}
		}
		for _, id := range s.order[c.path] {
			if x := s.objs[c.path][id]; x != nil && sameRule(x, o) {
				neutronErr(w, 409, "SecurityGroupRuleExists", "Security group rule already exists. Rule id is "+id+".")
				return
			}
		}
		o["id"] = s.newID(6)
	case "floatingips":
		extID := fmt.Sprint(o["floating_network_id"])
		ext := s.objs["networks"][extID]
		if ext == nil || ext["router:external"] != true {
			neutronErr(w, 404, "ExternalNetworkNotFound", "External network "+extID+" could not be found.")
			return
		}
		o["id"] = s.newID(7)
		s.nextFIP++
		o["floating_ip_address"] = fmt.Sprintf("203.0.113.%d", 10+s.nextFIP)
		o["status"], o["router_id"], o["fixed_ip_address"] = "DOWN", nil, nil
		if pid, _ := o["port_id"].(string); pid != "" {
			if err := s.associate(o, pid); err != "" {
				neutronErr(w, 404, "ExternalGatewayForFloatingIPNotFound", err)
				return
			}
		} else {
			o["port_id"] = nil
		}
	}
	s.put(c.path, o["id"].(string), o)
	writeJSON(w, status, map[string]any{c.singular: clone(o)})
}

func (s *Server) associate(fip map[string]any, portID string) string {
	p := s.objs["ports"][portID]
	if p == nil {
		return "Port " + portID + " could not be found."
	}
	fi := toAnySlice(p["fixed_ips"])[0].(map[string]any)
	subID := fi["subnet_id"].(string)
	for _, rid := range s.order["routers"] {
		rt := s.objs["routers"][rid]
		gi, _ := rt["external_gateway_info"].(map[string]any)
		if rt == nil || gi == nil || gi["network_id"] != fip["floating_network_id"] {
			continue
		}
		for _, pid := range s.order["ports"] {
			q := s.objs["ports"][pid]
			if q != nil && q["device_id"] == rid && q["device_owner"] == "network:router_interface" {
				if toAnySlice(q["fixed_ips"])[0].(map[string]any)["subnet_id"] == subID {
					fip["port_id"], fip["fixed_ip_address"], fip["router_id"], fip["status"] = portID, fi["ip_address"], rid, "ACTIVE"
					return ""
				}
			}
		}
	}
	return fmt.Sprintf("External network %v is not reachable from subnet %s.  Therefore, cannot associate Port %s with a Floating IP.", fip["floating_network_id"], subID, portID)
}

func sameRule(a, b map[string]any) bool {
	for _, k := range []string{"security_group_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id"} {
		if fmt.Sprint(a[k]) != fmt.Sprint(b[k]) {
			return false
		}
	}
	return true
}

func (s *Server) allocIP(sub map[string]any) string {
	pfx := netip.MustParsePrefix(sub["cidr"].(string))
	n := toInt(sub["next_ip"])
	sub["next_ip"] = n + 1
	a := pfx.Addr()
	for i := 0; i < n; i++ {
		a = a.Next()
	}
	return a.String()
}

func (s *Server) delete(w http.ResponseWriter, c collection, o map[string]any) {
	id := o["id"].(string)
	switch c.path {
	case "networks":
		for _, pid := range s.order["ports"] {
			if p := s.objs["ports"][pid]; p != nil && p["network_id"] == id && p["device_owner"] != "network:dhcp" {
				neutronErr(w, 409, "NetworkInUse", "Unable to complete operation on network "+id+". There are one or more ports still in use on the network.")
				return
			}
		}
		for _, sid := range strs(o["subnets"]) {
			delete(s.objs["subnets"], sid)
		}
	case "subnets":
		for _, pid := range s.order["ports"] {
			if p := s.objs["ports"][pid]; p != nil {
				for _, ip := range toAnySlice(p["fixed_ips"]) {
					if ip.(map[string]any)["subnet_id"] == id {
						neutronErr(w, 409, "SubnetInUse", "Unable to complete operation on subnet "+id+": One or more ports have an IP allocation from this subnet.")
						return
					}
				}
			}
		}
		if net := s.objs["networks"][o["network_id"].(string)]; net != nil {
			var keep []any
			for _, x := range strs(net["subnets"]) {
				if x != id {
					keep = append(keep, x)
				}
			}
			net["subnets"] = keep
		}
	case "routers":
		for _, pid := range s.order["ports"] {
			if p := s.objs["ports"][pid]; p != nil && p["device_id"] == id {
				neutronErr(w, 409, "RouterInUse", "Router "+id+" still has ports")
				return
			}
		}
	case "security-groups":
		for _, pid := range s.order["ports"] {
			if p := s.objs["ports"][pid]; p != nil && contains(strs(p["security_groups"]), id) {
				neutronErr(w, 409, "SecurityGroupInUse", "Security Group "+id+" in use.")
				return
			}
		}
		for _, rid := range s.order["security-group-rules"] {
			if r := s.objs["security-group-rules"][rid]; r != nil && r["security_group_id"] == id {
				delete(s.objs["security-group-rules"], rid)
			}
		}
	case "ports":
		if o["device_owner"] == "network:router_interface" {
			neutronErr(w, 409, "L3PortInUse", "Port "+id+" has owner network:router_interface and therefore cannot be deleted directly via the port API.")
			return
		}
		for _, fid := range s.order["floatingips"] {
			if f := s.objs["floatingips"][fid]; f != nil && f["port_id"] == id {
				f["port_id"], f["fixed_ip_address"], f["router_id"], f["status"] = nil, nil, nil, "DOWN"
			}
		}
	}
	delete(s.objs[c.path], id)
	w.WriteHeader(204)
}

func (s *Server) tags(w http.ResponseWriter, r *http.Request, o map[string]any, parts []string, body []byte) {
	switch {
	case len(parts) == 3 && r.Method == "PUT":
		var req struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			neutronErr(w, 400, "BadRequest", "malformed tags")
			return
		}
		for _, t := range req.Tags {
			if len(t) > 255 || strings.Contains(t, ",") {
				neutronErr(w, 400, "InvalidInput", "Invalid input for operation: '"+t+"' is not a valid tag.")
				return
			}
		}
		sort.Strings(req.Tags)
		o["tags"] = toAny(req.Tags)
		writeJSON(w, 200, map[string]any{"tags": req.Tags})
	case len(parts) == 3 && r.Method == "GET":
		writeJSON(w, 200, map[string]any{"tags": strs(o["tags"])})
	case len(parts) == 4 && r.Method == "PUT":
		if !contains(strs(o["tags"]), parts[3]) {
			o["tags"] = append(toAnySlice(o["tags"]), parts[3])
		}
		w.WriteHeader(201)
	default:
		neutronErr(w, 405, "HTTPMethodNotAllowed", "method not allowed")
	}
}

func (s *Server) routerInterface(w http.ResponseWriter, rt map[string]any, action string, body []byte) {
	var req struct {
		SubnetID string `json:"subnet_id"`
		PortID   string `json:"port_id"`
	}
	json.Unmarshal(body, &req)
	rid := rt["id"].(string)
	sub := s.objs["subnets"][req.SubnetID]
	if sub == nil {
		neutronErr(w, 404, "SubnetNotFound", "Subnet "+req.SubnetID+" could not be found.")
		return
	}
	var have string
	for _, pid := range s.order["ports"] {
		p := s.objs["ports"][pid]
		if p != nil && p["device_id"] == rid && toAnySlice(p["fixed_ips"])[0].(map[string]any)["subnet_id"] == req.SubnetID {
			have = pid
		}
	}
	switch action {
	case "add_router_interface":
		if have != "" {
			neutronErr(w, 400, "BadRequest", "Bad router request: Router already has a port on subnet "+req.SubnetID+".")
			return
		}
		pid := s.newID(3)
		s.put("ports", pid, map[string]any{"id": pid, "name": "", "network_id": sub["network_id"], "device_id": rid,
			"device_owner": "network:router_interface", "status": "ACTIVE", "tags": []any{}, "project_id": ProjectID,
			"fixed_ips":       []any{map[string]any{"subnet_id": req.SubnetID, "ip_address": sub["gateway_ip"]}},
			"security_groups": []any{}, "allowed_address_pairs": []any{}, "mac_address": "fa:16:3e:00:00:01"})
		writeJSON(w, 200, map[string]any{"id": rid, "subnet_id": req.SubnetID, "subnet_ids": []string{req.SubnetID},
			"port_id": pid, "network_id": sub["network_id"], "tenant_id": ProjectID, "project_id": ProjectID})
	case "remove_router_interface":
		if have == "" {
			neutronErr(w, 404, "RouterInterfaceNotFoundForSubnet", "Router "+rid+" has no interface on subnet "+req.SubnetID)
			return
		}
		delete(s.objs["ports"], have)
		writeJSON(w, 200, map[string]any{"id": rid, "subnet_id": req.SubnetID, "port_id": have, "tenant_id": ProjectID})
	default:
		neutronErr(w, 404, "HTTPNotFound", "The resource could not be found.")
	}
}

// ---- helpers ----

func clone(o map[string]any) map[string]any {
	b, _ := json.Marshal(o)
	var out map[string]any
	json.Unmarshal(b, &out)
	delete(out, "next_ip")
	return out
}

func fixedIPs(p map[string]any) []string {
	var out []string
	for _, x := range toAnySlice(p["fixed_ips"]) {
		if m, ok := x.(map[string]any); ok {
			out = append(out, fmt.Sprint(m["ip_address"]))
		}
	}
	return out
}

func toAnySlice(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case []string:
		return toAny(x)
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func strs(v any) []string {
	var out []string
	for _, x := range toAnySlice(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func toInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case float64:
		return int(x)
	case json.Number:
		n, _ := strconv.Atoi(string(x))
		return n
	}
	return 0
}
