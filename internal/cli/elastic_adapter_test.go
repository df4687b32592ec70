package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/elastic"
)

const adapterTemplate = `
provider "sim" "lab" {
  boot_time = "0s"
}

cluster "%s" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.sim.lab
    network { cidr = "192.168.10.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
  }
  site "cloud" {
    provider = provider.sim.lab
    tier     = 1
    network { cidr = "10.4.2.0/24" }
    pool "burst" {
      min = 0
      max = 2
      instance { cpus = 2 }
    }
  }
}
`

// TestElasticAdapterOnSim: the daemon's provisioner, without root: a
// create is idempotent on its token (a retried create makes nothing
// more), the pool's max holds, a destroy removes the machine, and the
// changes come from the graph (the slot's attributes as a plan has them).
func TestElasticAdapterOnSim(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "main.hcl")
	os.WriteFile(tmpl, []byte(fmt.Sprintf(adapterTemplate, "adapt")), 0o644)
	var out bytes.Buffer
	a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Ctx: context.Background()}
	if code := a.Run([]string{"apply", "-auto-approve", tmpl}); code != 0 {
		t.Fatalf("apply: %d\n%s", code, out.String())
	}
	var logs syncBuffer
	old := slog.Default()
	defer slog.SetDefault(old)
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	var o opFlags
	o.parallelism, o.lock, o.refresh = 10, true, true
	p := &engineProvisioner{a: a, tmpl: tmpl, o: o}
	ctx := context.Background()
	machines := func() []elastic.Machine {
		t.Helper()
		p.wg.Wait()
		ms, err := p.Machines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	for _, tok := range []string{"tok-a", "tok-a", "tok-b", "tok-c"} {
		if err := p.Create(ctx, "cloud.burst", tok); err != nil {
			t.Fatal(err)
		}
		p.wg.Wait()
	}
	ms := machines()
	tokens := map[string]bool{}
	for _, m := range ms {
		tokens[m.Token] = true
		if m.Pool != "cloud.burst" || m.State != elastic.MachineRunning {
			t.Errorf("machine %+v", m)
		}
	}
	// tok-a once (retried), tok-b, and tok-c refused: the pool's max is 2.
	if len(ms) != 2 || !tokens["tok-a"] || !tokens["tok-b"] {
		t.Fatalf("machines = %+v, want tok-a and tok-b", ms)
	}
	if !strings.Contains(logs.String(), "pool cloud.burst is at its max of 2") {
		t.Errorf("the third create was not refused by max:\n%s", logs.String())
	}
	// The slot was made as a plan would make it: no changes now.
	out.Reset()
	if code := a.Run([]string{"plan", "-detailed-exitcode", tmpl}); code != 0 {
		t.Errorf("plan after the daemon's creates: exit %d\n%s", code, out.String())
	}
	if err := p.Destroy(ctx, ms[0].Name); err != nil {
		t.Fatal(err)
	}
	if left := machines(); len(left) != 1 || left[0].Name == ms[0].Name {
		t.Errorf("after destroy of %s: %+v", ms[0].Name, left)
	}
	a.Run([]string{"down", tmpl})
}
