package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		name, in string
		field    string // "" = valid
		check    func(*Spec) bool
	}{
		{"minimal", `{"command":["echo","hi"]}`, "", func(s *Spec) bool { return s.Command[1] == "hi" }},
		{"memory string", `{"command":["x"],"resources":{"cpus":2,"memory":"4GiB"}}`, "", func(s *Spec) bool { return s.Resources.MemoryMiB == 4096 && s.Resources.CPUs == 2 }},
		{"memory number", `{"command":["x"],"resources":{"memory":512}}`, "", func(s *Spec) bool { return s.Resources.MemoryMiB == 512 }},
		{"memory_mib (a marshalled Spec)", `{"command":["x"],"resources":{"memory_mib":64}}`, "", func(s *Spec) bool { return s.Resources.MemoryMiB == 64 }},
		{"memory twice", `{"command":["x"],"resources":{"memory":"1GiB","memory_mib":64}}`, "resources.memory_mib", nil},
		{"negative memory_mib", `{"command":["x"],"resources":{"memory_mib":-1}}`, "resources.memory", nil},
		{"array", `{"command":["x"],"count":1000,"priority":3,"inputs":["a","b"]}`, "", func(s *Spec) bool { return s.Count == 1000 && len(s.Inputs) == 2 }},
		{"no command", `{"resources":{"cpus":1}}`, "command", nil},
		{"empty command", `{"command":[""]}`, "command", nil},
		{"unknown field", `{"command":["x"],"cpu":2}`, "cpu", nil},
		{"wrong type", `{"command":"echo"}`, "command", nil},
		{"bad memory", `{"command":["x"],"resources":{"memory":"lots"}}`, "resources.memory", nil},
		{"negative cpus", `{"command":["x"],"resources":{"cpus":-1}}`, "resources.cpus", nil},
		{"huge array", `{"command":["x"],"count":1000001}`, "count", nil},
		{"path input", `{"command":["x"],"inputs":["../etc"]}`, "inputs", nil},
		{"trailing", `{"command":["x"]} {}`, "body", nil},
		{"not json", `{`, "body", nil},
		{"container", `{"command":["sh","-c","ls"],"inputs":["img"],"container":{"image":"localhost/tools:1","archive":"img","mounts":["/srv/ref:/ref:ro","/scratch:/scratch"]}}`, "",
			func(s *Spec) bool {
				return s.Container != nil && s.Container.Image == "localhost/tools:1" && s.Container.Archive == "img" && len(s.Container.Mounts) == 2
			}},
		{"container pulled", `{"command":["true"],"container":{"image":"docker.io/library/alpine:3.20"}}`, "", func(s *Spec) bool { return s.Container.Archive == "" }},
		{"container no image", `{"command":["x"],"container":{}}`, "container.image", nil},
		{"container bad image", `{"command":["x"],"container":{"image":"a b"}}`, "container.image", nil},
		{"container option image", `{"command":["x"],"container":{"image":"--privileged"}}`, "container.image", nil},
		{"container archive not an input", `{"command":["x"],"container":{"image":"i","archive":"img"}}`, "container.archive", nil},
		{"container relative mount", `{"command":["x"],"container":{"image":"i","mounts":["data:/data"]}}`, "container.mounts", nil},
		{"container mount option", `{"command":["x"],"container":{"image":"i","mounts":["/a:/b:z"]}}`, "container.mounts", nil},
		{"container mount over output", `{"command":["x"],"container":{"image":"i","mounts":["/a:/hvctl/output"]}}`, "container.mounts", nil},
		{"container mount comma", `{"command":["x"],"container":{"image":"i","mounts":["/a,b:/b"]}}`, "container.mounts", nil},
		{"container unknown field", `{"command":["x"],"container":{"image":"i","privileged":true}}`, "privileged", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := DecodeJSON(strings.NewReader(c.in))
			if c.field == "" {
				if err != nil || !c.check(s) {
					t.Fatalf("got %+v, %v", s, err)
				}
				return
			}
			se, ok := err.(*SpecError)
			if !ok || se.Field != c.field {
				t.Fatalf("err = %v, want a SpecError on %q", err, c.field)
			}
		})
	}
}

