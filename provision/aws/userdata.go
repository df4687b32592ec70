package aws

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hvctl/hvctl/provision"
)

// Where cloud-init puts things on a node.
const (
	// AgentPath is where the image must have the hvctl binary (or the
	// template's user_data must install it).
	AgentPath = "/usr/local/bin/hvctl"
	// AgentConfigPath is the agent configuration (mode 0600: it holds
	// the join token, and on the manager node the cluster secret).
	AgentConfigPath = "/etc/hvctl/agent.json"
	// AgentDir is where the agent keeps its key and credential.
	AgentDir = "/var/lib/hvctl"
	// UserScriptPath is the template's user_data, run as a shell script
	// before the agent starts.
	UserScriptPath = "/var/lib/hvctl/user-data.sh"
	// privateIPPlaceholder is replaced with the instance's address from
	// the instance metadata service at boot (it is not known before
	// RunInstances).
	privateIPPlaceholder = "@HVCTL_PRIVATE_IP@"
	// MaxUserData is EC2's limit on user data, before base64.
	MaxUserData = 16 << 10
)

// AgentConfig is what cloud-init writes to AgentConfigPath for the node
// agent: the shared provider-agent contract.
type AgentConfig = provision.AgentConfig

// agentConfig builds a node's agent configuration from its create
// request. Every attribute goes into attrs (join_token, manager_url,
// overlay_port; on the manager node cluster_secret and template) except
// user_data, which cloud-init runs separately.
func agentConfig(req *provision.CreateRequest, publicAddress string) *AgentConfig {
	c := &AgentConfig{
		Cluster:       req.Cluster,
		Address:       req.Address,
		Name:          strAttr(req.Attrs, "name"),
		Site:          strAttr(req.Attrs, "site"),
		Pool:          strAttr(req.Attrs, "pool"),
		CPUs:          int(intAttr(req.Attrs, "cpus")),
		MemoryMiB:     intAttr(req.Attrs, "memory_mib"),
		GPUs:          int(intAttr(req.Attrs, "gpus")),
		PrivateIP:     privateIPPlaceholder,
		PublicAddress: publicAddress,
		Dir:           AgentDir,
		Attrs:         map[string]any{},
	}
	switch rs := req.Attrs["roles"].(type) {
	case []string:
		c.Roles = append(c.Roles, rs...)
	case []any:
		for _, r := range rs {
			c.Roles = append(c.Roles, fmt.Sprint(r))
		}
	}
	if len(c.Roles) == 0 {
		c.Roles = []string{"worker"}
	}
	switch l := req.Attrs["labels"].(type) {
	case map[string]string:
		c.Labels = l
	case map[string]any:
		c.Labels = map[string]string{}
		for k, v := range l {
			c.Labels[k] = fmt.Sprint(v)
		}
	}
	for k, v := range req.Attrs {
		if k != "user_data" {
			c.Attrs[k] = v
		}
	}
	if publicAddress != "" {
		c.Attrs["public_address"] = publicAddress
	}
	return c
}

// UserData renders a node's cloud-init user data: a #cloud-config that
// writes the agent configuration (gzip, mode 0600) and a systemd unit,
// fills in the private address from the instance metadata service
// (IMDSv2), runs the template's user_data as a shell script (which may
// install hvctl), and starts `hvctl agent -config /etc/hvctl/agent.json`.
func UserData(req *provision.CreateRequest, publicAddress string) ([]byte, error) {
	cfg, err := json.Marshal(agentConfig(req, publicAddress))
	if err != nil {
		return nil, fmt.Errorf("agent configuration: %v", err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(cfg)
	zw.Close()

	var b strings.Builder
	b.WriteString("#cloud-config\n")
	b.WriteString("# hvctl node " + req.Address + " of cluster " + req.Cluster + "\n")
	b.WriteString("write_files:\n")
	fmt.Fprintf(&b, "  - path: %s\n    owner: root:root\n    permissions: '0600'\n    encoding: gz+b64\n    content: %s\n",
		AgentConfigPath, base64.StdEncoding.EncodeToString(gz.Bytes()))
	fmt.Fprintf(&b, "  - path: /etc/systemd/system/hvctl-agent.service\n    owner: root:root\n    permissions: '0644'\n    content: |\n")
	for _, l := range strings.Split(strings.TrimSpace(serviceUnit), "\n") {
		b.WriteString("      " + l + "\n")
	}
	ud := strAttr(req.Attrs, "user_data")
	if ud != "" {
		fmt.Fprintf(&b, "  - path: %s\n    owner: root:root\n    permissions: '0700'\n    encoding: b64\n    content: %s\n",
			UserScriptPath, base64.StdEncoding.EncodeToString([]byte(ud)))
	}
	b.WriteString("runcmd:\n")
	fmt.Fprintf(&b, "  - [sh, -c, %s]\n", yamlQuote(fillPrivateIP))
	if ud != "" {
		fmt.Fprintf(&b, "  - [sh, %s]\n", UserScriptPath)
	}
	b.WriteString("  - [systemctl, daemon-reload]\n")
	b.WriteString("  - [systemctl, enable, --now, hvctl-agent.service]\n")
	out := []byte(b.String())
	if len(out) > MaxUserData {
		return nil, fmt.Errorf("the node's cloud-init user data is %d bytes, more than EC2's %d: shorten instance.user_data (on the manager node the template's files are included too)", len(out), MaxUserData)
	}
	return out, nil
}

// fillPrivateIP puts the instance's private address into the agent
// configuration (IMDSv2: a session token first).
var fillPrivateIP = `T=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token) && ` +
	`IP=$(curl -sf -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/local-ipv4) && ` +
	`sed -i "s/` + privateIPPlaceholder + `/$IP/" ` + AgentConfigPath

var serviceUnit = `
[Unit]
Description=hvctl node agent
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=` + AgentPath + ` agent -config ` + AgentConfigPath + `
Restart=always
RestartSec=3

[Install]
WantedBy=multi-user.target
`

// yamlQuote quotes s as a YAML double-quoted scalar.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s) // JSON strings are valid YAML double-quoted scalars
	return string(b)
}
