// Command hvctl provisions hierarchical virtual clusters: one cluster
// across sites, joined by a WireGuard overlay, driven like Terraform.
// All behaviour lives in internal/cli so tests can reach it.
package main

import (
	"os"

	"github.com/hvctl/hvctl/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
