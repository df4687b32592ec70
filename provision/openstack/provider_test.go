package openstack_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/openstack"
	"github.com/hvctl/hvctl/provision/openstack/osfake"
	"github.com/hvctl/hvctl/scheduler/agent"
)

// TestSiteLifecycle creates a whole site through the engine (network,
// subnet, router, security group, a public hub, a gateway, workers),
// checks what the cloud holds, that a second plan changes nothing, and
// that destroy leaves the cloud empty.
func TestSiteLifecycle(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "life", "", `ttl = "2h"`, 2, "m1.small")
	fake.SetBuildPolls(3) // servers stay in BUILD for 3 reads: WaitReady polls
	c.mustApply(false)
	if n := fake.Calls("GET", "/servers/"+c.state().Resource("site.cloud.node.hub").ID); n < 4 {
		t.Errorf("the hub was read %d times, want WaitReady to poll through BUILD", n)
	}

	st := c.state()
	if n := len(st.Resources); n != 5 {
		t.Fatalf("state has %d resources, want 5", n)
	}
	for _, r := range st.Resources {
		if r.Status != provision.StatusReady {
			t.Errorf("%s: status %s, want ready", r.Address, r.Status)
		}
		if r.Kind == provision.KindInstance {
			if r.Attrs["state"] != "running" || r.Attrs["private_ip"] == nil {
				t.Errorf("%s: attrs %v", r.Address, r.Attrs)
			}
		}
	}
	hub := st.Resource("site.cloud.node.hub")
	if pa, _ := hub.Attrs["public_address"].(string); !strings.HasPrefix(pa, "203.0.113.") {
		t.Errorf("hub public_address = %v, want a floating IP", hub.Attrs["public_address"])
	}
	if _, ok := st.Resource("site.cloud.node.gw").Attrs["public_address"]; ok {
		t.Errorf("the gateway has a public address without public_ip")
	}

	counts := map[string]int{}
	for _, coll := range []string{"networks", "subnets", "routers", "security-groups", "floatingips"} {
		counts[coll] = len(fake.Objects(coll))
	}
	want := map[string]int{"networks": 1, "subnets": 1, "routers": 1, "security-groups": 1, "floatingips": 1}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%d %s, want %d", counts[k], k, v)
		}
	}
	// Every Neutron object carries the hvctl tags.
	for _, coll := range []string{"networks", "subnets", "routers", "security-groups", "floatingips", "ports"} {
		for _, o := range fake.Objects(coll) {
			if o["device_owner"] == "network:router_interface" {
				continue
			}
			tags := strings.Join(toStrings(o["tags"]), " ")
			for _, k := range []string{"hvctl-token=", "hvctl-cluster=life", "hvctl-address=site.cloud.", "hvctl-lineage=", "hvctl-expires-at="} {
				if !strings.Contains(tags, k) {
					t.Errorf("%s %v: tags %q lack %s", coll, o["name"], tags, k)
				}
			}
		}
	}
	// The security group admits the overlay port, the manager API and the
	// site itself, nothing else inbound.
	var ingress []string
	for _, r := range fake.Objects("security-group-rules") {
		if r["direction"] == "ingress" {
			ingress = append(ingress, strings.Join([]string{str(r["protocol"]), str(r["port_range_min"]), str(r["remote_ip_prefix"]), boolStr(r["remote_group_id"] != nil)}, "/"))
		}
	}
	if got := strings.Join(ingress, " "); got != "udp/51820/0.0.0.0/0/false tcp/51821/0.0.0.0/0/false ///true" {
		t.Errorf("ingress rules = %q", got)
	}

	servers := fake.Servers()
	if len(servers) != 4 {
		t.Fatalf("%d servers, want 4", len(servers))
	}
	for _, s := range servers {
		if s.Status != "ACTIVE" || s.Metadata["hvctl-cluster"] != "life" || s.Metadata["hvctl-expires-at"] == "" {
			t.Errorf("server %s: status %s metadata %v", s.Name, s.Status, s.Metadata)
		}
		if !strings.Contains(s.UserData, "permissions: '0600'") || !strings.Contains(s.UserData, "hvctl agent -config /etc/hvctl/agent.json") {
			t.Errorf("server %s: user data does not write and start the agent:\n%s", s.Name, s.UserData)
		}
		cfg := agentConfigOf(t, s.UserData)
		if cfg.Cluster != "life" || cfg.PrivateIP == "" || !strings.HasPrefix(cfg.Attrs["join_token"].(string), "SECRET-JOIN-") {
			t.Errorf("server %s: agent config %+v", s.Name, cfg)
		}
		if strings.HasSuffix(cfg.Address, "node.hub") && (cfg.PublicAddress == "" || !cfg.IsHub()) {
			t.Errorf("hub agent config lacks public address or cluster secret: %+v", cfg)
		}
		if strings.HasSuffix(cfg.Address, "node.gw") && !strings.Contains(s.UserData, "net.ipv4.ip_forward=1") {
			t.Errorf("the gateway does not forward")
		}
	}
	// The gateway's port admits forwarded traffic.
	for _, pt := range fake.Objects("ports") {
		if strings.Contains(str(pt["name"]), "node-gw") && len(pt["allowed_address_pairs"].([]any)) != 1 {
			t.Errorf("gateway port allowed_address_pairs = %v", pt["allowed_address_pairs"])
		}
	}

	plan := c.mustApply(false)
	for addr, a := range actions(plan) {
		if a != string(provision.ActionNoop) {
			t.Errorf("second plan: %s %s", a, addr)
		}
	}

	c.mustApply(true)
	if left := fake.Leftovers(); len(left) > 0 {
		t.Errorf("destroy left:\n%s", strings.Join(left, "\n"))
	}
	if n := len(c.state().Resources); n != 0 {
		t.Errorf("state has %d resources after destroy", n)
	}
}

