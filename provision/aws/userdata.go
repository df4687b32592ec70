package aws

import (
	"fmt"

	"github.com/hvctl/hvctl/provision"
)

// Where cloud-init puts things on a node.
const (
	// AgentPath is where the image must have the hvctl binary (or the
	// template's user_data must install it).
	AgentPath = provision.AgentBinary
	// AgentConfigPath is the agent configuration (mode 0600: it holds
	// the join token, and on the manager node the cluster secret).
	AgentConfigPath = provision.AgentConfigPath
	// AgentDir is where the agent keeps its key and credential.
	AgentDir = provision.AgentDir
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
// request; the private address is filled in at boot.
func agentConfig(req *provision.CreateRequest, publicAddress string) *AgentConfig {
	c := provision.NewAgentConfig(req)
	c.SetAddresses("", publicAddress)
	c.PrivateIP = privateIPPlaceholder
	c.Dir = AgentDir
	return c
}

// UserData renders a node's cloud-init user data: a #cloud-config that
// writes the agent configuration (gzip, mode 0600) and a systemd unit,
// fills in the private address from the instance metadata service
// (IMDSv2), runs the template's user_data as a shell script (which may
// install hvctl), and starts `hvctl agent -config /etc/hvctl/agent.json`.
func UserData(req *provision.CreateRequest, publicAddress string) ([]byte, error) {
	before := [][]string{{"sh", "-c", fillPrivateIP}}
	ud := req.Attrs.Str("user_data")
	if ud != "" {
		before = append(before, []string{"sh", UserScriptPath})
	}
	cc, err := provision.AgentCloudConfig("hvctl node "+req.Address+" of cluster "+req.Cluster, agentConfig(req, publicAddress), "gz+b64", before...)
	if err != nil {
		return nil, err
	}
	if ud != "" {
		cc.Files = append(cc.Files, provision.CloudFile{Path: UserScriptPath, Perm: "0700", Content: []byte(ud), Encoding: "b64"})
	}
	out := cc.Render()
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
