package cli

import (
	"fmt"
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

func runGC(a *App, args []string) int {
	c := findCommand("gc")
	fs := a.flagSet(c)
	var o opFlags
	o.add(fs, optParallelism)
	dry := fs.Bool("dry-run", false, "list what would be destroyed, destroy nothing")
	jsonOut := fs.Bool("json", false, "print what was found as JSON")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	o.lock = false
	s, ok := a.open(templatePath(pos), &o, "gc")
	if !ok {
		return exitError
	}
	defer s.close()
	now := time.Now()
	var found []*expiredCluster
	refs := make([]string, 0, len(s.cfg.Providers))
	for _, p := range s.cfg.Providers {
		refs = append(refs, p.Ref())
	}
	sort.Strings(refs)
	for _, ref := range refs {
		p, ok := s.eng.Provider(ref)
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
			if r.ExpiresAt.IsZero() || r.ExpiresAt.After(now) {
				continue
			}
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
	if *jsonOut {
		if found == nil {
			found = []*expiredCluster{}
		}
		defer a.writeJSON(map[string]any{"dry_run": *dry, "expired": found})
	} else if len(found) == 0 {
		fmt.Fprintln(a.Stdout, "No expired clusters.")
		return exitOK
	} else {
		tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROVIDER\tCLUSTER\tEXPIRED\tRESOURCES")
		for _, ec := range found {
			fmt.Fprintf(tw, "%s\t%s\t%s ago\t%d\n", ec.Provider, ec.Cluster, provision.HumanDuration(now.Sub(ec.ExpiresAt)), len(ec.Resources))
		}
		tw.Flush()
	}
	if *dry {
		if !*jsonOut {
			fmt.Fprintln(a.Stdout, "\nDry run: nothing was destroyed.")
		}
		return exitOK
	}
	failed := false
	for _, ec := range found {
		p, _ := s.eng.Provider(ec.Provider)
		// Instances before networks; nested sites' networks before their
		// parents' (longer addresses first).
		sort.SliceStable(ec.Resources, func(i, j int) bool {
			ri, rj := ec.Resources[i], ec.Resources[j]
			if ri.Kind != rj.Kind {
				return ri.Kind == provision.KindInstance
			}
			return strings.Count(ri.Address, ".") > strings.Count(rj.Address, ".")
		})
		for _, r := range ec.Resources {
			err := p.Delete(a.Ctx, &provision.DeleteRequest{Address: r.Address, Kind: r.Kind, ID: r.ID})
			if err != nil {
				a.printError(fmt.Sprintf("gc: delete %s %s of cluster %s", r.Kind, r.ID, ec.Cluster), err.Error())
				failed = true
				continue
			}
			if !*jsonOut {
				fmt.Fprintf(a.Stdout, "%s: destroyed %s (%s) of expired cluster %s\n", ec.Provider, r.Address, r.ID, ec.Cluster)
			}
		}
	}
	if failed {
		return exitError
	}
	return exitOK
}
