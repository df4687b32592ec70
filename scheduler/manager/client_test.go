package manager

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hvctl/hvctl/scheduler"
)

// fakeReplica is an httptest server playing one manager replica: the
// leader (answers), a follower (421 naming a leader), or dead (its
// address refuses connections).
type fakeReplica struct {
	srv   *httptest.Server
	url   string
	hits  atomic.Int32
	mu    sync.Mutex
	role  string // "leader", "follower", "dead", "hangup"
	lead  string // the leader a follower names
	inHdr bool   // name it in the header (else only the body)
}

func newReplica(t *testing.T, role string) *fakeReplica {
	t.Helper()
	r := &fakeReplica{role: role, inHdr: true}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		r.mu.Lock()
		role, lead, inHdr := r.role, r.lead, r.inHdr
		r.mu.Unlock()
		switch role {
		case "follower":
			if inHdr {
				w.Header().Set(HeaderLeader, lead)
			}
			writeJSON(w, http.StatusMisdirectedRequest, map[string]string{"error": "not the leader", "leader": lead})
		case "hangup":
			// Read the request, then drop the connection unanswered.
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
		case "bad":
			writeJSON(w, http.StatusBadRequest, apiError{Error: "required", Field: "command"})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"served_by": r.url, "managers": []string{}})
		}
	}))
	r.url = r.srv.URL
	if role == "dead" {
		r.srv.Close() // its port now refuses connections
	}
	t.Cleanup(r.srv.Close)
	return r
}

