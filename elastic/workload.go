package elastic

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hvctl/hvctl/templates"
)

// Workload is the work a simulation submits: single jobs at fixed times
// and batches of identical jobs. Job durations of a batch are drawn when
// the simulation runs, from its seed.
type Workload struct {
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	// Setup is a one-time setup every node does before its first job
	// (paper 003: installing udocker and pulling the image, 4 min 30 s).
	// The jobs that start on a node during its setup wait for it.
	Setup   time.Duration `json:"setup,omitempty"`
	Jobs    []Job         `json:"jobs,omitempty"`
	Batches []Batch       `json:"batches,omitempty"`
}

// Job is one job submitted at a fixed time.
type Job struct {
	// Submit is when the job is queued, from the start of the run.
	Submit   time.Duration `json:"submit"`
	Duration time.Duration `json:"duration"`
	Work
}

// Work is what a job needs and where it may run.
type Work struct {
	Resources
	Labels map[string]string `json:"labels,omitempty"`
	Site   string            `json:"site,omitempty"`
	Pool   string            `json:"pool,omitempty"`
}

// Batch is Count identical jobs queued at once. Batches run in order: a
// batch is queued Gap after the previous batch was queued (After
// "submit", the default) or after its last job ended (After "done").
type Batch struct {
	Count int           `json:"count"`
	Gap   time.Duration `json:"gap,omitempty"`
	After string        `json:"after,omitempty"` // "submit" | "done"
	// Each job takes Duration, or a duration drawn uniformly from
	// [Duration, DurationMax] when DurationMax is larger.
	Duration    time.Duration `json:"duration"`
	DurationMax time.Duration `json:"duration_max,omitempty"`
	Work
}

// Size is how many jobs the workload submits.
func (w *Workload) Size() int {
	n := len(w.Jobs)
	for _, b := range w.Batches {
		n += b.Count
	}
	return n
}

// WorkloadError is a workload file error at a line (and column, when
// known).
type WorkloadError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *WorkloadError) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// maxWorkloadBytes bounds what ParseWorkload reads.
const maxWorkloadBytes = 256 << 20

// maxJobs bounds a workload's size, so a typo cannot ask for a
// simulation that never ends.
const maxJobs = 1_000_000

// ParseWorkload reads a workload file: JSON when name ends in .json or
// the content starts with "{", else CSV. Errors are *WorkloadError naming
// name and the line.
//
// JSON:
//
//	{"name": "...", "setup": "4m30s",
//	 "jobs":    [{"submit": "0s", "duration": "20s", "cpus": 1, "memory": "1GiB"}],
//	 "batches": [{"count": 873, "duration": "15s", "duration_max": "20s"},
//	             {"count": 888, "gap": "8m", "after": "done", "duration": "15s"}]}
//
// CSV has a header naming its columns: submit and duration (required),
// count, cpus, memory, gpus, site, pool and labels ("k=v;k=v"). A row with
// count > 1 is that many identical jobs. Durations are Go durations
// ("1m30s") or seconds; sizes are "4GiB" or bytes.
func ParseWorkload(name string, r io.Reader) (Workload, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxWorkloadBytes+1))
	if err != nil {
		return Workload{}, fmt.Errorf("read workload %s: %w", name, err)
	}
	if len(data) > maxWorkloadBytes {
		return Workload{}, &WorkloadError{File: name, Msg: fmt.Sprintf("larger than %d MiB", maxWorkloadBytes>>20)}
	}
	var w Workload
	ext := strings.ToLower(filepath.Ext(name))
	if ext == ".json" || (ext != ".csv" && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))) {
		w, err = parseJSON(name, data)
	} else {
		w, err = parseCSV(name, data)
	}
	if err != nil {
		return Workload{}, err
	}
	if w.Size() == 0 {
		return Workload{}, &WorkloadError{File: name, Msg: "no jobs: the workload needs jobs or batches"}
	}
	if w.Size() > maxJobs {
		return Workload{}, &WorkloadError{File: name, Msg: fmt.Sprintf("%d jobs: at most %d", w.Size(), maxJobs)}
	}
	return w, nil
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int64) (int, int) {
	off = min(max(off, 0), int64(len(data)))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// jsonDuration is a duration as "1m30s" or a number of seconds.
type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	v, err := parseDurationValue(b)
	*d = jsonDuration(v)
	return err
}

func parseDurationValue(b []byte) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return parseDuration(s)
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, fmt.Errorf("%s is not a duration (\"1m30s\" or seconds)", b)
	}
	return secondsDuration(f)
}

func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
		return secondsDuration(f)
	}
	return templates.ParseDuration(s)
}