// TestCrashRetry: the cloud does the work but the answer is lost (or
// hvctl dies before recording it); the retry finds the server by its
// token and makes no second one.
func TestCrashRetry(t *testing.T) {
	cases := []struct{ method, suffix string }{
		{"POST", "/servers"},
		{"POST", "/ports"},
		{"POST", "/floatingips"},
		{"POST", "/networks"},
		{"PUT", "/tags"},
	}
	for _, tc := range cases {
		t.Run(tc.method+tc.suffix, func(t *testing.T) {
			fake := newCloud(t)
			c := newCluster(t, fake, "crash", "", "", 1, "m1.small")
			fake.LoseResponses(tc.method, tc.suffix, 1)
			c.mustApply(false)
			if n := len(fake.Servers()); n != 3 {
				t.Errorf("%d servers, want 3", n)
			}
			if n := fake.Calls("POST", "/servers"); n != 3 {
				t.Errorf("%d server creates, want 3", n)
			}
			for coll, want := range map[string]int{"networks": 1, "floatingips": 1, "security-groups": 1, "routers": 1} {
				if n := len(fake.Objects(coll)); n != want {
					t.Errorf("%d %s, want %d", n, coll, want)
				}
			}
			c.mustApply(true)
			if left := fake.Leftovers(); len(left) > 0 {
				t.Errorf("destroy left:\n%s", strings.Join(left, "\n"))
			}
		})
	}
}

// TestReadByToken: a create whose result was never recorded (hvctl
// killed) is found by Read with the client token alone.
func TestReadByToken(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "tok", "", "", 1, "m1.small")
	c.mustApply(false)
	for _, r := range c.state().Resources {
		rr, err := c.p.Read(ctx(t), &provision.ReadRequest{Address: r.Address, Kind: r.Kind, ClientToken: r.Token})
		if err != nil || !rr.Exists || rr.ID != r.ID {
			t.Errorf("read %s by token = %+v, %v; want ID %s", r.Address, rr, err, r.ID)
		}
		rr, err = c.p.Read(ctx(t), &provision.ReadRequest{Address: r.Address, Kind: r.Kind, ClientToken: r.Token + "x"})
		if err != nil || rr.Exists {
			t.Errorf("read %s by another token = %+v, %v; want not found", r.Address, rr, err)
		}
	}
	c.mustApply(true)
}

