package provision

import (
	"encoding/json"
	"fmt"
	"io"

	"strconv"
	"strings"
	"sync"
	"time"
)

// Colors: Terraform's palette for plan symbols.
const (
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiBold   = "\x1b[1m"
	ansiReset  = "\x1b[0m"
)

// Renderer writes plans and apply progress for people.
type Renderer struct {
	W     io.Writer
	Color bool
}

func (r *Renderer) c(code, s string) string {
	if !r.Color {
		return s
	}
	return code + s + ansiReset
}

// RenderPlan writes a plan the way Terraform does.
func (r *Renderer) RenderPlan(p *Plan) {
	w := r.W
	if len(p.Drift) > 0 {
		fmt.Fprintf(w, "\n%s\n\n", r.c(ansiBold, "Note: Objects have changed outside of hvctl"))
		for _, d := range p.Drift {
			fmt.Fprintf(w, "  # %s %s\n", d.Address, d.Detail)
		}
		fmt.Fprintln(w)
	}
	if n := p.Awaiting(); n > 0 {
		fmt.Fprintf(w, "\nNote: %d resources were created but not yet seen ready; apply waits for them.\n", n)
	}
	if p.RefreshOnly {
		if len(p.Drift) == 0 {
			fmt.Fprintf(w, "\n%s\n\n", r.c(ansiGreen+ansiBold, "No changes.")+r.c(ansiBold, " Your infrastructure still matches the state."))
			fmt.Fprintln(w, "hvctl has checked that the real remote objects still match the result of")
			fmt.Fprintln(w, "your most recent changes, and found no differences.")
			return
		}
		fmt.Fprintln(w, "This is a refresh-only plan, so hvctl will not take any actions to undo")
		fmt.Fprintln(w, "these. If you were expecting these changes, apply this plan to record the")
		fmt.Fprintln(w, "updated values in the state without changing any remote objects.")
		return
	}
	if !p.HasChanges() {
		fmt.Fprintf(w, "\n%s\n", r.c(ansiGreen+ansiBold, "No changes.")+r.c(ansiBold, " Your infrastructure matches the configuration."))
		fmt.Fprintln(w)
		fmt.Fprintln(w, "hvctl has compared your real infrastructure against your configuration and")
		fmt.Fprintln(w, "found no differences, so no changes are needed.")
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "hvctl used the selected providers to generate the following execution")
	fmt.Fprintln(w, "plan. Resource actions are indicated with the following symbols:")
	seen := map[Action]bool{}
	for _, c := range p.Changes {
		seen[c.Action] = true
	}
	if seen[ActionCreate] {
		fmt.Fprintf(w, "  %s create\n", r.c(ansiGreen, "+"))
	}
	if seen[ActionUpdate] {
		fmt.Fprintf(w, "  %s update in-place\n", r.c(ansiYellow, "~"))
	}
	if seen[ActionDelete] {
		fmt.Fprintf(w, "  %s destroy\n", r.c(ansiRed, "-"))
	}
	if seen[ActionReplace] {
		fmt.Fprintf(w, "%s%s destroy and then create replacement\n", r.c(ansiRed, "-"), r.c(ansiGreen, "/+"))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "hvctl will perform the following actions:")
	for _, c := range p.Changes {
		if c.Action == ActionNoop {
			continue
		}
		fmt.Fprintln(w)
		r.renderChange(c)
	}
	add, change, destroy := p.Counts()
	fmt.Fprintf(w, "\n%s %d to add, %d to change, %d to destroy.\n", r.c(ansiBold, "Plan:"), add, change, destroy)
}

