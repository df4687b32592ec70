package slurm

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// Mode says who sizes the elastic pools.
type Mode string

const (
	// HvctlMode: hvctl's elastic daemon creates and destroys pool nodes
	// from the queue signals; SLURM's power saving is off.
	HvctlMode Mode = "hvctl"
	// PowerSaveMode: SLURM's power saving does: it runs ResumeProgram
	// for CLOUD nodes it gives work to and SuspendProgram for nodes idle
	// for the cluster's elastic idle_time, never for fixed nodes nor for
	// the last min nodes of an elastic pool.
	PowerSaveMode Mode = "power_save"
)

// Default ports of slurmctld and slurmd.
const (
	DefaultControllerPort = 6817
	DefaultSlurmdPort     = 6818
	DefaultDbdPort        = 6819
)

// suspendTimeout is how long a node has to power off after
// SuspendProgram before SLURM may resume it.
const suspendTimeout = 60 * time.Second

// cloudWeight is the scheduling weight of elastic slots: SLURM fills
// lower weights first, so fixed nodes (weight 1) take work before
// a cloud node does.
const cloudWeight = 100

// ConfInput is what slurm.conf is rendered from.
type ConfInput struct {
	Cluster *templates.Cluster
	// Addrs maps member IDs to overlay addresses: every node Nodes
	// returns, and the controller.
	Addrs map[string]netip.Addr
	// Controller is the member ID of the node running slurmctld (the
	// hub/manager node). It is a compute node only if it has the worker
	// role.
	Controller string
	// ControllerHost is the controller machine's short hostname, which
	// slurmctld checks SlurmctldHost against; "" means
	// NodeName(Controller).
	ControllerHost string

	// Absolute paths. SpoolDir gets "/%n" (one directory per node);
	// slurmd's pid and log files are named after the node too.
	StateDir, SpoolDir, LogDir, PidDir string
	MungeSocket                        string
	// JobCompFile is where jobcomp/filetxt records finished jobs.
	JobCompFile string

	// Ports; 0 means DefaultControllerPort and DefaultSlurmdPort.
	ControllerPort, SlurmdPort int

	// Accounting sends job records to slurmdbd on the controller
	// (accounting_storage/slurmdbd at the controller's overlay address,
	// DbdPort, 0 meaning DefaultDbdPort); it is the template's
	// scheduler.accounting or'ed with this.
	Accounting bool
	DbdPort    int

	// Mode is HvctlMode or PowerSaveMode; "" takes the template's
	// scheduler.elastic_mode (itself "hvctl" by default).
	Mode Mode
	// ResumeProgram and SuspendProgram are required in PowerSaveMode;
	// ResumeFailProgram is optional. Absolute paths on the controller.
	ResumeProgram, SuspendProgram, ResumeFailProgram string
}

