package overlay_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hvctl/hvctl/overlay"
	"github.com/hvctl/hvctl/overlay/overlaytest"
	"github.com/hvctl/hvctl/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the render (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// fileName turns a node ID into a file name: "cloud.burst[2]" -> "cloud.burst-2".
func fileName(id string) string {
	return strings.NewReplacer("[", "-", "]", "").Replace(id)
}

func TestRenderWGQuickGolden(t *testing.T) {
	for _, topo := range topologies {
		sp := overlaytest.Paper003(topo)
		sp.Reflexive = topo == templates.Mesh
		_, tp, _ := plan(t, sp)
		for _, id := range tp.Nodes() {
			t.Run(string(topo)+"/"+id, func(t *testing.T) {
				ps, err := tp.PeersFor(id)
				if err != nil {
					t.Fatal(err)
				}
				var b bytes.Buffer
				if err := overlay.RenderWGQuick(&b, ps, overlay.RenderOptions{}); err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", "wg-quick", string(topo), fileName(id)+".conf"), b.Bytes())
				if strings.Contains(b.String(), "PrivateKey = ") && !strings.Contains(b.String(), "# PrivateKey = (sensitive)") {
					t.Errorf("a private key was rendered without being given")
				}
			})
		}
	}
}

func TestRenderWithKey(t *testing.T) {
	_, tp, _ := plan(t, overlaytest.Paper003(templates.Star))
	ps, _ := tp.PeersFor("aws.router")
	k := overlaytest.Key("aws.router")
	var b bytes.Buffer
	if err := overlay.RenderWGQuick(&b, ps, overlay.RenderOptions{PrivateKey: &k}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\nPrivateKey = "+k.String()+"\n") || strings.Contains(b.String(), overlay.Sensitive) {
		t.Errorf("key not rendered:\n%s", b.String())
	}
}

func TestRenderCloudInitGolden(t *testing.T) {
	_, tp, _ := plan(t, overlaytest.Paper003(templates.Star))
	ps, _ := tp.PeersFor("aws.burst[1]")
	var b bytes.Buffer
	if err := overlay.RenderCloudInit(&b, ps, overlay.RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "cloud-init", "aws.burst-1.yaml"), b.Bytes())
}
