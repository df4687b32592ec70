package cli

import (
	"fmt"
	"sort"

	"github.com/hvctl/hvctl/internal/cluster"
	"github.com/hvctl/hvctl/templates"
)

// printOutputs prints "Outputs:" after apply, as Terraform does.
func (a *App) printOutputs(outs map[string]cluster.Output) {
	if len(outs) == 0 {
		return
	}
	names := make([]string, 0, len(outs))
	for n := range outs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(a.Stdout, "\n%s\n\n", a.bold("Outputs:"))
	for _, n := range names {
		o := outs[n]
		if o.Sensitive {
			fmt.Fprintf(a.Stdout, "%s = <sensitive>\n", n)
			continue
		}
		v, err := o.CtyValue()
		if err != nil {
			continue
		}
		fmt.Fprintf(a.Stdout, "%s = %s\n", n, templates.OutputString(v))
	}
}
