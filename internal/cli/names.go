package cli

import "github.com/hvctl/hvctl/scheduler/manager"

// One name for a node everywhere: commands print a node as its member
// name (onprem.wn[0], the overlay's and the manager's ID) and accept it,
// its address (site.onprem.pool.wn.node[0]) or its instance name within
// the site (onprem.wn-0); a near miss gets "did you mean" with the member
// name.

// memberName is the name commands print for the node at address addr.
func memberName(addr string) string { return manager.MemberID(addr) }
