package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

// clusterData is what hvctl keeps about a cluster in the state's data.
type clusterData struct {
	Secret string `json:"secret"`
	CACert string `json:"ca_cert,omitempty"`
	CAKey  string `json:"ca_key,omitempty"`
	// Created is when the cluster was first applied: its ttl runs from
	// here, so every resource carries the same expiry.
	Created time.Time `json:"created,omitzero"`
}

// clusterCreated returns when the cluster was first applied (now, and
// recorded in st, on first use).
func clusterCreated(st *provision.State) time.Time {
	var cd clusterData
	json.Unmarshal(st.Data["cluster"], &cd)
	if cd.Created.IsZero() {
		cd.Created = time.Now().UTC()
		b, _ := json.Marshal(cd)
		st.Data["cluster"] = b
	}
	return cd.Created
}

// clusterSecret returns the cluster secret and CA from st, creating
// them (in st) on first use.
func clusterSecret(st *provision.State) (manager.Secret, *manager.CA, error) {
	var cd clusterData
	if raw, ok := st.Data["cluster"]; ok {
		if err := json.Unmarshal(raw, &cd); err != nil {
			return nil, nil, fmt.Errorf("state: cluster data is unreadable: %w", err)
		}
	}
	if cd.Secret == "" {
		if err := lostClusterData(st, "secret"); err != nil {
			return nil, nil, err
		}
		cd.Secret = manager.NewSecret().String()
	}
	if cd.CACert == "" || cd.CAKey == "" {
		if err := lostClusterData(st, "certificate authority"); err != nil {
			return nil, nil, err
		}
		ca, err := manager.NewCA(st.Cluster)
		if err != nil {
			return nil, nil, err
		}
		cd.CACert, cd.CAKey = string(ca.CertPEM), string(ca.KeyPEM)
	}
	b, _ := json.Marshal(cd)
	if st.Data == nil {
		st.Data = map[string]json.RawMessage{}
	}
	st.Data["cluster"] = b
	secret, err := manager.ParseSecret(cd.Secret)
	if err != nil {
		return nil, nil, err
	}
	return secret, &manager.CA{CertPEM: []byte(cd.CACert), KeyPEM: []byte(cd.CAKey)}, nil
}

// bootstrap wires the join-token hook into the engine for st.
func (s *session) bootstrap(st *provision.State) error {
	secret, ca, err := clusterSecret(st)
	if err != nil {
		return err
	}
	b, err := agent.NewBootstrap(s.cfg, secret, ca)
	if err != nil {
		return err
	}
	if exe, err := os.Executable(); err == nil {
		dir, _ := os.Getwd()
		var args []string
		if s.store.Backend == nil {
			statePath, _ := filepath.Abs(s.store.Path)
			args = []string{"-state", statePath}
		} else {
			args = []string{"-workspace", s.workspace}
			for _, kv := range s.backendConfig {
				args = append(args, "-backend-config", kv)
			}
		}
		for _, v := range s.vars {
			args = append(args, "-var", v.Name+"="+v.Value)
		}
		b.Host = &agent.HostCommand{Argv: []string{exe}, Dir: dir, Args: append(args, s.tmpl)}
	}
	s.boot = b
	s.eng.Prepare = b.Prepare
	if ttl := s.cfg.Cluster.TTL; ttl > 0 {
		s.eng.ExpiresAt = clusterCreated(st).Add(ttl)
	}
	return nil
}

// waitJoined waits until every agent-running node in st has joined and
// its probe through the overlay succeeded, printing progress.
func (a *App) waitJoined(s *session, timeout time.Duration) ([]manager.Node, error) {
	st, err := s.store.Load()
	if err != nil {
		return nil, err
	}
	mc := s.managerFor(st)
	if mc == nil {
		return nil, nil
	}
	want := map[string]bool{}
	for _, r := range st.Resources {
		if r.Kind != provision.KindInstance {
			continue
		}
		if p, ok := s.eng.Provider(r.Provider); ok {
			if h, ok := p.(provision.AgentHost); ok && h.RunsAgents() {
				want[manager.MemberID(r.Address)] = true
			}
		}
	}
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
			return nil, fmt.Errorf("the overlay was not ready within %s (-join-timeout): %v\nEach node's agent log is in the state directory (%s); hvctl status shows what joined.", provision.HumanDuration(timeout), lastErr, s.store.Dir())
		}
		select {
		case <-a.Ctx.Done():
			return nil, a.Ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
