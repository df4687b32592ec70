package pulumiprov

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hvctl/hvctl/provision/sim"
)

const pulumiSimTemplate = `
variable "workers" {
  type    = number
  default = 1
}

provider "sim" "lab" {
  boot_time = "10ms"
}

cluster "pulumi-unit" {
  overlay {
    cidr = "10.210.0.0/16"
    hubs = ["a.hub"]
  }
  site "a" {
    provider = provider.sim.lab
    network { cidr = "192.168.10.0/24" }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance { cpus = 1 }
    }
    pool "wn" {
      count = var.workers
      instance { cpus = 1 }
    }
  }
}

output "workers" {
  value = var.workers
}
`

var pulumiOpts = marshalOpts

func toStruct(t *testing.T, m map[string]any) *structpb.Struct { return pstruct(t, m) }

func simAlive(t *testing.T, dir string) []string {
	t.Helper()
	items, err := sim.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		if it.Kind == "instance" && it.State != "terminated" && it.State != "deleted" {
			out = append(out, it.Address)
		}
	}
	return out
}

// TestEngineOnSim drives the provider's gRPC methods on Engine, the
// real operations of internal/cluster (no Pulumi CLI): create makes the sim machines in
// the work directory's world, a diff without change is empty, a
// changed pool count is an update naming the new node, and delete
// removes every machine. Outputs hold no secret.
func TestEngineOnSim(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "main.hcl")
	os.WriteFile(tmpl, []byte(pulumiSimTemplate), 0o644)
	work := filepath.Join(dir, "work")
	p := New(&Engine{Environ: os.Environ()}, nil, "0.1.0", os.Environ())
	ctx := context.Background()
	urn := "urn:pulumi:dev::proj::hvctl:index:Cluster::lab"
	in := func(workers string) *structpb.Struct {
		return toStruct(t, map[string]any{"template": tmpl, "vars": map[string]any{"workers": workers}, "workDir": work})
	}
	chk, err := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urn, News: in("1")})
	if err != nil || len(chk.Failures) > 0 {
		t.Fatalf("check: %v %v", err, chk.GetFailures())
	}
	cr, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: chk.Inputs})
	if err != nil {
		t.Fatal(err)
	}
	if got := simAlive(t, filepath.Join(work, ".hvctl")); len(got) != 2 {
		t.Fatalf("sim machines after create = %v, want the hub and one worker", got)
	}
	outs, _ := plugin.UnmarshalProperties(cr.Properties, pulumiOpts)
	if cr.Id != "pulumi-unit" || !strings.Contains(outs["hubEndpoint"].StringValue(), ":51820") || len(outs["nodes"].ArrayValue()) != 2 ||
		outs["overlayCidr"].StringValue() != "10.210.0.0/16" || outs["outputs"].ObjectValue()["workers"].NumberValue() != 1 {
		t.Errorf("create: id %q, outputs %v", cr.Id, outs)
	}
	b, _ := os.ReadFile(filepath.Join(work, ".hvctl", "state.json"))
	for k, v := range outs.Mappable() {
		if s, ok := v.(string); ok && len(s) > 20 && strings.Contains(string(b), s) && k != "template" && k != "workDir" && k != "statePath" {
			t.Errorf("output %s carries a state value: %q", k, s)
		}
	}
	if strings.Contains(cr.Properties.String(), "secret") {
		t.Errorf("outputs mention a secret: %s", cr.Properties)
	}

	d, err := p.Diff(ctx, &pulumirpc.DiffRequest{Urn: urn, Id: cr.Id, Olds: cr.Properties, News: chk.Inputs})
	if err != nil || d.Changes != pulumirpc.DiffResponse_DIFF_NONE {
		t.Fatalf("diff without change: %v %v %v", err, d.GetChanges(), d.GetDetailedDiff())
	}
	// The template edited in place: the inputs are the same, the plan
	// is not, so Pulumi is told to update.
	os.WriteFile(tmpl, []byte(strings.Replace(pulumiSimTemplate, "public_ip = true\n      instance { cpus = 1 }", "public_ip = true\n      instance { cpus = 2 }", 1)), 0o644)
	d, err = p.Diff(ctx, &pulumirpc.DiffRequest{Urn: urn, Id: cr.Id, Olds: cr.Properties, News: chk.Inputs})
	if err != nil || d.Changes != pulumirpc.DiffResponse_DIFF_SOME || d.DetailedDiff[`plan["site.a.node.hub"]`].GetKind() != pulumirpc.PropertyDiff_UPDATE {
		t.Fatalf("diff after the template changed: %v %v %v", err, d.GetChanges(), d.GetDetailedDiff())
	}
	os.WriteFile(tmpl, []byte(pulumiSimTemplate), 0o644)
	chk2, _ := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urn, Olds: chk.Inputs, News: in("2")})
	d, err = p.Diff(ctx, &pulumirpc.DiffRequest{Urn: urn, Id: cr.Id, Olds: cr.Properties, News: chk2.Inputs})
	if err != nil || d.Changes != pulumirpc.DiffResponse_DIFF_SOME || len(d.Replaces) > 0 ||
		d.DetailedDiff[`plan["site.a.pool.wn.node[1]"]`].GetKind() != pulumirpc.PropertyDiff_ADD {
		t.Fatalf("diff with 2 workers: %v %v replaces %v %v", err, d.GetChanges(), d.GetReplaces(), d.GetDetailedDiff())
	}
	up, err := p.Update(ctx, &pulumirpc.UpdateRequest{Urn: urn, Id: cr.Id, Olds: cr.Properties, News: chk2.Inputs})
	if err != nil {
		t.Fatal(err)
	}
	if got := simAlive(t, filepath.Join(work, ".hvctl")); len(got) != 3 {
		t.Fatalf("sim machines after update = %v", got)
	}
	rd, err := p.Read(ctx, &pulumirpc.ReadRequest{Urn: urn, Id: cr.Id, Properties: up.Properties, Inputs: chk2.Inputs})
	if err != nil || rd.Id != cr.Id {
		t.Fatalf("read: %v %q", err, rd.GetId())
	}
	if _, err := p.Delete(ctx, &pulumirpc.DeleteRequest{Urn: urn, Id: cr.Id, Properties: up.Properties, OldInputs: chk2.Inputs}); err != nil {
		t.Fatal(err)
	}
	if got := simAlive(t, filepath.Join(work, ".hvctl")); len(got) != 0 {
		t.Fatalf("sim machines after delete = %v", got)
	}
	rd, err = p.Read(ctx, &pulumirpc.ReadRequest{Urn: urn, Id: cr.Id, Properties: up.Properties, Inputs: chk2.Inputs})
	if err != nil || rd.Id != "" {
		t.Fatalf("read after delete: %v %q (want gone)", err, rd.GetId())
	}
}
