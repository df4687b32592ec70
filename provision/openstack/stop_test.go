package openstack_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/openstack"
	"github.com/hvctl/hvctl/provision/openstack/osfake"
)

// stopSettings turns stopping on in the provider block.
const stopSettings = "stop_idle = true\n  stopped_price = 0.004"

// powerReq is the PowerRequest for a node of the cluster's state.
func (c *cluster) powerReq(addr string) *provision.PowerRequest {
	c.t.Helper()
	r := c.state().Resource(addr)
	if r == nil {
		c.t.Fatalf("no %s in the state", addr)
	}
	return &provision.PowerRequest{Address: addr, ID: r.ID, Attrs: r.Attrs}
}

// read reads a node of the state as refresh does.
func (c *cluster) read(addr string) *provision.ReadResponse {
	c.t.Helper()
	r := c.state().Resource(addr)
	rr, err := c.p.Read(ctx(c.t), &provision.ReadRequest{Address: addr, Kind: r.Kind, ID: r.ID, ClientToken: r.Token, Attrs: r.Attrs})
	if err != nil {
		c.t.Fatalf("read %s: %v", addr, err)
	}
	return rr
}

// neutronState sums up what a node's stop and start must keep: the
// ports (addresses, allowed address pairs, security groups, device),
// the floating IPs' associations and the subnets' host routes.
func neutronState(fake *osfake.Server) string {
	var b strings.Builder
	for _, pt := range fake.Objects("ports") {
		fmt.Fprintf(&b, "port %v %v %v %v %v; ", pt["id"], pt["fixed_ips"], pt["allowed_address_pairs"], pt["security_groups"], pt["device_id"])
	}
	for _, f := range fake.Objects("floatingips") {
		fmt.Fprintf(&b, "fip %v %v; ", f["floating_ip_address"], f["port_id"])
	}
	for _, sn := range fake.Objects("subnets") {
		fmt.Fprintf(&b, "subnet %v %v; ", sn["id"], sn["host_routes"])
	}
	return b.String()
}

func serverStatus(fake *osfake.Server, id string) string {
	for _, s := range fake.Servers() {
		if s.ID == id {
			return s.Status + "/" + s.TaskState
		}
	}
	return "gone"
}

