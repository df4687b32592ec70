package aws

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

func init() { provision.Register("aws", New) }

// Settings are an aws provider block's settings.
type Settings struct {
	Region   string // region (required)
	Profile  string // profile: a shared config profile
	Endpoint string // endpoint: EC2 endpoint override (tests, compatible clouds)

	// Static credentials, only when given; otherwise the SDK's default
	// chain (environment, shared files, SSO, container and instance
	// metadata) is used.
	AccessKey    string // access_key
	SecretKey    string // secret_key
	SessionToken string // session_token

	SharedConfigFiles      []string // shared_config_files
	SharedCredentialsFiles []string // shared_credentials_files
	AssumeRoleARN          string   // assume_role_arn

	AvailabilityZone   string            // availability_zone for new subnets
	SubnetID           string            // subnet_id: default existing subnet for every site
	KeyName            string            // key_name: EC2 key pair for SSH
	SecurityGroupIDs   []string          // security_group_ids: extra groups for every instance
	IAMInstanceProfile string            // iam_instance_profile (name or ARN)
	MaxRetries         int               // max_retries: SDK retries per call (default 4)
	Tags               map[string]string // tags: extra tags on every resource

	// StopIdle (stop_idle) lets the elastic daemon stop an idle on-demand
	// instance instead of terminating it, when starting it again costs
	// less than a new one (provision.Stopper). Off by default: a stopped
	// instance keeps its EBS volumes, which are billed.
	StopIdle bool
	// EBSPrice (ebs_price) is what the volumes of a stopped instance
	// cost, in $ per GiB-month (default DefaultEBSPrice).
	EBSPrice float64
}

// DefaultEBSPrice is gp3's price in us-east-1, $ per GiB-month: what a
// stopped instance's root volume costs unless ebs_price says otherwise.
const DefaultEBSPrice = 0.08

// DefaultMaxRetries is how many times the SDK's adaptive retryer retries
// one API call (throttling, 5xx) before the error goes back to the
// engine, which retries it again with its own backoff.
const DefaultMaxRetries = 4

// Regions are the AWS regions hvctl knows; a region outside this list is
// refused at plan time (with a "did you mean") unless endpoint is set,
// since S3- or EC2-compatible clouds name their regions freely.
var Regions = []string{
	"af-south-1",
	"ap-east-1", "ap-east-2",
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
	"ap-south-1", "ap-south-2",
	"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-7",
	"ca-central-1", "ca-west-1",
	"cn-north-1", "cn-northwest-1",
	"eu-central-1", "eu-central-2",
	"eu-north-1",
	"eu-south-1", "eu-south-2",
	"eu-west-1", "eu-west-2", "eu-west-3",
	"il-central-1",
	"me-central-1", "me-south-1",
	"mx-central-1",
	"sa-east-1",
	"us-east-1", "us-east-2",
	"us-gov-east-1", "us-gov-west-1",
	"us-west-1", "us-west-2",
}

var (
	azPattern     = regexp.MustCompile(`^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$`)
	subnetPattern = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	sgPattern     = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
	arnPattern    = regexp.MustCompile(`^arn:`)
)

// New is the aws provider's provision.Factory: it checks cfg's settings
// and builds an EC2 client (credentials are resolved lazily, at the
// first API call, so plan works offline).
func New(cfg *templates.Provider, env *provision.Env) (provision.Provider, hcl.Diagnostics) {
	s, diags := ParseSettings(cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	p, err := Open(s, env)
	if err != nil {
		subject := cfg.DeclRange
		for _, a := range []string{"profile", "shared_config_files", "shared_credentials_files"} {
			if r, ok := cfg.AttrRanges[a]; ok {
				subject = r
				break
			}
		}
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Cannot configure the AWS SDK",
			Detail:   err.Error(),
			Subject:  &subject,
		})
	}
	return p, diags
}

