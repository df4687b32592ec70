package local

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// run runs a command and returns its stdout; a failure quotes the
// command and its stderr.
func run(ctx context.Context, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.String(), fmt.Errorf("local: %s %s: %s", name, strings.Join(args, " "), msg)
	}
	return out.String(), nil
}

// ip runs `ip [-n ns] args...`; ns "" is the root namespace.
func ip(ctx context.Context, ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, err := run(ctx, nil, "ip", args...)
	return err
}

// netnsExists reports whether the named namespace exists.
func netnsExists(name string) bool {
	if name == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// linkExists reports whether link name exists in namespace ns ("" root).
func linkExists(ns, name string) bool {
	if ns == "" {
		_, err := net.InterfaceByName(name)
		return err == nil
	}
	if !netnsExists(ns) {
		return false
	}
	return ip(context.Background(), ns, "link", "show", "dev", name) == nil
}

// addNetns creates a namespace unless it exists, with lo up and IPv4
// forwarding on.
func addNetns(ctx context.Context, name string) error {
	if !netnsExists(name) {
		if err := ip(ctx, "", "netns", "add", name); err != nil && !netnsExists(name) {
			return err
		}
	}
	if err := ip(ctx, name, "link", "set", "lo", "up"); err != nil {
		return err
	}
	return writeSysctlIn(name, "net/ipv4/ip_forward", "1")
}

// delNetns deletes a namespace; one already gone is fine.
func delNetns(ctx context.Context, name string) error {
	if !netnsExists(name) {
		return nil
	}
	if err := ip(ctx, "", "netns", "del", name); err != nil && netnsExists(name) {
		return err
	}
	return nil
}

// delLink deletes a link in ns; one already gone (or whose namespace is
// gone) is fine.
func delLink(ctx context.Context, ns, name string) error {
	if !linkExists(ns, name) {
		return nil
	}
	if err := ip(ctx, ns, "link", "del", "dev", name); err != nil && linkExists(ns, name) {
		return err
	}
	return nil
}

// ensureVeth makes a veth pair aName (in aNS) — bName (in bNS), unless
// both ends exist; a lone end left by a crash is replaced.
func ensureVeth(ctx context.Context, aNS, aName, bNS, bName string) error {
	aOK, bOK := linkExists(aNS, aName), linkExists(bNS, bName)
	if aOK && bOK {
		return nil
	}
	if aOK {
		if err := delLink(ctx, aNS, aName); err != nil {
			return err
		}
	}
	if bOK {
		if err := delLink(ctx, bNS, bName); err != nil {
			return err
		}
	}
	return ip(ctx, aNS, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", bNS)
}

// ensureBridge makes a bridge in ns unless it exists, with a fixed MAC
// address of its own. A Linux bridge without one takes the lowest MAC of
// its ports and changes it as ports come and go: a node that resolved its
// gateway early keeps sending to the old MAC (frames for another host,
// flooded, never routed) until its ARP entry goes stale, 20-30 s. With
// br_netfilter on, the router's conntrack also tracked those flooded
// frames as switched, without a NAT binding, and the node's later routed
// packets of the same flow left untranslated: the wedged-NAT bug
// (docs/overlay.md).
func ensureBridge(ctx context.Context, ns, name string) error {
	if linkExists(ns, name) {
		return nil
	}
	var mac [6]byte
	if _, err := cryptorand.Read(mac[:]); err != nil {
		return err
	}
	mac[0] = mac[0]&0xfe | 0x02 // unicast, locally administered
	return ip(ctx, ns, "link", "add", name, "address", net.HardwareAddr(mac[:]).String(), "type", "bridge")
}

// writeSysctlIn writes /proc/sys/KEY as seen from inside namespace ns,
// on a locked OS thread that enters ns and leaves it again (a thread that
// cannot leave is discarded).
func writeSysctlIn(ns, key, value string) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("local: sysctl %s in %s: %w", key, ns, err)
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("local: sysctl %s in %s: %w", key, ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("local: sysctl %s in %s: enter: %w", key, ns, err)
			return
		}
		werr := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			done <- errors.Join(werr, fmt.Errorf("local: leave namespace %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		if werr != nil {
			werr = fmt.Errorf("local: sysctl %s=%s in %s: %w", key, value, ns, werr)
		}
		done <- werr
	}()
	return <-done
}

// bridgeNetfilterOff keeps the site bridge of router namespace ns a plain
// switch: with br_netfilter loaded (Docker loads it, and some kernels
// build it in), bridge-nf-call-iptables is 1 in every new namespace, and
// frames switched between two ports of the bridge go through the router's
// conntrack and NAT hooks. A switched packet then leaves a conntrack entry
// without a NAT binding; when the same flow later leaves through wan0 (a
// reply, routed), it matches that entry and goes out untranslated, from
// the node's private address: the wedged-NAT bug (docs/overlay.md). A real
// NAT router never sees what its LAN switch carries. Nothing to do when
// br_netfilter is not loaded (the keys do not exist).
func bridgeNetfilterOff(ns string) error {
	for _, key := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		if err := writeSysctlIn(ns, "net/bridge/"+key, "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// readSysctlIn reads /proc/sys/KEY inside ns (for tests and checks).
func readSysctlIn(ctx context.Context, ns, key string) (string, error) {
	out, err := run(ctx, nil, "ip", "netns", "exec", ns, "cat", filepath.Join("/proc/sys", key))
	return strings.TrimSpace(out), err
}

// nftIn loads an nft script inside ns.
func nftIn(ctx context.Context, ns, script string) error {
	_, err := run(ctx, []byte(script), "ip", "netns", "exec", ns, "nft", "-f", "-")
	return err
}

// netnsPIDs lists the processes living in namespace ns.
func netnsPIDs(ctx context.Context, ns string) []int {
	if !netnsExists(ns) {
		return nil
	}
	out, err := run(ctx, nil, "ip", "netns", "pids", ns)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if n, err := strconv.Atoi(f); err == nil && n != os.Getpid() {
			pids = append(pids, n)
		}
	}
	return pids
}

// procStat returns a process's start time and state letter.
func procStat(pid int) (start uint64, state byte, err error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, 0, err
	}
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	// The kernel shows starttime in the reader's time namespace: one
	// made by a node's agent (a boot time of its own, bootNow) reads
	// another process's start its boottime offset earlier than the host
	// does. Recorded and compared as the host sees it, a start is the
	// same whoever reads it (the elastic daemon runs in the hub's).
	return uint64(int64(start) - bootOffsetTicks()), f[0][0], err
}

// userHZ is the unit of /proc/PID/stat's times (USER_HZ: 100 on every
// architecture Linux supports today).
const userHZ = 100

// bootOffsetTicks is this process's time namespace boottime offset in
// USER_HZ ticks (/proc/self/timens_offsets); 0 in the host's namespace
// or on a kernel without time namespaces.
var bootOffsetTicks = sync.OnceValue(func() int64 {
	b, err := os.ReadFile("/proc/self/timens_offsets")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "boottime" {
			secs, err1 := strconv.ParseInt(f[1], 10, 64)
			nanos, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 == nil && err2 == nil {
				return secs*userHZ + nanos/(1e9/userHZ)
			}
		}
	}
	return 0
})