// TestStopStart stops a node twice and starts it twice: it reads back
// stopped (SHUTOFF in Nova) and then running, with the same server,
// private address and floating IP; the second stop and start are
// refused by Nova with 409 and are not errors. With power polls the
// fake keeps the server powering off / on for a few reads, so Stop and
// Start must wait through the task state.
func TestStopStart(t *testing.T) {
	cases := []struct {
		name       string
		addr       string
		powerPolls int
	}{
		{"worker", "site.cloud.pool.burst.node[0]", 0},
		{"worker, slow power actions", "site.cloud.pool.burst.node[0]", 3},
		{"public hub keeps its floating IP", "site.cloud.node.hub", 2},
		{"gateway keeps its port and host route", "site.cloud.node.gw", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newCloud(t)
			c := newCluster(t, fake, "ss", stopSettings, "", 1, "m1.small")
			prepare := c.e.Prepare
			c.e.Prepare = func(st *provision.State, ch *provision.Change, p provision.Provider) (provision.Attrs, error) {
				a, err := prepare(st, ch, p)
				if a != nil {
					a["overlay_cidr"] = "10.200.0.0/16" // the gateway's host route and address pairs
				}
				return a, err
			}
			c.mustApply(false)
			fake.SetPowerPolls(tc.powerPolls)
			pr := c.powerReq(tc.addr)
			before := c.read(tc.addr)
			network := neutronState(fake)
			if !strings.Contains(network, "nexthop:") || !strings.Contains(network, "10.200.0.0/16") {
				t.Fatalf("the site has no host route through the gateway: %s", network)
			}
			actions := fake.Calls("POST", "/servers/"+pr.ID+"/action")
			for i := range 2 {
				reads := fake.Calls("GET", "/servers/"+pr.ID)
				if err := c.p.Stop(ctx(t), pr); err != nil {
					t.Fatalf("stop %d: %v", i+1, err)
				}
				if got := serverStatus(fake, pr.ID); got != "SHUTOFF/" {
					t.Errorf("after stop %d the server is %s, want SHUTOFF", i+1, got)
				}
				if n := fake.Calls("GET", "/servers/"+pr.ID) - reads; i == 0 && n < tc.powerPolls+1 {
					t.Errorf("stop read the server %d times, want it to poll through %d reads powering off", n, tc.powerPolls)
				}
				rr := c.read(tc.addr)
				if !rr.Exists || rr.ID != pr.ID || rr.Attrs["state"] != openstack.StateStopped {
					t.Errorf("read after stop %d = %+v, want server %s stopped", i+1, rr, pr.ID)
				}
				if rr.Attrs["private_ip"] != before.Attrs["private_ip"] || rr.Attrs["public_address"] != before.Attrs["public_address"] {
					t.Errorf("stopped %s has addresses %v, had %v", tc.addr, rr.Attrs, before.Attrs)
				}
			}
			for i := range 2 {
				rr, err := c.p.Start(ctx(t), pr)
				if err != nil {
					t.Fatalf("start %d: %v", i+1, err)
				}
				if got := serverStatus(fake, pr.ID); got != "ACTIVE/" {
					t.Errorf("after start %d the server is %s, want ACTIVE", i+1, got)
				}
				for what, got := range map[string]*provision.ReadResponse{"start": rr, "read": c.read(tc.addr)} {
					if !got.Exists || got.ID != pr.ID || got.Attrs["state"] != openstack.StateRunning {
						t.Errorf("%s after start %d = %+v, want server %s running", what, i+1, got, pr.ID)
					}
					for _, k := range []string{"private_ip", "public_address"} {
						if got.Attrs[k] != before.Attrs[k] {
							t.Errorf("%s after start %d: %s = %v, was %v", what, i+1, k, got.Attrs[k], before.Attrs[k])
						}
					}
				}
			}
			// Each stop and start sent its action once; Nova refused the
			// second of each with 409.
			if n := fake.Calls("POST", "/servers/"+pr.ID+"/action") - actions; n != 4 {
				t.Errorf("%d server actions, want 4", n)
			}
			if n := len(fake.Servers()); n != 3 {
				t.Errorf("%d servers, want 3 (a stop keeps the server)", n)
			}
			if after := neutronState(fake); after != network {
				t.Errorf("stop and start changed Neutron:\nbefore %s\nafter  %s", network, after)
			}
		})
	}
}

// TestStopWhileBusy: Nova refuses os-stop while a server builds and
// os-start while it powers off (409, vm_state building / task_state
// powering-off); Stop and Start wait for the server to settle and ask
// again.
func TestStopWhileBusy(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, fake *osfake.Server, c *cluster, pr *provision.PowerRequest)
		op    string // "stop" or "start"
		want  string // server status after
	}{
		{"stop while building", func(t *testing.T, fake *osfake.Server, c *cluster, pr *provision.PowerRequest) {
			// A new node, still in BUILD for 3 reads.
			fake.SetBuildPolls(3)
			net := c.state().Resource("site.cloud.network")
			req := &provision.CreateRequest{Address: "site.cloud.node.late", Kind: provision.KindInstance, Cluster: "busy", Lineage: "L",
				ClientToken: provision.ClientToken("L", "site.cloud.node.late", 0),
				Attrs:       provision.Attrs{"site": "cloud", "name": "late", "roles": []string{"worker"}, "instance_type": "m1.small"},
				Deps:        map[string]string{"site.cloud.network": net.ID}}
			resp, err := c.p.Create(ctx(t), req)
			if err != nil {
				t.Fatal(err)
			}
			pr.Address, pr.ID, pr.Attrs = req.Address, resp.ID, resp.Attrs
		}, "stop", "SHUTOFF/"},
		{"start while powering off", func(t *testing.T, fake *osfake.Server, c *cluster, pr *provision.PowerRequest) {
			fake.SetPowerPolls(3)
			if code, body := novaAction(t, fake, pr.ID, `{"os-stop": null}`); code != 202 {
				t.Fatalf("os-stop: %d %s", code, body)
			}
		}, "start", "ACTIVE/"},
		{"stop while powering on", func(t *testing.T, fake *osfake.Server, c *cluster, pr *provision.PowerRequest) {
			if err := c.p.Stop(ctx(t), pr); err != nil {
				t.Fatal(err)
			}
			fake.SetPowerPolls(3)
			if code, body := novaAction(t, fake, pr.ID, `{"os-start": null}`); code != 202 {
				t.Fatalf("os-start: %d %s", code, body)
			}
		}, "stop", "SHUTOFF/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newCloud(t)
			c := newCluster(t, fake, "busy", stopSettings, "", 1, "m1.small")
			c.mustApply(false)
			pr := c.powerReq("site.cloud.pool.burst.node[0]")
			tc.setup(t, fake, c, pr)
			conflicts := fake.Calls("POST", "/servers/"+pr.ID+"/action")
			var err error
			if tc.op == "stop" {
				err = c.p.Stop(ctx(t), pr)
			} else {
				_, err = c.p.Start(ctx(t), pr)
			}
			if err != nil {
				t.Fatalf("%s: %v", tc.op, err)
			}
			if got := serverStatus(fake, pr.ID); got != tc.want {
				t.Errorf("after %s the server is %s, want %s", tc.op, got, tc.want)
			}
			if n := fake.Calls("POST", "/servers/"+pr.ID+"/action") - conflicts; n != 2 {
				t.Errorf("%d actions, want 2 (refused with 409, then accepted)", n)
			}
		})
	}
}