func (r *Renderer) renderChange(c *Change) {
	w := r.W
	var head, sym string
	switch c.Action {
	case ActionCreate:
		head, sym = "will be created", r.c(ansiGreen, "  +")
	case ActionUpdate:
		head, sym = "will be updated in-place", r.c(ansiYellow, "  ~")
	case ActionDelete:
		head, sym = "will be destroyed", r.c(ansiRed, "  -")
	case ActionReplace:
		head, sym = "must be replaced", r.c(ansiRed, "-")+r.c(ansiGreen, "/+")
	}
	fmt.Fprintf(w, "  %s %s\n", r.c(ansiBold, "# "+c.Address), r.c(ansiBold, head))
	if c.Reason != "" {
		fmt.Fprintf(w, "  # (because %s)\n", c.Reason)
	}
	fmt.Fprintf(w, "%s resource %q %q {\n", sym, c.Type, c.Address)

	type line struct{ sym, key, val, note string }
	var lines []line
	unknown := map[string]bool{}
	for _, k := range c.Unknown {
		unknown[k] = true
	}
	force := map[string]bool{}
	for _, k := range c.ForceNew {
		force[k] = true
	}
	keys := map[string]bool{}
	for k := range c.Before {
		keys[k] = true
	}
	for k := range c.After {
		keys[k] = true
	}
	for k := range unknown {
		keys[k] = true
	}
	for k := range keys {
		if IsInternal(k) {
			delete(keys, k)
		}
	}
	names := sortedKeys(keys)
	hidden := 0
	if c.BeforeID != "" && c.Action != ActionCreate {
		id := strconv.Quote(c.BeforeID)
		if c.Action == ActionDelete {
			lines = append(lines, line{r.c(ansiRed, "-"), "id", id + " -> null", ""})
		} else if c.Action == ActionReplace {
			lines = append(lines, line{r.c(ansiYellow, "~"), "id", id + " -> (known after apply)", ""})
		} else {
			lines = append(lines, line{" ", "id", id, ""})
		}
	}
	for _, k := range names {
		before, hadB := c.Before[k]
		after, hadA := c.After[k]
		note := ""
		if force[k] {
			note = r.c(ansiRed, " # forces replacement")
		}
		switch c.Action {
		case ActionCreate:
			if unknown[k] {
				lines = append(lines, line{r.c(ansiGreen, "+"), k, r.fmtValue(k, nil, true), ""})
			} else if hadA {
				lines = append(lines, line{r.c(ansiGreen, "+"), k, r.fmtValue(k, after, false), ""})
			}
		case ActionDelete:
			lines = append(lines, line{r.c(ansiRed, "-"), k, r.fmtValue(k, before, false) + " -> null", ""})
		default: // update, replace
			switch {
			case unknown[k] && c.Action == ActionReplace:
				if hadB {
					lines = append(lines, line{r.c(ansiYellow, "~"), k, r.fmtValue(k, before, false) + " -> (known after apply)", ""})
				} else {
					lines = append(lines, line{r.c(ansiGreen, "+"), k, "(known after apply)", ""})
				}
			case hadA && !hadB:
				lines = append(lines, line{r.c(ansiGreen, "+"), k, r.fmtValue(k, after, false), note})
			case hadB && !hadA:
				if isComputed(c.Kind, k) {
					hidden++
					continue
				}
				lines = append(lines, line{r.c(ansiRed, "-"), k, r.fmtValue(k, before, false) + " -> null", note})
			case !valueEqual(before, after):
				lines = append(lines, line{r.c(ansiYellow, "~"), k, r.fmtValue(k, before, false) + " -> " + r.fmtValue(k, after, false), note})
			default:
				hidden++
			}
		}
	}
	width := 0
	for _, l := range lines {
		if len(l.key) > width {
			width = len(l.key)
		}
	}
	for _, l := range lines {
		fmt.Fprintf(w, "      %s %-*s = %s%s\n", l.sym, width, l.key, l.val, l.note)
	}
	if hidden > 0 {
		fmt.Fprintf(w, "        # (%d unchanged attributes hidden)\n", hidden)
	}
	fmt.Fprintln(w, "    }")
}

func (r *Renderer) fmtValue(key string, v any, unknown bool) string {
	if unknown {
		return "(known after apply)"
	}
	if IsSecret(key) {
		return "(sensitive value)"
	}
	return FormatValue(v)
}

