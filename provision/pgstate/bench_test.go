package pgstate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/provision/aws/awsfake"
	"github.com/hvctl/hvctl/provision/pgstate"
	"github.com/hvctl/hvctl/provision/pgstate/pgtest"
	"github.com/hvctl/hvctl/provision/s3state"
	_ "github.com/hvctl/hvctl/provision/sim" // the sim provider
	"github.com/hvctl/hvctl/provision/statecrypt"
	"github.com/hvctl/hvctl/templates"
)

// BenchmarkApply1000Backends applies 1,000 sim nodes with the state
// local, in PostgreSQL and in the AWS fake's S3, each plain and
// encrypted, in one run, and reports the time and bytes written, and the time as a
// ratio to local state measured in the same run.
func BenchmarkApply1000Backends(b *testing.B) {
	srv := pgtest.Start(b)
	fake := awsfake.New()
	fake.Credentials = map[string]string{"AKIDBENCH": "secret"}
	defer fake.Close()
	fake.CreateBucket("bench")
	b.Setenv("AWS_ACCESS_KEY_ID", "AKIDBENCH")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	b.Setenv("AWS_CONFIG_FILE", "/dev/null")
	b.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	src := `
provider "sim" "lab" {
  boot_time = "0s"
}
cluster "bench" {
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "mesh"
  }
  site "a" {
    provider = provider.sim.lab
    network { cidr = "10.1.0.0/16" }
    pool "p" {
      count = 1000
      instance { cpus = 1 }
    }
  }
}
`
	cases := []struct {
		name   string
		pg, s3 bool
		sealed bool
	}{{"local", false, false, false}, {"local-encrypted", false, false, true}, {"pg", true, false, false}, {"pg-encrypted", true, false, true},
		{"s3-fake", false, true, false}, {"s3-fake-encrypted", false, true, true}}
	var local time.Duration
	for ci, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				cfg, d := templates.LoadSource(map[string][]byte{"b.hcl": []byte(src)}, ".", templates.LoadOptions{})
				if d.HasErrors() {
					b.Fatal(d)
				}
				store := &provision.Store{Path: filepath.Join(b.TempDir(), "state.json")}
				if c.pg {
					be, err := pgstate.New(map[string]string{"conn_str": srv.ConnStr, "schema": "bench"}, fmt.Sprintf("bench-%d-%d", ci, i), "default")
					if err != nil {
						b.Fatal(err)
					}
					defer be.Close()
					store.Backend = be
				}
				if c.s3 {
					be, err := s3state.New(context.Background(), map[string]string{"bucket": "bench", "endpoint": fake.URL, "use_path_style": "true"}, fmt.Sprintf("bench-%d-%d", ci, i), "default")
					if err != nil {
						b.Fatal(err)
					}
					store.Backend = be
				}
				if c.sealed {
					store.Sealer = statecrypt.New("bench passphrase")
				}
				e, d := provision.NewEngine(cfg, store)
				if d.HasErrors() {
					b.Fatal(d)
				}
				start := time.Now()
				st, err := store.Load()
				if err != nil {
					b.Fatal(err)
				}
				plan, refreshed, err := e.Plan(context.Background(), st, provision.PlanOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if r := e.Apply(context.Background(), refreshed, plan); r.Err() != nil {
					b.Fatal(r.Err())
				}
				el := time.Since(start)
				if c.name == "local" {
					local = el
				}
				b.ReportMetric(el.Seconds(), "s/apply")
				b.ReportMetric(float64(store.BytesWritten())/(1<<20), "MiB-written")
				b.ReportMetric(float64(e.CommitBatches()), "batches")
				if local > 0 {
					b.ReportMetric(float64(el)/float64(local), "x-local")
				}
			}
		})
	}
}