// TestSpecRoundTrip: a Spec marshalled (as the client sends it) decodes
// to the same Spec.
func TestSpecRoundTrip(t *testing.T) {
	in := Spec{Name: "n", Command: []string{"sh", "-c", "x"}, Resources: Resources{CPUs: 2, MemoryMiB: 64, GPUs: 1, Labels: map[string]string{"a": "b"}},
		Inputs: []string{"img"}, Count: 3, Site: "cloud", Container: &Container{Image: "localhost/i:1", Archive: "img", Mounts: []string{"/a:/b:ro"}}}
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !reflect.DeepEqual(*out, in) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", *out, in)
	}
}

func TestDecodeHCL(t *testing.T) {
	src := `
job "render" {
  command = ["sh", "-c", "echo $HVCTL_ARRAY_INDEX"]
  count   = 10
  resources {
    cpus   = 2
    memory = "1GiB"
    labels = { arch = "x86_64" }
  }
  inputs   = ["audio-1"]
  priority = 5
}

job "small" {
  command = ["true"]
}

job "boxed" {
  command = ["sh", "-c", "cp $HVCTL_INPUT_DIR/x $HVCTL_OUTPUT_DIR/"]
  inputs  = ["tools-image", "x"]
  container {
    image   = "localhost/tools:1"
    archive = "tools-image"
    mounts  = ["/srv/ref:/ref:ro"]
  }
}
`
	specs, diags := DecodeHCL("job.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(specs) != 3 || specs[2].Container == nil || specs[2].Container.Image != "localhost/tools:1" || specs[2].Container.Mounts[0] != "/srv/ref:/ref:ro" {
		t.Fatalf("container job = %+v", specs[len(specs)-1])
	}
	if len(specs) != 3 || specs[0].Count != 10 || specs[0].Resources.MemoryMiB != 1024 || specs[0].Resources.Labels["arch"] != "x86_64" || specs[1].Name != "small" {
		t.Fatalf("specs = %+v %+v", specs[0], specs[1])
	}
	for _, bad := range []struct{ name, src, want string }{
		{"no command", `job "x" {}`, "job.hcl:1"},
		{"bad memory", "job \"x\" {\n  command = [\"a\"]\n  resources { memory = \"x\" }\n}", "job.hcl:1"},
		{"unknown attr", "job \"x\" {\n  command = [\"a\"]\n  cpus = 2\n}", "job.hcl:3"},
		{"no job", `# nothing`, "job.hcl:1"},
		{"container without image", "job \"x\" {\n  command = [\"a\"]\n  container {\n    mounts = []\n  }\n}", "job.hcl:3"},
		{"container bad mount", "job \"x\" {\n  command = [\"a\"]\n  container {\n    image = \"i\"\n    mounts = [\"x:y\"]\n  }\n}", "job.hcl:1"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			_, diags := DecodeHCL("job.hcl", []byte(bad.src))
			if !diags.HasErrors() || !strings.Contains(diags.Error(), bad.want) {
				t.Errorf("diags = %v, want an error at %s", diags, bad.want)
			}
		})
	}
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"command":["x"],"resources":{"cpus":2,"memory":"4GiB","labels":{"a":"b"}},"count":3,"inputs":["d"]}`))
	f.Add([]byte(`{"command":["x"],"resources":{"memory":-5}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeJSON(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		if s.Check() != nil || len(s.Command) == 0 || s.Count > MaxArray || s.Resources.MemoryMiB < 0 {
			t.Fatalf("accepted a bad spec: %+v", s)
		}
		checkContainer(t, s)
	})
}

