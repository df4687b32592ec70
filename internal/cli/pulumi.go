package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hvctl/hvctl/internal/pulumiprov"
	"github.com/hvctl/hvctl/provision"
)

func init() {
	register(&command{name: "pulumi-provider", usage: "[ENGINE_ADDRESS]", help: "Serve the Pulumi resource provider (started by the Pulumi engine as pulumi-resource-hvctl; not for people)", run: runPulumiProvider})
	register(&command{name: "pulumi", usage: "install [-dir DIR]", help: "Pulumi interop: install the hvctl resource provider plugin", run: runPulumi,
		subs: []*command{{name: "install", usage: "[-dir DIR]", help: "Write the pulumi-resource-hvctl plugin (a wrapper around this hvctl)", examples: []string{
			"hvctl pulumi install                 # beside this hvctl, so it is on PATH with it",
			"hvctl pulumi install -dir ~/.local/bin"}}}})
}

func runPulumiProvider(a *App, args []string) int {
	c := findCommand("pulumi-provider")
	fs := a.flagSet(c)
	// The engine passes its own logging and tracing flags; hvctl logs
	// through HVCTL_LOG and HVCTL_LOG_PATH instead.
	fs.Bool("logtostderr", false, "passed by the Pulumi engine; ignored")
	fs.Bool("logflow", false, "passed by the Pulumi engine; ignored")
	fs.Int("v", 0, "passed by the Pulumi engine; ignored")
	fs.String("tracing", "", "passed by the Pulumi engine; ignored")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	if !a.atMost(c, pos, 1) {
		return exitError
	}
	engine := ""
	if len(pos) == 1 {
		engine = pos[0]
	}
	err := pulumiprov.Serve(a.Ctx, engine, a.Stdout, &pulumiprov.Engine{Environ: a.Environ}, provision.Version, a.Environ)
	if err != nil && a.Ctx.Err() == nil {
		return a.failErr(err)
	}
	return exitOK
}

func runPulumi(a *App, args []string) int {
	c := findCommand("pulumi").sub(args[0])
	fs := a.flagSet(c)
	exe, _ := os.Executable()
	dir := fs.String("dir", "", "directory for the plugin (default: this hvctl's directory)")
	if _, code, ok := a.parse(fs, args[1:]); !ok {
		return code
	}
	if exe == "" {
		return a.fail("Cannot find this hvctl's executable", "The plugin runs this hvctl; start hvctl by its path.")
	}
	if *dir == "" {
		*dir = filepath.Dir(exe)
	}
	path, err := pulumiprov.Install(*dir, exe)
	if err != nil {
		return a.fail("Cannot write the plugin", err.Error())
	}
	fmt.Fprintf(a.Stdout, "Wrote %s (runs %s pulumi-provider).\n", path, exe)
	onPath := false
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if abs, err := filepath.Abs(d); err == nil && abs == filepath.Clean(*dir) {
			onPath = true
		}
	}
	if !onPath {
		fmt.Fprintf(a.Stdout, "\n%s is not on PATH: add it for the Pulumi CLI, or run\n    pulumi plugin install resource hvctl %s -f %s\n", *dir, strings.TrimPrefix(provision.Version, "v"), path)
	}
	return exitOK
}
