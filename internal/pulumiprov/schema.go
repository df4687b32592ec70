package pulumiprov

import (
	"encoding/json"
)

// Schema is the package schema that GetSchema returns, for `pulumi
// package gen-sdk` and `pulumi package get-schema`.
func Schema(version string) (string, error) {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	strMap := func(desc string) map[string]any {
		return map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": desc}
	}
	inputs := map[string]any{
		pTemplate:  str("A path to a .hcl file or a directory of them (relative to the Pulumi program's directory), or the template's HCL itself: a value with a newline or a '{' is inline HCL."),
		pVars:      strMap("Template variables, as hvctl's -var NAME=VALUE."),
		pWorkspace: str("hvctl's workspace: one state per cluster and workspace (default \"default\")."),
		pState:     strMap("State backend settings over the template's state block, as hvctl's -backend-config KEY=VALUE. Secrets belong in the environment variables the state block names, not here."),
		pWorkDir:   str("Where hvctl keeps this cluster's local state (WORKDIR/.hvctl/state.json), the sim and local providers' worlds and an inline template. Default: PROGRAM_DIR/.hvctl-pulumi/STACK/NAME."),
	}
	props := map[string]any{
		pClusterName: str("The cluster's name, from its template."),
		pHubEndpoint: str("The primary hub's public WireGuard endpoint (HOST:PORT), or empty without a public hub."),
		pOverlayCIDR: str("The overlay network's CIDR."),
		pNodes: map[string]any{"type": "array", "items": map[string]any{"$ref": "#/types/hvctl:index:Node"},
			"description": "Every node of the cluster."},
		pOutputs: map[string]any{"type": "object", "additionalProperties": map[string]any{"$ref": "pulumi.json#/Any"},
			"description": "The template's outputs that are not sensitive."},
		pResources: map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"},
			"description": "Every hvctl resource's status by address; previews name hvctl's planned changes by these addresses."},
		pStatePath: str("The local state file, or empty when the state is in a remote backend."),
	}
	for k, v := range inputs {
		props[k] = v
	}
	required := append(append([]string{}, outputNames...), pTemplate, pWorkDir)
	nodeProps := map[string]any{
		"address":       str("hvctl's resource address, e.g. site.onprem.pool.wn.node[0]."),
		"site":          str("The node's site."),
		"pool":          str("The node's pool, or empty for a named node."),
		"name":          str("The node's name."),
		"state":         str("booting, joining, idle, failed or gone."),
		"overlayIp":     str("The node's overlay address, once it has joined."),
		"privateIp":     str("The node's address on its site network."),
		"publicAddress": str("The node's public address, if it has one."),
	}
	nodeReq := []string{"address", "site", "pool", "name", "state", "overlayIp", "privateIp", "publicAddress"}
	doc := map[string]any{
		"name":        "hvctl",
		"displayName": "hvctl",
		"version":     version,
		"description": "hvctl clusters (hierarchical virtual clusters across sites, joined by a WireGuard overlay) as Pulumi resources.",
		"keywords":    []string{"category/infrastructure", "kind/native"},
		"license":     "Apache-2.0",
		"provider":    map[string]any{"description": "The hvctl provider: it has no settings; each Cluster names its template and state."},
		"config":      map[string]any{},
		"types": map[string]any{
			"hvctl:index:Node": map[string]any{"type": "object", "description": "One node of a cluster.", "properties": nodeProps, "required": nodeReq},
		},
		"resources": map[string]any{
			ClusterType: map[string]any{
				"description":     "An hvctl cluster: Check is hvctl validate, Diff hvctl plan, Create and Update hvctl up, Delete hvctl down, Read a refresh. The cluster's state stays in hvctl's state backend; no secret reaches Pulumi.",
				"inputProperties": inputs,
				"requiredInputs":  []string{pTemplate},
				"properties":      props,
				"required":        required,
			},
		},
		"language": map[string]any{
			"go": map[string]any{"importBasePath": "github.com/hvctl/hvctl/sdk/go/hvctl"},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	return string(b), err
}