func secondsDuration(f float64) (time.Duration, error) {
	if math.IsNaN(f) || f < 0 || f > float64(math.MaxInt64/int64(time.Second)) {
		return 0, fmt.Errorf("%g is not a duration in seconds (at least 0)", f)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// jsonSize is a size as "4GiB" or a number of bytes.
type jsonSize int64

func (z *jsonSize) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := templates.ParseSize(s)
		*z = jsonSize(v)
		return err
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil || n < 0 {
		return fmt.Errorf("%s is not a size (\"4GiB\" or bytes)", b)
	}
	*z = jsonSize(n)
	return nil
}

type jsonWork struct {
	CPUs   int               `json:"cpus"`
	Memory jsonSize          `json:"memory"`
	GPUs   int               `json:"gpus"`
	Labels map[string]string `json:"labels"`
	Site   string            `json:"site"`
	Pool   string            `json:"pool"`
}

func (j jsonWork) work() (Work, error) {
	if j.CPUs < 0 || j.GPUs < 0 {
		return Work{}, errors.New("cpus and gpus must not be negative")
	}
	return Work{Resources: Resources{CPUs: j.CPUs, Memory: int64(j.Memory), GPUs: j.GPUs}, Labels: j.Labels, Site: j.Site, Pool: j.Pool}, nil
}

type jsonJob struct {
	Submit   *jsonDuration `json:"submit"`
	Duration *jsonDuration `json:"duration"`
	jsonWork
}

type jsonBatch struct {
	Count       int           `json:"count"`
	Gap         jsonDuration  `json:"gap"`
	After       string        `json:"after"`
	Duration    *jsonDuration `json:"duration"`
	DurationMax jsonDuration  `json:"duration_max"`
	jsonWork
}

func parseJSON(name string, data []byte) (Workload, error) {
	var w Workload
	fail := func(off int64, format string, args ...any) error {
		l, c := lineCol(data, off)
		return &WorkloadError{File: name, Line: l, Col: c, Msg: fmt.Sprintf(format, args...)}
	}
	jsonErr := func(off int64, err error) error {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fail(se.Offset, "%v", se)
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = "value"
			}
			return fail(te.Offset, "%s: cannot use a JSON %s as %s", field, te.Value, te.Type)
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return fail(int64(len(data)), "unexpected end of JSON")
		}
		return fail(off, "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return w, jsonErr(0, err)
	}
	if tok != json.Delim('{') {
		return w, fail(0, "a workload is a JSON object")
	}
	for dec.More() {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return w, jsonErr(off, err)
		}
		key, _ := tok.(string)
		switch key {
		case "name", "description":
			var s string
			if err := dec.Decode(&s); err != nil {
				return w, jsonErr(off, err)
			}
			if key == "name" {
				w.Name = s
			} else {
				w.Description = s
			}
		case "setup":
			var d jsonDuration
			if err := dec.Decode(&d); err != nil {
				return w, fail(off, "setup: %v", err)
			}
			w.Setup = time.Duration(d)
		case "jobs", "batches":
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				if err != nil {
					return w, jsonErr(off, err)
				}
				return w, fail(off, "%s must be an array", key)
			}
			for i := 0; dec.More(); i++ {
				elemOff := dec.InputOffset()
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return w, jsonErr(elemOff, err)
				}
				// InputOffset is before the separating comma and space.
				start := elemOff + int64(bytes.IndexAny(data[elemOff:], "{[\"0123456789-tfn"))
				var err error
				if key == "jobs" {
					err = decodeJob(&w, raw)
				} else {
					err = decodeBatch(&w, raw)
				}
				if err != nil {
					return w, fail(start, "%s[%d]: %v", key, i, err)
				}
				if w.Size() > maxJobs {
					return w, fail(start, "more than %d jobs", maxJobs)
				}
			}
			if _, err := dec.Token(); err != nil {
				return w, jsonErr(dec.InputOffset(), err)
			}
		default:
			return w, fail(off+int64(bytes.IndexByte(data[off:], '"')), "unknown field %q (want name, description, setup, jobs, batches)", key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return w, jsonErr(dec.InputOffset(), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return w, fail(dec.InputOffset(), "extra data after the workload object")
	}
	return w, nil
}

func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%s: cannot use a JSON %s as %s", te.Field, te.Value, te.Type)
		}
		return err
	}
	return nil
}

func decodeJob(w *Workload, raw []byte) error {
	var j jsonJob
	if err := strictDecode(raw, &j); err != nil {
		return err
	}
	if j.Submit == nil || j.Duration == nil {
		return errors.New("a job needs submit and duration")
	}
	wk, err := j.work()
	if err != nil {
		return err
	}
	w.Jobs = append(w.Jobs, Job{Submit: time.Duration(*j.Submit), Duration: time.Duration(*j.Duration), Work: wk})
	return nil
}

