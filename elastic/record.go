package elastic

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hvctl/hvctl/provision/statecrypt"
)

// The daemon's history: what `hvctl report` renders for a live or past
// cluster. It is a file of JSON lines (0600) in the state directory,
// appended to after every step at which something changed (and at least
// once a minute, so costs keep growing between changes):
//
//	{"run": {...}}                      a run starts (a fresh journal)
//	{"resume": "2026-..."}              the daemon restarted
//	{"t": "...", "nodes": [...], "queues": {...}, "actions": [...]}
//
// A run starts when the daemon starts without a journal (after up, or
// down and up again); a report covers the last run.

// HistoryFile is the history's name in the state directory.
const HistoryFile = "elastic-history.jsonl"

// HistoryRun opens a run: the cluster and its pools with their prices.
type HistoryRun struct {
	Cluster string    `json:"cluster"`
	Start   time.Time `json:"start"`
	Pools   []Pool    `json:"pools"`
}

// HistoryNode is one node in a step.
type HistoryNode struct {
	Name  string    `json:"n"`
	Pool  string    `json:"p,omitempty"`
	State NodeState `json:"s"`
	// Used and Slots are CPU slots taken and offered (joined nodes).
	Used  int `json:"u,omitempty"`
	Slots int `json:"c,omitempty"`
	// Created is when the machine was asked for (zero for a node only
	// the queue knows): its paid time starts there.
	Created time.Time `json:"at,omitzero"`
}

// HistoryStep is the cluster after one step.
type HistoryStep struct {
	T     time.Time     `json:"t"`
	Nodes []HistoryNode `json:"nodes"`
	// Queues are the queued jobs by where they wait: a site, or "any"
	// for work not yet given to a site.
	Queues map[string]int `json:"queues,omitempty"`
	// Actions are the decisions of the step with their reasons.
	Actions []string `json:"actions,omitempty"`
}

type historyLine struct {
	Run    *HistoryRun `json:"run,omitempty"`
	Resume *time.Time  `json:"resume,omitempty"`
	*HistoryStep
}

// HistoryWriter is where the daemon records its history; FileHistory is
// the one `hvctl elastic run` uses.
type HistoryWriter interface {
	// Start records a new run (fresh) or a restart of the daemon.
	Start(run HistoryRun, fresh bool) error
	Step(HistoryStep) error
}

// FileHistory appends the history to a file (0600). With a Sealer (the
// state block's encryption) every line is sealed on its own, base64 on
// the line, so the file stays appendable and holds no plaintext.
type FileHistory struct {
	Path   string
	Sealer *statecrypt.Sealer
	last   *HistoryStep
}

func (h *FileHistory) append(v historyLine) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if h.Sealer != nil {
		env, err := h.Sealer.Seal(b)
		if err != nil {
			return err
		}
		b = []byte(base64.StdEncoding.EncodeToString(env))
	}
	f, err := os.OpenFile(h.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return errors.Join(err, f.Close())
}

// sealedLinePrefix starts a sealed history line: base64 of the
// envelope's magic.
var sealedLinePrefix = base64.StdEncoding.EncodeToString([]byte(statecrypt.Magic))[:8]

// Start records a run; a fresh run keeps the file's previous runs (a
// report shows the last).
func (h *FileHistory) Start(run HistoryRun, fresh bool) error {
	h.last = nil
	if fresh {
		return h.append(historyLine{Run: &run})
	}
	t := run.Start
	return h.append(historyLine{Resume: &t})
}

// Step records a step if anything but the clock changed since the last
// one recorded, or a minute passed.
func (h *FileHistory) Step(s HistoryStep) error {
	if l := h.last; l != nil && len(s.Actions) == 0 && s.T.Sub(l.T) < time.Minute &&
		slices.Equal(l.Nodes, s.Nodes) && equalQueues(l.Queues, s.Queues) {
		return nil
	}
	h.last = &s
	return h.append(historyLine{HistoryStep: &s})
}

