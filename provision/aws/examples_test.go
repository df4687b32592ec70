package aws

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

// TestExamplesPlan plans the repository's AWS examples against the fake:
// their aws provider blocks pass the provider's own checks, and the CI
// example's plan creates what its comment promises.
func TestExamplesPlan(t *testing.T) {
	tests := []struct {
		file string
		adds int // resources on AWS the first plan creates
	}{
		{"ci-ephemeral.hcl", 4},        // network, hub, 2 workers
		{"aws-openstack-burst.hcl", 2}, // network, router (burst starts at 0)
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			fake := newFake(t)
			path := filepath.Join("..", "..", "examples", tt.file)
			cfg, d := templates.Load(path, templates.LoadOptions{Args: []templates.VarArg{{Name: "aws_endpoint", Value: fake.URL}}})
			if d.HasErrors() {
				t.Fatalf("load: %v", d)
			}
			var awsCfg *templates.Provider
			for _, pc := range cfg.Providers {
				if pc.Type == "aws" {
					awsCfg = pc
				}
			}
			if awsCfg == nil {
				t.Fatal("no aws provider block")
			}
			s, d := ParseSettings(awsCfg)
			if d.HasErrors() || s.Endpoint != fake.URL {
				t.Fatalf("settings %+v: %v", s, d)
			}
			if tt.file == "aws-openstack-burst.hcl" && !s.StopIdle {
				t.Errorf("the burst example's stop_idle did not reach the aws settings: %+v", s)
			}
			// Only the aws provider: the OpenStack site is planned by the
			// openstack package's tests.
			e, _ := provision.NewEngine(nil, &provision.Store{Path: filepath.Join(t.TempDir(), "state.json")})
			e.Config = cfg
			p, pd := New(awsCfg, &provision.Env{StateDir: t.TempDir(), Cluster: cfg.Cluster.Name})
			if pd.HasErrors() {
				t.Fatal(pd)
			}
			e.AddProvider(awsCfg.Ref(), p)
			st, _ := e.Store.Load()
			g, err := provision.BuildGraph(cfg.Cluster, st)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range g.Resources {
				if r.Provider.Type == "aws" {
					n++
				}
			}
			if n != tt.adds {
				t.Errorf("%d aws resources, want %d", n, tt.adds)
			}
			if tt.file != "ci-ephemeral.hcl" {
				return
			}
			// The CI cluster, up and down.
			e.Prepare = prepare(cfg)
			plan, st, err := e.Plan(context.Background(), st, provision.PlanOptions{Refresh: true})
			if err != nil {
				t.Fatal(err)
			}
			if add, _, _ := plan.Counts(); add != tt.adds {
				t.Errorf("plan adds %d, want %d", add, tt.adds)
			}
			if res := e.Apply(context.Background(), st, plan); res.Err() != nil {
				t.Fatal(res.Err())
			}
			insts := fake.Instances()
			if len(insts) != 3 {
				t.Fatalf("%d instances, want 3", len(insts))
			}
			for _, in := range insts {
				if in.Tags["ci_run"] != "local" || in.Tags[TagExpiresAt] == "" {
					t.Errorf("%s tags %v: want ci_run and expires-at", in.ID, in.Tags)
				}
				if !strings.Contains(in.UserData, UserScriptPath) || !strings.HasPrefix(in.ImageID, "resolve:ssm:") {
					t.Errorf("%s: image %s, user data without the install script", in.ID, in.ImageID)
				}
				if worker := in.Tags[TagAddress] != "site.aws.node.hub"; worker != in.Spot {
					t.Errorf("%s: spot = %v", in.Tags[TagAddress], in.Spot)
				}
			}
			st, _ = e.Store.Load()
			down, st, err := e.Plan(context.Background(), st, provision.PlanOptions{Refresh: true, Destroy: true})
			if err != nil {
				t.Fatal(err)
			}
			if res := e.Apply(context.Background(), st, down); res.Err() != nil {
				t.Fatal(res.Err())
			}
			for k, v := range fake.Counts() {
				if v != 0 {
					t.Errorf("after down: %d %s left", v, k)
				}
			}
		})
	}
}
