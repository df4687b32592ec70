package sim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/provision"
)

const validWorld = `{"version":1,"serial":3,"resources":[
{"id":"sim-net-0a1b2c3d","kind":"network","address":"site.s.network","cluster":"c","client_token":"t1","site":"s","state":"available","created_at":"2030-01-01T00:00:00Z","cidr":"10.0.0.0/24"},
{"id":"sim-i-0a1b2c3d4e5f6a7b","kind":"instance","address":"site.s.node.a","cluster":"c","client_token":"t2","site":"s","state":"pending","created_at":"2030-01-01T00:00:00Z","ready_at":"2030-01-01T00:00:02Z","network_id":"sim-net-0a1b2c3d","private_ip":"10.0.0.4","attrs":{"labels":{"a":"b"},"roles":["worker"],"cpus":2}}
]}
`

func FuzzDecodeWorld(f *testing.F) {
	for _, seed := range []string{
		validWorld,
		`{"version":1,"serial":0,"resources":[]}`,
		``, `{`, `null`, `[]`, `{"version":2}`, `{"version":1,"resources":[null]}`,
		`{"version":1,"resources":[{"id":"x","kind":"instance","state":"running"},{"id":"x","kind":"instance","state":"running"}]}`,
		`{"version":1,"resources":[{"id":"x","kind":"disk","state":"running"}]}`,
		`{"version":1,"resources":[{"id":"x","kind":"instance","state":"running","created_at":"yesterday"}]}`,
		`{"version":1} {"version":1}`,
		validWorld[:len(validWorld)/2],
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeWorld("/x/sim/world.json", b)
		if err != nil {
			if !strings.Contains(err.Error(), "/x/sim/world.json") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		// What decodes must survive a round trip.
		out, err := encodeWorld(w)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeWorld("again", out); err != nil {
			t.Fatalf("re-decoding an encoded world: %v\n%s", err, out)
		}
	})
}

func TestCorruptWorld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sim", "world.json")
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.WriteFile(path, []byte(validWorld[:100]), 0o600)
	p := newSim(t, dir, nil, nil)
	ctx := context.Background()
	calls := []struct {
		name string
		do   func() error
	}{
		{"create", func() error { _, err := p.Create(ctx, instanceReq("n", "s", nil)); return err }},
		{"read", func() error { _, err := p.Read(ctx, &provision.ReadRequest{ID: "sim-i-0"}); return err }},
		{"delete", func() error { return p.Delete(ctx, &provision.DeleteRequest{ID: "sim-i-0"}) }},
		{"list", func() error { _, err := List(dir); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("err = %v, want a corrupt-world error naming %s", err, path)
			}
		})
	}
	if b, _ := os.ReadFile(path); string(b) != validWorld[:100] {
		t.Error("a corrupt world was overwritten")
	}
}

func TestValidWorldDecodes(t *testing.T) {
	w, err := decodeWorld("w", []byte(validWorld))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Records) != 2 || w.Records[1].PrivateIP != "10.0.0.4" {
		t.Errorf("decoded %+v", w)
	}
}