// Conf renders slurm.conf for the cluster. The same input always gives
// the same text.
func Conf(in ConfInput) (string, error) {
	c := in.Cluster
	if c == nil {
		return "", errors.New("slurm.conf: no cluster")
	}
	mode := in.Mode
	if mode == "" {
		mode = Mode(c.Scheduler.ElasticMode)
	}
	if mode == "" {
		mode = HvctlMode
	}
	if mode != HvctlMode && mode != PowerSaveMode {
		return "", fmt.Errorf("slurm.conf: unknown elasticity mode %q (want %q or %q)", in.Mode, HvctlMode, PowerSaveMode)
	}
	nodes, err := Nodes(c)
	if err != nil {
		return "", fmt.Errorf("slurm.conf: %w", err)
	}
	if len(nodes) == 0 {
		return "", errors.New("slurm.conf: the cluster has no compute nodes (no pools and no node with the worker role)")
	}
	parts, err := sitePartitions(nodes)
	if err != nil {
		return "", fmt.Errorf("slurm.conf: %w", err)
	}
	if in.Controller == "" {
		return "", errors.New("slurm.conf: no controller member ID")
	}
	ctldName := NodeName(in.Controller)
	if ctldName == "" {
		return "", fmt.Errorf("slurm.conf: controller %s has no usable SLURM node name", in.Controller)
	}
	for _, n := range nodes {
		if n.Name == ctldName && n.MemberID != in.Controller {
			return "", fmt.Errorf("slurm.conf: controller %s and node %s both map to SLURM name %s: rename one", in.Controller, n.MemberID, ctldName)
		}
	}
	ctldAddr, ok := in.Addrs[in.Controller]
	if !ok || !ctldAddr.IsValid() {
		return "", fmt.Errorf("slurm.conf: no overlay address for the controller %s", in.Controller)
	}
	ipv6 := ctldAddr.Unmap().Is6()
	for _, n := range nodes {
		a, ok := in.Addrs[n.MemberID]
		if !ok || !a.IsValid() {
			return "", fmt.Errorf("slurm.conf: no overlay address for node %s (SLURM node %s)", n.MemberID, n.Name)
		}
		ipv6 = ipv6 || a.Unmap().Is6()
	}
	for _, p := range []struct{ what, path string }{
		{"state dir", in.StateDir}, {"spool dir", in.SpoolDir}, {"log dir", in.LogDir},
		{"pid dir", in.PidDir}, {"munge socket", in.MungeSocket}, {"job completion file", in.JobCompFile},
	} {
		if err := checkPath(p.what, p.path); err != nil {
			return "", err
		}
	}
	if strings.Contains(in.MungeSocket, ",") {
		return "", fmt.Errorf("slurm.conf: munge socket %q: no commas allowed", in.MungeSocket)
	}
	ctldPort, slurmdPort := orDefault(in.ControllerPort, DefaultControllerPort), orDefault(in.SlurmdPort, DefaultSlurmdPort)
	for _, p := range []int{ctldPort, slurmdPort} {
		if p < 1 || p > 65535 {
			return "", fmt.Errorf("slurm.conf: port %d out of range", p)
		}
	}
	if ctldPort == slurmdPort {
		return "", fmt.Errorf("slurm.conf: slurmctld and slurmd cannot share port %d", ctldPort)
	}
	accounting := in.Accounting || c.Scheduler.Accounting
	dbdPort := orDefault(in.DbdPort, DefaultDbdPort)
	if accounting {
		if dbdPort < 1 || dbdPort > 65535 {
			return "", fmt.Errorf("slurm.conf: slurmdbd port %d out of range", dbdPort)
		}
		if dbdPort == ctldPort || dbdPort == slurmdPort {
			return "", fmt.Errorf("slurm.conf: slurmdbd cannot share port %d with slurmctld or slurmd", dbdPort)
		}
	}
	gpus := false
	for _, n := range nodes {
		if n.GPUs > 0 {
			gpus = true
			if err := checkGPUType(n); err != nil {
				return "", err
			}
		}
	}
	if mode == PowerSaveMode {
		for _, p := range []struct{ what, path string }{{"ResumeProgram", in.ResumeProgram}, {"SuspendProgram", in.SuspendProgram}} {
			if err := checkPath(p.what, p.path); err != nil {
				return "", err
			}
		}
		if in.ResumeFailProgram != "" {
			if err := checkPath("ResumeFailProgram", in.ResumeFailProgram); err != nil {
				return "", err
			}
		}
	}

	var b strings.Builder
	line := func(k, v string) { b.WriteString(k + "=" + v + "\n") }
	clusterName := ClusterName(c)
	fmt.Fprintf(&b, "# slurm.conf of cluster %s, generated by hvctl (elasticity: %s). Do not edit: hvctl rewrites it.\n", c.Name, mode)
	line("ClusterName", clusterName)
	ctldHost := ctldName
	if in.ControllerHost != "" {
		ctldHost = in.ControllerHost
	}
	line("SlurmctldHost", ctldHost+"("+ctldAddr.String()+")")
	line("SlurmctldPort", strconv.Itoa(ctldPort))
	line("SlurmdPort", strconv.Itoa(slurmdPort))
	line("SlurmUser", "root")
	line("SlurmdUser", "root")
	line("AuthType", "auth/munge")
	line("CredType", "cred/munge")
	line("AuthInfo", "socket="+in.MungeSocket)
	line("MpiDefault", "none")
	line("MailProg", "/bin/true")
	line("ProctrackType", "proctrack/linuxproc")
	line("TaskPlugin", "task/none")
	line("JobAcctGatherType", "jobacct_gather/none")
	if accounting {
		b.WriteString("# Every job is recorded by slurmdbd on the controller (sacct).\n")
		line("AccountingStorageType", "accounting_storage/slurmdbd")
		line("AccountingStorageHost", ctldAddr.String())
		line("AccountingStoragePort", strconv.Itoa(dbdPort))
		b.WriteString("# Clients reach slurmdbd through this munge socket (not AuthInfo's).\n")
		line("AccountingStoragePass", in.MungeSocket)
		if gpus {
			line("AccountingStorageTRES", "gres/gpu")
		}
	} else {
		line("AccountingStorageType", "accounting_storage/none")
	}
	if gpus {
		b.WriteString("# GPUs come from instance.gpus and gpu_type; gres.conf names the devices.\n")
		line("GresTypes", "gpu")
	}
	line("JobCompType", "jobcomp/filetxt")
	line("JobCompLoc", in.JobCompFile)
	line("SchedulerType", "sched/backfill")
	line("SelectType", "select/cons_tres")
	line("SelectTypeParameters", "CR_Core")
	line("ReturnToService", "2")
	// A machine hvctl destroyed is noticed in half a minute, not five.
	line("SlurmdTimeout", "30")
	b.WriteString("# Each node's copy names its own paths.\n")
	line("DebugFlags", "NO_CONF_HASH")
	b.WriteString("# A node with less real memory or CPUs than its template says is not drained.\n")
	line("SlurmdParameters", "config_overrides")
	ctldParams := "cloud_reg_addrs"
	if mode == PowerSaveMode {
		ctldParams += ",idle_on_node_suspend"
	}
	line("SlurmctldParameters", ctldParams)
	b.WriteString("# Nodes talk to slurmctld directly over the overlay, not through each other.\n")
	line("TreeWidth", "65533")
	commParams := "NoAddrCache"
	if ipv6 {
		commParams += ",EnableIPv6"
	}
	line("CommunicationParameters", commParams)
	b.WriteString("# Show powered-down CLOUD nodes in sinfo.\n")
	line("PrivateData", "cloud")
	line("StateSaveLocation", in.StateDir)
	line("SlurmdSpoolDir", path.Join(in.SpoolDir, "%n"))
	line("SlurmctldPidFile", path.Join(in.PidDir, "slurmctld.pid"))
	line("SlurmdPidFile", path.Join(in.PidDir, "slurmd-%n.pid"))
	line("SlurmctldLogFile", path.Join(in.LogDir, "slurmctld.log"))
	line("SlurmdLogFile", path.Join(in.LogDir, "slurmd-%n.log"))
	line("SlurmctldDebug", "info")
	line("SlurmdDebug", "info")

	if mode == PowerSaveMode {
		b.WriteString("\n# Power saving: SLURM resumes CLOUD nodes for work and suspends idle ones.\n")
		line("SuspendTime", strconv.Itoa(seconds(c.Elastic.IdleTime)))
		line("SuspendTimeout", strconv.Itoa(seconds(suspendTimeout)))
		line("ResumeTimeout", strconv.Itoa(seconds(c.Elastic.BootTimeout)))
		line("ResumeRate", "0")
		line("SuspendRate", "0")
		line("ResumeProgram", in.ResumeProgram)
		line("SuspendProgram", in.SuspendProgram)
		if in.ResumeFailProgram != "" {
			line("ResumeFailProgram", in.ResumeFailProgram)
		}
		if exc := suspendExcNodes(c, nodes); exc != "" {
			line("SuspendExcNodes", exc)
		}
	}

	b.WriteString("\n# Compute nodes: pool slots and named workers. Elastic slots are CLOUD nodes.\n")
	for _, n := range nodes {
		f := []string{"NodeName=" + n.Name, "NodeAddr=" + in.Addrs[n.MemberID].String(), "NodeHostname=" + n.Name}
		if n.CPUs > 0 {
			f = append(f, "CPUs="+strconv.Itoa(n.CPUs))
		}
		if n.MemoryMiB > 0 {
			f = append(f, "RealMemory="+strconv.FormatInt(n.MemoryMiB, 10))
		}
		if g := nodeGres(n); g != "" {
			f = append(f, "Gres="+g)
		}
		f = append(f, "Features="+strings.Join(nodeFeatures(n), ","))
		if n.Cloud {
			f = append(f, "Weight="+strconv.Itoa(cloudWeight), "State=CLOUD")
		} else {
			f = append(f, "State=UNKNOWN")
		}
		b.WriteString(strings.Join(f, " ") + "\n")
	}

	b.WriteString("\n# One partition per site (with its sub-sites), and all nodes.\n")
	for _, s := range c.AllSites() {
		p, ok := parts[s.Path]
		if !ok {
			continue
		}
		var names []string
		for _, n := range nodes {
			if within(n.Site, s.Path) {
				names = append(names, n.Name)
			}
		}
		fmt.Fprintf(&b, "PartitionName=%s Nodes=%s MaxTime=INFINITE State=UP\n", p, CompressHostlist(names))
	}
	all := make([]string, len(nodes))
	for i, n := range nodes {
		all[i] = n.Name
	}
	fmt.Fprintf(&b, "PartitionName=%s Nodes=%s Default=YES MaxTime=INFINITE State=UP\n", AllPartition, CompressHostlist(all))
	return b.String(), nil
}

