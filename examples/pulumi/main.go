// Command pulumi declares an hvctl cluster in a Pulumi stack through the
// Automation API, with an inline Go program (no Pulumi project files, no
// language host), on a file backend:
//
//	hvctl pulumi install                       # pulumi-resource-hvctl beside hvctl
//	go run ./examples/pulumi -workers 3        # pulumi up
//	go run ./examples/pulumi -preview          # pulumi preview
//	go run ./examples/pulumi -destroy          # pulumi destroy
//
// The Pulumi CLI must be on PATH (or -pulumi-root DIR with DIR/bin/pulumi);
// docs/pulumi.md says how to build it offline.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Cluster is hvctl:index:Cluster with the outputs this program reads.
type Cluster struct {
	pulumi.CustomResourceState
	HubEndpoint pulumi.StringOutput `pulumi:"hubEndpoint"`
	Nodes       pulumi.ArrayOutput  `pulumi:"nodes"`
	OverlayCidr pulumi.StringOutput `pulumi:"overlayCidr"`
	Outputs     pulumi.MapOutput    `pulumi:"outputs"`
}

func main() {
	template := flag.String("template", "examples/pulumi/cluster.hcl", "the hvctl template")
	workers := flag.Int("workers", 2, "workers in the onprem pool (the template's vars.workers)")
	dir := flag.String("dir", ".pulumi-example", "file backend, PULUMI_HOME and program directory")
	root := flag.String("pulumi-root", "", "directory whose bin/pulumi is the Pulumi CLI (default: pulumi on PATH)")
	preview := flag.Bool("preview", false, "preview instead of up")
	destroy := flag.Bool("destroy", false, "destroy the stack's cluster")
	flag.Parse()
	if err := run(*template, *workers, *dir, *root, *preview, *destroy); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(template string, workers int, dir, root string, preview, destroy bool) error {
	ctx := context.Background()
	template, _ = filepath.Abs(template)
	dir, _ = filepath.Abs(dir)
	program := func(ctx *pulumi.Context) error {
		var c Cluster
		err := ctx.RegisterResource("hvctl:index:Cluster", "lab", pulumi.Map{
			"template": pulumi.String(template),
			"vars":     pulumi.StringMap{"workers": pulumi.String(strconv.Itoa(workers))},
		}, &c)
		if err != nil {
			return err
		}
		ctx.Export("hubEndpoint", c.HubEndpoint)
		ctx.Export("nodes", c.Nodes)
		ctx.Export("overlayCidr", c.OverlayCidr)
		return nil
	}
	for _, d := range []string{"backend", "home", "program"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	opts := []auto.LocalWorkspaceOption{
		auto.WorkDir(filepath.Join(dir, "program")),
		auto.PulumiHome(filepath.Join(dir, "home")),
		auto.EnvVars(map[string]string{
			// Offline: a file backend, no update check, no plugin
			// downloads (pulumi-resource-hvctl is found on PATH).
			"PULUMI_BACKEND_URL":                          "file://" + filepath.Join(dir, "backend"),
			"PULUMI_CONFIG_PASSPHRASE":                    "example",
			"PULUMI_SKIP_UPDATE_CHECK":                    "1",
			"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
		}),
	}
	if root != "" {
		cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: root, SkipVersionCheck: true})
		if err != nil {
			return err
		}
		opts = append(opts, auto.Pulumi(cmd))
	}
	st, err := auto.UpsertStackInlineSource(ctx, "dev", "hvctl-example", program, opts...)
	if err != nil {
		return err
	}
	switch {
	case destroy:
		_, err = st.Destroy(ctx, optdestroy.ProgressStreams(os.Stdout))
		return err
	case preview:
		_, err = st.Preview(ctx, optpreview.Diff(), optpreview.ProgressStreams(os.Stdout))
		return err
	}
	res, err := st.Up(ctx, optup.ProgressStreams(os.Stdout))
	if err != nil {
		return err
	}
	fmt.Printf("\nhub endpoint: %v\noverlay: %v\n", res.Outputs["hubEndpoint"].Value, res.Outputs["overlayCidr"].Value)
	return nil
}
