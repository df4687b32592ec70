package agent

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler"
	"github.com/hvctl/hvctl/scheduler/manager"
	"github.com/hvctl/hvctl/scheduler/slurm"
	"github.com/hvctl/hvctl/templates"
)

// dirMark stands for a node's own SLURM directory in the slurm.conf the
// hub hands out: the files live in each node's directory (on the local
// provider many nodes share a filesystem).
const dirMark = "/@HVCTL_SLURM_DIR@"

// pubMark stands for a node's public SLURM directory
// (provision.PublicDir): what users other than root need to reach, the
// munge socket, the spool directory (slurmstepd runs their job scripts
// from it) and a copy of slurm.conf. The node's own directory may sit
// under directories only root may enter.
const pubMark = "/@HVCTL_SLURM_PUB@"

// notProvisioned is the drain reason of elastic slots that have no
// machine (hvctl elastic mode): SLURM must not give them work.
const notProvisioned = "hvctl: not provisioned"

// slurmHub is the hub's SLURM side: slurm.conf for every member, the
// munge key, and the queue signals read from squeue and sinfo.
type slurmHub struct {
	cluster    *templates.Cluster
	nodes      []slurm.Node
	byMember   map[string]slurm.Node
	controller string // member ID running slurmctld
	conf       string // with dirMark
	gres       string // gres.conf, "" without GPU nodes
	key        []byte
	idle       slurm.IdleTracker
	confPath   func() string // the hub's own slurm.conf, once written

	mu sync.Mutex
	// drained are the slots the control loop drained as not provisioned
	// and has not resumed: the queue signals leave them out (to the
	// elastic daemon they are booting, not down).
	drained map[string]bool
}

func (h *slurmHub) isDrained(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.drained[name]
}

func (h *slurmHub) setDrained(names []string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.drained == nil {
		h.drained = map[string]bool{}
	}
	for _, n := range names {
		if on {
			h.drained[n] = true
		} else {
			delete(h.drained, n)
		}
	}
}

// mungeKey derives the cluster's munge key from its secret: every node
// that joins gets it, over TLS, with its SLURM setup.
func mungeKey(secret manager.Secret) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, "hvctl munge key", 1024)
}