// TestThrottling: 429s (with Retry-After) and 503s are retried; when
// they go on, the error is a *provision.RetryableError.
func TestThrottling(t *testing.T) {
	cases := []struct {
		name   string
		n      int
		status int
		ok     bool
	}{
		{"429 then success", 5, 429, true},
		{"503 then success", 4, 503, true},
		{"429 for good", 1 << 20, 429, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newCloud(t)
			c := newCluster(t, fake, "thr", "", "", 1, "m1.small")
			c.e.MaxRetries = 2
			fake.Throttle(tc.n, tc.status)
			_, err := c.apply(false)
			if tc.ok {
				if err != nil {
					t.Fatalf("apply: %v", err)
				}
				if n := len(fake.Servers()); n != 3 {
					t.Errorf("%d servers, want 3", n)
				}
				fake.Throttle(0, 0)
				c.mustApply(true)
				return
			}
			if err == nil || !provision.IsRetryable(err) {
				t.Fatalf("apply error = %v, want a retryable error", err)
			}
			if !strings.Contains(err.Error(), "429") {
				t.Errorf("error %q does not say it was throttled", err)
			}
		})
	}
}

// TestCapacity: Nova's "No valid host" surfaces as *provision.CapacityError
// and the node is tainted, so the next plan replaces it.
func TestCapacity(t *testing.T) {
	fake := newCloud(t)
	fake.NoValidHost("g1.xlarge")
	c := newCluster(t, fake, "cap", "", "", 1, "g1.xlarge")
	_, err := c.apply(false)
	var ce *provision.CapacityError
	if !errors.As(err, &ce) {
		t.Fatalf("apply error = %v, want a *provision.CapacityError", err)
	}
	if !strings.Contains(ce.Detail, "No valid host was found") {
		t.Errorf("detail %q", ce.Detail)
	}
	noSecrets(t, "capacity error", err.Error())
	if r := c.state().Resource("site.cloud.pool.burst.node[0]"); r == nil || r.Status != provision.StatusTainted {
		t.Errorf("node state %+v, want tainted", r)
	}
	c.mustApply(true)
	if left := fake.Leftovers(); len(left) > 0 {
		t.Errorf("destroy left:\n%s", strings.Join(left, "\n"))
	}
}

// TestDeletedOutside: a server deleted outside hvctl is noticed by
// refresh and recreated by the next apply; its leftovers go at destroy.
func TestDeletedOutside(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "gone", "", "", 2, "m1.small")
	c.mustApply(false)
	victim := c.state().Resource("site.cloud.pool.burst.node[1]")
	if !fake.DeleteServer(victim.ID) {
		t.Fatal("no such server")
	}
	plan := c.mustApply(false)
	if a := actions(plan)[victim.Address]; a != string(provision.ActionCreate) {
		t.Errorf("plan after delete: %s %s, want create", a, victim.Address)
	}
	found := false
	for _, d := range plan.Drift {
		found = found || d.Address == victim.Address && strings.Contains(d.Detail, "deleted outside")
	}
	if !found {
		t.Errorf("drift = %+v, want %s deleted outside hvctl", plan.Drift, victim.Address)
	}
	now := c.state().Resource(victim.Address)
	if now == nil || now.ID == victim.ID || now.Status != provision.StatusReady {
		t.Fatalf("after apply: %+v", now)
	}
	if n := len(fake.Servers()); n != 4 {
		t.Errorf("%d servers, want 4", n)
	}
	c.mustApply(true)
	if left := fake.Leftovers(); len(left) > 0 {
		t.Errorf("destroy left:\n%s", strings.Join(left, "\n"))
	}
}

