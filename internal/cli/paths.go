package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hvctl/hvctl/scheduler/manager"
)

// PathRow is the health of one overlay path a node needs (to a hub or a
// gateway; to every node in a mesh), as its agent last reported it.
type PathRow struct {
	To         string  `json:"to"`
	Address    string  `json:"address"`
	OK         bool    `json:"ok"`
	LastAnswer string  `json:"last_answer,omitempty"`
	Loss       float64 `json:"loss"`
	Reported   bool    `json:"reported"`
}

func pathRows(n manager.Node) []PathRow {
	var out []PathRow
	for _, p := range n.Paths {
		r := PathRow{To: p.To, Address: p.Address.String(), OK: p.OK, Reported: p.Reported, Loss: p.Loss()}
		if !p.LastAnswer.IsZero() {
			r.LastAnswer = p.LastAnswer.UTC().Format(time.RFC3339)
		}
		out = append(out, r)
	}
	return out
}

// deadPaths lists the dead paths of the wanted members, sorted; missing
// lists wanted members whose paths the manager cannot judge (not joined).
func deadPaths(nodes []manager.Node, want map[string]bool) []string {
	var out []string
	for _, n := range nodes {
		if want[n.ID] && n.State == manager.StateJoined {
			out = append(out, n.DeadPaths()...)
		}
	}
	sort.Strings(out)
	return out
}

// printPaths prints, per node, how many of its paths answer, and every
// dead path.
func (a *App) printPaths(rows []NodeStatus) {
	var lines []string
	for _, r := range rows {
		if len(r.Paths) == 0 {
			continue
		}
		ok := 0
		var dead []string
		for _, p := range r.Paths {
			if p.OK {
				ok++
				continue
			}
			why := "no answer since " + p.LastAnswer
			switch {
			case !p.Reported:
				why = "not probed yet"
			case p.LastAnswer == "":
				why = "never answered"
			}
			dead = append(dead, fmt.Sprintf("%s (%s): %s, loss %.0f%%", p.To, p.Address, why, 100*p.Loss))
		}
		lines = append(lines, fmt.Sprintf("%s\t%d/%d\t%s", r.member(), ok, len(r.Paths), dash(strings.Join(dead, "; "))))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(a.Stdout, "\nOverlay paths (probes to the hubs and gateways each node needs; every node in a mesh):")
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tANSWERING\tDEAD")
	for _, l := range lines {
		fmt.Fprintln(tw, l)
	}
	tw.Flush()
}

func (r NodeStatus) member() string { return memberName(r.Address) }

// notReadyError says which nodes are not joined with a working overlay
// (missing) and names every dead path, one a line.
func notReadyError(missing, dead []string) error {
	if len(dead) == 0 {
		return fmt.Errorf("not joined with a working overlay: %s", strings.Join(missing, ", "))
	}
	msg := fmt.Sprintf("%d overlay paths do not answer", len(dead))
	if len(missing) > 0 {
		msg += fmt.Sprintf(" (nodes without a working overlay: %s)", strings.Join(missing, ", "))
	}
	return fmt.Errorf("%s:\n  %s", msg, strings.Join(dead, "\n  "))
}
