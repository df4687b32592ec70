package provision_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v2"

	. "github.com/hvctl/hvctl/provision"
)

// TestAgentCloudConfig: the agent's cloud-config is valid YAML whose
// files and commands are the ones given (golden), and its agent
// configuration holds the attributes but not user_data.
func TestAgentCloudConfig(t *testing.T) {
	req := &CreateRequest{Address: "site.a.node.n", Cluster: "c", Attrs: Attrs{
		"name": "n", "site": "a", "roles": []string{"hub"}, "cpus": int64(2), "memory_mib": int64(512),
		"join_token": "jt", "user_data": "echo hi",
	}}
	cfg := NewAgentConfig(req)
	cfg.SetAddresses("10.0.0.2", "")
	if _, ok := cfg.Attrs["user_data"]; ok || cfg.Attrs["join_token"] != "jt" || cfg.Attrs["private_ip"] != "10.0.0.2" || cfg.CPUs != 2 {
		t.Fatalf("agent config %+v", cfg)
	}
	cc, err := AgentCloudConfig("hvctl site.a.node.n", cfg, "b64", []string{"sh", "-c", `echo "$0" x`, "0700"})
	if err != nil {
		t.Fatal(err)
	}
	out := cc.Render()
	golden := filepath.Join("testdata", "cloudinit", "agent.golden")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Errorf("rendered:\n%s\nwant (%s):\n%s", out, golden, want)
	}
	var doc struct {
		WriteFiles []struct {
			Path        string `yaml:"path"`
			Permissions string `yaml:"permissions"`
			Encoding    string `yaml:"encoding"`
		} `yaml:"write_files"`
		RunCmd [][]string `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("not YAML: %v", err)
	}
	if len(doc.WriteFiles) != 2 || doc.WriteFiles[0].Path != AgentConfigPath || doc.WriteFiles[0].Permissions != "0600" || doc.WriteFiles[0].Encoding != "b64" {
		t.Errorf("write_files = %+v", doc.WriteFiles)
	}
	wantCmds := [][]string{{"install", "-d", "-m", "0700", AgentDir}, {"sh", "-c", `echo "$0" x`, "0700"},
		{"systemctl", "daemon-reload"}, {"systemctl", "enable", "--now", AgentUnitName}}
	if !reflect.DeepEqual(doc.RunCmd, wantCmds) {
		t.Errorf("runcmd = %q, want %q", doc.RunCmd, wantCmds)
	}
}