func TestClientFailover(t *testing.T) {
	type want struct {
		servedBy int // index of the replica that must answer; -1 = error
		status   int // with servedBy -1: the APIError status (0 = unreachable)
		hits     map[int]int32
	}
	cases := []struct {
		name  string
		roles []string
		// lead: index of the replica followers name (-1 = unknown).
		lead   int
		inBody bool
		retry  bool
		want   want
	}{
		{name: "leader first", roles: []string{"leader", "follower"}, lead: 0, want: want{servedBy: 0, hits: map[int]int32{0: 1, 1: 0}}},
		{name: "follower names the leader (header)", roles: []string{"follower", "leader"}, lead: 1, want: want{servedBy: 1, hits: map[int]int32{0: 1, 1: 1}}},
		{name: "follower names the leader (body only)", roles: []string{"follower", "leader"}, lead: 1, inBody: true, want: want{servedBy: 1, hits: map[int]int32{0: 1, 1: 1}}},
		{name: "follower knows no leader: next endpoint", roles: []string{"follower", "leader"}, lead: -1, want: want{servedBy: 1, hits: map[int]int32{0: 1, 1: 1}}},
		{name: "dead first endpoint", roles: []string{"dead", "leader"}, lead: 1, want: want{servedBy: 1, hits: map[int]int32{1: 1}}},
		{name: "dead, follower, leader", roles: []string{"dead", "follower", "leader"}, lead: 2, want: want{servedBy: 2, hits: map[int]int32{1: 1, 2: 1}}},
		{name: "error answer is not retried", roles: []string{"bad", "leader"}, lead: 1, retry: true, want: want{servedBy: -1, status: 400, hits: map[int]int32{0: 1, 1: 0}}},
		{name: "hang-up after the request is not resent", roles: []string{"hangup", "leader"}, lead: 1, want: want{servedBy: -1, hits: map[int]int32{0: 1, 1: 0}}},
		{name: "hang-up of a retryable call goes on", roles: []string{"hangup", "leader"}, lead: 1, retry: true, want: want{servedBy: 1, hits: map[int]int32{0: 1, 1: 1}}},
		{name: "every replica dead", roles: []string{"dead", "dead"}, lead: -1, retry: true, want: want{servedBy: -1}},
		{name: "only followers without a leader", roles: []string{"follower", "follower"}, lead: -1, retry: true, want: want{servedBy: -1, hits: map[int]int32{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reps []*fakeReplica
			var urls []string
			for _, role := range tc.roles {
				r := newReplica(t, role)
				reps = append(reps, r)
				urls = append(urls, r.url)
			}
			for _, r := range reps {
				r.mu.Lock()
				if tc.lead >= 0 {
					r.lead = reps[tc.lead].url
				}
				r.inHdr = !tc.inBody
				r.mu.Unlock()
			}
			c := NewClient(ClientConfig{Endpoints: urls, Token: "t"})
			var out struct {
				ServedBy string `json:"served_by"`
			}
			err := c.Do(context.Background(), &Call{Method: "POST", Path: "/v1/x", In: map[string]int{"a": 1}, Out: &out,
				Retry: tc.retry, Timeout: 2 * time.Second, Total: 3 * time.Second})
			if tc.want.servedBy >= 0 {
				if err != nil {
					t.Fatalf("call failed: %v", err)
				}
				if out.ServedBy != reps[tc.want.servedBy].url {
					t.Fatalf("served by %s, want replica %d (%s)", out.ServedBy, tc.want.servedBy, reps[tc.want.servedBy].url)
				}
				if got := c.Endpoints()[0]; got != reps[tc.want.servedBy].url {
					t.Errorf("endpoint in use is %s, want the one that answered", got)
				}
			} else {
				if err == nil {
					t.Fatalf("call succeeded, want an error")
				}
				var ue *UnreachableError
				switch {
				case tc.want.status != 0 && StatusOf(err) != tc.want.status:
					t.Fatalf("error %v: status %d, want %d", err, StatusOf(err), tc.want.status)
				case tc.want.status == 0 && tc.retry && !errors.As(err, &ue):
					t.Fatalf("error %v (%T), want an UnreachableError", err, err)
				}
			}
			for i, n := range tc.want.hits {
				if got := reps[i].hits.Load(); got != n {
					t.Errorf("replica %d (%s) got %d requests, want %d", i, tc.roles[i], got, n)
				}
			}
		})
	}
}

func TestClientLearnsEndpoints(t *testing.T) {
	leader := newReplica(t, "leader")
	follower := newReplica(t, "follower")
	follower.lead = leader.url // a leader the client did not know
	var mu sync.Mutex
	var saved [][]string
	c := NewClient(ClientConfig{Endpoints: []string{follower.url}, OnEndpoints: func(l []string) {
		mu.Lock()
		saved = append(saved, l)
		mu.Unlock()
	}})
	if err := c.Do(context.Background(), &Call{Method: "GET", Path: "/v1/nodes", Retry: true}); err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints(); len(got) != 2 || got[0] != leader.url {
		t.Fatalf("endpoints %v: want the leader added and in use", got)
	}
	// A heartbeat answer names every manager: the list is replaced, the
	// one in use kept.
	third := newReplica(t, "leader")
	hb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"ok": "true", "managers": []string{third.url, "  " + leader.url + "/"}})
	}))
	defer hb.Close()
	c2 := NewClient(ClientConfig{Endpoints: []string{hb.URL}, OnEndpoints: func(l []string) {
		mu.Lock()
		saved = append(saved, l)
		mu.Unlock()
	}})
	if err := c2.Heartbeat(context.Background(), &Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c2.Endpoints(), " "); got != third.url+" "+leader.url {
		t.Fatalf("endpoints after the heartbeat: %s", got)
	}
	// An empty list never replaces a known one.
	c2.SetEndpoints(nil)
	if len(c2.Endpoints()) != 2 {
		t.Fatalf("an empty list replaced the endpoints: %v", c2.Endpoints())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(saved) != 2 {
		t.Fatalf("OnEndpoints called %d times (%v), want 2", len(saved), saved)
	}
}

func TestClientLimits(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`"` + strings.Repeat("x", 4096) + `"`))
	}))
	defer big.Close()
	c := NewClient(ClientConfig{Endpoints: []string{big.URL}})
	var s string
	err := c.Do(context.Background(), &Call{Method: "GET", Path: "/", Out: &s, MaxResponse: 1024})
	if err == nil || !strings.Contains(err.Error(), "larger than 1024 bytes") {
		t.Fatalf("a 4 KiB answer with a 1 KiB limit: %v", err)
	}
	if err := c.Do(context.Background(), &Call{Method: "GET", Path: "/", Out: &s}); err != nil || len(s) != 4096 {
		t.Fatalf("within the default limit: %v (%d bytes)", err, len(s))
	}
	// A server that never answers: the attempt's timeout ends the call.
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	c = NewClient(ClientConfig{Endpoints: []string{slow.URL}})
	err = c.Do(context.Background(), &Call{Method: "GET", Path: "/", Timeout: 200 * time.Millisecond, Total: time.Second, Retry: true})
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("a server that never answers: %v (%T), want UnreachableError", err, err)
	}
}

