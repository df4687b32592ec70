package static

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

func init() { provision.Register("static", New) }

// DefaultInstallDir is where the agent's directories go on each host.
const DefaultInstallDir = "/var/lib/hvctl-static"

// Settings are a static provider block's settings, defaults filled in.
type Settings struct {
	User string // user, default "root"
	// PrivateKey is the key's PEM (private_key: contents or a path);
	// empty means the SSH agent (SSH_AUTH_SOCK).
	PrivateKey []byte
	// KnownHosts is the known_hosts file (known_hosts, default
	// ~/.ssh/known_hosts).
	KnownHosts string
	// InsecureAcceptNew trusts the key of a host that known_hosts does
	// not list yet and appends it there (insecure_accept_new).
	InsecureAcceptNew bool
	Port              int    // port, default 22
	Become            string // become: "" or "sudo"
	// AgentBinary is the hvctl binary copied to each host (agent_binary,
	// default this executable).
	AgentBinary string
	// JumpHost, when set, is the bastion every connection goes through
	// ("host" or "host:port", the same user and key; its host key is
	// checked like the others).
	JumpHost       string        // jump_host
	InstallDir     string        // install_dir, default DefaultInstallDir
	ConnectTimeout time.Duration // connect_timeout, default 10s
}

// ParseSettings checks a static provider block. Each bad value is an
// error diagnostic whose Subject is that argument's source range.
func ParseSettings(cfg *templates.Provider) (Settings, hcl.Diagnostics) {
	s := Settings{User: "root", Port: 22, InstallDir: DefaultInstallDir, ConnectTimeout: 10 * time.Second}
	var key string
	schema := provision.Schema{Provider: "static", Settings: []provision.Setting{
		{Name: "user", Into: &s.User, Valid: provision.NonEmpty, Must: "must be a user name"},
		{Name: "private_key", Into: &key, Secret: true, Valid: provision.NonEmpty,
			Must: `must be a private key (its contents, as file("keys/id_ed25519") gives, or a path to it)`},
		{Name: "known_hosts", Into: &s.KnownHosts, Valid: provision.NonEmpty, Must: "must be the path of a known_hosts file"},
		{Name: "insecure_accept_new", Into: &s.InsecureAcceptNew, Must: "must be true or false"},
		{Name: "port", Into: &s.Port, Valid: provision.Between(1, 65535), Must: "must be a TCP port from 1 to 65535"},
		{Name: "become", Into: &s.Become, Valid: func(v any) bool { return v == "sudo" || v == "" },
			Must: `must be "sudo" (or left out to run commands as user)`},
		{Name: "jump_host", Into: &s.JumpHost, Valid: func(v any) bool { return validJump(v.(string)) },
			Must: `must be a host or host:port, like "bastion.example.org:22"`},
		{Name: "agent_binary", Into: &s.AgentBinary, Valid: provision.NonEmpty, Must: "must be the path of an hvctl binary"},
		{Name: "install_dir", Into: &s.InstallDir, Valid: func(v any) bool {
			return filepath.IsAbs(v.(string)) && filepath.Clean(v.(string)) != "/" && !strings.ContainsAny(v.(string), unitUnsafe)
		}, Must: `must be an absolute directory path other than "/", without spaces or any of % $ " ' \ ; (it is written into a systemd unit's ExecStart)`},
		{Name: "connect_timeout", Into: &s.ConnectTimeout, Valid: func(v any) bool { return v.(time.Duration) > 0 },
			Must: `must be a positive duration like "10s"`},
	}}
	diags := schema.Decode(cfg)
	s.InstallDir = filepath.Clean(s.InstallDir)
	if key != "" {
		if strings.Contains(key, "PRIVATE KEY-----") {
			s.PrivateKey = []byte(key)
		} else if b, err := os.ReadFile(key); err != nil {
			diags = append(diags, provision.SettingError(cfg, "private_key", "Cannot read private_key",
				fmt.Sprintf("private_key is neither a key (no \"-----BEGIN ... PRIVATE KEY-----\") nor a readable file: %v.", pathErr(err))))
		} else {
			s.PrivateKey = b
		}
	}
	if s.KnownHosts == "" {
		if home, err := os.UserHomeDir(); err == nil {
			s.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
		}
	}
	return s, diags
}