// statFields are the fields of /proc/PID/stat after the command name
// (which may hold spaces and parentheses): f[0] is field 3.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// alive reports whether p is still the same, running (not zombie)
// process.
func (p *proc) alive() bool {
	if p == nil || p.PID <= 0 {
		return false
	}
	start, state, err := procStat(p.PID)
	return err == nil && start == p.Start && state != 'Z' && state != 'X'
}

// killGrace is how long a process gets between SIGTERM and SIGKILL.
var killGrace = 3 * time.Second

// signalGroup sends sig to p's process group (p was started as a
// session leader) and to p itself, unless the pid now belongs to another
// process that leads its own group (then p's group is gone). It reports
// whether anything received the signal.
func (p *proc) signalGroup(sig syscall.Signal) bool {
	if p == nil || p.PID <= 0 {
		return false
	}
	start, _, err := procStat(p.PID)
	if err == nil && start != p.Start {
		if pgid, e := syscall.Getpgid(p.PID); e == nil && pgid == p.PID {
			return false
		}
	}
	got := syscall.Kill(-p.PID, sig) == nil
	if err == nil && start == p.Start {
		got = syscall.Kill(p.PID, sig) == nil || got
	}
	return got
}

// running reports whether p or a member of its group still runs.
func (p *proc) running() bool { return p.alive() || p.signalGroup(0) }

// stop ends p and its process group: SIGTERM, then SIGKILL after
// killGrace. A process that is gone (or whose pid now belongs to
// another process) is left alone.
func (p *proc) stop() {
	if !p.signalGroup(syscall.SIGTERM) {
		return
	}
	deadline := time.Now().Add(killGrace)
	for time.Now().Before(deadline) {
		if !p.alive() {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	p.signalGroup(syscall.SIGKILL)
	for i := 0; i < 200 && p.alive(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// killNetnsProcs SIGKILLs whatever still runs in namespace ns (strays of
// a crashed start, commands run with Exec) and waits for them to go.
// With spareOwn it leaves this process's own children alone: a start
// kills strays of an earlier hvctl, never the ip command another
// operation of this apply runs in the namespace at that moment (a
// nested site's network routes itself on every public node, including
// one whose agent is being started: that ip was killed, and the
// network's create failed, in TestGeneratedClusters).
func killNetnsProcs(ctx context.Context, ns string, spareOwn bool) {
	self := os.Getpid()
	for range 50 {
		var pids []int
		for _, pid := range netnsPIDs(ctx, ns) {
			if spareOwn && ParentPID(pid) == self {
				continue
			}
			pids = append(pids, pid)
		}
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ParentPID is pid's parent (field 4 of /proc/PID/stat), 0 if unknown.
func ParentPID(pid int) int {
	f, err := statFields(pid)
	if err != nil || len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// removeAll removes a directory tree; a missing one is fine.
func removeAll(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// globalLock serializes, across every hvctl process on the machine, the
// choice of root-namespace names and public ranges. It is an abstract
// unix socket: nothing on disk, released by the kernel when the process
// dies.
func globalLock(ctx context.Context) (unlock func(), err error) {
	for {
		l, err := net.Listen("unix", "@hvctl-local-provider-lock")
		if err == nil {
			return func() { l.Close() }, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("local: global lock: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