func FuzzDecodeHCL(f *testing.F) {
	f.Add([]byte("job \"x\" {\n  command = [\"a\"]\n  resources { memory = \"1GiB\" }\n}\n"))
	f.Add([]byte(`job "x" { command = ["a"] count = -1 }`))
	f.Fuzz(func(t *testing.T, b []byte) {
		specs, diags := DecodeHCL("f.hcl", b)
		if diags.HasErrors() {
			return
		}
		for _, s := range specs {
			if s.Check() != nil {
				t.Fatalf("accepted a bad spec: %+v", s)
			}
			checkContainer(t, s)
		}
	})
}

// checkContainer fails on an accepted container whose fields the runner
// could not use as they are.
func checkContainer(t *testing.T, s *Spec) {
	c := s.Container
	if c == nil {
		return
	}
	if c.Image == "" || strings.HasPrefix(c.Image, "-") || strings.ContainsAny(c.Image, " \n") {
		t.Fatalf("accepted image %q", c.Image)
	}
	for _, m := range c.Mounts {
		h, ctr, _, err := ParseMount(m)
		if err != nil || !strings.HasPrefix(h, "/") || !strings.HasPrefix(ctr, "/") || strings.HasPrefix(ctr, "/hvctl") {
			t.Fatalf("accepted mount %q (%v)", m, err)
		}
	}
}