// TestStopGone: stopping or starting a server deleted outside hvctl (or
// one the state has no ID for) is an error naming the node.
func TestStopGone(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "gone", stopSettings, "", 1, "m1.small")
	c.mustApply(false)
	addr := "site.cloud.pool.burst.node[0]"
	pr := c.powerReq(addr)
	if !fake.DeleteServer(pr.ID) {
		t.Fatal("no such server")
	}
	cases := []struct {
		name string
		req  *provision.PowerRequest
		part string
	}{
		{"deleted outside", pr, "is gone"},
		{"no ID", &provision.PowerRequest{Address: addr}, "no server ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.p.Stop(ctx(t), tc.req)
			_, err2 := c.p.Start(ctx(t), tc.req)
			for op, err := range map[string]error{"stop": err, "start": err2} {
				if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), tc.part) {
					t.Errorf("%s = %v, want an error naming %s that says %q", op, err, addr, tc.part)
				}
			}
		})
	}
}

// TestStopCost: only with stop_idle, a start of a minute and the
// stopped_price setting as the stopped price.
func TestStopCost(t *testing.T) {
	worker := provision.Attrs{"roles": []string{"worker"}, "state": "running"}
	gateway := provision.Attrs{"roles": []string{"gateway"}, "state": "running"}
	cases := []struct {
		name     string
		settings string
		attrs    provision.Attrs
		ok       bool
		price    float64
	}{
		{"off by default", "", worker, false, 0},
		{"off", "stop_idle = false\n  stopped_price = 0.5", worker, false, 0},
		{"on, free when stopped", "stop_idle = true", worker, true, 0},
		{"on with a price", "stop_idle = true\n  stopped_price = 0.012", worker, true, 0.012},
		{"on, a gateway", "stop_idle = true\n  stopped_price = 0.1", gateway, true, 0.1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newCloud(t)
			c := newCluster(t, fake, "cost", tc.settings, "", 0, "m1.small")
			cost, ok := c.p.StopCost(tc.attrs)
			if ok != tc.ok {
				t.Fatalf("StopCost ok = %v, want %v", ok, tc.ok)
			}
			want := provision.StopCost{}
			if tc.ok {
				want = provision.StopCost{StartTime: time.Minute, StoppedPrice: tc.price}
			}
			if cost != want {
				t.Errorf("StopCost = %+v, want %+v", cost, want)
			}
		})
	}
}

// TestStoppedRefreshAndDestroy: a stopped node reads back stopped in a
// refresh (by listing and on its own), stays ready (not tainted), the
// plan keeps it (no replacement), and destroy removes the stopped server and everything
// made with it.
func TestStoppedRefreshAndDestroy(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "sd", stopSettings, "", 2, "m1.small")
	c.mustApply(false)
	addr := "site.cloud.pool.burst.node[1]"
	pr := c.powerReq(addr)
	if err := c.p.Stop(ctx(t), pr); err != nil {
		t.Fatal(err)
	}
	pg, err := c.p.List(ctx(t), &provision.ListRequest{Cluster: "sd"})
	if err != nil {
		t.Fatal(err)
	}
	listed := ""
	for _, it := range pg.Items {
		if it.ID == pr.ID {
			listed, _ = it.Attrs["state"].(string)
		}
	}
	if listed != openstack.StateStopped {
		t.Errorf("the listing shows %s as %q, want stopped", addr, listed)
	}
	plan, refreshed, err := c.e.Plan(ctx(t), c.state(), provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if a := actions(plan)[addr]; a != string(provision.ActionNoop) {
		t.Errorf("plan for the stopped %s: %s, want no-op", addr, a)
	}
	if r := refreshed.Resource(addr); r == nil || r.Attrs["state"] != openstack.StateStopped || r.ID != pr.ID || r.Status != provision.StatusReady {
		t.Errorf("refreshed %s = %+v, want server %s ready and stopped (not tainted)", addr, r, pr.ID)
	}
	c.mustApply(true)
	if left := fake.Leftovers(); len(left) > 0 {
		t.Errorf("destroy of a cluster with a stopped node left:\n%s", strings.Join(left, "\n"))
	}
}

