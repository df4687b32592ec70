package local

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

func init() { provision.Register("local", New) }

// Settings are a local provider block's settings, defaults filled in.
type Settings struct {
	// BootTime is how long a node stays "pending" after Create before
	// its agent starts.
	BootTime time.Duration // boot_time, default 0s
	// BootFailRate is the probability that a node fails to boot: its
	// agent is never started and WaitReady reports the failure, as a
	// cloud reports an instance that never comes up. For testing the
	// elastic daemon's replace-and-hold rules on real namespaces.
	BootFailRate float64 // boot_fail_rate, 0..1, default 0
	// OutsideInterfaces are interfaces of this machine (its network
	// namespace) whose networks the cluster's internet reaches and is
	// reached from: the machine routes between them and the internet
	// bridge, and nowhere else. It is how a local cloud site meets
	// machines that are not the provider's (a static site on a lab
	// bridge, a real LAN). Taken when the cluster's internet is made.
	OutsideInterfaces []string // outside_interfaces
	// StopIdle lets the elastic daemon stop an idle node instead of
	// destroying it (provision.Stopper): its agent and everything it
	// started end, as at a power-off, and its directory (agent.json, the
	// WireGuard key, the credential), namespace, links and addresses
	// stay; a start runs the agent again from that directory.
	StopIdle bool // stop_idle, default false
	// AgentCommand is the node agent's command line; the provider
	// appends "-config PATH". Empty means the package's AgentCommand,
	// and when that is empty too, this executable with "agent".
	AgentCommand []string
}

// AgentCommand, when not empty, is the agent command of providers whose
// Settings leave it empty (those New makes from a template). Tests and
// tools set it before applying.
var AgentCommand []string

// Capability bits of /proc/self/status CapEff.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// checkPrivileges reports why this process cannot build namespaces, or
// nil. Tests replace it.
var checkPrivileges = func() error {
	if os.Geteuid() == 0 {
		return nil
	}
	caps, err := effectiveCaps()
	if err == nil && caps&(1<<capNetAdmin) != 0 && caps&(1<<capSysAdmin) != 0 {
		return nil
	}
	return fmt.Errorf("running as uid %d without CAP_NET_ADMIN and CAP_SYS_ADMIN", os.Geteuid())
}

// lookPath finds the tools the provider runs; tests replace it.
var lookPath = exec.LookPath

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}

// New is the local provider's provision.Factory: it checks cfg's
// settings and that this process may build network namespaces.
func New(cfg *templates.Provider, env *provision.Env) (provision.Provider, hcl.Diagnostics) {
	s, diags := ParseSettings(cfg)
	diags = append(diags, Preflight(cfg)...)
	if !diags.HasErrors() {
		diags = append(diags, checkOutsideExist(cfg, s)...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return Open(env, s), diags
}

// Preflight checks the privileges and tools the local provider needs;
// each problem is an error diagnostic on the provider block.
func Preflight(cfg *templates.Provider) hcl.Diagnostics {
	var diags hcl.Diagnostics
	r := cfg.DeclRange
	if err := checkPrivileges(); err != nil {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "The local provider needs root",
			Detail: fmt.Sprintf("The local provider (%s) builds sites and nodes out of Linux network namespaces, "+
				"bridges and nftables rules, so it needs root or CAP_NET_ADMIN (with CAP_SYS_ADMIN for the namespaces); "+
				"this hvctl is %v. Run hvctl as root (sudo), or use the unprivileged simulated cloud instead: "+
				"set provider = \"sim\" on the sites (or declare provider \"sim\" \"NAME\" { boot_time = \"2s\" }).", cfg.Ref(), err),
			Subject: &r,
		})
		return diags
	}
	for _, tool := range []struct{ bin, pkg string }{{"ip", "iproute2"}, {"nft", "nftables"}, {"nsenter", "util-linux"}} {
		if _, err := lookPath(tool.bin); err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "The local provider needs " + tool.bin,
				Detail:   fmt.Sprintf("The local provider runs %q, which is not on PATH; install it (Debian/Ubuntu: apt-get install %s), or use provider = \"sim\".", tool.bin, tool.pkg),
				Subject:  &r,
			})
		}
	}
	return diags
}

// ParseSettings checks a local provider block. Each bad value is an error
// diagnostic whose Subject is that argument's source range.
func ParseSettings(cfg *templates.Provider) (Settings, hcl.Diagnostics) {
	var s Settings
	schema := provision.Schema{Provider: "local", Settings: []provision.Setting{
		{Name: "boot_time", Into: &s.BootTime, Must: `must be a duration like "5s"`},
		{Name: "boot_fail_rate", Into: &s.BootFailRate, Valid: provision.Between(0, 1), Must: "must be a probability from 0 to 1, like 0.2"},
		{Name: "outside_interfaces", Into: &s.OutsideInterfaces, Check: checkOutside,
			Must: `must be a list of interface names of this machine, like ["br-lab"]`},
		{Name: "stop_idle", Into: &s.StopIdle, Must: "must be true or false"},
	}}
	return s, schema.Decode(cfg)
}

// checkOutside checks outside_interfaces' names (Setting.Check).
func checkOutside(v any) string {
	seen := map[string]bool{}
	for _, n := range v.([]string) {
		switch {
		case !validIfName(n):
			return fmt.Sprintf("outside_interfaces: %q is not an interface name (1 to 15 characters, no spaces, \"/\" or \":\"); ip link lists this machine's interfaces.", n)
		case n == "lo":
			return `outside_interfaces: "lo" is the loopback interface, not a network: name the interface (a bridge, a NIC) the outside machines are on.`
		case strings.HasPrefix(n, "hv"):
			return fmt.Sprintf("outside_interfaces: %q is named like hvctl's own links (hv...), which the local provider makes and removes itself: name an interface it does not make.", n)
		case seen[n]:
			return fmt.Sprintf("outside_interfaces: %q is listed twice.", n)
		}
		seen[n] = true
	}
	return ""
}

// validIfName reports whether n is a Linux interface name.
func validIfName(n string) bool {
	if n == "" || len(n) > 15 || n == "." || n == ".." {
		return false
	}
	return !strings.ContainsAny(n, "/: \t\n")
}

// checkOutsideExist reports, as diagnostics on the setting, the
// outside_interfaces this machine does not have.
func checkOutsideExist(cfg *templates.Provider, s Settings) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, n := range s.OutsideInterfaces {
		if _, err := net.InterfaceByName(n); err != nil {
			diags = append(diags, provision.SettingError(cfg, "outside_interfaces", "No such interface",
				fmt.Sprintf("outside_interfaces names %q, which this machine does not have (ip link lists its interfaces): make it first (the bridge or NIC the outside machines are on), or leave it out.", n)))
		}
	}
	return diags
}

// agentCommand is the command line a provider with settings s starts.
func (s Settings) agentCommand() ([]string, error) {
	if len(s.AgentCommand) > 0 {
		return append([]string(nil), s.AgentCommand...), nil
	}
	if len(AgentCommand) > 0 {
		return append([]string(nil), AgentCommand...), nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("local: find the hvctl executable for the node agent: %w", err)
	}
	return []string{exe, "agent"}, nil
}
