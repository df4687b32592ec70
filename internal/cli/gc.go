package cli

import (
	"bufio"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hvctl/hvctl/provision"
)

func init() {
	register(&command{name: "gc", usage: "[PATH] [-dry-run] [-json]", help: "Destroy clusters whose ttl has passed, found by their tags", run: runGC})
}

// expiredCluster is one cluster gc found past its ttl, on one provider.
type expiredCluster struct {
	Provider  string            `json:"provider"`
	Cluster   string            `json:"cluster"`
	ExpiresAt time.Time         `json:"expires_at"`
	Resources []provision.Owned `json:"resources"`
}

// gcResult is what gc did to one resource.
type gcResult struct {
	Provider string         `json:"provider"`
	Cluster  string         `json:"cluster"`
	Address  string         `json:"address"`
	ID       string         `json:"id"`
	Kind     provision.Kind `json:"kind"`
	Error    string         `json:"error,omitempty"`
}

func runGC(a *App, args []string) int {
	c := findCommand("gc")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optParallelism|optInput)
	dry := fs.Bool("dry-run", false, "list what would be destroyed, destroy nothing")
	auto := fs.Bool("auto-approve", false, "destroy without asking")
	jsonOut := fs.Bool("json", false, "print what was found and done as JSON")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	o.lock = false
	s, ok := a.open(templatePath(pos), &o, "gc")
	if !ok {
		return exitError
	}
	defer s.close()
	now := time.Now()
	var found []*expiredCluster
	refs := make([]string, 0, len(s.Config.Providers))
	for _, p := range s.Config.Providers {
		refs = append(refs, p.Ref())
	}
	sort.Strings(refs)
	// Two provider blocks of one cloud (two sim providers share a world,
	// two AWS accounts' views may overlap) list the same machine: each
	// resource is collected once, by the first provider that lists it.
	seen := map[string]bool{}
	for _, ref := range refs {
		p, ok := s.Engine.Provider(ref)
		if !ok {
			continue
		}
		col, ok := p.(provision.Collector)
		if !ok {
			fmt.Fprintf(a.Stderr, "Note: %s cannot list what hvctl made; skipped.\n", ref)
			continue
		}
		owned, err := col.Owned(a.Ctx)
		if err != nil {
			return a.failErr(fmt.Errorf("gc: list resources of %s: %w", ref, err))
		}
		byCluster := map[string]*expiredCluster{}
		for _, r := range owned {
			if r.ExpiresAt.IsZero() || r.ExpiresAt.After(now) || seen[string(r.Kind)+"/"+r.ID] {
				continue
			}
			seen[string(r.Kind)+"/"+r.ID] = true
			ec := byCluster[r.Cluster]
			if ec == nil {
				ec = &expiredCluster{Provider: ref, Cluster: r.Cluster, ExpiresAt: r.ExpiresAt}
				byCluster[r.Cluster] = ec
				found = append(found, ec)
			}
			if r.ExpiresAt.Before(ec.ExpiresAt) {
				ec.ExpiresAt = r.ExpiresAt
			}
			ec.Resources = append(ec.Resources, r)
		}
	}
	if !*jsonOut {
		if len(found) == 0 {
			fmt.Fprintln(a.Stdout, "No expired clusters.")
			return exitOK
		}
		tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROVIDER\tCLUSTER\tEXPIRED\tRESOURCES")
		for _, ec := range found {
			fmt.Fprintf(tw, "%s\t%s\t%s ago\t%d\n", ec.Provider, ec.Cluster, provision.HumanDuration(now.Sub(ec.ExpiresAt)), len(ec.Resources))
		}
		tw.Flush()
	}
	doc := map[string]any{"dry_run": *dry, "expired": found, "destroyed": []gcResult{}, "states_updated": []string{}, "states_not_found": []string{}}
	if found == nil {
		doc["expired"] = []*expiredCluster{}
	}
	if *dry || len(found) == 0 {
		if *jsonOut {
			return a.writeJSON(doc)
		}
		fmt.Fprintln(a.Stdout, "\nDry run: nothing was destroyed.")
		return exitOK
	}
	if !*auto {
		if !o.input || *jsonOut {
			return a.fail("No approval: gc needs -auto-approve here", "gc would ask whether to destroy these clusters, but "+map[bool]string{true: "-json", false: "-input=false"}[*jsonOut]+" forbids asking; nothing was destroyed. Add -auto-approve.")
		}
		fmt.Fprint(a.Stdout, "\nDo you really want to destroy these expired clusters?\n  hvctl will destroy every resource listed above. There is no undo.\n  Only 'yes' will be accepted to confirm.\n\n  Enter a value: ")
		line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
		fmt.Fprintln(a.Stdout)
		if strings.TrimSpace(line) != "yes" {
			return a.fail("gc cancelled.", "Only the answer \"yes\" approves; nothing was destroyed.")
		}
	}
	var results []gcResult
	failed := false
	for _, ec := range found {
		p, _ := s.Engine.Provider(ec.Provider)
		// Instances before networks; nested sites' networks before their
		// parents' (longer addresses first).
		sort.SliceStable(ec.Resources, func(i, j int) bool {
			ri, rj := ec.Resources[i], ec.Resources[j]
			if ri.Kind != rj.Kind {
				return ri.Kind == provision.KindInstance
			}
			return strings.Count(ri.Address, ".") > strings.Count(rj.Address, ".")
		})
		var gone []string
		for _, r := range ec.Resources {
			res := gcResult{Provider: ec.Provider, Cluster: ec.Cluster, Address: r.Address, ID: r.ID, Kind: r.Kind}
			if err := p.Delete(a.Ctx, &provision.DeleteRequest{Address: r.Address, Kind: r.Kind, ID: r.ID}); err != nil {
				res.Error = err.Error()
				failed = true
				if !*jsonOut {
					a.printError(fmt.Sprintf("gc: delete %s %s of cluster %s", r.Kind, r.ID, ec.Cluster), err.Error())
				}
			} else {
				gone = append(gone, r.ID)
				if !*jsonOut {
					fmt.Fprintf(a.Stdout, "%s: destroyed %s (%s) of expired cluster %s\n", ec.Provider, r.Address, r.ID, ec.Cluster)
				}
			}
			results = append(results, res)
		}
		updated, err := forgetInStates(a, s.Store.Dir(), ec.Cluster, gone)
		if err != nil {
			failed = true
			a.printError("gc: update the state of cluster "+ec.Cluster, err.Error())
		}
		if len(updated) == 0 {
			doc["states_not_found"] = append(doc["states_not_found"].([]string), ec.Cluster)
			if !*jsonOut {
				fmt.Fprintf(a.Stdout, "No state of cluster %s in %s: its own next plan will show these resources as deleted outside hvctl.\n", ec.Cluster, s.Store.Dir())
			}
		}
		for _, u := range updated {
			doc["states_updated"] = append(doc["states_updated"].([]string), u)
			if !*jsonOut {
				fmt.Fprintf(a.Stdout, "Updated the state of cluster %s: %s\n", ec.Cluster, u)
			}
		}
	}
	if results != nil {
		doc["destroyed"] = results
	}
	if *jsonOut {
		a.writeJSON(doc)
	}
	if failed {
		return exitError
	}
	return exitOK
}

// forgetInStates removes the resources with the given IDs from every
// state of cluster in dir (hvctl's state directory), each under its
// lock, and returns the paths of the states it changed or found.
func forgetInStates(a *App, dir, cluster string, ids []string) ([]string, error) {
	gone := map[string]bool{}
	for _, id := range ids {
		gone[id] = true
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var out []string
	var errs []error
	for _, p := range paths {
		store := &provision.Store{Path: p}
		st, err := store.Load()
		if err != nil || st.Cluster != cluster {
			continue // not a state, or another cluster's
		}
		l, err := store.Lock(a.Ctx, "gc", 30*time.Second)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		if st, err = store.Load(); err == nil {
			n := 0
			for _, r := range append([]*provision.ResourceState(nil), st.Resources...) {
				if gone[r.ID] {
					provision.ForgetResource(st, r.Address)
					n++
				}
			}
			if n > 0 {
				err = store.Write(st)
			}
		}
		l.Unlock()
		store.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}
