package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/hvctl/hvctl/internal/pulumiprov/pulumitest"
	"github.com/hvctl/hvctl/provision/local"
)

// pulumiCluster is hvctl:index:Cluster as an inline program sees it.
type pulumiCluster struct {
	pulumi.CustomResourceState
	HubEndpoint pulumi.StringOutput `pulumi:"hubEndpoint"`
	Nodes       pulumi.ArrayOutput  `pulumi:"nodes"`
	OverlayCidr pulumi.StringOutput `pulumi:"overlayCidr"`
	StatePath   pulumi.StringOutput `pulumi:"statePath"`
}

// pulumiRun is one inline program's settings, changed between updates.
type pulumiRun struct {
	template string
	vars     map[string]string
	workDir  string
}

func (r *pulumiRun) program(ctx *pulumi.Context) error {
	vars := pulumi.StringMap{}
	for k, v := range r.vars {
		vars[k] = pulumi.String(v)
	}
	in := pulumi.Map{"template": pulumi.String(r.template), "vars": vars}
	if r.workDir != "" {
		in["workDir"] = pulumi.String(r.workDir)
	}
	var c pulumiCluster
	if err := ctx.RegisterResource("hvctl:index:Cluster", "lab", in, &c); err != nil {
		return err
	}
	ctx.Export("hubEndpoint", c.HubEndpoint)
	ctx.Export("nodes", c.Nodes)
	ctx.Export("overlayCidr", c.OverlayCidr)
	ctx.Export("statePath", c.StatePath)
	return nil
}

// pulumiStack makes a stack of run's program on a file backend under
// dir, with the plugin (hvctl pulumi install) on PATH and every setting
// that keeps the engine offline.
func pulumiStack(t *testing.T, dir string, run *pulumiRun) auto.Stack {
	t.Helper()
	cli := pulumitest.CLI(t)
	plugins := filepath.Join(dir, "plugins")
	if r := hv(t, dir, "", "pulumi", "install", "-dir", plugins); r.code != 0 {
		t.Fatalf("pulumi install: %s", r.stderr)
	}
	env := pulumitest.Env(dir, plugins)
	for _, k := range pulumitest.OfflineKeys {
		if env[k] == "" {
			t.Fatalf("the engine's environment lacks %s", k)
		}
	}
	if !strings.HasPrefix(env["PULUMI_BACKEND_URL"], "file://") {
		t.Fatalf("backend %s is not a file backend", env["PULUMI_BACKEND_URL"])
	}
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: cli, SkipVersionCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "program")
	os.MkdirAll(prog, 0o755)
	st, err := auto.UpsertStackInlineSource(context.Background(), "dev", "hvctl-e2e", run.program,
		auto.Pulumi(cmd), auto.WorkDir(prog), auto.EnvVars(env), auto.PulumiHome(env["PULUMI_HOME"]))
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	return st
}