func equalQueues(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// historyStep builds the step record of a snapshot and its actions.
func historyStep(s Snapshot, view QueueView, acts []Action) HistoryStep {
	st := HistoryStep{T: s.Now}
	for _, n := range s.Nodes {
		hn := HistoryNode{Name: n.Name, Pool: n.Pool, State: n.State, Created: n.CreatedAt}
		if n.Joined {
			hn.Used, hn.Slots = n.Used.CPUs, n.Capacity.CPUs
		}
		st.Nodes = append(st.Nodes, hn)
	}
	for _, q := range view.Queue {
		if st.Queues == nil {
			st.Queues = map[string]int{}
		}
		where := q.Site
		if where == "" {
			where = "any"
		}
		st.Queues[where] += q.count()
	}
	for _, a := range acts {
		st.Actions = append(st.Actions, a.String())
	}
	return st
}

// HistoryError is a bad line in a history file.
type HistoryError struct {
	File string
	Line int
	Err  error
}

func (e *HistoryError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *HistoryError) Unwrap() error { return e.Err }

// ReadHistory reads a history file's last run. A last line cut short (a
// crash while appending) is ignored; any other bad line is an error
// naming it. Sealed lines are an error: use ReadSealedHistory.
func ReadHistory(name string, r io.Reader) (HistoryRun, []HistoryStep, error) {
	return ReadSealedHistory(name, r, nil)
}

// ReadSealedHistory is ReadHistory opening sealed lines with s (nil: no
// encryption, a sealed line is an error). A line that does not open
// (wrong passphrase) is an error naming it.
func ReadSealedHistory(name string, r io.Reader, s *statecrypt.Sealer) (HistoryRun, []HistoryStep, error) {
	var run HistoryRun
	var steps []HistoryStep
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var pending error
	line, opened := 0, 0
	seen := false
	for sc.Scan() {
		line++
		if pending != nil {
			return run, nil, pending
		}
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		if strings.HasPrefix(string(b), sealedLinePrefix) {
			if s == nil {
				return run, nil, &HistoryError{File: name, Line: line, Err: errors.New("the history is encrypted, and the state block has no encryption to open it")}
			}
			env, err := base64.StdEncoding.DecodeString(string(b))
			if err != nil {
				pending = &HistoryError{File: name, Line: line, Err: fmt.Errorf("an encrypted line that is not base64: %w", err)}
				continue
			}
			plain, err := s.Open(env)
			if err != nil {
				// The first sealed line not opening is a wrong
				// passphrase; a later one may be the last line cut short.
				if opened == 0 && errors.Is(err, statecrypt.ErrWrongPassphrase) {
					return run, nil, &HistoryError{File: name, Line: line, Err: err}
				}
				pending = &HistoryError{File: name, Line: line, Err: err}
				continue
			}
			opened++
			b = plain
		}
		var l historyLine
		if err := json.Unmarshal(b, &l); err != nil {
			pending = &HistoryError{File: name, Line: line, Err: err}
			continue
		}
		switch {
		case l.Run != nil:
			run, steps, seen = *l.Run, nil, true
		case l.Resume != nil:
		case l.HistoryStep != nil && !l.T.IsZero():
			if !seen {
				return run, nil, &HistoryError{File: name, Line: line, Err: errors.New("a step before any run")}
			}
			steps = append(steps, *l.HistoryStep)
		default:
			return run, nil, &HistoryError{File: name, Line: line, Err: errors.New("neither a run, a resume nor a step")}
		}
	}
	if err := sc.Err(); err != nil {
		return run, nil, &HistoryError{File: name, Line: line, Err: err}
	}
	if !seen {
		return run, nil, &HistoryError{File: name, Line: line, Err: errors.New("no run recorded")}
	}
	return run, steps, nil
}

// ReportFromHistory renders a recorded run as a Report, the way the
// simulator reports: the series, every node's timeline, the pools' paid
// and busy hours and costs, and the decisions. Machine time counts from
// a node's first step to the step it was gone in (the history sees
// machines at step resolution); until is the end of the report (the last
// step for a past run, now for a live one).
func ReportFromHistory(run HistoryRun, steps []HistoryStep, until time.Time) *Report {
	r := &Report{Cluster: run.Cluster, Workload: "live run", Billing: "per second of machine lifetime as the daemon saw it (one step's resolution), at the pool's instance price per hour; stopped time at the pool's stopped price"}
	if len(steps) == 0 {
		r.Notes = append(r.Notes, "no step recorded yet")
		return r
	}
	start := run.Start
	if start.IsZero() || steps[0].T.Before(start) {
		start = steps[0].T
	}
	if until.Before(steps[len(steps)-1].T) {
		until = steps[len(steps)-1].T
	}
	secs := func(t time.Time) float64 { return t.Sub(start).Seconds() }
	pools := map[string]*Pool{}
	for i := range run.Pools {
		pools[run.Pools[i].Name] = &run.Pools[i]
		p := run.Pools[i]
		r.Pools = append(r.Pools, PoolReport{Name: p.Name, Tier: p.Tier, Elastic: p.Elastic(), Price: p.Price})
	}
	type nodeTrack struct {
		name, pool string
		first      time.Time
		last       time.Time
		state      NodeState
		since      time.Time
		segs       []Segment
		in         [numStates]time.Duration
	}
	tracks := map[string]*nodeTrack{}
	var order []*nodeTrack
	closeSeg := func(n *nodeTrack, at time.Time) {
		if at.After(n.since) {
			n.segs = append(n.segs, Segment{State: n.state.String(), From: secs(n.since), To: secs(at)})
			n.in[n.state] += at.Sub(n.since)
		}
		n.since = at
	}
	names := map[string]int{}
	var firstQueued, lastWork time.Time
	for _, st := range steps {
		seen := map[string]bool{}
		x := Sample{T: secs(st.T)}
		for _, hn := range st.Nodes {
			// A node is its name, pool and machine: a slot's name is
			// reused by the next machine, and the queue may list a
			// destroyed node for a while (no pool: capacity only).
			key := hn.Name + "\x00" + hn.Pool + "\x00" + hn.Created.String()
			seen[key] = true
			n := tracks[key]
			if n == nil {
				n = &nodeTrack{name: hn.Name, pool: hn.Pool, first: st.T, state: hn.State, since: st.T}
				// A machine made since the run began is paid from its
				// create request, before the step that first saw it.
				if c := hn.Created; !c.IsZero() && c.Before(st.T) && !c.Before(start) {
					n.first, n.since = c, c
				}
				tracks[key] = n
				order = append(order, n)
			} else if n.state != hn.State {
				closeSeg(n, st.T)
				n.state = hn.State
			}
			n.last = st.T
			switch hn.State {
			case Booting:
				x.Booting++
			case Idle:
				x.Idle++
			case Busy:
				x.Busy++
				lastWork = st.T
			case PoweringOff:
				x.PoweringOff++
			case Failed:
				x.Failed++
			case Down:
				x.Down++
			case Stopped:
				x.Stopped++
			}
			if hn.State == Idle || hn.State == Busy {
				x.Slots += hn.Slots
				x.UsedSlots += hn.Used
			}
			if p := pools[hn.Pool]; p != nil && p.Elastic() {
				x.ElasticNodes++
			}
		}
		for name, n := range tracks {
			if !seen[name] {
				closeSeg(n, st.T) // gone: destroyed during this step
				n.last = st.T
				delete(tracks, name)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(st.Queues)) {
			if _, ok := names[k]; !ok {
				names[k] = len(r.QueueNames)
				r.QueueNames = append(r.QueueNames, k)
			}
		}
		x.Queues = make([]int, len(r.QueueNames))
		for k, v := range st.Queues {
			x.Queues[names[k]] = v
			x.Queued += v
		}
		if x.Queued > 0 {
			if firstQueued.IsZero() {
				firstQueued = st.T
			}
			lastWork = st.T
		}
		for _, a := range st.Actions {
			r.Decisions = append(r.Decisions, Decision{T: x.T, Action: a})
		}
		r.Series = append(r.Series, x)
	}
	for _, n := range tracks {
		closeSeg(n, until)
		n.last = until
	}
	idx := map[string]int{}
	for i, p := range r.Pools {
		idx[p.Name] = i
	}
	for _, n := range order {
		// Stopped time is billed at the stopped price, not as paid time
		// (as the simulator bills it).
		paid := n.last.Sub(n.first) - n.in[Stopped]
		p := pools[n.pool]
		price, stoppedPrice := 0.0, 0.0
		if p != nil {
			price, stoppedPrice = p.Price, p.StoppedPrice
		}
		u := Usage{PaidHours: paid.Hours(), BusyHours: n.in[Busy].Hours(), BootingHours: n.in[Booting].Hours(),
			PoweringOffHours: n.in[PoweringOff].Hours(), StoppedHours: n.in[Stopped].Hours(),
			Cost: paid.Hours()*price + n.in[Stopped].Hours()*stoppedPrice}
		u.IdleHours = u.PaidHours - u.BusyHours
		if i, ok := idx[n.pool]; ok {
			r.Pools[i].Nodes++
			r.Pools[i].add(u)
		}
		if p != nil && p.Elastic() {
			r.Elastic.add(u)
		}
		r.Cost += u.Cost
		r.Nodes = append(r.Nodes, NodeTimeline{Name: n.name, Pool: n.pool, Elastic: p != nil && p.Elastic(), Segments: mergeSegments(n.segs)})
	}
	// Cost so far at each sample: every node's paid time up to then.
	for i := range r.Series {
		t := r.Series[i].T
		c := 0.0
		for _, n := range order {
			p := pools[n.pool]
			if p == nil || p.Price == 0 {
				continue
			}
			from, to := secs(n.first), secs(n.last)
			if t > from {
				c += (min(t, to) - from) / 3600 * p.Price
			}
			for _, sg := range n.segs {
				if sg.State == Stopped.String() && t > sg.From {
					c -= (min(t, sg.To) - sg.From) / 3600 * (p.Price - p.StoppedPrice)
				}
			}
		}
		r.Series[i].Cost = c
	}
	if !firstQueued.IsZero() {
		r.Makespan = lastWork.Sub(firstQueued).Seconds()
		r.PowerOffTail = until.Sub(lastWork).Seconds()
	}
	r.Duration = secs(until)
	r.Start = start
	return r
}

// Reseal returns the daemon's file at path (the journal, sealed whole,
// or the history, sealed line by line) sealed with to instead of from,
// for state rekey; nil when there is no file. Plaintext is sealed too.
// A history line that does not open is an error naming it, except a
// last line cut short by a crash, which is dropped as ReadHistory
// ignores it.
func Reseal(path string, from, to *statecrypt.Sealer) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".jsonl") {
		if statecrypt.IsSealed(data) {
			if data, err = from.Open(data); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
		return to.Seal(data)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	var out strings.Builder
	for i, l := range lines {
		b := []byte(l)
		if strings.TrimSpace(l) == "" {
			continue
		}
		if strings.HasPrefix(l, sealedLinePrefix) {
			env, err := base64.StdEncoding.DecodeString(l)
			if err == nil {
				b, err = from.Open(env)
			}
			if err != nil {
				if i == len(lines)-1 {
					break
				}
				return nil, &HistoryError{File: path, Line: i + 1, Err: err}
			}
		}
		env, err := to.Seal(b)
		if err != nil {
			return nil, err
		}
		out.WriteString(base64.StdEncoding.EncodeToString(env))
		out.WriteByte('\n')
	}
	return []byte(out.String()), nil
}
