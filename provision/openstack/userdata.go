package openstack

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strings"

	"github.com/hvctl/hvctl/provision"
)

// Paths on the node.
const (
	AgentConfigPath = "/etc/hvctl/agent.json"
	AgentBinary     = "/usr/local/bin/hvctl"
	AgentDir        = "/var/lib/hvctl"
)

// maxUserData is Nova's limit on base64 user data.
const maxUserData = 65535

// AgentConfig is what cloud-init writes to AgentConfigPath for the node
// agent: the shared provider-agent contract.
type AgentConfig = provision.AgentConfig

func agentConfig(req *provision.CreateRequest, privateIP, publicIP string) *AgentConfig {
	c := &AgentConfig{
		Cluster: req.Cluster, Address: req.Address, Name: attrString(req.Attrs, "name"), Site: attrString(req.Attrs, "site"),
		Pool: attrString(req.Attrs, "pool"), Roles: attrStrings(req.Attrs, "roles"), Labels: attrMap(req.Attrs, "labels"),
		CPUs: int(attrInt(req.Attrs, "cpus")), MemoryMiB: attrInt(req.Attrs, "memory_mib"), GPUs: int(attrInt(req.Attrs, "gpus")),
		PrivateIP: privateIP, PublicAddress: publicIP, Dir: AgentDir, Attrs: map[string]any{},
	}
	if len(c.Roles) == 0 {
		c.Roles = []string{"worker"}
	}
	for k, v := range req.Attrs {
		if k != "user_data" {
			c.Attrs[k] = v
		}
	}
	if privateIP != "" {
		c.Attrs["private_ip"] = privateIP
	}
	if publicIP != "" {
		c.Attrs["public_address"] = publicIP
	}
	return c
}

const agentUnit = `[Unit]
Description=hvctl node agent
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=` + AgentBinary + ` agent -config ` + AgentConfigPath + `
Restart=always
RestartSec=3

[Install]
WantedBy=multi-user.target
`

// userData is the server's cloud-init user data, base64-encoded for
// Nova: a cloud-config that writes the agent config (0600) and a systemd
// unit and starts hvctl agent, downloading hvctl from agentURL first when
// set. A node's own user_data goes along as a second MIME part. Too big
// for Nova, it is gzipped (cloud-init unpacks it).
func userData(req *provision.CreateRequest, privateIP, publicIP, agentURL string) ([]byte, error) {
	cfgJSON, err := json.MarshalIndent(agentConfig(req, privateIP, publicIP), "", "  ")
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	b.WriteString("# hvctl " + req.Address + "\n")
	b.WriteString("write_files:\n")
	fmt.Fprintf(&b, "  - path: %s\n    owner: root:root\n    permissions: '0600'\n    encoding: b64\n    content: %s\n",
		AgentConfigPath, base64.StdEncoding.EncodeToString(cfgJSON))
	b.WriteString("  - path: /etc/systemd/system/hvctl-agent.service\n    owner: root:root\n    permissions: '0644'\n    content: |\n")
	for _, l := range strings.Split(strings.TrimSuffix(agentUnit, "\n"), "\n") {
		b.WriteString("      " + l + "\n")
	}
	b.WriteString("runcmd:\n")
	fmt.Fprintf(&b, "  - [install, -d, -m, '0700', %s]\n", AgentDir)
	if hasRole(req.Attrs, "gateway") {
		b.WriteString("  - [sysctl, -w, net.ipv4.ip_forward=1]\n")
	}
	if agentURL != "" {
		fmt.Fprintf(&b, "  - [sh, -c, 'curl -fsSL --retry 10 --retry-delay 3 -o %s.new \"$0\" && chmod 0755 %s.new && mv %s.new %s', %q]\n",
			AgentBinary, AgentBinary, AgentBinary, AgentBinary, agentURL)
	} else {
		fmt.Fprintf(&b, "  - [sh, -c, 'test -x %s || ln -sf \"$(command -v hvctl)\" %s']\n", AgentBinary, AgentBinary)
	}
	b.WriteString("  - [systemctl, daemon-reload]\n")
	b.WriteString("  - [systemctl, enable, --now, hvctl-agent.service]\n")
	out := []byte(b.String())
	if own := attrString(req.Attrs, "user_data"); own != "" {
		if out, err = multipartUserData(out, []byte(own)); err != nil {
			return nil, err
		}
	}
	enc := base64.StdEncoding.EncodeToString(out)
	if len(enc) > maxUserData {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(out)
		w.Close()
		enc = base64.StdEncoding.EncodeToString(z.Bytes())
		if len(enc) > maxUserData {
			return nil, fmt.Errorf("the user data (agent config and template) is %d bytes base64 even gzipped; Nova allows %d", len(enc), maxUserData)
		}
	}
	return []byte(enc), nil
}

func multipartUserData(ours, theirs []byte) ([]byte, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	part := func(ct, name string, data []byte) error {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", ct+`; charset="utf-8"`)
		h.Set("MIME-Version", "1.0")
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		pw, err := w.CreatePart(h)
		if err != nil {
			return err
		}
		_, err = pw.Write(data)
		return err
	}
	if err := part("text/cloud-config", "hvctl.cfg", ours); err != nil {
		return nil, err
	}
	ct := "text/x-shellscript"
	switch s := string(theirs); {
	case strings.HasPrefix(s, "#cloud-config"):
		ct = "text/cloud-config"
	case strings.HasPrefix(s, "#!"):
		ct = "text/x-shellscript"
	case strings.HasPrefix(s, "#include"):
		ct = "text/x-include-url"
	}
	if err := part(ct, "user-data", theirs); err != nil {
		return nil, err
	}
	w.Close()
	head := fmt.Sprintf("Content-Type: multipart/mixed; boundary=\"%s\"\nMIME-Version: 1.0\n\n", w.Boundary())
	return append([]byte(head), body.Bytes()...), nil
}
