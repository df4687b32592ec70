package provision

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStoreWrite(t *testing.T) {
	dir := t.TempDir()
	st := &Store{Path: filepath.Join(dir, ".hvctl", "state.json")}
	s, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.Serial != 0 || s.Lineage == "" {
		t.Fatalf("fresh state = serial %d lineage %q", s.Serial, s.Lineage)
	}
	s.put(&ResourceState{Address: "site.a.network", Status: StatusReady, Kind: KindNetwork})
	if err := st.Write(s); err != nil {
		t.Fatal(err)
	}
	s.put(&ResourceState{Address: "site.a.node.x", Status: StatusReady, Kind: KindInstance, Attrs: Attrs{"cpus": int64(2)}})
	if err := st.Write(s); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{st.Path, st.Path + ".backup"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", p, fi.Mode().Perm())
		}
	}
	got, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.Serial != 2 || got.Lineage != s.Lineage || len(got.Resources) != 2 {
		t.Errorf("reloaded = serial %d, %d resources", got.Serial, len(got.Resources))
	}
	if v, _ := got.Resource("site.a.node.x").Attrs["cpus"].(int64); v != 2 {
		t.Errorf("cpus = %#v, want int64 2", got.Resource("site.a.node.x").Attrs["cpus"])
	}
	b, _ := os.ReadFile(st.Path + ".backup")
	back, err := DecodeState("backup", b)
	if err != nil || back.Serial != 1 {
		t.Errorf("backup = %v, %v; want serial 1", back, err)
	}
	// No temp files are left.
	ents, _ := os.ReadDir(filepath.Dir(st.Path))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
}