// loopbackOnly runs the calling test again inside a new network
// namespace that has only loopback, and reports true when it did (the
// caller returns). Inside it, it checks that no other interface exists.
// Without root the engine's network cannot be cut off: then only the
// environment's offline settings are asserted (pulumiStack).
func loopbackOnly(t *testing.T) bool {
	t.Helper()
	if os.Getenv("HVCTL_PULUMI_NETNS") == "1" {
		ifs, err := net.Interfaces()
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range ifs {
			if i.Name != "lo" {
				t.Fatalf("inside the test's network namespace there is %s besides lo", i.Name)
			}
		}
		return false
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the engine runs with the host's network; its offline settings are asserted instead")
		return false
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Logf("no unshare: the engine runs with the host's network (%v)", err)
		return false
	}
	pulumitest.CLI(t) // built outside, where the module proxy is
	args := []string{"--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, os.Args[0], "-test.run=^" + t.Name() + "$", "-test.v", "-test.count=1"}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), "HVCTL_PULUMI_NETNS=1", "HVCTL_TEST_BINARY="+hvctl)
	out, err := cmd.CombinedOutput()
	t.Logf("in a network namespace with only loopback:\n%s", out)
	if err != nil {
		t.Fatalf("the test failed inside its network namespace: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the test did not pass inside its network namespace")
	}
	return true
}

const pulumiSimE2E = `
variable "workers" {
  type    = number
  default = 1
}

provider "sim" "lab" {
  boot_time = "10ms"
}

cluster "%s" {
  overlay {
    cidr = "10.220.0.0/16"
    hubs = ["onprem.hub"]
  }
  site "onprem" {
    provider = provider.sim.lab
    network { cidr = "192.168.10.0/24" }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance { cpus = 2 }
    }
    pool "wn" {
      count = var.workers
      instance { cpus = 1 }
    }
  }
}
`

// The bad template's error is on line 5.
const pulumiBadTemplate = `provider "sim" "lab" {}

cluster "bad" {
  overlay {
    cidr = "not-a-cidr"
  }
}
`

func nodesOf(t *testing.T, v any) []map[string]any {
	t.Helper()
	b, _ := json.Marshal(v)
	var nodes []map[string]any
	if err := json.Unmarshal(b, &nodes); err != nil {
		t.Fatalf("nodes output %s: %v", b, err)
	}
	return nodes
}

// TestPulumiAutomationSim: through the Automation API, the built Pulumi
// CLI and a file backend (in a network namespace with only loopback
// when root): up creates the sim nodes (hvctl sim list) and the outputs
// carry the hub endpoint and the nodes; a preview after no change shows
// none; a changed pool count is an update, applied; a bad template
// fails up naming its file and line; destroy removes every node.
func TestPulumiAutomationSim(t *testing.T) {
	if loopbackOnly(t) {
		return
	}
	ctx := context.Background()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "cluster", "main.hcl")
	os.MkdirAll(filepath.Dir(tmpl), 0o755)
	os.WriteFile(tmpl, []byte(fmt.Sprintf(pulumiSimE2E, fmt.Sprintf("pulumi%d", rand.IntN(1e6)))), 0o644)
	bad := filepath.Join(dir, "cluster", "bad.hcl")
	os.WriteFile(bad, []byte(pulumiBadTemplate), 0o644)
	// No workDir: the default is under the directory the engine starts
	// the plugin in, this process's working directory.
	t.Chdir(dir)
	work := filepath.Join(dir, ".hvctl-pulumi", "dev", "lab")
	run := &pulumiRun{template: tmpl, vars: map[string]string{"workers": "1"}}
	st := pulumiStack(t, dir, run)
	simCount := func() int {
		n := 0
		for _, it := range simList(t, work) {
			if it.Kind == "instance" && it.State != "terminated" && it.State != "deleted" {
				n++
			}
		}
		return n
	}
	t.Cleanup(func() { hv(t, work, "", "down", "-state", filepath.Join(work, ".hvctl", "state.json"), tmpl) })

	start := time.Now()
	up, err := st.Up(ctx)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Logf("first up took %s", time.Since(start).Round(time.Millisecond))
	if n := simCount(); n != 2 {
		t.Fatalf("sim list shows %d machines after up, want 2 (hub and one worker)", n)
	}
	if ep, _ := up.Outputs["hubEndpoint"].Value.(string); !strings.HasSuffix(ep, ":51820") {
		t.Errorf("hubEndpoint output = %q", ep)
	}
	nodes := nodesOf(t, up.Outputs["nodes"].Value)
	if len(nodes) != 2 || nodes[0]["address"] != "site.onprem.node.hub" || nodes[1]["pool"] != "onprem.wn" {
		t.Errorf("nodes output = %v", nodes)
	}
	if sp, _ := up.Outputs["statePath"].Value.(string); sp != filepath.Join(work, ".hvctl", "state.json") {
		t.Errorf("statePath = %q", sp)
	}
	// Nothing secret reached Pulumi: the stack's checkpoint has no
	// value of the state's cluster data.
	state := loadState(t, work)
	export, err := st.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var cd map[string]any
	if err := json.Unmarshal(state.Data["cluster"], &cd); err != nil || cd["secret"] == "" {
		t.Fatalf("the hvctl state has no cluster secret: %v", err)
	}
	for _, k := range []string{"secret", "ca_key"} {
		v, _ := cd[k].(string)
		if v == "" {
			t.Fatalf("the state's cluster data has no %s", k)
		}
		if len(v) > 64 {
			v = v[len(v)/2 : len(v)/2+32] // a piece of the PEM body
		}
		if strings.Contains(string(export.Deployment), v) {
			t.Errorf("the Pulumi checkpoint holds the cluster's %s", k)
		}
	}

	pv, err := st.Preview(ctx, optpreview.ExpectNoChanges())
	if err != nil {
		t.Fatalf("preview after no change: %v", err)
	}
	if pv.ChangeSummary[apitype.OpSame] == 0 || pv.ChangeSummary[apitype.OpUpdate] != 0 || pv.ChangeSummary[apitype.OpCreate] != 0 {
		t.Errorf("preview after no change: %v", pv.ChangeSummary)
	}

	run.vars["workers"] = "3"
	pv, err = st.Preview(ctx, optpreview.Diff())
	if err != nil {
		t.Fatalf("preview with 3 workers: %v", err)
	}
	if pv.ChangeSummary[apitype.OpUpdate] != 1 || !strings.Contains(pv.StdOut, "site.onprem.pool.wn.node[2]") {
		t.Errorf("preview with 3 workers: %v\n%s", pv.ChangeSummary, pv.StdOut)
	}
	t.Logf("preview with 3 workers:\n%s", pv.StdOut)
	up, err = st.Up(ctx, optup.Diff())
	if err != nil {
		t.Fatalf("up with 3 workers: %v", err)
	}
	if n := simCount(); n != 4 || len(nodesOf(t, up.Outputs["nodes"].Value)) != 4 {
		t.Fatalf("after the update: %d sim machines, nodes output %v", n, up.Outputs["nodes"].Value)
	}

	// pulumi refresh reads the cluster back (Read): nothing changes.
	if rf, err := st.Refresh(ctx); err != nil || rf.Summary.ResourceChanges == nil || (*rf.Summary.ResourceChanges)["update"] != 0 {
		t.Errorf("refresh: %v %v", err, rf.Summary.ResourceChanges)
	}

	run.template = bad
	_, err = st.Up(ctx)
	if err == nil {
		t.Fatal("up of a bad template succeeded")
	}
	t.Logf("up of the bad template: %v", err)
	if !strings.Contains(err.Error(), "bad.hcl:5,") {
		t.Errorf("the error does not name bad.hcl line 5:\n%v", err)
	}
	if n := simCount(); n != 4 {
		t.Errorf("a failed check changed the cluster: %d sim machines", n)
	}
	run.template = tmpl

	if _, err := st.Destroy(ctx, optdestroy.Remove()); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if n := simCount(); n != 0 {
		t.Fatalf("sim list shows %d machines after destroy", n)
	}
}