// TestBootPowersOff: a new server that goes SHUTOFF before it ever ran
// is a boot failure (the node is tainted, to be replaced), not a
// stopped node.
func TestBootPowersOff(t *testing.T) {
	fake := newCloud(t)
	fake.GuestPowersOff("m1.large")
	c := newCluster(t, fake, "off", stopSettings, "", 1, "m1.large")
	_, err := c.apply(false)
	if err == nil || !strings.Contains(err.Error(), "failed to boot") || !strings.Contains(err.Error(), "SHUTOFF") {
		t.Fatalf("apply error = %v, want a boot failure saying the server went SHUTOFF", err)
	}
	if r := c.state().Resource("site.cloud.pool.burst.node[0]"); r == nil || r.Status != provision.StatusTainted {
		t.Errorf("node state %+v, want tainted", r)
	}
	c.mustApply(true)
	if left := fake.Leftovers(); len(left) > 0 {
		t.Errorf("destroy left:\n%s", strings.Join(left, "\n"))
	}
}

// novaAction posts a server action to the fake as a client would.
func novaAction(t *testing.T, fake *osfake.Server, id, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", fake.URL+"/compute/v2.1/servers/"+id+"/action", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", fake.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFakeServerActions checks the fake's os-stop and os-start against
// Nova's API reference: 202 when the state allows the action, 409
// conflictingRequest when it does not, 404 itemNotFound for an unknown
// server, 400 for an unknown action.
func TestFakeServerActions(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "fa", stopSettings, "", 0, "m1.small")
	c.mustApply(false)
	id := c.state().Resource("site.cloud.node.gw").ID
	fake.SetPowerPolls(1)
	steps := []struct {
		body   string
		code   int
		part   string // of the body
		status string // server status/task after
	}{
		{`{"os-start": null}`, 409, `"conflictingRequest"`, "ACTIVE/"},
		{`{"os-stop": null}`, 202, "", "ACTIVE/powering-off"},
		{`{"os-stop": null}`, 409, "while it is in task_state powering-off", "ACTIVE/powering-off"},
		{"read", 0, "", "ACTIVE/powering-off"},
		{"read", 0, "", "SHUTOFF/"},
		{`{"os-stop": null}`, 409, "Cannot 'stop' instance " + id + " while it is in vm_state stopped", "SHUTOFF/"},
		{`{"os-start": null}`, 202, "", "SHUTOFF/powering-on"},
		{`{"os-start": null}`, 409, "while it is in task_state powering-on", "SHUTOFF/powering-on"},
		{"read", 0, "", "SHUTOFF/powering-on"},
		{"read", 0, "", "ACTIVE/"},
		{`{"os-reboot": null}`, 400, "no such action", "ACTIVE/"},
	}
	for i, s := range steps {
		if s.body == "read" {
			c.read("site.cloud.node.gw")
		} else if code, body := novaAction(t, fake, id, s.body); code != s.code || !strings.Contains(body, s.part) {
			t.Errorf("step %d %s: %d %s, want %d with %q", i, s.body, code, body, s.code, s.part)
		}
		if got := serverStatus(fake, id); got != s.status {
			t.Errorf("step %d %s: server %s, want %s", i, s.body, got, s.status)
		}
	}
	if code, body := novaAction(t, fake, "9a1c0000-5e5e-4a4a-8b8b-000000000000", `{"os-stop": null}`); code != 404 || !strings.Contains(body, `"itemNotFound"`) {
		t.Errorf("os-stop of an unknown server: %d %s, want 404 itemNotFound", code, body)
	}
	c.mustApply(true)
}