func TestDecodeStateErrors(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"not json", "{", "not valid JSON"},
		{"version", `{"version":9,"lineage":"x","resources":[]}`, "format version 9"},
		{"no lineage", `{"version":1,"resources":[]}`, "no lineage"},
		{"dup", `{"version":1,"lineage":"x","resources":[{"address":"a","status":"ready"},{"address":"a","status":"ready"}]}`, "appears twice"},
		{"status", `{"version":1,"lineage":"x","resources":[{"address":"a","status":"weird"}]}`, "unknown status"},
		{"no address", `{"version":1,"lineage":"x","resources":[{"status":"ready"}]}`, "no address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeState("s.json", []byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "s.json") {
				t.Errorf("err = %v, want it to name s.json and say %q", err, c.want)
			}
		})
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":1,"serial":3,"lineage":"x","resources":[{"address":"site.a.network","status":"ready","attrs":{"cidr":"10.0.0.0/24","n":1.5,"l":["a"],"m":{"k":"v"}}}]}`))
	f.Add([]byte(`{"version":1,"lineage":"x","resources":null,"generations":{"a":2}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState("fuzz", b)
		if err != nil {
			return
		}
		// A state that decodes must survive a round trip.
		c := s.Clone()
		if c.Lineage != s.Lineage || len(c.Resources) != len(s.Resources) {
			t.Fatalf("clone differs")
		}
	})
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	st := &Store{Path: filepath.Join(dir, "state.json")}
	ctx := context.Background()
	l, err := st.Lock(ctx, "apply", 0)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks are per open file description, so a second Lock in the
	// same process contends like another process would.
	_, err = st.Lock(ctx, "plan", 200*time.Millisecond)
	var le *LockError
	if !errors.As(err, &le) || le.Holder == nil || le.Holder.ID != l.Info().ID || le.Holder.Operation != "apply" {
		t.Fatalf("second lock err = %v, want LockError naming the holder", err)
	}
	if !strings.Contains(err.Error(), l.Info().ID) {
		t.Errorf("error does not show the lock ID: %v", err)
	}
	if h := st.LockHolder(); h == nil || h.ID != l.Info().ID {
		t.Errorf("LockHolder = %+v", h)
	}
	if err := st.ForceUnlock(l.Info().ID); err == nil {
		t.Errorf("ForceUnlock of a live holder succeeded")
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if h := st.LockHolder(); h != nil {
		t.Errorf("LockHolder after unlock = %+v", h)
	}
	l2, err := st.Lock(ctx, "plan", 0)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
}

func TestLessAddr(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"site.a.pool.p.node[2]", "site.a.pool.p.node[10]", true},
		{"site.a.pool.p.node[10]", "site.a.pool.p.node[2]", false},
		{"site.a.network", "site.b.network", true},
		{"site.a", "site.a.node.x", true},
	}
	for _, c := range cases {
		if got := lessAddr(c.a, c.b); got != c.want {
			t.Errorf("lessAddr(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestRunDAG(t *testing.T) {
	var order []string
	mk := func(id string, deps []string, err error) *task {
		return &task{id: id, deps: deps, run: func(context.Context) error { order = append(order, id); return err }}
	}
	boom := errors.New("boom")
	tasks := []*task{
		mk("net", nil, nil),
		mk("hub", []string{"net"}, nil),
		mk("w1", []string{"net", "hub"}, boom),
		mk("w1child", []string{"w1"}, nil),
		mk("w2", []string{"hub"}, nil),
	}
	res := runDAG(context.Background(), context.Background(), tasks, 1)
	if res["w1"] != boom || !errors.Is(res["w1child"], errSkipped) || res["w2"] != nil || res["hub"] != nil {
		t.Errorf("results = %v", res)
	}
	if order[0] != "net" || order[1] != "hub" {
		t.Errorf("order = %v", order)
	}
	for _, id := range order {
		if id == "w1child" {
			t.Errorf("w1child ran after its dependency failed")
		}
	}
}

// TestLockInfoHint: the hint names a live holder, and a stale info file
// (its holder killed before removing it, its PID alive again, reused)
// is not taken for a lock.
func TestLockInfoHint(t *testing.T) {
	dir := t.TempDir()
	st := &Store{Path: filepath.Join(dir, "state.json")}
	l, err := st.Lock(context.Background(), "up", 0)
	if err != nil {
		t.Fatal(err)
	}
	if h := st.LockInfoHint(); h == nil || h.Operation != "up" {
		t.Fatalf("hint while locked = %+v, want the holder", h)
	}
	info, err := os.ReadFile(st.lockInfoPath())
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	// The info file of a holder that died, naming a live PID (ours).
	if err := os.WriteFile(st.lockInfoPath(), info, 0o600); err != nil {
		t.Fatal(err)
	}
	if h := st.LockInfoHint(); h != nil {
		t.Errorf("hint with a stale info file and no lock = %+v, want nil", h)
	}
}

func TestProcLocksHas(t *testing.T) {
	const text = `1: FLOCK  ADVISORY  WRITE 15093 fe:00:9978723 0 EOF
2: POSIX  ADVISORY  WRITE 10570 fe:00:42 0 EOF
2: -> FLOCK  ADVISORY  WRITE 10571 fe:00:43 0 EOF
3: FLOCK  ADVISORY  WRITE 16706 08:11:9982680 0 EOF
`
	dev := func(maj, min uint32) uint64 { return uint64(unix.Mkdev(maj, min)) }
	cases := []struct {
		name string
		dev  uint64
		ino  uint64
		want bool
	}{
		{"held", dev(0xfe, 0), 9978723, true},
		{"other device", dev(0xfe, 1), 9978723, false},
		{"posix lock only", dev(0xfe, 0), 42, false},
		{"a waiter is no holder", dev(0xfe, 0), 43, false},
		{"two-digit minor", dev(8, 0x11), 9982680, true},
		{"absent", dev(0xfe, 0), 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := procLocksHas(text, c.dev, c.ino); got != c.want {
				t.Errorf("procLocksHas = %v, want %v", got, c.want)
			}
		})
	}
}
