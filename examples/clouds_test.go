package examples

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/provision"
	_ "github.com/hvctl/hvctl/provision/aws"
	"github.com/hvctl/hvctl/provision/aws/awsfake"
	_ "github.com/hvctl/hvctl/provision/openstack"
	"github.com/hvctl/hvctl/provision/openstack/osfake"
	_ "github.com/hvctl/hvctl/provision/static"
	"github.com/hvctl/hvctl/provision/static/statictest"
	"github.com/hvctl/hvctl/templates"
)

// TestBurstExamplePlansAgainstFakes: the AWS + OpenStack burst example
// validates, its providers accept their settings against the fake EC2
// endpoint and the fake OpenStack cloud (through clouds.yaml), and the plan
// creates both sites.
func TestBurstExamplePlansAgainstFakes(t *testing.T) {
	ec2 := awsfake.New()
	defer ec2.Close()
	os1 := osfake.New()
	defer os1.Close()
	dir := t.TempDir()
	clouds := filepath.Join(dir, "clouds.yaml")
	if err := os.WriteFile(clouds, []byte(os1.CloudsYAML("fake")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OS_CLIENT_CONFIG_FILE", clouds)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDHVCTLTEST0000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "hvctl-test-secret-key")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	cfg, d := templates.Load("aws-openstack-burst.hcl", templates.LoadOptions{Args: []templates.VarArg{
		{Name: "aws_endpoint", Value: ec2.URL}, {Name: "os_cloud", Value: "fake"}}})
	if d.HasErrors() {
		t.Fatal(d)
	}
	store := &provision.Store{Path: filepath.Join(dir, "state.json")}
	eng, d := provision.NewEngine(cfg, store)
	if d.HasErrors() {
		t.Fatalf("providers rejected their settings: %v", d)
	}
	st, _ := store.Load()
	plan, _, err := eng.Plan(context.Background(), st, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, c := range plan.Changes {
		if c.Action != provision.ActionCreate {
			t.Errorf("%s: %s, want create", c.Address, c.Action)
		}
		types[c.Type]++
	}
	if types["aws_network"] == 0 || types["aws_instance"] == 0 || types["openstack_network"] == 0 || types["openstack_instance"] == 0 {
		t.Errorf("plan types = %v, want networks and instances on both clouds", types)
	}
	// A missing clouds.yaml entry is a diagnostic at plan time.
	cfg2, _ := templates.Load("aws-openstack-burst.hcl", templates.LoadOptions{Args: []templates.VarArg{
		{Name: "aws_endpoint", Value: ec2.URL}, {Name: "os_cloud", Value: "nope"}}})
	if _, d := provision.NewEngine(cfg2, store); !d.HasErrors() {
		t.Errorf("an unknown clouds.yaml entry was accepted")
	}
}

// TestStaticBurstExamplePlans: the on-prem static + AWS example plans
// against the fake EC2 endpoint, with a key and known_hosts of the
// test's; the static sites' nodes are made on the hosts the template
// names, and nothing connects to them at plan time.
func TestStaticBurstExamplePlans(t *testing.T) {
	ec2 := awsfake.New()
	defer ec2.Close()
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDHVCTLTEST0000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "hvctl-test-secret-key")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, key := statictest.NewKey(t)
	keyPath, known := filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts")
	os.WriteFile(keyPath, key, 0o600)
	os.WriteFile(known, nil, 0o600)
	cfg, d := templates.Load("onprem-static-burst.hcl", templates.LoadOptions{Args: []templates.VarArg{
		{Name: "aws_endpoint", Value: ec2.URL}, {Name: "ssh_key", Value: keyPath}, {Name: "known_hosts", Value: known}}})
	if d.HasErrors() {
		t.Fatal(d)
	}
	store := &provision.Store{Path: filepath.Join(dir, "state.json")}
	eng, d := provision.NewEngine(cfg, store)
	if d.HasErrors() {
		t.Fatalf("providers rejected their settings: %v", d)
	}
	st, _ := store.Load()
	plan, _, err := eng.Plan(context.Background(), st, provision.PlanOptions{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]string{}
	for _, c := range plan.Changes {
		if c.Type == "static_instance" {
			hosts[c.Address], _ = c.After["host"].(string)
		}
	}
	want := map[string]string{"site.onprem.node.head": "198.51.100.10", "site.onprem.pool.wn.node[0]": "192.168.10.11", "site.onprem.pool.wn.node[1]": "192.168.10.12"}
	if fmt.Sprint(hosts) != fmt.Sprint(want) {
		t.Errorf("static nodes and hosts = %v, want %v", hosts, want)
	}
	if out, _ := json.Marshal(plan); strings.Contains(string(out), "PRIVATE KEY") || !strings.Contains(string(out), "198.51.100.10") {
		t.Error("the plan holds the private key")
	}
}
