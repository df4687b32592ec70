package slurm

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/templates"
)

// labConf is the input the golden files are rendered from.
func labConf(t *testing.T, mode Mode) ConfInput {
	c := load(t, labTemplate)
	in := ConfInput{
		Cluster:     c,
		Addrs:       overlayAddrs(t, c, "onprem.frontend"),
		Controller:  "onprem.frontend",
		StateDir:    "/var/lib/hvctl/slurm/state",
		SpoolDir:    "/var/lib/hvctl/slurm/spool",
		LogDir:      "/var/log/hvctl/slurm",
		PidDir:      "/run/hvctl/slurm",
		MungeSocket: "/run/hvctl/munge/munge.socket",
		JobCompFile: "/var/log/hvctl/slurm/jobcomp.txt",
		Mode:        mode,
	}
	if mode == PowerSaveMode {
		in.ResumeProgram = "/usr/libexec/hvctl/slurm-resume"
		in.SuspendProgram = "/usr/libexec/hvctl/slurm-suspend"
		in.ResumeFailProgram = "/usr/libexec/hvctl/slurm-resume-fail"
	}
	return in
}

func TestConfGolden(t *testing.T) {
	for _, mode := range []Mode{HvctlMode, PowerSaveMode} {
		t.Run(string(mode), func(t *testing.T) {
			in := labConf(t, mode)
			got, err := Conf(in)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "lab-"+string(mode)+".conf", []byte(got))
			// Map order must not leak into the text.
			for i := 0; i < 20; i++ {
				again, err := Conf(labConf(t, mode))
				if err != nil || again != got {
					t.Fatalf("second render differs (err %v)", err)
				}
			}
		})
	}
}

func TestConfOptions(t *testing.T) {
	in := labConf(t, HvctlMode)
	in.ControllerPort, in.SlurmdPort = 16817, 16818
	in.Addrs["onprem.login"] = netip.MustParseAddr("fd00::10")
	got, err := Conf(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"SlurmctldPort=16817\n", "SlurmdPort=16818\n",
		"CommunicationParameters=NoAddrCache,EnableIPv6\n",
		"NodeName=onprem-login NodeAddr=fd00::10 ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("conf lacks %q", want)
		}
	}
	for _, unwanted := range []string{"SuspendTime", "ResumeProgram", "idle_on_node_suspend"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("hvctl mode conf has %s", unwanted)
		}
	}
}

func TestConfErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string // template; "" is labTemplate
		change func(*ConfInput)
		want   string
	}{
		{"node without address", "", func(in *ConfInput) { delete(in.Addrs, "cloud.burst[2]") },
			"no overlay address for node cloud.burst[2] (SLURM node cloud-burst-2)"},
		{"controller without address", "", func(in *ConfInput) { delete(in.Addrs, "onprem.frontend") },
			"no overlay address for the controller onprem.frontend"},
		{"no controller", "", func(in *ConfInput) { in.Controller = "" }, "no controller"},
		{"controller named like a node", "", func(in *ConfInput) {
			in.Controller = "onprem.wn-1"
			in.Addrs["onprem.wn-1"] = netip.MustParseAddr("10.200.0.2")
		}, "controller onprem.wn-1 and node onprem.wn[1] both map to SLURM name onprem-wn-1"},
		{"unknown mode", "", func(in *ConfInput) { in.Mode = "autoscale" }, `unknown elasticity mode "autoscale"`},
		{"power save without programs", "", func(in *ConfInput) { in.Mode = PowerSaveMode }, "no ResumeProgram"},
		{"relative path", "", func(in *ConfInput) { in.LogDir = "log" }, `log dir "log" is not an absolute path`},
		{"space in path", "", func(in *ConfInput) { in.StateDir = "/var/lib/my state" }, "no spaces"},
		{"comma in munge socket", "", func(in *ConfInput) { in.MungeSocket = "/run/a,b" }, "no commas"},
		{"shared port", "", func(in *ConfInput) { in.ControllerPort, in.SlurmdPort = 7000, 7000 }, "cannot share port 7000"},
		{"port out of range", "", func(in *ConfInput) { in.SlurmdPort = 70000 }, "port 70000 out of range"},
		{"dbd port shared", "", func(in *ConfInput) { in.Accounting, in.DbdPort = true, 6817 }, "slurmdbd cannot share port 6817"},
		{"bad gpu type", strings.Replace(labTemplate, `gpu_type = "a100"`, `gpu_type = "a100 x"`, 1), nil,
			`node cloud.zone-a.gpu[0]: gpu_type "a100 x": SLURM GRES types are letters`},
		{"no cluster", "", func(in *ConfInput) { in.Cluster = nil }, "no cluster"},
		{"site named all", strings.Replace(labTemplate, `site "cloud" {`, `site "all" {`, 1), nil,
			`site all cannot have a SLURM partition: its name "all" is reserved`},
		{"partition collision", strings.Replace(labTemplate, `site "zone-a" {`, `site "zone-a" {
      network {
        cidr = "10.4.4.0/24"
      }
      node "x" {}
    }
    site "zone_a" {`, 1), nil, "sites cloud.zone-a and cloud.zone_a both map to SLURM partition cloud-zone-a"},
		{"node name collision", strings.Replace(labTemplate, `node "login" {`, `node "wn-0" {}
    node "login" {`, 1), nil, "members onprem.wn-0 and onprem.wn[0] both map to SLURM node name onprem-wn-0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := labConf(t, HvctlMode)
			if tt.src != "" {
				in.Cluster = load(t, tt.src)
				in.Addrs = overlayAddrsLenient(t, in.Cluster, in.Controller)
			}
			if tt.change != nil {
				tt.change(&in)
			}
			_, err := Conf(in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestConfNoComputeNodes(t *testing.T) {
	src := `
cluster "tiny" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["s.hub"]
  }
  site "s" {
    provider = "local"
    network {
      cidr = "192.168.1.0/24"
    }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
  }
}
`
	c := load(t, src)
	in := labConf(t, HvctlMode)
	in.Cluster, in.Controller = c, "s.hub"
	in.Addrs = map[string]netip.Addr{"s.hub": netip.MustParseAddr("10.200.0.1")}
	if _, err := Conf(in); err == nil || !strings.Contains(err.Error(), "no compute nodes") {
		t.Errorf("error %v, want no compute nodes", err)
	}
}

// overlayAddrsLenient is overlayAddrs, or only the controller's address
// for a template that Nodes rejects.
func overlayAddrsLenient(t *testing.T, c *templates.Cluster, controller string) map[string]netip.Addr {
	if _, err := Nodes(c); err != nil {
		return map[string]netip.Addr{controller: netip.MustParseAddr("10.200.0.1")}
	}
	return overlayAddrs(t, c, controller)
}

func TestConfModeFromTemplate(t *testing.T) {
	src := strings.Replace(labTemplate, `type = "slurm"`, `type         = "slurm"
    elastic_mode = "power_save"`, 1)
	in := labConf(t, PowerSaveMode)
	in.Cluster, in.Mode = load(t, src), ""
	got, err := Conf(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Conf(labConf(t, PowerSaveMode))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("elastic_mode = \"power_save\" in the template gives another conf than Mode: PowerSaveMode:\n%s", got)
	}
}

// TestConfAccountingGolden: accounting = true and GPU nodes (typed and
// untyped) give slurmdbd lines, GresTypes and Gres; gres.conf and
// slurmdbd.conf have golden files too.
func TestConfAccountingGolden(t *testing.T) {
	src := strings.Replace(labTemplate, `type = "slurm"`, `type       = "slurm"
    accounting = true`, 1)
	src = strings.Replace(src, `node "login" {
      instance {
        cpus   = 4`, `node "login" {
      instance {
        gpus   = 2
        cpus   = 4`, 1)
	c := load(t, src)
	in := labConf(t, HvctlMode)
	in.Cluster = c
	got, err := Conf(in)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "lab-accounting.conf", []byte(got))
	for _, want := range []string{
		"AccountingStorageType=accounting_storage/slurmdbd\n", "AccountingStorageHost=10.200.0.1\n",
		"AccountingStoragePort=6819\n", "AccountingStorageTRES=gres/gpu\n", "GresTypes=gpu\n",
		" Gres=gpu:2 ", " Gres=gpu:a100:1 ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("conf lacks %q", want)
		}
	}
	gres, err := GresConf(c)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "lab-gres.conf", []byte(gres))
	dbd, err := DbdConf(DbdInput{Host: "frontend", LogFile: "/var/log/hvctl/slurm/slurmdbd.log", PidFile: "/run/hvctl/slurm/slurmdbd.pid",
		MungeSocket: "/run/hvctl/munge/munge.socket", StorageHost: "127.0.0.1", StoragePort: 6833, StorageUser: "slurm", StoragePass: "0123abcd"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "slurmdbd.conf", []byte(dbd))
}

func TestConfNoAccountingNoGPUs(t *testing.T) {
	src := strings.Replace(labTemplate, `gpus     = 1`, `gpus     = 0`, 1)
	c := load(t, src)
	in := labConf(t, HvctlMode)
	in.Cluster = c
	got, err := Conf(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, unwanted := range []string{"slurmdbd", "Gres", "AccountingStorageHost"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("conf without accounting and GPUs has %s", unwanted)
		}
	}
	if !strings.Contains(got, "AccountingStorageType=accounting_storage/none\n") {
		t.Error("conf lacks accounting_storage/none")
	}
	if g, err := GresConf(c); err != nil || g != "" {
		t.Errorf("GresConf = %q, %v; want empty", g, err)
	}
}

func TestDbdConfErrors(t *testing.T) {
	ok := DbdInput{Host: "frontend", LogFile: "/l/dbd.log", PidFile: "/r/dbd.pid", MungeSocket: "/r/munge.socket",
		StorageHost: "127.0.0.1", StoragePort: 6833, StorageUser: "slurm", StoragePass: "pw"}
	tests := []struct {
		name   string
		change func(*DbdInput)
		want   string
	}{
		{"no host", func(in *DbdInput) { in.Host = "" }, `host "" is not a hostname`},
		{"relative log", func(in *DbdInput) { in.LogFile = "dbd.log" }, `slurmdbd.conf: log file "dbd.log" is not an absolute path`},
		{"no munge socket", func(in *DbdInput) { in.MungeSocket = "" }, "no munge socket"},
		{"bad port", func(in *DbdInput) { in.StoragePort = 0 }, "port 0 out of range"},
		{"storage host name", func(in *DbdInput) { in.StorageHost = "db.example" }, `storage host "db.example" is not an IP address`},
		{"no password", func(in *DbdInput) { in.StoragePass = "" }, "no storage password"},
		{"password with newline", func(in *DbdInput) { in.StoragePass = "a\nStorageLoc=x" }, "storage password may hold only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ok
			tt.change(&in)
			_, err := DbdConf(in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := DbdConf(ok); err != nil {
		t.Errorf("valid input: %v", err)
	}
}