// suspendExcNodes keeps SLURM from powering down fixed nodes, and the
// Min nodes of each elastic pool ("pool-[0-3]:1": any one of them); SLURM
// wants the counted sets first.
func suspendExcNodes(c *templates.Cluster, nodes []Node) string {
	var sets, fixed []string
	for _, s := range c.AllSites() {
		for _, p := range s.Pools {
			if !p.Elastic() || p.Min <= 0 {
				continue
			}
			var names []string
			for _, n := range nodes {
				if n.Pool == p.Path() {
					names = append(names, n.Name)
				}
			}
			sets = append(sets, CompressHostlist(names)+":"+strconv.Itoa(p.Min))
		}
	}
	for _, n := range nodes {
		if !n.Cloud {
			fixed = append(fixed, n.Name)
		}
	}
	if len(fixed) > 0 {
		sets = append(sets, CompressHostlist(fixed))
	}
	return strings.Join(sets, ",")
}

// nodeFeatures are a node's site features, outermost first, then its
// label features by key.
func nodeFeatures(n Node) []string {
	sites := siteAndParents(n.Site)
	var out []string
	for i := len(sites) - 1; i >= 0; i-- {
		out = append(out, SiteFeature(sites[i]))
	}
	keys := make([]string, 0, len(n.Labels))
	for k := range n.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[string]bool{}
	for _, f := range out {
		seen[f] = true
	}
	for _, k := range keys {
		if f := LabelFeature(k, n.Labels[k]); !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// checkPath requires an absolute path that slurm.conf can hold as is.
func checkPath(what, p string) error {
	if p == "" {
		return fmt.Errorf("slurm.conf: no %s", what)
	}
	if !path.IsAbs(p) {
		return fmt.Errorf("slurm.conf: %s %q is not an absolute path", what, p)
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || r == '#' {
			return fmt.Errorf("slurm.conf: %s %q: no spaces, control characters or '#' allowed", what, p)
		}
	}
	return nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// seconds rounds d up to whole seconds, at least 1.
func seconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	if s < 1 {
		return 1
	}
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(s)
}

// nodeGres is a node's Gres value: "gpu:a100:2", "gpu:1", or "".
func nodeGres(n Node) string {
	switch {
	case n.GPUs <= 0:
		return ""
	case n.GPUType != "":
		return "gpu:" + n.GPUType + ":" + strconv.Itoa(n.GPUs)
	default:
		return "gpu:" + strconv.Itoa(n.GPUs)
	}
}

// checkGPUType refuses a gpu_type that a Gres value cannot hold.
func checkGPUType(n Node) error {
	for _, r := range n.GPUType {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("slurm.conf: node %s: gpu_type %q: SLURM GRES types are letters, digits, '_', '-' and '.'", n.MemberID, n.GPUType)
		}
	}
	return nil
}

// GresConf renders gres.conf for the cluster's GPU nodes ("" when it
// has none): autodetection off, each node's GPUs as NVIDIA device files
// /dev/nvidia0 on, nodes of the same kind on one line.
func GresConf(c *templates.Cluster) (string, error) {
	nodes, err := Nodes(c)
	if err != nil {
		return "", fmt.Errorf("gres.conf: %w", err)
	}
	type kind struct {
		typ  string
		gpus int
	}
	var order []kind
	names := map[kind][]string{}
	for _, n := range nodes {
		if n.GPUs <= 0 {
			continue
		}
		if err := checkGPUType(n); err != nil {
			return "", err
		}
		k := kind{n.GPUType, n.GPUs}
		if _, ok := names[k]; !ok {
			order = append(order, k)
		}
		names[k] = append(names[k], n.Name)
	}
	if len(order) == 0 {
		return "", nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# gres.conf of cluster %s, generated by hvctl from instance.gpus and gpu_type. Do not edit.\n", c.Name)
	b.WriteString("AutoDetect=off\n")
	for _, k := range order {
		f := []string{"NodeName=" + CompressHostlist(names[k]), "Name=gpu"}
		if k.typ != "" {
			f = append(f, "Type="+k.typ)
		}
		dev := "/dev/nvidia0"
		if k.gpus > 1 {
			dev = "/dev/nvidia[0-" + strconv.Itoa(k.gpus-1) + "]"
		}
		f = append(f, "File="+dev)
		b.WriteString(strings.Join(f, " ") + "\n")
	}
	return b.String(), nil
}

// DbdInput is what slurmdbd.conf is rendered from.
type DbdInput struct {
	// Host is the controller's short hostname (slurmdbd checks DbdHost
	// against it).
	Host string
	// Port is slurmdbd's port; 0 means DefaultDbdPort.
	Port int
	// Absolute paths of slurmdbd's log and pid files and of munged's
	// socket.
	LogFile, PidFile, MungeSocket string
	// The MariaDB server slurmdbd stores into: TCP on StorageHost
	// (127.0.0.1) and StoragePort, as StorageUser with StoragePass.
	StorageHost string
	StoragePort int
	StorageUser string
	StoragePass string
}

// DbdConf renders slurmdbd.conf. It holds the database password: write
// it mode 0600 (slurmdbd refuses it otherwise).
func DbdConf(in DbdInput) (string, error) {
	if in.Host == "" || strings.ContainsAny(in.Host, " \t\n#=") {
		return "", fmt.Errorf("slurmdbd.conf: host %q is not a hostname", in.Host)
	}
	for _, p := range []struct{ what, path string }{{"log file", in.LogFile}, {"pid file", in.PidFile}, {"munge socket", in.MungeSocket}} {
		if err := checkPath(p.what, p.path); err != nil {
			return "", fmt.Errorf("slurmdbd.conf: %s", strings.TrimPrefix(err.Error(), "slurm.conf: "))
		}
	}
	port := orDefault(in.Port, DefaultDbdPort)
	for _, p := range []int{port, in.StoragePort} {
		if p < 1 || p > 65535 {
			return "", fmt.Errorf("slurmdbd.conf: port %d out of range", p)
		}
	}
	if _, err := netip.ParseAddr(in.StorageHost); err != nil {
		return "", fmt.Errorf("slurmdbd.conf: storage host %q is not an IP address", in.StorageHost)
	}
	for _, v := range []struct{ what, val string }{{"storage user", in.StorageUser}, {"storage password", in.StoragePass}} {
		if v.val == "" {
			return "", fmt.Errorf("slurmdbd.conf: no %s", v.what)
		}
		for _, r := range v.val {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return "", fmt.Errorf("slurmdbd.conf: the %s may hold only letters, digits, '_' and '-'", v.what)
			}
		}
	}
	var b strings.Builder
	line := func(k, v string) { b.WriteString(k + "=" + v + "\n") }
	b.WriteString("# slurmdbd.conf, generated by hvctl. Do not edit: hvctl rewrites it. Mode 0600: it holds the database password.\n")
	line("AuthType", "auth/munge")
	line("AuthInfo", "socket="+in.MungeSocket)
	line("DbdHost", in.Host)
	line("DbdPort", strconv.Itoa(port))
	line("SlurmUser", "root")
	line("DebugLevel", "info")
	line("LogFile", in.LogFile)
	line("PidFile", in.PidFile)
	line("StorageType", "accounting_storage/mysql")
	line("StorageHost", in.StorageHost)
	line("StoragePort", strconv.Itoa(in.StoragePort))
	line("StorageUser", in.StorageUser)
	line("StoragePass", in.StoragePass)
	line("StorageLoc", "slurm_acct_db")
	return b.String(), nil
}

// ClusterName is slurm.conf's ClusterName for c: what sacctmgr registers
// and sacct -M names.
func ClusterName(c *templates.Cluster) string {
	if n := hostname(c.Name); n != "" {
		return n
	}
	return "hvctl"
}
