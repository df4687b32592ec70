package elastic

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var screenshots = flag.Bool("screenshots", false, "TestReportsInBrowser: save the screenshots under docs/images")

// needChromium returns Debian's chromium, or skips (fails under
// HVCTL_E2E=1) when it is missing.
func needChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("HVCTL_E2E") == "1" {
		t.Fatal("the browser test needs chromium (apt-get install chromium; scripts/deps.txt lists it); HVCTL_E2E=1 makes this a failure")
	}
	t.Skip("the browser test needs chromium (apt-get install -y --no-install-recommends chromium); set HVCTL_E2E=1 to make this a failure")
	return ""
}

// cdp is a Chrome DevTools Protocol client over --remote-debugging-pipe
// (fd 3: commands to the browser, fd 4: its replies and events, each
// message a JSON object ended by a NUL byte), with the standard library.
type cdp struct {
	cmd     *exec.Cmd
	w       io.WriteCloser
	mu      sync.Mutex
	next    int
	waiting map[int]chan json.RawMessage
	events  chan cdpEvent
	errs    chan error
}

type cdpEvent struct {
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	SessionID string          `json:"sessionId"`
}

func startBrowser(t *testing.T, bin string, width, height int) *cdp {
	t.Helper()
	toR, toW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromR, fromW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--hide-scrollbars", "--user-data-dir="+t.TempDir(), fmt.Sprintf("--window-size=%d,%d", width, height),
		"--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toR, fromW} // fd 3, fd 4
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toR.Close()
	fromW.Close()
	c := &cdp{cmd: cmd, w: toW, waiting: map[int]chan json.RawMessage{}, events: make(chan cdpEvent, 1024), errs: make(chan error, 1)}
	t.Cleanup(func() {
		toW.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", stderr.String())
		}
	})
	go func() {
		rd := bufio.NewReader(fromR)
		for {
			msg, err := rd.ReadBytes(0)
			if err != nil {
				c.errs <- err
				return
			}
			msg = msg[:len(msg)-1]
			var m struct {
				ID     int             `json:"id"`
				Result json.RawMessage `json:"result"`
				Error  json.RawMessage `json:"error"`
				cdpEvent
			}
			if json.Unmarshal(msg, &m) != nil {
				continue
			}
			if m.ID != 0 {
				c.mu.Lock()
				ch := c.waiting[m.ID]
				delete(c.waiting, m.ID)
				c.mu.Unlock()
				if ch != nil {
					if m.Error != nil {
						ch <- append(json.RawMessage(`{"__error":`), append(m.Error, '}')...)
					} else {
						ch <- m.Result
					}
				}
				continue
			}
			select {
			case c.events <- m.cdpEvent:
			default:
			}
		}
	}()
	return c
}

