package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hvctl/hvctl/provision"
)

// checkWorld asserts that the world file parses and that live instances
// have unique IDs, tokens and addresses; it returns the items.
func checkWorld(t *testing.T, dir string) []Item {
	t.Helper()
	items, err := List(dir)
	if err != nil {
		t.Fatalf("world does not parse: %v", err)
	}
	ids, tokens, ips := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, it := range items {
		if ids[it.ID] {
			t.Errorf("duplicate ID %s", it.ID)
		}
		ids[it.ID] = true
		if it.ClientToken != "" && tokens[it.ClientToken] {
			t.Errorf("two resources for token %s", it.ClientToken)
		}
		tokens[it.ClientToken] = true
		if it.Live() && it.Kind == provision.KindInstance {
			key := it.NetworkID + "/" + it.PrivateIP
			if ips[key] {
				t.Errorf("address %s held twice", key)
			}
			ips[key] = true
		}
	}
	return items
}

func TestConcurrentCreates(t *testing.T) {
	dir := t.TempDir()
	providers := []*Provider{newSim(t, dir, nil, nil), newSim(t, dir, nil, nil)}
	net := mustCreate(t, providers[0], networkReq("s", "10.9.0.0/16"))

	stop := make(chan struct{})
	var reads atomic.Int64
	readerDone := make(chan error, 1)
	go func() { // a reader must never see a partial file
		for {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			if _, err := List(dir); err != nil {
				readerDone <- err
				return
			}
			reads.Add(1)
		}
	}()

	const goroutines, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each*2)
	for g := range goroutines {
		p := providers[g%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				req := instanceReq(fmt.Sprintf("site.s.pool.p.node[%d]", g*each+i), "s", provision.Attrs{"public_ip": i%3 == 0})
				req.Deps = map[string]string{"site.s.network": net.ID}
				if _, err := p.Create(context.Background(), req); err != nil {
					errs <- err
				}
				// The same token from the other provider at once: no duplicate.
				if _, err := providers[(g+1)%2].Create(context.Background(), req); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatalf("reader saw a bad world after %d reads: %v", reads.Load(), err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	items := checkWorld(t, dir)
	if n := len(items); n != goroutines*each+1 {
		t.Errorf("world holds %d resources, want %d", n, goroutines*each+1)
	}
	pub := map[string]bool{}
	for _, it := range items {
		if it.PublicAddress != "" {
			if pub[it.PublicAddress] {
				t.Errorf("public address %s given twice", it.PublicAddress)
			}
			pub[it.PublicAddress] = true
		}
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(dir, "sim"):                    0o700 | os.ModeDir,
		filepath.Join(dir, "sim", "world.json"):      0o600,
		filepath.Join(dir, "sim", "world.json.lock"): 0o600,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, want)
		}
	}
}

// TestKilledWriters SIGKILLs processes in the middle of creating and
// deleting machines: the world must always parse, stay consistent, and
// the lock must not stay held.
func TestKilledWriters(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for trial := range 8 {
		var procs []*exec.Cmd
		for w := range 2 {
			cmd := exec.Command(exe, "-test.run=^TestHelperWriter$")
			cmd.Env = append(os.Environ(), "SIM_HELPER_DIR="+dir, fmt.Sprintf("SIM_HELPER_NAME=t%dw%d", trial, w))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			procs = append(procs, cmd)
		}
		time.Sleep(time.Duration(30+rand.IntN(120)) * time.Millisecond)
		for _, cmd := range procs {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
		checkWorld(t, dir)
	}
	// The lock is free and the world still takes writes.
	p := newSim(t, dir, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := p.Create(ctx, instanceReq("after", "s", nil)); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the world lock is still held after its holders were killed")
	}
	items := checkWorld(t, dir)
	t.Logf("%d resources made by killed writers", len(items))
	if len(items) < 2 {
		t.Errorf("the killed writers made only %d resources; the test did not exercise anything", len(items))
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "sim", ".world.json.tmp-*"))
	if len(stale) != 0 {
		t.Errorf("stale temp files left: %v", stale)
	}
}

// TestHelperWriter is the process TestKilledWriters kills: it creates
// and deletes machines until killed.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv("SIM_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestKilledWriters")
	}
	name := os.Getenv("SIM_HELPER_NAME")
	p := newSim(t, dir, nil, nil)
	ctx := context.Background()
	for i := 0; ; i++ {
		resp, err := p.Create(ctx, instanceReq(fmt.Sprintf("%s.node[%d]", name, i), "s", nil))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if i%3 == 0 {
			if err := p.Delete(ctx, &provision.DeleteRequest{ID: resp.ID}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
	}
}

func TestConcurrentSameToken(t *testing.T) {
	dir := t.TempDir()
	req := instanceReq("site.s.node.x", "s", nil)
	ids := make([]string, 16)
	var wg sync.WaitGroup
	for i := range ids {
		p := newSim(t, dir, nil, nil) // one "process" each
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := p.Create(context.Background(), req)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = resp.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("one token gave several IDs: %v", ids)
		}
	}
	if n := len(checkWorld(t, dir)); n != 1 {
		t.Errorf("world holds %d resources, want 1", n)
	}
}