func job(id string, prio int, cpus int, inputs ...string) *Job {
	return &Job{ID: id, Spec: Spec{Command: []string{"x"}, Priority: prio, Resources: Resources{CPUs: cpus}, Inputs: inputs}, Submitted: time.Unix(0, 0)}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		name  string
		queue []*Job
		nodes []*Node
		want  map[string]string // job -> node ("" = unassigned)
	}{
		{"priority first",
			[]*Job{job("low", 0, 2), job("high", 9, 2)},
			[]*Node{{ID: "n1", CPUs: 2}},
			map[string]string{"high": "n1", "low": ""}},
		{"backfill past a big job",
			[]*Job{job("big", 5, 4), job("small", 0, 1)},
			[]*Node{{ID: "n1", CPUs: 2}},
			map[string]string{"big": "", "small": "n1"}},
		{"data locality",
			[]*Job{job("j", 0, 1, "d1")},
			[]*Node{{ID: "a", CPUs: 2}, {ID: "b", CPUs: 2, Cached: map[string]bool{"d1": true}}},
			map[string]string{"j": "b"}},
		{"packing: busiest node that fits",
			[]*Job{job("j", 0, 1)},
			[]*Node{{ID: "a", CPUs: 4}, {ID: "b", CPUs: 4, UsedCPUs: 2}},
			map[string]string{"j": "b"}},
		{"labels and gpus",
			[]*Job{{ID: "g", Spec: Spec{Command: []string{"x"}, Resources: Resources{GPUs: 1, Labels: map[string]string{"arch": "arm"}}}}},
			[]*Node{{ID: "cpu", CPUs: 8, Labels: map[string]string{"arch": "arm"}}, {ID: "gpu-x86", CPUs: 8, GPUs: 1, Labels: map[string]string{"arch": "x86"}}, {ID: "gpu-arm", CPUs: 8, GPUs: 1, Labels: map[string]string{"arch": "arm"}}},
			map[string]string{"g": "gpu-arm"}},
		{"memory",
			[]*Job{{ID: "m", Spec: Spec{Command: []string{"x"}, Resources: Resources{MemoryMiB: 8192}}}},
			[]*Node{{ID: "small", CPUs: 8, MemoryMiB: 4096}, {ID: "big", CPUs: 8, MemoryMiB: 16384}},
			map[string]string{"m": "big"}},
		{"slots fill up",
			[]*Job{job("1", 0, 1), job("2", 0, 1), job("3", 0, 1)},
			[]*Node{{ID: "n", CPUs: 2}},
			map[string]string{"1": "n", "2": "n", "3": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			QueueOrder(c.queue)
			got := map[string]string{}
			for _, j := range c.queue {
				got[j.ID] = ""
			}
			for _, a := range Match(c.queue, c.nodes) {
				got[a.Job.ID] = a.Node.ID
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestRoute(t *testing.T) {
	onprem := func() *SiteView {
		return &SiteView{Name: "onprem", Tier: 0, Nodes: []*Node{{ID: "a", CPUs: 2}}}
	}
	cloud := func() *SiteView {
		return &SiteView{Name: "cloud", Tier: 1, Shapes: []*Node{{CPUs: 4, GPUs: 1}}}
	}
	cases := []struct {
		name  string
		j     *Job
		sites func() []*SiteView
		want  string
	}{
		{"lower tier with room", job("j", 0, 1), func() []*SiteView { return []*SiteView{cloud(), onprem()} }, "onprem"},
		{"full onprem bursts", job("j", 0, 1), func() []*SiteView {
			o := onprem()
			o.Pending = 2
			return []*SiteView{o, cloud()}
		}, "onprem"}, // neither has room now: lowest tier... unless the queue is shorter elsewhere
		{"gpu only in cloud", &Job{Spec: Spec{Command: []string{"x"}, Resources: Resources{GPUs: 1}}}, func() []*SiteView { return []*SiteView{onprem(), cloud()} }, "cloud"},
		{"data locality beats tier", job("j", 0, 1, "d"), func() []*SiteView {
			c := cloud()
			c.Nodes = []*Node{{ID: "c1", CPUs: 4}}
			c.Cached = map[string]bool{"d": true}
			return []*SiteView{onprem(), c}
		}, "cloud"},
		{"pinned", &Job{Spec: Spec{Command: []string{"x"}, Site: "cloud"}}, func() []*SiteView { return []*SiteView{onprem(), cloud()} }, "cloud"},
		{"nowhere", &Job{Spec: Spec{Command: []string{"x"}, Resources: Resources{CPUs: 64}}}, func() []*SiteView { return []*SiteView{onprem(), cloud()} }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Route(c.j, c.sites()); got != c.want {
				t.Errorf("Route = %q, want %q", got, c.want)
			}
		})
	}
}

func TestLRU(t *testing.T) {
	c := NewLRU(100)
	c.Put("a", 40)
	c.Put("b", 40)
	if !c.Get("a") { // a is now most recent
		t.Fatal("a missing")
	}
	if ev := c.Put("c", 40); len(ev) != 1 || ev[0] != "b" {
		t.Errorf("evicted %v, want [b]", ev)
	}
	if c.Has("b") || !c.Has("a") || !c.Has("c") {
		t.Errorf("contents %v", c.Names())
	}
	if ev := c.Put("huge", 101); ev != nil || c.Has("huge") {
		t.Errorf("a dataset larger than the cache was cached")
	}
	hits, misses, used := c.Stats()
	if hits != 1 || misses != 0 || used != 80 {
		t.Errorf("stats = %d %d %d", hits, misses, used)
	}
}

func TestTiers(t *testing.T) {
	site := NewLRU(1000)
	n1, n2 := NewLRU(100), NewLRU(100)
	t1 := &Tiers{Node: n1, Site: site, GlobalSite: "onprem", SiteName: "cloud"}
	t2 := &Tiers{Node: n2, Site: site, GlobalSite: "onprem", SiteName: "cloud"}
	steps := []struct {
		tiers *Tiers
		from  Tier
		cross bool
	}{
		{t1, TierGlobal, true}, // first use: from the global tier, across sites
		{t1, TierNode, false},  // again on the same node
		{t2, TierSite, false},  // another node of the site: from the site cache
		{t2, TierNode, false},
	}
	for i, s := range steps {
		f := s.tiers.Resolve("d", 50)
		if f.From != s.from || f.CrossSite != s.cross {
			t.Errorf("step %d: %+v, want from %s cross %v", i, f, s.from, s.cross)
		}
	}
}