// TestQuota: a quota refusal names the quota and `openstack quota show`,
// leaves nothing half-made, and leaks no secret.
func TestQuota(t *testing.T) {
	cases := []struct {
		resource string
		limit    int
		want     string
	}{
		{"instances", 2, "instances"},
		{"cores", 3, "cores"},
		{"floatingip", 0, "floatingip"},
		{"port", 2, "port"},
	}
	for _, tc := range cases {
		t.Run(tc.resource, func(t *testing.T) {
			fake := newCloud(t)
			fake.SetQuota(tc.resource, tc.limit)
			c := newCluster(t, fake, "quota", "", "", 2, "m1.small")
			_, err := c.apply(false)
			var qe *openstack.QuotaError
			if !errors.As(err, &qe) {
				t.Fatalf("apply error = %v, want a *QuotaError", err)
			}
			if qe.Resource != tc.want || !strings.Contains(err.Error(), "openstack quota show") || !strings.Contains(err.Error(), tc.want+" quota") {
				t.Errorf("error %q (resource %q), want it to name the %s quota and `openstack quota show`", err, qe.Resource, tc.want)
			}
			if provision.IsRetryable(err) {
				t.Errorf("a quota error is not retryable")
			}
			noSecrets(t, "quota error", err.Error())
			c.mustApply(true)
			if left := fake.Leftovers(); len(left) > 0 {
				t.Errorf("destroy left:\n%s", strings.Join(left, "\n"))
			}
		})
	}
}

// TestCollector: Owned finds every cluster by its tags and metadata,
// with its expiry; deleting the expired ones leaves the others.
func TestCollector(t *testing.T) {
	fake := newCloud(t)
	old := newCluster(t, fake, "old", "", `ttl = "1h"`, 1, "m1.small")
	old.e.ExpiresAt = time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	old.mustApply(false)
	keep := newCluster(t, fake, "keep", "", "", 1, "m1.small")
	keep.mustApply(false)

	owned, err := keep.p.Owned(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	byCluster := map[string]int{}
	now := time.Now()
	var expired []provision.Owned
	for _, o := range owned {
		byCluster[o.Cluster]++
		if o.Address == "" || o.Lineage == "" {
			t.Errorf("owned %+v lacks address or lineage", o)
		}
		if !o.ExpiresAt.IsZero() && o.ExpiresAt.Before(now) {
			expired = append(expired, o)
		}
	}
	if byCluster["old"] != 4 || byCluster["keep"] != 4 || len(expired) != 4 {
		t.Fatalf("owned by cluster %v, %d expired; want 4 each, 4 expired", byCluster, len(expired))
	}
	// gc: instances first (Owned lists them first), then networks.
	for _, o := range expired {
		if o.Cluster != "old" {
			t.Errorf("expired %+v is not of cluster old", o)
		}
		if err := keep.p.Delete(ctx(t), &provision.DeleteRequest{Address: o.Address, Kind: o.Kind, ID: o.ID}); err != nil {
			t.Fatalf("delete %s: %v", o.Address, err)
		}
	}
	owned, err = keep.p.Owned(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range owned {
		if o.Cluster != "keep" {
			t.Errorf("after gc: %+v is left", o)
		}
	}
	if len(owned) != 4 {
		t.Errorf("after gc: %d owned, want keep's 4", len(owned))
	}
	keep.mustApply(true)
	if left := fake.Leftovers(); len(left) > 0 {
		t.Errorf("left:\n%s", strings.Join(left, "\n"))
	}
}

// TestEndpointOverride: endpoint replaces the catalog.
func TestEndpointOverride(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "ep", `endpoint = "`+fake.URL+`"`, "", 0, "m1.small")
	c.mustApply(false)
	if n := len(fake.Servers()); n != 2 {
		t.Errorf("%d servers, want 2", n)
	}
	c.mustApply(true)
}

// TestGatewayRoute: with overlay_cidr, a gateway's port admits the
// overlay CIDR and the subnet routes it through the gateway; deleting
// the gateway removes the route.
func TestGatewayRoute(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "gw", "", "", 0, "m1.small")
	p := c.p
	netReq := &provision.CreateRequest{Address: "site.a.network", Kind: provision.KindNetwork, Cluster: "gw", Lineage: "L",
		ClientToken: provision.ClientToken("L", "site.a.network", 0), Attrs: provision.Attrs{"site": "a", "cidr": "10.9.0.0/24"}}
	net, err := p.Create(ctx(t), netReq)
	if err != nil {
		t.Fatal(err)
	}
	req := &provision.CreateRequest{Address: "site.a.node.gw", Kind: provision.KindInstance, Cluster: "gw", Lineage: "L",
		ClientToken: provision.ClientToken("L", "site.a.node.gw", 0),
		Attrs: provision.Attrs{"site": "a", "name": "gw", "roles": []string{"gateway"}, "instance_type": "m1.small",
			"overlay_cidr": "10.200.0.0/16", "overlay_port": int64(51999), "join_token": "SECRET-J"},
		Deps: map[string]string{"site.a.network": net.ID}}
	resp, err := p.Create(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	ip := resp.Attrs["private_ip"].(string)
	sub := fake.Objects("subnets")[0]
	routes := sub["host_routes"].([]any)
	if len(routes) != 1 || routes[0].(map[string]any)["destination"] != "10.200.0.0/16" || routes[0].(map[string]any)["nexthop"] != ip {
		t.Errorf("host routes = %v, want 10.200.0.0/16 via %s", routes, ip)
	}
	for _, pt := range fake.Objects("ports") {
		if str(pt["name"]) == "" {
			continue
		}
		pairs := pt["allowed_address_pairs"].([]any)
		if len(pairs) != 1 || pairs[0].(map[string]any)["ip_address"] != "10.200.0.0/16" {
			t.Errorf("allowed_address_pairs = %v", pairs)
		}
	}
	udp := 0
	for _, r := range fake.Objects("security-group-rules") {
		if r["protocol"] == "udp" {
			udp++
		}
	}
	if udp != 2 {
		t.Errorf("%d UDP rules, want 51820 and the node's 51999", udp)
	}
	if _, err := p.WaitReady(ctx(t), &provision.ReadRequest{Address: req.Address, Kind: req.Kind, ID: resp.ID}); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx(t), &provision.DeleteRequest{Address: req.Address, Kind: req.Kind, ID: resp.ID}); err != nil {
		t.Fatal(err)
	}
	if routes := fake.Objects("subnets")[0]["host_routes"].([]any); len(routes) != 0 {
		t.Errorf("host routes after delete = %v", routes)
	}
	// Deleting twice is fine.
	if err := p.Delete(ctx(t), &provision.DeleteRequest{Address: req.Address, Kind: req.Kind, ID: resp.ID}); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if err := p.Delete(ctx(t), &provision.DeleteRequest{Address: netReq.Address, Kind: netReq.Kind, ID: net.ID}); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx(t), &provision.DeleteRequest{Address: netReq.Address, Kind: netReq.Kind, ID: net.ID}); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if left := fake.Leftovers(); len(left) > 0 {
		t.Errorf("left:\n%s", strings.Join(left, "\n"))
	}
}