const pulumiLocalE2E = `
provider "local" "lab" {}

cluster "%s" {
  overlay {
    cidr = "10.221.0.0/16"
    hubs = ["onprem.hub"]
  }
  site "onprem" {
    provider = provider.local.lab
    network { cidr = "192.168.60.0/24" }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "wn" { count = 1 }
  }
  site "cloud" {
    provider = provider.local.lab
    tier     = 1
    network { cidr = "10.61.0.0/24" }
    pool "w" { count = 1 }
  }
}
`

// TestPulumiAutomationLocal (root): a Pulumi-declared cluster on the
// local provider: after up its nodes ping each other over the overlay
// (the overlay addresses from the stack's nodes output); destroy leaves
// no node.
func TestPulumiAutomationLocal(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	cluster := fmt.Sprintf("pul%d", rand.IntN(1e5))
	tmpl := filepath.Join(dir, "main.hcl")
	os.WriteFile(tmpl, []byte(fmt.Sprintf(pulumiLocalE2E, cluster)), 0o644)
	work := filepath.Join(dir, "work")
	statePath := filepath.Join(work, ".hvctl", "state.json")
	st := pulumiStack(t, dir, &pulumiRun{template: tmpl, workDir: work})
	t.Cleanup(func() {
		hv(t, dir, "", "down", "-state", statePath, tmpl)
		local.Cleanup(filepath.Join(work, ".hvctl"), "")
	})
	up, err := st.Up(ctx)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, agentLogs(work))
	}
	nodes := nodesOf(t, up.Outputs["nodes"].Value)
	if len(nodes) != 3 {
		t.Fatalf("nodes output = %v, want 3 nodes", nodes)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, from := range nodes {
		for _, to := range nodes {
			ip, _ := to["overlayIp"].(string)
			if from["address"] == to["address"] {
				continue
			}
			if ip == "" {
				t.Fatalf("%s has no overlay address in the outputs: %v", to["address"], to)
			}
			for {
				r := hv(t, dir, "", "exec", "-state", statePath, from["address"].(string), tmpl, "--", "ping", "-c", "1", "-W", "2", ip)
				if r.code == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s cannot reach %s (%s) over the overlay:\n%s%s", from["address"], to["address"], ip, r.stdout, r.stderr)
					break
				}
			}
		}
	}
	if _, err := st.Destroy(ctx, optdestroy.Remove()); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if got := loadState(t, work); len(got.Resources) != 0 {
		t.Errorf("the state still holds %d resources after destroy", len(got.Resources))
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), cluster) {
		t.Errorf("namespaces of %s are left after destroy:\n%s", cluster, out)
	}
}

// TestPulumiSchemaWithCLI: the Pulumi CLI reads the provider's schema
// from the installed plugin (get-schema prints the golden document) and
// binds it (package info lists the resource, its inputs and outputs),
// as gen-sdk does before it hands the package to a language plugin.
func TestPulumiSchemaWithCLI(t *testing.T) {
	cli := pulumitest.CLI(t)
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if r := hv(t, dir, "", "pulumi", "install", "-dir", plugins); r.code != 0 {
		t.Fatalf("pulumi install: %s", r.stderr)
	}
	run := func(args ...string) string {
		cmd := exec.Command(filepath.Join(cli, "bin", "pulumi"), args...)
		for k, v := range pulumitest.Env(dir, plugins) {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pulumi %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	plugin := filepath.Join(plugins, "pulumi-resource-hvctl")
	got := run("package", "get-schema", plugin)
	want, err := os.ReadFile(filepath.Join("..", "pulumiprov", "testdata", "schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The golden is made with version 0.1.0; the plugin reports hvctl's.
	var g, w map[string]any
	if json.Unmarshal([]byte(got), &g) != nil || json.Unmarshal(want, &w) != nil || g["version"] == "" {
		t.Fatalf("get-schema printed no schema:\n%s", got)
	}
	delete(g, "version")
	delete(w, "version")
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("get-schema differs from the golden schema:\n%s", got)
	}
	info := run("package", "info", plugin)
	for _, s := range []string{"Resource: hvctl:index:Cluster", "template (string*)", "hubEndpoint (string*)", "nodes (Array<hvctl:index:Node>*)"} {
		if !strings.Contains(info, s) {
			t.Errorf("package info lacks %q:\n%s", s, info)
		}
	}
}