// slurmReserve lists the member IDs whose overlay addresses slurm.conf
// names: hubs first (they keep the lowest addresses), the controller,
// then every compute node slot.
func slurmReserve(c *templates.Cluster, controller string, nodes []slurm.Node) []string {
	out := append([]string(nil), c.Overlay.Hubs...)
	out = append(out, controller)
	for _, n := range nodes {
		out = append(out, n.MemberID)
	}
	seen := map[string]bool{}
	uniq := out[:0]
	for _, id := range out {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	return uniq
}

// newSlurmHub prepares the SLURM side of a hub; the manager's addresses
// must include every reserved ID.
func newSlurmHub(c *templates.Cluster, secret manager.Secret) (*slurmHub, error) {
	nodes, err := slurm.Nodes(c)
	if err != nil {
		return nil, err
	}
	mn := provision.ManagerNode(c)
	if mn == nil {
		return nil, errors.New("slurm: the cluster has no manager node to run slurmctld")
	}
	key, err := mungeKey(secret)
	if err != nil {
		return nil, err
	}
	h := &slurmHub{cluster: c, nodes: nodes, byMember: map[string]slurm.Node{}, controller: manager.MemberID(provision.NodeAddress(mn)), key: key}
	for _, n := range nodes {
		h.byMember[n.MemberID] = n
	}
	return h, nil
}

// render writes slurm.conf from the reserved addresses.
func (h *slurmHub) render(addrs map[string]netip.Addr) error {
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	mode := slurm.HvctlMode
	if h.cluster.Scheduler.ElasticMode == "power_save" {
		mode = slurm.PowerSaveMode
	}
	conf, err := slurm.Conf(slurm.ConfInput{Cluster: h.cluster, Addrs: addrs, Controller: h.controller, ControllerHost: host,
		StateDir: dirMark + "/state", SpoolDir: pubMark + "/spool", LogDir: dirMark + "/log", PidDir: dirMark + "/run",
		MungeSocket: pubMark + "/munge/munge.socket", JobCompFile: dirMark + "/log/jobcomp.log", Mode: mode,
		ResumeProgram: dirMark + "/bin/resume", SuspendProgram: dirMark + "/bin/suspend", ResumeFailProgram: dirMark + "/bin/resume-fail"})
	if err != nil {
		return err
	}
	gres, err := slurm.GresConf(h.cluster)
	if err != nil {
		return err
	}
	h.conf, h.gres = conf, gres
	return nil
}

// drain drains a node for a pending power-off, or resumes it
// (manager.Config.Drain).
func (h *slurmHub) drain(id string, on bool) error {
	n, ok := h.byMember[id]
	if !ok {
		return fmt.Errorf("%s is not a SLURM node of the cluster", id)
	}
	conf := h.confPath()
	if conf == "" {
		return errors.New("slurmctld is not running yet")
	}
	args := []string{"update", "nodename=" + n.Name, "state=resume"}
	if on {
		args = []string{"update", "nodename=" + n.Name, "state=drain", "reason=hvctl: powering off"}
	}
	_, err := slurmCmd(conf, "scontrol", args...)
	return err
}

// setup is a member's SLURM setup (manager.Config.Slurm).
func (h *slurmHub) setup(id string) *manager.SlurmSetup {
	s := &manager.SlurmSetup{Conf: h.conf, MungeKey: h.key, Controller: id == h.controller, Gres: h.gres}
	if s.Controller && h.cluster.Scheduler.Accounting {
		s.Accounting, s.ClusterName = true, slurm.ClusterName(h.cluster)
	}
	if n, ok := h.byMember[id]; ok {
		s.NodeName = n.Name
	}
	return s
}

// signals reads squeue and sinfo (manager.Config.Signals).
func (h *slurmHub) signals() (scheduler.Signals, error) {
	conf := h.confPath()
	if conf == "" {
		return scheduler.Signals{}, errors.New("slurmctld is not running yet")
	}
	now := time.Now()
	pend, err := slurmCmd(conf, "squeue", slurm.SqueuePendingArgs...)
	if err != nil {
		return scheduler.Signals{}, err
	}
	run, err := slurmCmd(conf, "squeue", slurm.SqueueRunningArgs...)
	if err != nil {
		return scheduler.Signals{}, err
	}
	info, err := slurmCmd(conf, "sinfo", slurm.SinfoArgs...)
	if err != nil {
		return scheduler.Signals{}, err
	}
	r := slurm.Reading{Time: now}
	if r.Pending, err = slurm.ParsePending(pend, time.Local); err != nil {
		return scheduler.Signals{}, err
	}
	if r.Running, err = slurm.ParseRunning(run); err != nil {
		return scheduler.Signals{}, err
	}
	if r.Nodes, err = slurm.ParseNodes(info); err != nil {
		return scheduler.Signals{}, err
	}
	kept := r.Nodes[:0]
	for _, n := range r.Nodes {
		if !h.isDrained(n.Name) {
			kept = append(kept, n)
		}
	}
	r.Nodes = kept
	return slurm.Signals(r, h.nodes, &h.idle), nil
}

// slurmCmd runs a SLURM client command against conf.
func slurmCmd(conf, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+conf, slurm.TimeFormatEnv)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// slurmNode runs SLURM's daemons on this node: munged everywhere,
// slurmctld on the controller, slurmd on compute nodes. Their files are
// under DIR/slurm; they run in the node's network namespace, so the
// node's deletion stops them.
type slurmNode struct {
	a     *Agent
	setup *manager.SlurmSetup
	dir   string
	conf  string
	mu    sync.Mutex
	pids  []string // pid files of what was started, to stop
	short string   // the link to dir (provision.ShortDir)
	pub   string   // the public directory (provision.PublicDir)
}

// slurmConfPath is this node's slurm.conf once SLURM runs, else "".
func (a *Agent) slurmConfPath() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.slurm == nil {
		return ""
	}
	return a.slurm.conf
}

