package examples

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hvctl/hvctl/provision"
	_ "github.com/hvctl/hvctl/provision/aws"
	"github.com/hvctl/hvctl/provision/aws/awsfake"
	_ "github.com/hvctl/hvctl/provision/openstack"
	"github.com/hvctl/hvctl/provision/openstack/osfake"
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
