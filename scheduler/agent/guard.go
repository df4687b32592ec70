package agent

import (
	"bytes"
	"fmt"
	"os/exec"

	"github.com/hvctl/hvctl/overlay"
)

// guardScript keeps WireGuard's own packets out of the overlay. If a
// peer's endpoint ever resolves to an address routed through the tunnel
// (a site address behind a gateway, or an overlay address learnt by
// roaming), WireGuard would encrypt its packets into itself: a loop that
// carries nothing. So packets from the WireGuard port may not leave
// through the overlay device, and packets to it may not come from an
// overlay address.
func guardScript(dev string, ps *overlay.PeerSet) string {
	return fmt.Sprintf(`add table inet hvctl_wg
delete table inet hvctl_wg
table inet hvctl_wg {
	chain output {
		type filter hook output priority 0; policy accept;
		oifname "%[1]s" udp sport %[2]d drop
	}
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr %[3]s udp dport %[2]d drop
	}
}
`, dev, ps.ListenPort, ps.Address.Masked())
}

// guard installs guardScript in the agent's network namespace.
func (a *Agent) guard(ps *overlay.PeerSet) {
	if ps == nil || ps.ListenPort == 0 || !ps.Address.Addr().Is4() {
		return
	}
	script := guardScript(a.dev.Name(), ps)
	a.mu.Lock()
	same := script == a.guarded
	a.mu.Unlock()
	if same {
		return
	}
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = bytes.NewReader([]byte(script))
	if out, err := cmd.CombinedOutput(); err != nil {
		a.log.Printf("warning: cannot install the overlay guard rules (nft): %v: %s", err, bytes.TrimSpace(out))
		return
	}
	a.mu.Lock()
	a.guarded = script
	a.mu.Unlock()
}