func (a *Agent) startSlurm(ctx context.Context, s *manager.SlurmSetup) (*slurmNode, error) {
	dir := filepath.Join(a.cfg.Dir, "slurm")
	n := &slurmNode{a: a, setup: s, dir: dir, conf: filepath.Join(dir, "slurm.conf")}
	for _, d := range []string{"munge", "state", "spool", "log", "run", "bin"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if err := provision.WriteFileAtomic(filepath.Join(dir, "munge", "munge.key"), s.MungeKey); err != nil {
		return nil, err
	}
	os.Chmod(filepath.Join(dir, "munge", "munge.key"), 0o400)
	// SLURM's paths go through a short link: slurmstepd makes unix
	// sockets under the spool directory, and the node's own directory
	// can be too deep for them (108 bytes).
	short := provision.ShortDir(a.cfg.Dir)
	if err := provision.MakeShortRoot(); err != nil {
		return nil, err
	}
	if cur, err := os.Readlink(short); err != nil || cur != dir {
		os.Remove(short)
		if err := os.Symlink(dir, short); err != nil {
			return nil, err
		}
	}
	n.short = short
	pub := provision.PublicDir(a.cfg.Dir)
	n.pub = pub
	for _, d := range []string{"", "munge", "spool"} {
		if err := os.MkdirAll(filepath.Join(pub, d), 0o755); err != nil {
			return nil, err
		}
		os.Chmod(filepath.Join(pub, d), 0o755)
	}
	conf := strings.ReplaceAll(strings.ReplaceAll(s.Conf, dirMark, short), pubMark, pub)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// Clients (sbatch, squeue, sacct) of any user read the public copy.
	pubConf := filepath.Join(pub, "slurm.conf")
	if err := provision.WriteFileAtomic(pubConf, []byte(conf)); err != nil {
		return nil, err
	}
	os.Chmod(pubConf, 0o644)
	if s.Gres != "" {
		if err := os.WriteFile(filepath.Join(dir, "gres.conf"), []byte(s.Gres), 0o644); err != nil {
			return nil, err
		}
	}
	// `hvctl exec` on this node gets SLURM_CONF (see node.env).
	if err := os.WriteFile(filepath.Join(a.cfg.Dir, "node.env"), []byte("SLURM_CONF="+pubConf+"\n"), 0o644); err != nil {
		return nil, err
	}
	sock := filepath.Join(pub, "munge", "munge.socket")
	if err := n.daemon(ctx, filepath.Join(dir, "munge", "munged.pid"), "munged", "--force", "--socket="+sock,
		"--key-file="+filepath.Join(dir, "munge", "munge.key"), "--pid-file="+filepath.Join(dir, "munge", "munged.pid"),
		"--seed-file="+filepath.Join(dir, "munge", "munged.seed"), "--log-file="+filepath.Join(dir, "log", "munged.log")); err != nil {
		return nil, err
	}
	if err := waitFile(ctx, sock, 10*time.Second); err != nil {
		return nil, fmt.Errorf("munged: %w (log %s)", err, filepath.Join(dir, "log", "munged.log"))
	}
	if s.Controller {
		if err := n.writePowerPrograms(); err != nil {
			return nil, err
		}
		if s.Accounting {
			if err := n.startAccounting(ctx); err != nil {
				return nil, fmt.Errorf("accounting: %w", err)
			}
		}
		if err := n.daemon(ctx, filepath.Join(dir, "run", "slurmctld.pid"), "slurmctld", "-f", n.conf); err != nil {
			return nil, err
		}
	}
	if s.NodeName != "" {
		if err := n.daemon(ctx, filepath.Join(dir, "run", "slurmd-"+s.NodeName+".pid"), "slurmd", "-f", n.conf, "-N", s.NodeName); err != nil {
			return nil, err
		}
	}
	a.log.Printf("slurm: started (node %q, controller %v), SLURM_CONF=%s", s.NodeName, s.Controller, n.conf)
	return n, nil
}

// daemon starts a self-daemonizing SLURM or munge program unless its pid
// file names a live process (an agent restart finds them running).
func (n *slurmNode) daemon(ctx context.Context, pidFile, name string, args ...string) error {
	n.mu.Lock()
	n.pids = append(n.pids, pidFile)
	n.mu.Unlock()
	if pid := readPid(pidFile); pid > 0 && syscall.Kill(pid, 0) == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+n.conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("start %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	if err := waitFile(ctx, pidFile, 15*time.Second); err != nil {
		return fmt.Errorf("start %s: %w (logs in %s)", name, err, filepath.Join(n.dir, "log"))
	}
	return nil
}

// stop stops what daemon started, newest first.
func (n *slurmNode) stop() {
	n.mu.Lock()
	pids := append([]string(nil), n.pids...)
	n.mu.Unlock()
	for i := len(pids) - 1; i >= 0; i-- {
		pid := readPid(pids[i])
		if pid <= 0 {
			continue
		}
		syscall.Kill(pid, syscall.SIGTERM)
		for j := 0; j < 50 && syscall.Kill(pid, 0) == nil; j++ {
			time.Sleep(100 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if n.short != "" {
		os.Remove(n.short)
	}
	if n.pub != "" {
		os.RemoveAll(n.pub)
	}
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func waitFile(ctx context.Context, path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if st, err := os.Stat(path); err == nil && (st.Mode()&os.ModeSocket != 0 || st.Size() > 0) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s", path, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writePowerPrograms writes SLURM's ResumeProgram, SuspendProgram and
// ResumeFailProgram: hvctl slurm resume|suspend run where hvctl runs,
// against the cluster's state (power_save mode; needs the provider to
// share the host, provision.HostLocal).
func (n *slurmNode) writePowerPrograms() error {
	h := n.a.hostCommand()
	for _, p := range []struct{ file, verb string }{{"resume", "resume"}, {"suspend", "suspend"}, {"resume-fail", "suspend"}} {
		// slurmctld runs these with next to no environment.
		script := "#!/bin/sh\n# Written by hvctl agent: SLURM power saving asks hvctl for nodes.\n" +
			"PATH=" + shellQuote(os.Getenv("PATH")+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") + "\nexport PATH\n"
		if h == nil {
			script += "echo \"hvctl: this cluster's manager cannot run hvctl (its provider does not share the host); run: hvctl slurm " + p.verb + " TEMPLATE $*\" >&2\nexit 1\n"
		} else {
			argv := h.Command([]string{"slurm", p.verb}, "-reason", p.file)
			script += "cd " + shellQuote(h.Dir) + " || exit 1\nexec"
			for _, a := range argv {
				script += " " + shellQuote(a)
			}
			script += " \"$@\" >>" + shellQuote(filepath.Join(n.dir, "log", "power.log")) + " 2>&1\n"
		}
		if err := os.WriteFile(filepath.Join(n.dir, "bin", p.file), []byte(script), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// releaseLaunchFailures releases the jobs SLURM held after a failed
// launch: a power_save node that missed ResumeTimeout is marked down and
// made again (ResumeFailProgram), but the jobs it was given stay held
// ("launch failed requeued held") and no node would ever run them. Each
// is released at most slurm.MaxLaunchReleases times (released counts).
func (n *slurmNode) releaseLaunchFailures(released map[string]int) {
	out, err := slurmCmd(n.conf, "squeue", slurm.SqueuePendingArgs...)
	if err != nil {
		return // the sinfo below logs an unreachable controller
	}
	pend, err := slurm.ParsePending(out, time.Local)
	if err != nil {
		n.a.log.Printf("slurm control: %v", err)
		return
	}
	release, giveUp := slurm.ToRelease(pend, released)
	for _, id := range giveUp {
		n.a.log.Printf("slurm control: job %s was held after a failed launch %d times; left held (release it with: scontrol release %s)", id, slurm.MaxLaunchReleases+1, id)
	}
	if len(release) == 0 {
		return
	}
	if _, err := slurmCmd(n.conf, "scontrol", "release", strings.Join(release, ",")); err != nil {
		n.a.log.Printf("slurm control: release %v: %v", release, err)
		return
	}
	n.a.log.Printf("slurm control: released %v, held by SLURM after a failed launch (a node that did not come up in ResumeTimeout); their nodes are made again", release)
}

// controlLoop keeps SLURM's view of the elastic slots true to the
// cluster (on the controller):
//   - jobs SLURM held after a failed launch are released (at most
//     slurm.MaxLaunchReleases times each);
//   - hvctl mode: a slot with no joined machine is drained ("hvctl: not
//     provisioned") so SLURM gives it no work; once its machine joins it
//     is resumed;
//   - both modes: a node SLURM shows down or not responding while its
//     machine is joined and answering through the overlay is resumed,
//     not power-cycled (paper 003's vnode-5 loop).
func (n *slurmNode) controlLoop(ctx context.Context, hub *slurmHub) {
	hvctlMode := hub.cluster.Scheduler.ElasticMode != "power_save"
	first := true
	released := map[string]int{}
	for {
		n.releaseLaunchFailures(released)
		joined := map[string]bool{}
		for _, m := range n.a.mgr.Nodes() {
			if m.State == manager.StateJoined {
				joined[m.ID] = true
			}
		}
		out, err := slurmCmd(n.conf, "sinfo", slurm.SinfoArgs...)
		infos, perr := slurm.ParseNodes(out)
		if err != nil || perr != nil {
			n.a.log.Printf("slurm control: %v", errors.Join(err, perr))
		}
		state := map[string]slurm.NodeInfo{}
		for _, in := range infos {
			state[in.Name] = in
		}
		var drain, resume []string
		for _, sn := range hub.nodes {
			in, seen := state[sn.Name]
			switch {
			case hvctlMode && sn.Cloud && !joined[sn.MemberID]:
				if first || !hub.isDrained(sn.Name) {
					drain = append(drain, sn.Name)
				}
			case hvctlMode && sn.Cloud && hub.isDrained(sn.Name):
				resume = append(resume, sn.Name)
			case seen && joined[sn.MemberID] && in.Flags&(slurm.Down|slurm.NotResponding) != 0 && in.Flags&slurm.PoweredDown == 0:
				n.a.log.Printf("slurm control: reconcile %s: SLURM shows it %s while its machine is joined: resume it, not power-cycle it", sn.Name, in.State)
				resume = append(resume, sn.Name)
			}
		}
		if len(drain) > 0 {
			sort.Strings(drain)
			if _, err := slurmCmd(n.conf, "scontrol", "update", "nodename="+slurm.CompressHostlist(drain), "state=drain", "reason="+notProvisioned); err != nil {
				n.a.log.Printf("slurm control: drain %v: %v", drain, err)
			} else {
				hub.setDrained(drain, true)
				first = false
			}
		}
		if len(resume) > 0 {
			sort.Strings(resume)
			if _, err := slurmCmd(n.conf, "scontrol", "update", "nodename="+slurm.CompressHostlist(resume), "state=resume"); err != nil {
				n.a.log.Printf("slurm control: resume %v: %v", resume, err)
			} else {
				n.a.log.Printf("slurm control: resumed %v", resume)
				hub.setDrained(resume, false)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}
