package openstack

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strings"

	"github.com/hvctl/hvctl/provision"
)

// Paths on the node.
const (
	AgentConfigPath = provision.AgentConfigPath
	AgentBinary     = provision.AgentBinary
	AgentDir        = provision.AgentDir
)

// maxUserData is Nova's limit on base64 user data.
const maxUserData = 65535

// AgentConfig is what cloud-init writes to AgentConfigPath for the node
// agent: the shared provider-agent contract.
type AgentConfig = provision.AgentConfig

func agentConfig(req *provision.CreateRequest, privateIP, publicIP string) *AgentConfig {
	c := provision.NewAgentConfig(req)
	c.SetAddresses(privateIP, publicIP)
	c.Dir = AgentDir
	return c
}

// userData is the server's cloud-init user data, base64-encoded for
// Nova: a cloud-config that writes the agent config (0600) and a systemd
// unit and starts hvctl agent, downloading hvctl from agentURL first when
// set. A node's own user_data goes along as a second MIME part. Too big
// for Nova, it is gzipped (cloud-init unpacks it).
func userData(req *provision.CreateRequest, privateIP, publicIP, agentURL string) ([]byte, error) {
	var before [][]string
	if provision.InstanceOf(req.Attrs).HasRole("gateway") {
		before = append(before, []string{"sysctl", "-w", "net.ipv4.ip_forward=1"})
	}
	if agentURL != "" {
		before = append(before, []string{"sh", "-c", fmt.Sprintf(`curl -fsSL --retry 10 --retry-delay 3 -o %[1]s.new "$0" && chmod 0755 %[1]s.new && mv %[1]s.new %[1]s`, AgentBinary), agentURL})
	} else {
		before = append(before, []string{"sh", "-c", fmt.Sprintf(`test -x %[1]s || ln -sf "$(command -v hvctl)" %[1]s`, AgentBinary)})
	}
	cc, err := provision.AgentCloudConfig("hvctl "+req.Address, agentConfig(req, privateIP, publicIP), "b64", before...)
	if err != nil {
		return nil, err
	}
	out := cc.Render()
	if own := req.Attrs.Str("user_data"); own != "" {
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
