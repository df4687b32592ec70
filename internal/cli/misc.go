package cli

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"

	"github.com/hvctl/hvctl/provision"
)

func init() {
	register(&command{name: "validate", usage: "[PATH] [-json]", help: "Check a template; no provider is called", run: runValidate})
	register(&command{name: "version", usage: "[-json]", help: "Print the hvctl version", run: runVersion})
	register(&command{name: "completion", usage: "bash | zsh", help: "Print a shell completion script", run: runCompletion})
}

func runValidate(a *App, args []string) int {
	c := findCommand("validate")
	fs := a.flagSet(c)
	var t tmplFlags
	t.add(fs)
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	path := templatePath(pos)
	if *jsonOut {
		return a.validateJSON(path, &t)
	}
	cfg, ok := a.load(path, t.vars)
	if !ok {
		return exitError
	}
	n := 0
	for _, s := range cfg.Cluster.AllSites() {
		n += len(s.Nodes)
		for _, p := range s.Pools {
			n += p.Max
		}
	}
	fmt.Fprintf(a.Stdout, "%s The template is valid: cluster %q, %d sites, up to %d nodes.\n",
		a.bold("Success!"), cfg.Cluster.Name, len(cfg.Cluster.AllSites()), n)
	return exitOK
}

func runVersion(a *App, args []string) int {
	c := findCommand("version")
	fs := a.flagSet(c)
	jsonOut := fs.Bool("json", false, "print as JSON")
	if _, code, ok := a.parse(fs, args); !ok {
		return code
	}
	if *jsonOut {
		return a.writeJSON(map[string]any{"hvctl_version": provision.Version, "platform": runtime.GOOS + "_" + runtime.GOARCH,
			"go_version": runtime.Version(), "providers": provision.Registered()})
	}
	fmt.Fprintf(a.Stdout, "hvctl v%s\non %s_%s\nproviders: %s\n", provision.Version, runtime.GOOS, runtime.GOARCH, strings.Join(provision.Registered(), ", "))
	return exitOK
}

func runCompletion(a *App, args []string) int {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		return a.fail("Usage: hvctl completion bash|zsh", "Load it with: source <(hvctl completion bash)  (or zsh).")
	}
	var verbs []string
	for _, c := range commands {
		verbs = append(verbs, c.name)
	}
	sort.Strings(verbs)
	flags := map[string]string{}
	for _, c := range commands {
		flags[c.name] = strings.Join(verbFlags(c), " ")
	}
	switch args[0] {
	case "bash":
		fmt.Fprintf(a.Stdout, `# bash completion for hvctl; load with: source <(hvctl completion bash)
_hvctl() {
  local cur verb
  cur="${COMP_WORDS[COMP_CWORD]}"
  verb="${COMP_WORDS[1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "%s" -- "$cur") )
    return
  fi
  case "$verb" in
`, strings.Join(verbs, " "))
		for _, v := range verbs {
			fmt.Fprintf(a.Stdout, "    %s) opts=\"%s -help\" ;;\n", v, extraWords(v)+flags[v])
		}
		fmt.Fprint(a.Stdout, `    *) opts="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -W "$(echo "$opts" | tr ' ' '\n' | grep -v '^-')" -- "$cur") $(compgen -f -- "$cur") )
  fi
}
complete -F _hvctl hvctl
`)
	case "zsh":
		fmt.Fprintf(a.Stdout, "#compdef hvctl\n# zsh completion for hvctl; load with: source <(hvctl completion zsh)\n_hvctl() {\n  local -a verbs\n  verbs=(%s)\n  if (( CURRENT == 2 )); then\n    _describe 'command' verbs\n    return\n  fi\n  case ${words[2]} in\n", zshVerbs())
		for _, v := range verbs {
			fmt.Fprintf(a.Stdout, "    %s) compadd -- %s -help; _files ;;\n", v, extraWords(v)+flags[v])
		}
		fmt.Fprint(a.Stdout, "    *) _files ;;\n  esac\n}\nif [ \"$funcstack[1]\" = \"_hvctl\" ]; then _hvctl \"$@\"; else compdef _hvctl hvctl; fi\n")
	}
	return exitOK
}

func extraWords(verb string) string {
	switch verb {
	case "state":
		return "list show rm unlock "
	case "sim":
		return "list "
	case "completion":
		return "bash zsh "
	}
	return ""
}

func zshVerbs() string {
	var parts []string
	cs := append([]*command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("'%s:%s'", c.name, strings.ReplaceAll(c.help, "'", "")))
	}
	return strings.Join(parts, " ")
}

// verbFlags lists a verb's flags by running it with -help and reading
// its usage, so completion never drifts from the real flag sets.
func verbFlags(c *command) []string {
	var buf bytes.Buffer
	quiet := &App{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &buf}
	c.run(quiet, []string{"-help"})
	var names []string
	for _, line := range strings.Split(buf.String(), "\n") {
		t := strings.TrimSpace(line)
		if !strings.HasPrefix(line, "  -") || t == "" {
			continue
		}
		name := strings.Fields(t)[0]
		names = append(names, name)
	}
	return names
}