// TestExistingNetwork: network.existing_id reuses a network: hvctl adds
// its security group only, and deleting the site leaves the network.
func TestExistingNetwork(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "ex", "", "", 0, "m1.small")
	p := c.p
	base, err := p.Create(ctx(t), &provision.CreateRequest{Address: "site.base.network", Kind: provision.KindNetwork, Cluster: "other",
		Lineage: "L0", ClientToken: "tok-base", Attrs: provision.Attrs{"cidr": "10.7.0.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	req := &provision.CreateRequest{Address: "site.a.network", Kind: provision.KindNetwork, Cluster: "ex", Lineage: "L",
		ClientToken: "tok-a", Attrs: provision.Attrs{"cidr": "10.7.0.0/24", "existing_id": base.ID}}
	resp, err := p.Create(ctx(t), req)
	if err != nil || resp.ID != base.ID {
		t.Fatalf("create = %+v, %v; want the existing network", resp, err)
	}
	if n := len(fake.Objects("security-groups")); n != 2 {
		t.Errorf("%d security groups, want 2", n)
	}
	if n := len(fake.Objects("routers")); n != 1 {
		t.Errorf("%d routers, want 1 (none for the reused network)", n)
	}
	rr, err := p.Read(ctx(t), &provision.ReadRequest{Address: req.Address, Kind: req.Kind, ClientToken: "tok-a"})
	if err != nil || !rr.Exists || rr.ID != base.ID {
		t.Errorf("read by token = %+v, %v", rr, err)
	}
	if _, err := p.Create(ctx(t), &provision.CreateRequest{Address: "site.b.network", Kind: provision.KindNetwork,
		ClientToken: "tok-b", Attrs: provision.Attrs{"existing_id": "no-such-net"}}); err == nil || !strings.Contains(err.Error(), "no such network") {
		t.Errorf("missing existing_id: %v", err)
	}
	if err := p.Delete(ctx(t), &provision.DeleteRequest{Address: req.Address, Kind: req.Kind, ID: resp.ID}); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Objects("networks")); n != 1 {
		t.Errorf("%d networks after deleting the reusing site, want the original", n)
	}
	if n := len(fake.Objects("security-groups")); n != 1 {
		t.Errorf("%d security groups, want 1", n)
	}
}

