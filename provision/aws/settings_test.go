package aws

import (
	"reflect"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/hvctl/hvctl/provision"
)

func TestSettings(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		want  Settings
	}{
		{"region only", map[string]cty.Value{"region": cty.StringVal("eu-west-3")},
			Settings{Region: "eu-west-3", MaxRetries: DefaultMaxRetries, EBSPrice: DefaultEBSPrice}},
		{"everything", map[string]cty.Value{
			"region": cty.StringVal("us-east-2"), "profile": cty.StringVal("research"),
			"availability_zone": cty.StringVal("us-east-2b"), "key_name": cty.StringVal("ops"),
			"subnet_id":          cty.StringVal("subnet-0123456789abcdef0"),
			"security_group_ids": cty.ListVal([]cty.Value{cty.StringVal("sg-0123456789abcdef0")}),
			"max_retries":        cty.NumberIntVal(7), "tags": cty.MapVal(map[string]cty.Value{"project": cty.StringVal("audio")}),
			"iam_instance_profile": cty.StringVal("hvctl-node"),
		}, Settings{Region: "us-east-2", Profile: "research", AvailabilityZone: "us-east-2b", KeyName: "ops",
			SubnetID: "subnet-0123456789abcdef0", SecurityGroupIDs: []string{"sg-0123456789abcdef0"}, MaxRetries: 7,
			Tags: map[string]string{"project": "audio"}, IAMInstanceProfile: "hvctl-node", EBSPrice: DefaultEBSPrice}},
		{"stop_idle and ebs_price", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "stop_idle": cty.True,
			"ebs_price": cty.NumberFloatVal(0.125)},
			Settings{Region: "us-east-1", MaxRetries: DefaultMaxRetries, StopIdle: true, EBSPrice: 0.125}},
		{"free volumes", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "stop_idle": cty.False,
			"ebs_price": cty.NumberIntVal(0)},
			Settings{Region: "us-east-1", MaxRetries: DefaultMaxRetries, EBSPrice: 0}},
		{"compatible cloud: any region with an endpoint", map[string]cty.Value{"region": cty.StringVal("RegionOne"),
			"endpoint": cty.StringVal("https://ec2.example.org:8788")},
			Settings{Region: "RegionOne", Endpoint: "https://ec2.example.org:8788", MaxRetries: DefaultMaxRetries, EBSPrice: DefaultEBSPrice}},
		{"static keys", map[string]cty.Value{"region": cty.StringVal("us-west-2"), "access_key": cty.StringVal("AKID"),
			"secret_key": cty.StringVal("s")},
			Settings{Region: "us-west-2", AccessKey: "AKID", SecretKey: "s", MaxRetries: DefaultMaxRetries, EBSPrice: DefaultEBSPrice}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, diags := ParseSettings(providerConfig(tt.attrs))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		name    string
		attrs   map[string]cty.Value
		subject string // the attribute the diagnostic points at; "" = the block
		summary string
		detail  string
	}{
		{"missing region", map[string]cty.Value{"profile": cty.StringVal("x")}, "", "Missing region", `region = "us-east-1"`},
		{"region typo", map[string]cty.Value{"region": cty.StringVal("us-esat-1")}, "region", "Unknown region", `Did you mean "us-east-1"?`},
		{"region made up", map[string]cty.Value{"region": cty.StringVal("moon")}, "region", "Unknown region", `"moon" is not an AWS region`},
		{"region number", map[string]cty.Value{"region": cty.NumberIntVal(1)}, "region", "Unknown region", `"1" is not an AWS region`},
		{"endpoint not a URL", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "endpoint": cty.StringVal("localhost:4566")}, "endpoint", "Invalid endpoint", "http or https URL"},
		{"unknown argument", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "regoin": cty.StringVal("x")}, "regoin", "Unsupported argument", `Did you mean "region"?`},
		{"half static keys", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "access_key": cty.StringVal("AKID")}, "access_key", "Incomplete static credentials", "go together"},
		{"zone of another region", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "availability_zone": cty.StringVal("eu-west-1a")}, "availability_zone", "Invalid availability_zone", "not in region"},
		{"bad subnet", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "subnet_id": cty.StringVal("net-1")}, "subnet_id", "Invalid subnet_id", "subnet ID like"},
		{"vpc_id", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "vpc_id": cty.StringVal("vpc-1")}, "vpc_id", "Unsupported argument", "existing subnet"},
		{"reserved tag", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "tags": cty.MapVal(map[string]cty.Value{"hvctl:cluster": cty.StringVal("x")})}, "tags", "Invalid tags", "reserved"},
		{"max_retries", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "max_retries": cty.NumberFloatVal(1.5)}, "max_retries", "Invalid max_retries", "whole number"},
		{"stop_idle a string", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "stop_idle": cty.StringVal("yes")}, "stop_idle", "Invalid stop_idle", `stop_idle = "yes": must be true or false`},
		{"stop_idle a number", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "stop_idle": cty.NumberIntVal(1)}, "stop_idle", "Invalid stop_idle", "must be true or false"},
		{"stop_idle a list", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "stop_idle": cty.ListVal([]cty.Value{cty.True})}, "stop_idle", "Invalid stop_idle", "must be true or false"},
		{"ebs_price negative", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "ebs_price": cty.NumberFloatVal(-0.08)}, "ebs_price", "Invalid ebs_price", "not negative"},
		{"ebs_price a word", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "ebs_price": cty.StringVal("cheap")}, "ebs_price", "Invalid ebs_price", `ebs_price = "cheap": must be a price`},
		{"ebs_price a bool", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "ebs_price": cty.True}, "ebs_price", "Invalid ebs_price", "per GiB-month"},
		{"stop_idle unknown", map[string]cty.Value{"region": cty.StringVal("us-east-1"), "stop_idle": cty.UnknownVal(cty.Bool)}, "stop_idle", "Invalid stop_idle", "must be known"},
		{"unknown value", map[string]cty.Value{"region": cty.UnknownVal(cty.String)}, "region", "Invalid region", "must be known"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := providerConfig(tt.attrs)
			_, diags := ParseSettings(cfg)
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			var found bool
			for _, d := range diags {
				if d.Summary != tt.summary {
					continue
				}
				found = true
				if !strings.Contains(d.Detail, tt.detail) {
					t.Errorf("detail %q lacks %q", d.Detail, tt.detail)
				}
				want := cfg.DeclRange
				if tt.subject != "" {
					want = cfg.AttrRanges[tt.subject]
				}
				if d.Subject == nil || *d.Subject != want {
					t.Errorf("subject %v, want %v", d.Subject, want)
				}
			}
			if !found {
				t.Errorf("no %q diagnostic in %v", tt.summary, diags)
			}
		})
	}
}

func TestSecretKeyNotEchoed(t *testing.T) {
	_, diags := ParseSettings(providerConfig(map[string]cty.Value{"region": cty.StringVal("us-east-1"),
		"secret_key": cty.StringVal("TOPSECRET"), "profile": cty.StringVal("p")}))
	if !diags.HasErrors() {
		t.Fatal("want errors (secret_key without access_key)")
	}
	if strings.Contains(diags.Error(), "TOPSECRET") {
		t.Errorf("diagnostics echo the secret key: %v", diags)
	}
}

func TestFactoryProfileMissing(t *testing.T) {
	credentialsEnv(t)
	f, _ := provision.Lookup("aws")
	cfg := providerConfig(map[string]cty.Value{"region": cty.StringVal("us-east-1"), "profile": cty.StringVal("nope")})
	_, diags := f(cfg, &provision.Env{StateDir: t.TempDir()})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "nope") {
		t.Fatalf("a missing profile: %v", diags)
	}
	if s := diags[0].Subject; s == nil || *s != cfg.AttrRanges["profile"] {
		t.Errorf("subject %v, want the profile attribute", s)
	}
}