func decodeBatch(w *Workload, raw []byte) error {
	var b jsonBatch
	if err := strictDecode(raw, &b); err != nil {
		return err
	}
	if b.Count <= 0 || b.Count > maxJobs {
		return fmt.Errorf("count = %d: must be between 1 and %d", b.Count, maxJobs)
	}
	if b.Duration == nil {
		return errors.New("a batch needs duration")
	}
	switch b.After {
	case "", "submit", "done":
	default:
		return fmt.Errorf("after = %q: must be \"submit\" or \"done\"", b.After)
	}
	if b.After == "" {
		b.After = "submit"
	}
	if b.DurationMax != 0 && time.Duration(b.DurationMax) < time.Duration(*b.Duration) {
		return fmt.Errorf("duration_max %s is less than duration %s", time.Duration(b.DurationMax), time.Duration(*b.Duration))
	}
	wk, err := b.work()
	if err != nil {
		return err
	}
	w.Batches = append(w.Batches, Batch{Count: b.Count, Gap: time.Duration(b.Gap), After: b.After,
		Duration: time.Duration(*b.Duration), DurationMax: time.Duration(b.DurationMax), Work: wk})
	return nil
}

var csvColumns = []string{"submit", "duration", "count", "cpus", "memory", "gpus", "site", "pool", "labels"}

func parseCSV(name string, data []byte) (Workload, error) {
	var w Workload
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return w, &WorkloadError{File: name, Msg: "empty CSV: want a header with submit and duration columns"}
		}
		return w, csvErr(name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !slices.Contains(csvColumns, h) {
			line, c := cr.FieldPos(i)
			return w, &WorkloadError{File: name, Line: line, Col: c, Msg: fmt.Sprintf("unknown column %q (want %s)", h, strings.Join(csvColumns, ", "))}
		}
		if _, dup := col[h]; dup {
			line, c := cr.FieldPos(i)
			return w, &WorkloadError{File: name, Line: line, Col: c, Msg: fmt.Sprintf("column %q appears twice", h)}
		}
		col[h] = i
	}
	for _, req := range []string{"submit", "duration"} {
		if _, ok := col[req]; !ok {
			line, _ := cr.FieldPos(0)
			return w, &WorkloadError{File: name, Line: line, Msg: fmt.Sprintf("the header has no %s column", req)}
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return w, nil
		}
		if err != nil {
			return w, csvErr(name, err)
		}
		field := func(c string) (string, int, int, bool) {
			i, ok := col[c]
			if !ok || i >= len(rec) {
				return "", 0, 0, false
			}
			l, cc := cr.FieldPos(i)
			return strings.TrimSpace(rec[i]), l, cc, true
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return w, &WorkloadError{File: name, Line: line, Msg: fmt.Sprintf("%d fields, the header has %d", len(rec), len(header))}
		}
		bad := func(c string, format string, args ...any) error {
			_, l, cc, _ := field(c)
			return &WorkloadError{File: name, Line: l, Col: cc, Msg: c + ": " + fmt.Sprintf(format, args...)}
		}
		var j Job
		count := 1
		for _, c := range csvColumns {
			v, _, _, ok := field(c)
			if !ok || (v == "" && c != "submit" && c != "duration") {
				continue
			}
			var err error
			switch c {
			case "submit":
				j.Submit, err = parseDuration(v)
			case "duration":
				j.Duration, err = parseDuration(v)
			case "count":
				count, err = strconv.Atoi(v)
				if err == nil && (count < 1 || count > maxJobs) {
					err = fmt.Errorf("must be between 1 and %d", maxJobs)
				}
			case "cpus", "gpus":
				var n int
				n, err = strconv.Atoi(v)
				if err == nil && (n < 0 || n > 1<<20) {
					err = errors.New("must be between 0 and 1048576")
				}
				if c == "cpus" {
					j.CPUs = n
				} else {
					j.GPUs = n
				}
			case "memory":
				j.Memory, err = templates.ParseSize(v)
			case "site":
				j.Site = v
			case "pool":
				j.Pool = v
			case "labels":
				j.Labels, err = parseLabels(v)
			}
			if err != nil {
				return w, bad(c, "%v", err)
			}
		}
		if w.Size()+count > maxJobs {
			return w, &WorkloadError{File: name, Line: line, Msg: fmt.Sprintf("more than %d jobs", maxJobs)}
		}
		for range count {
			w.Jobs = append(w.Jobs, j)
		}
	}
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

func csvErr(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &WorkloadError{File: name, Line: pe.Line, Col: pe.Column, Msg: pe.Err.Error()}
	}
	return fmt.Errorf("read workload %s: %w", name, err)
}
