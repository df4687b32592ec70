package cli

import (
	"bytes"
	"context"
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
	register(&command{name: "completion", usage: "bash | zsh | fish", help: "Print a shell completion script", run: runCompletion,
		subs: []*command{
			{name: "bash", help: "source <(hvctl completion bash)"},
			{name: "zsh", help: "source <(hvctl completion zsh)"},
			{name: "fish", help: "hvctl completion fish | source"},
		}})
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
	if !a.atMost(c, pos, 1) {
		return exitError
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
	if len(args) != 1 {
		return a.fail("Usage: hvctl completion bash|zsh|fish", "Load it with: source <(hvctl completion bash), or zsh; fish: hvctl completion fish | source.")
	}
	words := completionWords()
	var verbs []string
	for _, c := range commands {
		verbs = append(verbs, c.name)
	}
	sort.Strings(verbs)
	switch args[0] {
	case "bash":
		fmt.Fprintf(a.Stdout, `# bash completion for hvctl; load with: source <(hvctl completion bash)
_hvctl() {
  local cur verb sub opts
  cur="${COMP_WORDS[COMP_CWORD]}"
  verb="${COMP_WORDS[1]}"
  sub="${COMP_WORDS[2]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "%s" -- "$cur") )
    return
  fi
  case "$verb $sub" in
`, strings.Join(verbs, " "))
		for _, w := range words {
			fmt.Fprintf(a.Stdout, "    %s) opts=%q ;;\n", w.key(), strings.Join(w.words(), " "))
		}
		fmt.Fprint(a.Stdout, `    *) opts="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -W "$(echo "$opts" | tr ' ' '\n' | grep -v '^-') $(_hvctl_addrs)" -- "$cur") $(compgen -f -- "$cur") )
  fi
}
# Resource addresses and member names, from the state of the directory.
_hvctl_addrs() {
  case "$verb" in
    state|taint|untaint|import|exec|node|plan|apply) hvctl state list 2>/dev/null ;;
  esac
}
complete -F _hvctl hvctl
`)
	case "zsh":
		fmt.Fprintf(a.Stdout, "#compdef hvctl\n# zsh completion for hvctl; load with: source <(hvctl completion zsh)\n_hvctl() {\n  local -a verbs\n  verbs=(%s)\n  if (( CURRENT == 2 )); then\n    _describe 'command' verbs\n    return\n  fi\n  case \"${words[2]} ${words[3]}\" in\n", zshVerbs())
		for _, w := range words {
			fmt.Fprintf(a.Stdout, "    %s) compadd -- %s; compadd -- ${(f)\"$(hvctl state list 2>/dev/null)\"}; _files ;;\n", w.key(), strings.Join(w.words(), " "))
		}
		fmt.Fprint(a.Stdout, "    *) _files ;;\n  esac\n}\nif [ \"$funcstack[1]\" = \"_hvctl\" ]; then _hvctl \"$@\"; else compdef _hvctl hvctl; fi\n")
	case "fish":
		fmt.Fprint(a.Stdout, "# fish completion for hvctl; load with: hvctl completion fish | source\ncomplete -c hvctl -f\n")
		cs := append([]*command(nil), commands...)
		sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
		for _, c := range cs {
			fmt.Fprintf(a.Stdout, "complete -c hvctl -n __fish_use_subcommand -a %s -d %q\n", c.name, c.help)
			for _, s := range c.subs {
				fmt.Fprintf(a.Stdout, "complete -c hvctl -n '__fish_seen_subcommand_from %s' -a %s -d %q\n", c.name, s.name, s.help)
			}
		}
		for _, w := range words {
			cond := "__fish_seen_subcommand_from " + w.verb
			if w.sub != "" {
				cond += "; and __fish_seen_subcommand_from " + w.sub
			}
			for _, f := range w.flags {
				fmt.Fprintf(a.Stdout, "complete -c hvctl -n '%s' -o %s\n", cond, strings.TrimPrefix(f, "-"))
			}
		}
		fmt.Fprint(a.Stdout, "complete -c hvctl -n '__fish_seen_subcommand_from state taint untaint import exec' -a '(hvctl state list 2>/dev/null)'\ncomplete -c hvctl -n 'not __fish_use_subcommand' -F\n")
	default:
		return a.fail(fmt.Sprintf("Unknown shell %q", args[0]), "hvctl completion knows bash, zsh and fish.")
	}
	return exitOK
}

// completionWord is what completes after "hvctl VERB [SUB]".
type completionWord struct {
	verb, sub string
	subs      []string
	flags     []string
}

// key is the word's shell case pattern on "VERB SUB".
func (w completionWord) key() string {
	if w.sub == "" {
		return fmt.Sprintf("%q*", w.verb+" ")
	}
	return fmt.Sprintf("%q", w.verb+" "+w.sub)
}

func (w completionWord) words() []string {
	return append(append(append([]string{}, w.subs...), w.flags...), "-help")
}

// completionWords lists, for every verb and subcommand, the words that
// may follow: a group's subcommands, and each one's flags (read from
// its real -help, so completion never drifts from the flag sets). The
// more specific "verb sub" cases come first.
func completionWords() []completionWord {
	var out, bare []completionWord
	cs := append([]*command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		if c.name == "completion" {
			bare = append(bare, completionWord{verb: c.name, subs: []string{"bash", "zsh", "fish"}})
			continue
		}
		if len(c.subs) == 0 {
			bare = append(bare, completionWord{verb: c.name, flags: helpFlags(c.name)})
			continue
		}
		var names []string
		for _, s := range c.subs {
			names = append(names, s.name)
			out = append(out, completionWord{verb: c.name, sub: s.name, flags: helpFlags(c.name, s.name)})
		}
		bare = append(bare, completionWord{verb: c.name, subs: names})
	}
	return append(out, bare...)
}

// helpFlags runs "hvctl ARGS... -help" and reads the flags off its usage.
func helpFlags(args ...string) []string {
	var buf bytes.Buffer
	quiet := &App{Stdin: strings.NewReader(""), Stdout: &buf, Stderr: io.Discard, Ctx: context.Background()}
	quiet.Run(append(args, "-help"))
	var names []string
	for _, line := range strings.Split(buf.String(), "\n") {
		t := strings.TrimSpace(line)
		if !strings.HasPrefix(line, "  -") || t == "" {
			continue
		}
		names = append(names, strings.Fields(t)[0])
	}
	return names
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