// ParseSettings checks an aws provider block. Each bad value is an error
// diagnostic whose Subject is that argument's source range.
func ParseSettings(cfg *templates.Provider) (Settings, hcl.Diagnostics) {
	s := Settings{MaxRetries: DefaultMaxRetries, EBSPrice: DefaultEBSPrice}
	nonEmpty := func(name string, into *string) provision.Setting {
		return provision.Setting{Name: name, Into: into, Valid: provision.NonEmpty, Must: "must be a non-empty string"}
	}
	pattern := func(name string, into *string, re *regexp.Regexp, must string) provision.Setting {
		return provision.Setting{Name: name, Into: into, Must: must, Valid: func(v any) bool { return re.MatchString(v.(string)) }}
	}
	files := func(name string, into *[]string) provision.Setting {
		return provision.Setting{Name: name, Into: into, Valid: provision.NonEmpty, Must: "must be a non-empty list of file paths"}
	}
	schema := provision.Schema{Provider: "aws", Settings: []provision.Setting{
		nonEmpty("region", &s.Region),
		nonEmpty("profile", &s.Profile),
		{Name: "endpoint", Into: &s.Endpoint, Must: `must be an http or https URL, like "https://ec2.example.com"`,
			Valid: func(v any) bool {
				u, err := url.Parse(v.(string))
				return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
			}},
		nonEmpty("access_key", &s.AccessKey),
		{Name: "secret_key", Into: &s.SecretKey, Secret: true, Valid: provision.NonEmpty, Must: "must be a non-empty string"},
		{Name: "session_token", Into: &s.SessionToken, Secret: true, Valid: provision.NonEmpty, Must: "must be a non-empty string"},
		pattern("assume_role_arn", &s.AssumeRoleARN, arnPattern, `must be a role ARN, like "arn:aws:iam::123456789012:role/hvctl"`),
		pattern("availability_zone", &s.AvailabilityZone, azPattern, `must be a zone name like "us-east-1a"`),
		pattern("subnet_id", &s.SubnetID, subnetPattern, `must be a subnet ID like "subnet-0123456789abcdef0"`),
		nonEmpty("key_name", &s.KeyName),
		nonEmpty("iam_instance_profile", &s.IAMInstanceProfile),
		{Name: "security_group_ids", Into: &s.SecurityGroupIDs, Must: "must be a list of security group IDs",
			Check: func(v any) string {
				for _, g := range v.([]string) {
					if !sgPattern.MatchString(g) {
						return fmt.Sprintf("security_group_ids: %q is not a security group ID like \"sg-0123456789abcdef0\".", g)
					}
				}
				return ""
			}},
		files("shared_config_files", &s.SharedConfigFiles),
		files("shared_credentials_files", &s.SharedCredentialsFiles),
		{Name: "max_retries", Into: &s.MaxRetries, Valid: provision.Between(0, 50), Must: "must be a whole number from 0 to 50"},
		{Name: "tags", Into: &s.Tags, Must: "must be a map of strings",
			Check: func(v any) string {
				for _, k := range sortedKeys(v.(map[string]string)) {
					if strings.HasPrefix(k, "hvctl:") || strings.HasPrefix(strings.ToLower(k), "aws:") {
						return fmt.Sprintf("tags: the key %q is reserved (hvctl: and aws: prefixes).", k)
					}
				}
				return ""
			}},
		{Name: "stop_idle", Into: &s.StopIdle, Must: "must be true or false"},
		{Name: "ebs_price", Into: &s.EBSPrice, Must: "must be a price in $ per GiB-month, not negative, like 0.08",
			Valid: func(v any) bool { return v.(float64) >= 0 }},
		{Name: "vpc_id", Into: new(string), Refused: "The aws provider does not create subnets in an existing VPC yet. Give the site's network an existing subnet instead (network { existing_id = \"subnet-...\" }, or subnet_id here), or leave both out and hvctl makes a VPC per site."},
	}}
	diags := schema.Decode(cfg)
	switch {
	case s.Region == "":
		if !provision.Given(cfg, "region") {
			r := cfg.DeclRange
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing region",
				Detail:   fmt.Sprintf("The aws provider %s needs a region, like region = \"us-east-1\".", cfg.Ref()),
				Subject:  &r,
			})
		}
	case s.Endpoint == "" && !slices.Contains(Regions, s.Region):
		detail := fmt.Sprintf("%q is not an AWS region.", s.Region)
		if near := provision.Nearest(s.Region, Regions); near != "" {
			detail += fmt.Sprintf(" Did you mean %q?", near)
		} else {
			detail += " Regions look like \"us-east-1\" or \"eu-west-3\"."
		}
		detail += " (A region outside AWS's list is accepted only with an endpoint, for EC2-compatible clouds.)"
		diags = append(diags, provision.SettingError(cfg, "region", "Unknown region", detail))
	}
	if s.AvailabilityZone != "" && s.Region != "" && s.Endpoint == "" && !strings.HasPrefix(s.AvailabilityZone, s.Region) {
		diags = append(diags, provision.SettingError(cfg, "availability_zone", "Invalid availability_zone",
			fmt.Sprintf("availability_zone = %q is not in region %q.", s.AvailabilityZone, s.Region)))
	}
	if (s.AccessKey == "") != (s.SecretKey == "") {
		name := "access_key"
		if s.AccessKey == "" {
			name = "secret_key"
		}
		diags = append(diags, provision.SettingError(cfg, name, "Incomplete static credentials",
			"access_key and secret_key go together: give both, or neither to use the SDK's default credential chain (environment, profile, SSO, instance metadata)."))
	}
	if s.Profile != "" && s.AccessKey != "" {
		diags = append(diags, provision.SettingError(cfg, "profile", "Conflicting credentials", "Give either profile or access_key/secret_key, not both."))
	}
	return s, diags
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
