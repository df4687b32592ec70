package provision

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// CloudConfig is a #cloud-config document as hvctl writes it for a
// machine that boots its agent: files to write, then commands to run.
// Providers that boot machines (aws, openstack) render their user data
// with it; AgentCloudConfig fills in the agent's part.
type CloudConfig struct {
	Comment string // a comment line after #cloud-config
	Files   []CloudFile
	RunCmd  [][]string // each command as its argv
}

// CloudFile is one write_files entry, owned by root.
type CloudFile struct {
	Path    string
	Perm    string // "0600"
	Content []byte
	// Encoding: "" writes Content as a literal block (text), "b64" and
	// "gz+b64" encode it (secrets and binary go encoded).
	Encoding string
}

// AgentCloudConfig is the cloud-config that installs and starts the
// agent with configuration cfg: it writes cfg (mode 0600, encoded as
// encoding) to AgentConfigPath and the systemd unit, makes AgentDir, and
// enables the unit after the commands in before (which may install the
// binary or fill in addresses).
func AgentCloudConfig(comment string, cfg *AgentConfig, encoding string, before ...[]string) (*CloudConfig, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("agent configuration: %w", err)
	}
	cc := &CloudConfig{Comment: comment, Files: []CloudFile{
		{Path: AgentConfigPath, Perm: "0600", Content: b, Encoding: encoding},
		{Path: "/etc/systemd/system/" + AgentUnitName, Perm: "0644", Content: []byte(SystemdUnit(AgentBinary + " agent -config " + AgentConfigPath))},
	}}
	cc.RunCmd = append(cc.RunCmd, []string{"install", "-d", "-m", "0700", AgentDir})
	cc.RunCmd = append(cc.RunCmd, before...)
	cc.RunCmd = append(cc.RunCmd, []string{"systemctl", "daemon-reload"}, []string{"systemctl", "enable", "--now", AgentUnitName})
	return cc, nil
}

// Render writes the document.
func (c *CloudConfig) Render() []byte {
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	if c.Comment != "" {
		b.WriteString("# " + c.Comment + "\n")
	}
	if len(c.Files) > 0 {
		b.WriteString("write_files:\n")
	}
	for _, f := range c.Files {
		fmt.Fprintf(&b, "  - path: %s\n    owner: root:root\n    permissions: '%s'\n", f.Path, f.Perm)
		switch f.Encoding {
		case "b64":
			fmt.Fprintf(&b, "    encoding: b64\n    content: %s\n", base64.StdEncoding.EncodeToString(f.Content))
		case "gz+b64":
			var gz bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
			zw.Write(f.Content)
			zw.Close()
			fmt.Fprintf(&b, "    encoding: gz+b64\n    content: %s\n", base64.StdEncoding.EncodeToString(gz.Bytes()))
		default:
			b.WriteString("    content: |\n")
			for _, l := range strings.Split(strings.TrimSuffix(string(f.Content), "\n"), "\n") {
				b.WriteString("      " + l + "\n")
			}
		}
	}
	if len(c.RunCmd) > 0 {
		b.WriteString("runcmd:\n")
	}
	for _, cmd := range c.RunCmd {
		words := make([]string, len(cmd))
		for i, w := range cmd {
			words[i] = yamlWord(w)
		}
		b.WriteString("  - [" + strings.Join(words, ", ") + "]\n")
	}
	return []byte(b.String())
}

var plainWord = regexp.MustCompile(`^(-{1,2}[A-Za-z]|[A-Za-z/])[A-Za-z0-9_./=+-]*$`)

// yamlWord is w as a YAML flow scalar: bare when that is unambiguous,
// else double-quoted (JSON strings are YAML double-quoted scalars).
func yamlWord(w string) string {
	if plainWord.MatchString(w) && w != "true" && w != "false" && w != "null" && w != "yes" && w != "no" {
		return w
	}
	q, _ := json.Marshal(w)
	return string(q)
}