// unitUnsafe are the characters a systemd ExecStart would read as more
// than a path: word breaks, quotes, escapes, specifiers (%), variables.
const unitUnsafe = " \t\n\"'\\%$;"

func validJump(s string) bool {
	if s == "" || strings.ContainsAny(s, " /@") {
		return false
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h != "" && p != ""
	}
	return true
}

// pathErr is err without the value that was tried as a path (which may
// be a mistyped key).
func pathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return "unreadable"
}

// New is the static provider's provision.Factory: it checks the
// settings, the key (or the SSH agent) and the known_hosts file, without
// connecting to any host.
func New(cfg *templates.Provider, env *provision.Env) (provision.Provider, hcl.Diagnostics) {
	s, diags := ParseSettings(cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	auth, d := authMethod(cfg, s)
	diags = append(diags, d...)
	if _, err := os.Stat(s.KnownHosts); err != nil && !s.InsecureAcceptNew {
		diags = append(diags, provision.SettingError(cfg, "known_hosts", "No known_hosts file",
			fmt.Sprintf("The static provider %s checks every host's key against %s, which cannot be read (%s). "+
				"Make it with ssh-keyscan -p %d HOST >> %s and compare the fingerprints with the hosts' own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), "+
				"or set insecure_accept_new = true to trust each host's key the first time hvctl sees it.",
				cfg.Ref(), s.KnownHosts, pathErr(err), s.Port, s.KnownHosts)))
	}
	if s.AgentBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			diags = append(diags, provision.SettingError(cfg, "agent_binary", "No agent binary", fmt.Sprintf("Cannot find this hvctl executable (%v); set agent_binary.", err)))
		}
		s.AgentBinary = exe
	} else if _, err := os.Stat(s.AgentBinary); err != nil {
		diags = append(diags, provision.SettingError(cfg, "agent_binary", "Invalid agent_binary", fmt.Sprintf("agent_binary = %q: %s.", s.AgentBinary, pathErr(err))))
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return Open(env, s, auth), diags
}

// authMethod is the key, or the SSH agent's keys.
func authMethod(cfg *templates.Provider, s Settings) (ssh.AuthMethod, hcl.Diagnostics) {
	if len(s.PrivateKey) > 0 {
		signer, err := ssh.ParsePrivateKey(s.PrivateKey)
		if err != nil {
			detail := "private_key is not a private key hvctl can read (OpenSSH, PKCS#1, PKCS#8 or EC PEM)."
			if _, ok := err.(*ssh.PassphraseMissingError); ok {
				detail = "private_key is encrypted with a passphrase: add it to the SSH agent (ssh-add) and leave private_key out, so hvctl uses the agent."
			}
			return nil, hcl.Diagnostics{provision.SettingError(cfg, "private_key", "Invalid private_key", detail)}
		}
		return ssh.PublicKeys(signer), nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, hcl.Diagnostics{provision.SettingError(cfg, "private_key", "No SSH key",
			fmt.Sprintf("The static provider %s has no private_key and no SSH agent (SSH_AUTH_SOCK is not set): set private_key = file(\"PATH\"), or start ssh-agent and ssh-add the key.", cfg.Ref()))}
	}
	// The agent signs during the handshake, over its connection: one
	// connection, kept for the provider's life.
	var mu sync.Mutex
	var client agent.ExtendedAgent
	return ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		mu.Lock()
		defer mu.Unlock()
		if client == nil {
			c, err := net.Dial("unix", sock)
			if err != nil {
				return nil, fmt.Errorf("SSH agent (SSH_AUTH_SOCK): %w", err)
			}
			client = agent.NewClient(c)
		}
		return client.Signers()
	}), nil
}