// call sends a command and waits for its result.
func (c *cdp) call(t *testing.T, session, method string, params any, out any) {
	t.Helper()
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan json.RawMessage, 1)
	c.waiting[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	if _, err := c.w.Write(append(b, 0)); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	select {
	case res := <-ch:
		if bytes.HasPrefix(res, []byte(`{"__error":`)) {
			t.Fatalf("%s: %s", method, res)
		}
		if out != nil {
			if err := json.Unmarshal(res, out); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
		}
	case err := <-c.errs:
		t.Fatalf("%s: the browser went away: %v", method, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no reply in 60s", method)
	}
}

// pageCheck is what one page load showed.
type pageCheck struct {
	errors []string // console errors, exceptions, failed loads
	facts  map[string]float64
	png    []byte
}

// load opens url in a new tab, waits for it to load and settle, runs
// the checks in js (an expression giving an object of numbers), and
// takes a full-page screenshot.
func (c *cdp) load(t *testing.T, url, js string) pageCheck {
	t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	c.call(t, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	c.call(t, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	s := att.SessionID
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		c.call(t, s, m, map[string]any{}, nil)
	}
	// Drop what came before the navigation.
	for len(c.events) > 0 {
		<-c.events
	}
	c.call(t, s, "Page.navigate", map[string]any{"url": url}, nil)
	var pc pageCheck
	loaded := false
	deadline := time.After(60 * time.Second)
	settle := time.After(time.Hour)
	for done := false; !done; {
		select {
		case ev := <-c.events:
			if ev.SessionID != s {
				continue
			}
			switch ev.Method {
			case "Page.loadEventFired":
				if !loaded {
					loaded = true
					settle = time.After(500 * time.Millisecond) // late console messages
				}
			case "Runtime.consoleAPICalled":
				var p struct {
					Type string `json:"type"`
					Args []struct {
						Value       any    `json:"value"`
						Description string `json:"description"`
					} `json:"args"`
				}
				json.Unmarshal(ev.Params, &p)
				if p.Type == "error" || p.Type == "assert" {
					var parts []string
					for _, a := range p.Args {
						parts = append(parts, fmt.Sprint(a.Value, a.Description))
					}
					pc.errors = append(pc.errors, "console."+p.Type+": "+strings.Join(parts, " "))
				}
			case "Runtime.exceptionThrown":
				pc.errors = append(pc.errors, "exception: "+string(ev.Params))
			case "Log.entryAdded":
				var p struct {
					Entry struct {
						Level, Text, URL string
					} `json:"entry"`
				}
				json.Unmarshal(ev.Params, &p)
				if p.Entry.Level == "error" {
					pc.errors = append(pc.errors, "log: "+p.Entry.Text+" "+p.Entry.URL)
				}
			}
		case <-settle:
			done = true
		case <-deadline:
			t.Fatalf("%s did not load in 60s", url)
		}
	}
	if js != "" {
		var ev struct {
			Result struct {
				Value map[string]float64 `json:"value"`
			} `json:"result"`
			ExceptionDetails json.RawMessage `json:"exceptionDetails"`
		}
		c.call(t, s, "Runtime.evaluate", map[string]any{"expression": js, "returnByValue": true}, &ev)
		if ev.ExceptionDetails != nil {
			t.Fatalf("check script: %s", ev.ExceptionDetails)
		}
		pc.facts = ev.Result.Value
	}
	var shot struct {
		Data string `json:"data"`
	}
	c.call(t, s, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot)
	pc.png, _ = base64.StdEncoding.DecodeString(shot.Data)
	c.call(t, "", "Target.closeTarget", map[string]any{"targetId": target.TargetID}, nil)
	return pc
}

// checkJS counts, in the page as the browser laid it out, the charts and
// their parts; a chart whose SVG did not render has no size.
const checkJS = `(() => {
  const charts = [...document.querySelectorAll('svg.chart')];
  const sized = charts.filter(s => { const r = s.getBoundingClientRect(); return r.width > 300 && r.height > 60; });
  const per = sel => charts.filter(s => s.querySelector(sel)).length;
  const ticks = charts.map(s => s.querySelectorAll('.axis-x text.tick').length);
  const overflow = [...document.querySelectorAll('table, svg.chart, pre')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).length;
  return {charts: charts.length, sized: sized.length, xaxes: per('.axis-x'), yaxes: per('.axis-y'), y2axes: per('.axis-y2'),
    xtitles: per('.axis-x .title'), ytitles: charts.filter(s => { const e = s.querySelector('.axis-y .title'); return e && e.textContent.length > 0; }).length,
    minxticks: Math.min(...ticks), grids: per('.grid line'), legends: document.querySelectorAll('.legend').length,
    decisions: document.querySelectorAll('table.decisions tbody tr').length, overflow: overflow,
    rawseconds: [...document.querySelectorAll('text.tick')].filter(e => /\d+m0s|\d+\.\d+s/.test(e.textContent)).length};
})()`

// TestReportsInBrowser renders the simulator's report, `hvctl report`'s
// (built from a daemon's history), and the tune page in headless
// chromium. It fails on any console error, checks that every chart is
// laid out with its axes, ticks, titles and legend, and that nothing
// overflows the page at 1280 and at 700 pixels. With -screenshots it
// saves the screenshots under docs/images.
func TestReportsInBrowser(t *testing.T) {
	bin := needChromium(t)
	dir := t.TempDir()
	write := func(name string, f func(io.Writer) error) string {
		t.Helper()
		p := filepath.Join(dir, name)
		var b bytes.Buffer
		if err := f(&b); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return "file://" + p
	}
	cfg, w := loadExample(t)
	sim, err := Simulate(cfg, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	live := liveReport(t)
	tune, err := Tune(cfg, w, TuneGrid{IdleTimes: []time.Duration{time.Minute, 15 * time.Minute}, MaxBooting: []int{1, 10}}, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pages := []struct {
		name, url      string
		charts, y2axes int
		decisions      bool
		shot           string
	}{
		{"simulation", write("sim.html", sim.WriteHTML), 5, 2, true, "elastic-report-sim.png"},
		{"hvctl report", write("live.html", live.WriteHTML), 5, 2, true, "elastic-report-live.png"},
		{"elastic tune", write("tune.html", tune.WriteHTML), 1, 0, false, "elastic-tune.png"},
	}
	for _, width := range []int{1280, 700} {
		b := startBrowser(t, bin, width, 900)
		// The harness must see a console error when there is one.
		if pc := b.load(t, "data:text/html,<script>console.error('planted')</script>", ""); len(pc.errors) != 1 || !strings.Contains(pc.errors[0], "planted") {
			t.Fatalf("the console error planted in a test page was not caught: %v", pc.errors)
		}
		for _, p := range pages {
			t.Run(fmt.Sprintf("%s at %dpx", p.name, width), func(t *testing.T) {
				pc := b.load(t, p.url, checkJS)
				for _, e := range pc.errors {
					t.Errorf("console: %s", e)
				}
				f := pc.facts
				want := map[string]float64{"charts": float64(p.charts), "sized": float64(p.charts), "xaxes": float64(p.charts), "yaxes": float64(p.charts),
					"y2axes": float64(p.y2axes), "xtitles": float64(p.charts), "grids": float64(p.charts), "overflow": 0, "rawseconds": 0}
				for k, v := range want {
					if f[k] != v {
						t.Errorf("%s = %v, want %v (all: %v)", k, f[k], v, f)
					}
				}
				if f["minxticks"] < 3 {
					t.Errorf("a chart has %v x ticks, want at least 3", f["minxticks"])
				}
				if f["ytitles"] < float64(p.charts-1) { // the node bars have no y title
					t.Errorf("%v charts with a y-axis title, want %d", f["ytitles"], p.charts-1)
				}
				if f["legends"] < float64(p.charts) {
					t.Errorf("%v legends for %d charts", f["legends"], p.charts)
				}
				if p.decisions && f["decisions"] == 0 {
					t.Error("no decision rows")
				}
				if len(pc.png) < 1000 {
					t.Fatalf("screenshot of %d bytes", len(pc.png))
				}
				out := filepath.Join(t.TempDir(), p.shot)
				if *screenshots && width == 1280 {
					out = filepath.Join("..", "docs", "images", p.shot)
					os.MkdirAll(filepath.Dir(out), 0o755)
				}
				if err := os.WriteFile(out, pc.png, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("screenshot %s (%d bytes)", out, len(pc.png))
			})
		}
	}
}

// liveReport is what `hvctl report` renders: a daemon's history (a
// burst, work, idle, power-off) read back and turned into a report.
func liveReport(t *testing.T) *Report {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, HistoryFile)
	now := t0
	cloud := newCloud()
	q := &fakeQueue{view: QueueView{Queue: jobs(40, t0), Nodes: []QueueNode{
		{Name: "wn-1", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
		{Name: "wn-2", Up: true, Running: 2, Used: Resources{CPUs: 2}, Capacity: Resources{CPUs: 2}},
	}}}
	d := newDaemon(t, dir, cloud, q, &now)
	d.History, d.Cluster = &FileHistory{Path: path}, "local-hybrid"
	d.Settings.IdleTime = 2 * time.Minute
	queued := 40
	for i := range 120 { // 10 minutes at 5 s
		now = t0.Add(time.Duration(i) * 5 * time.Second)
		// Machines boot in a minute, then join and take 2 jobs each.
		var nodes []QueueNode
		for _, n := range q.view.Nodes[:2] {
			nodes = append(nodes, n)
		}
		for _, m := range cloud.machines {
			if m.Pool == "onprem.wn" {
				continue
			}
			if now.Sub(m.CreatedAt) >= time.Minute || m.State == MachineRunning {
				m.State = MachineRunning
				run := 0
				if queued > 0 {
					run = 2
				}
				nodes = append(nodes, QueueNode{Name: m.Name, Up: true, Running: run, Used: Resources{CPUs: run}, Capacity: Resources{CPUs: 2}})
			}
		}
		if i%6 == 0 && queued > 0 {
			queued -= 2 * len(nodes)
			queued = max(queued, 0)
		}
		if queued == 0 {
			for j := range nodes {
				nodes[j].Running, nodes[j].Used = 0, Resources{}
			}
		}
		q.view.Nodes = nodes
		q.view.Queue = nil
		if queued > 0 {
			q.view.Queue = jobs(queued, t0)
		}
		for _, m := range cloud.machines {
			m.CreatedAt = t0.Add(10 * time.Second) // the fake's machines were asked for at the first step
		}
		if err := d.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run, steps, err := ReadHistory(path, f)
	if err != nil {
		t.Fatal(err)
	}
	r := ReportFromHistory(run, steps, now)
	if len(r.Decisions) == 0 || poolReport(r, "aws.burst").Nodes == 0 {
		t.Fatalf("the live run made no decisions or nodes: %+v", r.Decisions)
	}
	return r
}