// FormatValue renders an attribute value in HCL-like syntax.
func FormatValue(v any) string {
	switch x := normalizeValue(v).(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case map[string]string:
		var parts []string
		for _, k := range sortedKeys(x) {
			parts = append(parts, k+" = "+strconv.Quote(x[k]))
		}
		if len(parts) == 0 {
			return "{}"
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	default:
		return fmt.Sprint(x)
	}
}

// JSON plan: the machine-readable form of spec/cli.md.

type jsonPlan struct {
	FormatVersion   string         `json:"format_version"`
	HvctlVersion    string         `json:"hvctl_version"`
	Lineage         string         `json:"lineage"`
	Serial          uint64         `json:"serial"`
	Destroy         bool           `json:"destroy"`
	ResourceChanges []jsonChange   `json:"resource_changes"`
	ResourceDrift   []Drift        `json:"resource_drift,omitempty"`
	Summary         map[string]int `json:"summary"`
}

type jsonChange struct {
	Address      string     `json:"address"`
	Type         string     `json:"type"`
	ProviderName string     `json:"provider_name"`
	Change       jsonDetail `json:"change"`
	ActionReason string     `json:"action_reason,omitempty"`
}

type jsonDetail struct {
	Actions         []string        `json:"actions"`
	Before          map[string]any  `json:"before"`
	After           map[string]any  `json:"after"`
	AfterUnknown    map[string]bool `json:"after_unknown"`
	BeforeSensitive map[string]bool `json:"before_sensitive"`
	AfterSensitive  map[string]bool `json:"after_sensitive"`
	ReplacePaths    [][]string      `json:"replace_paths,omitempty"`
}

func jsonActions(a Action) []string {
	switch a {
	case ActionReplace:
		return []string{"delete", "create"}
	default:
		return []string{string(a)}
	}
}

// redact returns attrs with sensitive values replaced by null, and the
// sensitivity map.
func redact(a Attrs) (map[string]any, map[string]bool) {
	sens := map[string]bool{}
	if a == nil {
		return nil, sens
	}
	out := make(map[string]any, len(a))
	for k, v := range a {
		if IsInternal(k) {
			continue
		}
		if IsSecret(k) {
			out[k] = nil
			sens[k] = true
			continue
		}
		out[k] = v
	}
	return out, sens
}

// WritePlanJSON writes the plan as one JSON document; secrets are
// replaced by null and flagged in before_sensitive/after_sensitive.
func WritePlanJSON(w io.Writer, p *Plan) error {
	add, change, destroy := p.Counts()
	jp := jsonPlan{
		FormatVersion: "1.0", HvctlVersion: Version, Lineage: p.Lineage, Serial: p.Serial,
		Destroy: p.Destroy, ResourceDrift: p.Drift,
		Summary:         map[string]int{"add": add, "change": change, "destroy": destroy},
		ResourceChanges: []jsonChange{},
	}
	for _, c := range p.Changes {
		before, bs := redact(c.Before)
		after, as := redact(c.After)
		unk := map[string]bool{}
		for _, k := range c.Unknown {
			unk[k] = true
			if IsSecret(k) {
				as[k] = true
			}
		}
		d := jsonDetail{Actions: jsonActions(c.Action), Before: before, After: after,
			AfterUnknown: unk, BeforeSensitive: bs, AfterSensitive: as}
		for _, k := range c.ForceNew {
			d.ReplacePaths = append(d.ReplacePaths, []string{k})
		}
		jp.ResourceChanges = append(jp.ResourceChanges, jsonChange{
			Address: c.Address, Type: c.Type, ProviderName: c.Provider, Change: d, ActionReason: c.Reason,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jp)
}

// TextUI prints apply progress lines like Terraform's.
type TextUI struct {
	R  *Renderer
	mu sync.Mutex
}

var verbs = map[Action][3]string{
	ActionCreate:  {"Creating...", "Still creating...", "Creation complete"},
	ActionUpdate:  {"Modifying...", "Still modifying...", "Modifications complete"},
	ActionDelete:  {"Destroying...", "Still destroying...", "Destruction complete"},
	ActionStop:    {"Stopping...", "Still stopping...", "Stop complete"},
	ActionStart:   {"Starting...", "Still starting...", "Start complete"},
	ActionRestart: {"Restarting...", "Still restarting...", "Restart complete"},
}

func roundDur(d time.Duration) string { return HumanDuration(d) }

// Started prints "ADDR: Creating...".
func (u *TextUI) Started(addr string, a Action) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.R.W, "%s: %s\n", u.R.c(ansiBold, addr), verbs[a][0])
}

// Progress prints "ADDR: Still creating... [10s elapsed]".
func (u *TextUI) Progress(addr string, a Action, elapsed time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.R.W, "%s: %s [%s elapsed]\n", u.R.c(ansiBold, addr), verbs[a][1], roundDur(elapsed))
}

// Finished prints "ADDR: Creation complete after 12s [id=...]" or the error.
func (u *TextUI) Finished(addr string, a Action, id string, elapsed time.Duration, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		fmt.Fprintf(u.R.W, "%s: %s\n", u.R.c(ansiBold, addr), u.R.c(ansiRed, "failed after "+roundDur(elapsed)))
		return
	}
	suffix := ""
	if id != "" && a != ActionDelete {
		suffix = " [id=" + id + "]"
	}
	fmt.Fprintf(u.R.W, "%s: %s after %s%s\n", u.R.c(ansiBold, addr), verbs[a][2], roundDur(elapsed), suffix)
}

// JSONUI prints apply progress as JSON lines, one event per line.
type JSONUI struct {
	W  io.Writer
	mu sync.Mutex
}

func (u *JSONUI) emit(ev map[string]any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ev["@timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(ev)
	u.W.Write(append(b, '\n'))
}

// Started emits an apply_start event.
func (u *JSONUI) Started(addr string, a Action) {
	u.emit(map[string]any{"type": "apply_start", "address": addr, "action": string(a)})
}

// Progress emits an apply_progress event.
func (u *JSONUI) Progress(addr string, a Action, elapsed time.Duration) {
	u.emit(map[string]any{"type": "apply_progress", "address": addr, "action": string(a), "elapsed_seconds": int(elapsed.Seconds())})
}

// Finished emits apply_complete or apply_errored.
func (u *JSONUI) Finished(addr string, a Action, id string, elapsed time.Duration, err error) {
	ev := map[string]any{"type": "apply_complete", "address": addr, "action": string(a), "id": id, "elapsed_seconds": elapsed.Seconds()}
	if err != nil {
		ev["type"] = "apply_errored"
		ev["error"] = err.Error()
	}
	u.emit(ev)
}

// Emit writes an arbitrary event (used for the summary).
func (u *JSONUI) Emit(ev map[string]any) { u.emit(ev) }