// TestUserData: the agent config in the user data is what `hvctl agent`
// loads; a node's own user data rides along as a MIME part; a big
// template is gzipped.
func TestUserData(t *testing.T) {
	fake := newCloud(t)
	c := newCluster(t, fake, "ud", `agent_url = "https://example.org/hvctl"`, "", 0, "m1.small")
	p := c.p
	net, err := p.Create(ctx(t), &provision.CreateRequest{Address: "site.a.network", Kind: provision.KindNetwork, Cluster: "ud",
		ClientToken: "tok-net", Attrs: provision.Attrs{"cidr": "10.8.0.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		attrs provision.Attrs
		check func(t *testing.T, ud string)
	}{
		{"plain", provision.Attrs{}, func(t *testing.T, ud string) {
			if !strings.HasPrefix(ud, "#cloud-config\n") || !strings.Contains(ud, "curl -fsSL") || !strings.Contains(ud, "https://example.org/hvctl") {
				t.Errorf("user data:\n%s", ud)
			}
		}},
		{"own user data", provision.Attrs{"user_data": "#!/bin/sh\necho hi\n"}, func(t *testing.T, ud string) {
			if !strings.Contains(ud, "multipart/mixed") || !strings.Contains(ud, "text/x-shellscript") || !strings.Contains(ud, "echo hi") {
				t.Errorf("user data:\n%s", ud)
			}
		}},
		{"big template", provision.Attrs{"template": strings.Repeat("cluster \"x\" { }\n", 5000)}, func(t *testing.T, ud string) {
			if !strings.HasPrefix(ud, "\x1f\x8b") {
				t.Errorf("user data of %d bytes is not gzipped", len(ud))
			}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			attrs := provision.Attrs{"name": "n", "site": "a", "roles": []string{"worker"}, "cpus": int64(1), "memory_mib": int64(1024),
				"join_token": "SECRET-J", "manager_url": "http://203.0.113.5:51821", "labels": map[string]string{"zone": "a"}}
			for k, v := range tc.attrs {
				attrs[k] = v
			}
			addr := "site.a.node.n" + string(rune('0'+i))
			if _, err := p.Create(ctx(t), &provision.CreateRequest{Address: addr, Kind: provision.KindInstance, Cluster: "ud",
				ClientToken: "tok-" + addr, Attrs: attrs, Deps: map[string]string{"site.a.network": net.ID}}); err != nil {
				t.Fatal(err)
			}
			srv := fake.Servers()[i]
			tc.check(t, srv.UserData)
			if tc.name == "plain" {
				cfg := agentConfigOf(t, srv.UserData)
				if cfg.Address != addr || cfg.Labels["zone"] != "a" || cfg.MemoryMiB != 1024 || cfg.Attrs["manager_url"] != "http://203.0.113.5:51821" {
					t.Errorf("agent config %+v", cfg)
				}
			}
		})
	}
}

// agentConfigOf extracts the agent config that user data writes and
// loads it with the agent's own loader.
func agentConfigOf(t *testing.T, ud string) *agent.Config {
	t.Helper()
	m := regexp.MustCompile(`path: /etc/hvctl/agent.json\n(?:.*\n)*?    content: (\S+)`).FindStringSubmatch(ud)
	if m == nil {
		t.Fatalf("no agent config in user data:\n%s", ud)
	}
	b, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		t.Fatalf("agent.LoadConfig: %v", err)
	}
	return cfg
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

var _ = osfake.New

// TestRefreshByListing: refresh lists the cluster's servers (Nova's list
// filtered by the cluster tag, in pages) and reads only the networks on
// their own; a server deleted outside is missing from the listing and
// confirmed gone by its own read.
func TestRefreshByListing(t *testing.T) {
	workers := 120
	fake := newCloud(t)
	c := newCluster(t, fake, "many", "", "", workers, "m1.small")
	c.mustApply(false)
	st := c.state()
	before := fake.TotalCalls()
	lists := fake.Calls("GET", "/servers/detail")
	p, _, err := c.e.Plan(ctx(t), st, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	calls := fake.TotalCalls() - before
	t.Logf("refresh of %d resources: %d API calls (%d server lists)", len(st.Resources), calls, fake.Calls("GET", "/servers/detail")-lists)
	if p.HasChanges() {
		t.Errorf("no-op plan has changes: %v", actions(p))
	}
	if calls > 10 {
		t.Errorf("refresh of %d resources made %d API calls, want at most 10", len(st.Resources), calls)
	}
	victim := st.Resource("site.cloud.pool.burst.node[7]")
	if !fake.DeleteServer(victim.ID) {
		t.Fatal("no such server")
	}
	p, _, err = c.e.Plan(ctx(t), st, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if a := actions(p); a[victim.Address] != string(provision.ActionCreate) || len(p.Drift) != 1 {
		t.Errorf("after a delete outside: %s is %q, drift %+v", victim.Address, a[victim.Address], p.Drift)
	}
}

// TestListPages: refresh by listing across several pages. Nova caps a
// page at its max_limit (an operator setting, here below the 1,000 the
// provider asks for) and links a full page to the next; the listing
// follows the links until a page has none, finds every server once,
// and costs one list call per page — counted by the fake — plus the
// networks' reads and the login, never a read per server.
func TestListPages(t *testing.T) {
	const workers = 120 // + the hub and the gateway: 122 servers
	tests := []struct {
		maxLimit, pages int
	}{
		{1000, 1},
		{50, 3},  // 50, 50, 22
		{61, 3},  // 61, 61, then an empty page (a full page has a next link)
		{7, 18},  // 17 × 7, then 3
		{122, 2}, // all, then an empty page
	}
	fake := newCloud(t)
	c := newCluster(t, fake, "paged", "", "", workers, "m1.small")
	c.mustApply(false)
	st := c.state()
	servers := 0
	for _, r := range st.Resources {
		if r.Kind == provision.KindInstance {
			servers++
		}
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max_limit %d", tt.maxLimit), func(t *testing.T) {
			fake.SetMaxLimit(tt.maxLimit)
			defer fake.SetMaxLimit(0)
			// The provider's listing, page by page.
			seen := map[string]int{}
			lists := fake.Calls("GET", "/servers/detail")
			token := ""
			for pages := 1; ; pages++ {
				pg, err := c.p.List(ctx(t), &provision.ListRequest{Cluster: "paged", PageToken: token})
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range pg.Items {
					seen[it.ID]++
				}
				if token = pg.NextPageToken; token == "" {
					break
				}
				if pages > 1000 {
					t.Fatal("the listing never ends")
				}
			}
			if got := fake.Calls("GET", "/servers/detail") - lists; got != tt.pages {
				t.Errorf("%d server list calls, want %d", got, tt.pages)
			}
			if len(seen) != servers {
				t.Errorf("listing found %d servers, want %d", len(seen), servers)
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("server %s listed %d times", id, n)
				}
			}
			// A refresh through the engine: no changes, and API calls =
			// the pages plus the few non-server reads, no read per server.
			before, lists := fake.TotalCalls(), fake.Calls("GET", "/servers/detail")
			p, _, err := c.e.Plan(ctx(t), st, provision.PlanOptions{Refresh: true})
			if err != nil {
				t.Fatal(err)
			}
			calls := fake.TotalCalls() - before
			t.Logf("max_limit %d: refresh of %d resources in %d API calls (%d server lists)", tt.maxLimit, len(st.Resources), calls, fake.Calls("GET", "/servers/detail")-lists)
			if p.HasChanges() {
				t.Errorf("no-op plan has changes: %v", actions(p))
			}
			if got := fake.Calls("GET", "/servers/detail") - lists; got != tt.pages {
				t.Errorf("refresh made %d server list calls, want %d", got, tt.pages)
			}
			if calls > tt.pages+10 {
				t.Errorf("refresh made %d API calls, want at most %d pages + 10", calls, tt.pages)
			}
		})
	}
}
