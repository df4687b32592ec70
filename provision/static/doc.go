// Package static is the provider of existing machines: on-prem servers
// or VMs that hvctl does not make but joins, reached over SSH
// (golang.org/x/crypto/ssh). A node names its machine with host = "ADDR";
// a pool lists them with hosts = [...] and is fixed.
//
// Create connects (the host key is always checked against known_hosts;
// insecure_accept_new = true trusts, and records, the key of a host seen
// for the first time, never a changed one), checks that the machine runs
// Linux on the architecture of the agent binary, and installs the agent
// in a directory of its own, install_dir/n-HASH (HASH from the client
// token): the hvctl binary (the running one, or agent_binary), the agent
// configuration agent.json (mode 0600, sent over the SSH channel's stdin,
// never on a command line) and a marker file holding the client token.
// It starts the agent as a systemd unit (hvctl-n-HASH.service) where
// systemd runs and hvctl is root, otherwise as a supervised background
// process in its own session whose pid file is in the directory (the
// supervisor restarts the agent when it exits). With become = "sudo"
// every remote command runs under sudo -n.
//
// A node's ID, HOST/n-HASH, is known before Create connects, and the
// engine records its intent (the client token and the attributes, the
// host among them) before it calls Create and hands them to Read, so a
// rerun after a crash finds the machine by its token without a record of
// the provider's own, and completes or removes exactly what exists: every
// remote step is idempotent, and the agent is started
// only when its pid or unit is not already running, so a rerun never
// starts a second agent. Read reports whether the directory exists with
// the token and whether the agent runs; Delete stops the agent and
// removes the directory, the unit, and install_dir itself when Create
// made it, leaving the machine as it was. A machine that cannot be
// reached is an error naming the node and the host, never "gone".
package static
