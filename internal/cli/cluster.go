package cli

import (
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/hvctl/hvctl/internal/logging"
	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/agent"
	"github.com/hvctl/hvctl/scheduler/manager"
)

func init() {
	register(&command{name: "agent", usage: "-config FILE", help: "Run the node agent (started on every node; not for people)", run: runAgent})
}

func runAgent(a *App, args []string) int {
	c := findCommand("agent")
	fs := a.flagSet(c)
	path := fs.String("config", "", "agent config file written by the provider")
	if _, code, ok := a.parse(fs, args); !ok {
		return code
	}
	if *path == "" {
		return a.fail("hvctl agent needs -config", "The agent is started by the provider on each node with -config FILE.")
	}
	cfg, err := agent.LoadConfig(*path)
	if err != nil {
		return a.failErr(err)
	}
	if err := agent.NewWithLogger(cfg, logging.StdLogger(a.Log, slog.LevelInfo)).Run(a.Ctx); err != nil && a.Ctx.Err() == nil {
		return a.failErr(err)
	}
	return exitOK
}

// waitJoined waits until every agent-running node in st has joined and
// its probe through the overlay succeeded, printing progress.
func (a *App) waitJoined(s *session, timeout time.Duration) ([]manager.Node, error) {
	st, err := s.Store.Load()
	if err != nil {
		return nil, err
	}
	mc := s.managerFor(st)
	if mc == nil {
		return nil, nil
	}
	want := s.AgentMembers(st)
	start := time.Now()
	deadline := start.Add(timeout)
	lastReport := start
	fmt.Fprintf(a.Stdout, "\nWaiting for %d nodes to join the overlay...\n", len(want))
	var lastErr error
	for {
		nodes, err := mc.nodes(a.Ctx)
		if err == nil {
			joined, probed := 0, 0
			var missing []string
			for id := range want {
				ok := false
				for _, n := range nodes {
					if n.ID == id && n.State == manager.StateJoined {
						joined++
						if n.ProbeOK {
							probed++
							ok = true
						}
					}
				}
				if !ok {
					missing = append(missing, id)
				}
			}
			dead := deadPaths(nodes, want)
			if probed == len(want) && len(dead) == 0 {
				fmt.Fprintf(a.Stdout, "All %d nodes joined; every overlay path they need answers after %s.\n", len(want), provision.HumanDuration(time.Since(start)))
				return nodes, nil
			}
			if time.Since(lastReport) >= 10*time.Second {
				fmt.Fprintf(a.Stdout, "Still waiting... [%s elapsed] %d/%d joined, %d/%d probes answered, %d overlay paths dead\n", provision.HumanDuration(time.Since(start)), joined, len(want), probed, len(want), len(dead))
				lastReport = time.Now()
			}
			sort.Strings(missing)
			lastErr = notReadyError(missing, dead)
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the overlay was not ready within %s (-join-timeout): %v\nEach node's agent log is in the state directory (%s); hvctl status shows what joined.", provision.HumanDuration(timeout), lastErr, s.Store.Dir())
		}
		select {
		case <-a.Ctx.Done():
			return nil, a.Ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
