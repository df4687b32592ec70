package cli_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/local"
	"github.com/hvctl/hvctl/scheduler/agent"
	"github.com/hvctl/hvctl/scheduler/manager"
)

// localStopTemplate: a public hub and a worker on one site, the local
// provider with stop_idle.
const localStopTemplate = `
provider "local" "lab" { stop_idle = true }

cluster "%s" {
  overlay {
    cidr = "10.204.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.81.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" { count = 1 }
  }
}
`

// deviceKey reads the public key of WireGuard device dev in namespace ns
// with wgctrl (kernel or wireguard-go).
func deviceKey(ns, dev string) (wgtypes.Key, error) {
	type result struct {
		key wgtypes.Key
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread goes back to its namespace before it is unlocked;
		// one that cannot is left locked, and ends with the goroutine (a
		// thread left in the node's namespace would have this process
		// killed with the node's processes).
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer func() {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
		}()
		c, err := wgctrl.New()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		d, err := c.Device(dev)
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{key: d.PublicKey}
	}()
	r := <-done
	return r.key, r.err
}

// TestLocalStopStart stops a joined worker through the local provider
// (as the elastic daemon does) and starts it again, with real agents: a
// stop leaves no process and no WireGuard device; after the start the
// agent runs from the same directory, its device has the key it had, it
// rejoins with the credential it kept (its join token was spent at the
// first join, and a token join would have given a new credential), the
// manager gives it the same overlay address, and the hub reaches it.
//
// About 15 s, most of it the manager's FailAfter heartbeats; it shares
// no name with other tests (cluster lstN), so it runs in parallel.
func TestLocalStopStart(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	dir := t.TempDir()
	cluster := fmt.Sprintf("lst%d", rand.IntN(1e6))
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(localStopTemplate, cluster)), 0o644)
	t.Cleanup(func() {
		hv(t, dir, "", "down", "main.hcl")
		local.Cleanup(filepath.Join(dir, ".hvctl"), "")
	})
	if r := hv(t, dir, "", "up", "-join-timeout=90s", "main.hcl"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, agentLogs(dir))
	}
	const worker = "site.onprem.pool.wn.node[0]"
	state := filepath.Join(dir, ".hvctl")
	find := func() local.Item {
		t.Helper()
		items, err := local.List(state)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Address == worker {
				return it
			}
		}
		t.Fatalf("no %s in the local provider's list: %+v", worker, items)
		return local.Item{}
	}
	overlayIP := func() (ip, st string) {
		for _, n := range localStatus(t, dir).Nodes {
			if n.Address == worker {
				return n.OverlayIP, n.State
			}
		}
		return "", ""
	}
	it := find()
	dev := agent.DeviceName(cluster, worker)
	keyFile, err := os.ReadFile(filepath.Join(it.Dir, "wg.key"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := wgtypes.ParseKey(strings.TrimSpace(string(keyFile)))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := deviceKey(it.Netns, dev)
	if err != nil || pub != priv.PublicKey() {
		t.Fatalf("device %s before the stop: key %v (%v), want wg.key's public key %v", dev, pub, err, priv.PublicKey())
	}
	cred, err := os.ReadFile(filepath.Join(it.Dir, "credential"))
	if err != nil {
		t.Fatal(err)
	}
	ip0, _ := overlayIP()
	if ip0 == "" {
		t.Fatalf("status has no overlay address for %s", worker)
	}

	// As the elastic daemon in the hub's manager opens it: the
	// template's settings, hvctl as the agent.
	p := local.Open(&provision.Env{StateDir: state, Cluster: cluster}, local.Settings{StopIdle: true, AgentCommand: []string{hvctl, "agent"}})
	req := &provision.PowerRequest{Address: worker, ID: it.ID}
	start := time.Now()
	if err := p.Stop(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(start)
	if it := find(); it.State != local.StateStopped || it.PID != 0 || !it.NetnsExists {
		t.Errorf("after the stop: %+v, want stopped, no agent, its namespace kept", it)
	}
	if _, err := deviceKey(it.Netns, dev); err == nil {
		t.Errorf("the WireGuard device %s outlived the stop", dev)
	}
	// Stopped long enough for the manager to miss its heartbeats (it
	// calls the node failed, today), as an idle node the daemon stops
	// is.
	var down string
	waitUntil(2*manager.FailAfter*manager.DefaultHeartbeat, func() bool { _, down = overlayIP(); return down == "failed" })

	start = time.Now()
	rr, err := p.Start(t.Context(), req)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, agentLogs(dir))
	}
	startTook := time.Since(start)
	if rr.Attrs["state"] != local.StateRunning || rr.Attrs["private_ip"] != it.PrivateIP {
		t.Errorf("Start = %+v, want running at %s", rr.Attrs, it.PrivateIP)
	}
	// Joined again: status says idle, and the hub reaches its overlay
	// address.
	var ip1 string
	if !waitUntil(60*time.Second, func() bool {
		var st string
		ip1, st = overlayIP()
		if st != "idle" {
			return false
		}
		r := hv(t, dir, "", "exec", "site.onprem.node.frontend", "main.hcl", "--", "ping", "-c", "1", "-W", "1", ip1)
		return r.code == 0
	}) {
		t.Fatalf("%s did not rejoin within 60 s of its start\n%s", worker, agentLogs(dir))
	}
	rejoinTook := time.Since(start)
	t.Logf("stop took %s; status showed the stopped node %s; Start returned after %s; joined and reached over the overlay %s after the start",
		provision.HumanDuration(stopTook), down, provision.HumanDuration(startTook), provision.HumanDuration(rejoinTook))
	if ip1 != ip0 {
		t.Errorf("overlay address %s after the start, was %s", ip1, ip0)
	}
	after := find()
	if pub, err := deviceKey(after.Netns, dev); err != nil || pub != priv.PublicKey() {
		t.Errorf("device %s after the start: key %v (%v), want the kept key %v", dev, pub, err, priv.PublicKey())
	}
	if b, _ := os.ReadFile(filepath.Join(after.Dir, "wg.key")); string(b) != string(keyFile) {
		t.Errorf("wg.key changed across the stop and start")
	}
	if b, _ := os.ReadFile(filepath.Join(after.Dir, "credential")); string(b) != string(cred) {
		t.Errorf("the credential changed: the agent did not rejoin with the one it kept")
	}
	logb, _ := os.ReadFile(filepath.Join(after.Dir, "agent.log"))
	if n := strings.Count(string(logb), "hvctl agent starting"); n != 2 {
		t.Errorf("agent.log shows %d agent starts, want 2:\n%s", n, logb)
	}
	if n := strings.Count(string(logb), "joined as "); n != 2 {
		t.Errorf("agent.log shows %d joins, want 2:\n%s", n, logb)
	}
	if n := strings.Count(string(logb), "wireguard public key "+priv.PublicKey().String()); n != 2 {
		t.Errorf("agent.log shows the kept key %d times, want at both starts:\n%s", n, logb)
	}
}
