package aws

import (
	"context"
	"testing"

	"github.com/hvctl/hvctl/provision"
)

func TestSmoke(t *testing.T) {
	fake := newFake(t)
	p := newProvider(t, fake, nil)
	n := mustCreate(t, p, networkReq("c1", "cloud", "10.4.0.0/16", nil))
	t.Logf("network %s", n.ID)
	r := mustCreate(t, p, instanceReq("c1", "cloud", "hub", n.ID, map[string]any{"public_ip": true}))
	t.Logf("instance %s %v", r.ID, r.Attrs)
	rr := mustWait(t, p, r.ID)
	t.Logf("ready %v", rr.Attrs)
	t.Log(fake.Counts())
	for _, r := range fake.Requests() {
		if r.Action == "RunInstances" || r.Action == "AuthorizeSecurityGroupIngress" || r.Action == "CreateSecurityGroup" || r.Action == "AssociateAddress" {
			for k, v := range r.Params {
				if k != "UserData" {
					t.Logf("%s %s=%s", r.Action, k, v)
				}
			}
		}
	}
	t.Log(fake.SecurityGroupRules(fake.Instances()[0].Groups[0]))
	for _, id := range []string{r.ID, n.ID} {
		if err := p.Delete(context.Background(), &provision.DeleteRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	t.Log(fake.Counts())
}