// TestSubmitRetryIsIdempotent: the first answer to a submit is lost
// (it comes after the client gave up), the client sends it again with
// the same key, and the manager makes the jobs once.
func TestSubmitRetryIsIdempotent(t *testing.T) {
	m, _, s := newManager(t)
	h := m.Handler()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if calls.Add(1) == 1 {
			<-r.Context().Done() // the client timed out: this answer is lost
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	c := NewClient(ClientConfig{Endpoints: []string{srv.URL}, Token: s.AdminToken()})
	spec := &scheduler.Spec{Command: []string{"true"}, Count: 500}
	var sum SubmitSummary
	err := c.Do(context.Background(), &Call{Method: "POST", Path: "/v1/jobs?summary=1", In: spec, Out: &sum,
		Header: http.Header{HeaderIdempotencyKey: {"k-1"}}, Timeout: 300 * time.Millisecond, Total: 10 * time.Second, Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() < 2 || !sum.Replayed || sum.Count != 500 {
		t.Fatalf("after %d calls: summary %+v, want the 500 jobs of the first call, replayed", calls.Load(), sum)
	}
	if n := len(m.Global().List("")); n != 500 {
		t.Fatalf("the manager has %d jobs, want 500 (made once)", n)
	}
	// The same key with another spec is refused, naming the key.
	spec2 := &scheduler.Spec{Command: []string{"false"}}
	err = c.Do(context.Background(), &Call{Method: "POST", Path: "/v1/jobs?summary=1", In: spec2,
		Header: http.Header{HeaderIdempotencyKey: {"k-1"}}, Retry: true})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "idempotency_key" {
		t.Fatalf("key reused for another spec: %v", err)
	}
	if n := len(m.Global().List("")); n != 500 {
		t.Fatalf("a refused submit changed the job table: %d jobs", n)
	}
}

func TestJobPages(t *testing.T) {
	m, _, s := newManager(t)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	c := NewClient(ClientConfig{Endpoints: []string{srv.URL}, Token: s.AdminToken()})
	ctx := context.Background()
	a, err := c.Submit(ctx, &scheduler.Spec{Command: []string{"true"}, Count: 2500}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Submit(ctx, &scheduler.Spec{Command: []string{"true"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Count != 2500 || a.First != a.ArrayID+".0" || a.Last != a.ArrayID+".2499" || b.Count != 1 || b.First != b.Last {
		t.Fatalf("summaries %+v %+v", a, b)
	}
	cases := []struct {
		name  string
		q     JobsQuery
		count int
		first string
	}{
		{"every job, pages of 1000", JobsQuery{}, 2501, a.First},
		{"pages of 7", JobsQuery{Limit: 7}, 2501, a.First},
		{"one array", JobsQuery{Array: a.ArrayID, Limit: 1000}, 2500, a.First},
		{"one job by its ID", JobsQuery{Array: b.First}, 1, b.First},
		{"after the array", JobsQuery{After: a.Last}, 1, b.First},
		{"by state", JobsQuery{State: scheduler.Done}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			var order []string
			err := c.EachJob(ctx, tc.q, func(j *scheduler.Job) error {
				if seen[j.ID] {
					t.Fatalf("job %s twice", j.ID)
				}
				seen[j.ID] = true
				order = append(order, j.ID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(order) != tc.count || (tc.count > 0 && order[0] != tc.first) {
				t.Fatalf("%d jobs from %v, want %d from %s", len(order), order[:min(len(order), 1)], tc.count, tc.first)
			}
		})
	}
	for _, bad := range []string{"/v1/jobs?limit=0", "/v1/jobs?limit=100001", "/v1/jobs?after=nope"} {
		err := c.Do(ctx, &Call{Method: "GET", Path: bad})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field == "" {
			t.Errorf("%s: %v, want a 400 naming the field", bad, err)
		}
	}
}

// TestDialErrorIsSafeToResend: a refused connection never reached a
// server, so even a call that must not be sent twice moves on.
func TestDialErrorIsSafeToResend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	leader := newReplica(t, "leader")
	c := NewClient(ClientConfig{Endpoints: []string{dead, leader.url}})
	var out map[string]any
	if err := c.Do(context.Background(), &Call{Method: "POST", Path: "/v1/join", In: map[string]string{}, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if out["served_by"] != leader.url {
		t.Fatalf("served by %v", out["served_by"])
	}
}
