package aws

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

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
}

// DefaultMaxRetries is how many times the SDK's adaptive retryer retries
// one API call (throttling, 5xx) before the error goes back to the
// engine, which retries it again with its own backoff.
const DefaultMaxRetries = 4

// settingNames are the arguments an aws provider block accepts.
var settingNames = []string{
	"access_key", "assume_role_arn", "availability_zone", "endpoint", "iam_instance_profile",
	"key_name", "max_retries", "profile", "region", "secret_key", "security_group_ids",
	"session_token", "shared_config_files", "shared_credentials_files", "subnet_id", "tags", "vpc_id",
}

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
	s := Settings{MaxRetries: DefaultMaxRetries}
	var diags hcl.Diagnostics
	subject := func(name string) *hcl.Range {
		if r, ok := cfg.AttrRanges[name]; ok {
			return &r
		}
		r := cfg.DeclRange
		return &r
	}
	bad := func(name, detail string) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   detail,
			Subject:  subject(name),
		})
	}
	names := make([]string, 0, len(cfg.Attrs))
	for name := range cfg.Attrs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := cfg.Attrs[name]
		if v.IsNull() {
			continue
		}
		if !v.IsWhollyKnown() {
			bad(name, fmt.Sprintf("The value of %s must be known when the provider is configured.", name))
			continue
		}
		str := func() (string, bool) {
			x, ok := asString(v)
			if !ok || x == "" {
				bad(name, fmt.Sprintf("%s must be a non-empty string.", name))
				return "", false
			}
			return x, true
		}
		switch name {
		case "region":
			s.Region, _ = str()
		case "profile":
			s.Profile, _ = str()
		case "endpoint":
			x, ok := str()
			if !ok {
				continue
			}
			u, err := url.Parse(x)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(name, fmt.Sprintf("endpoint = %q: must be an http or https URL, like \"https://ec2.example.com\".", x))
				continue
			}
			s.Endpoint = x
		case "access_key":
			s.AccessKey, _ = str()
		case "secret_key":
			// Never echo the value.
			if x, ok := asString(v); ok && x != "" {
				s.SecretKey = x
			} else {
				bad(name, "secret_key must be a non-empty string.")
			}
		case "session_token":
			if x, ok := asString(v); ok && x != "" {
				s.SessionToken = x
			} else {
				bad(name, "session_token must be a non-empty string.")
			}
		case "assume_role_arn":
			x, ok := str()
			if ok && !strings.HasPrefix(x, "arn:") {
				bad(name, fmt.Sprintf("assume_role_arn = %q: must be a role ARN, like \"arn:aws:iam::123456789012:role/hvctl\".", x))
				continue
			}
			s.AssumeRoleARN = x
		case "availability_zone":
			x, ok := str()
			if ok && !azPattern.MatchString(x) {
				bad(name, fmt.Sprintf("availability_zone = %q: must be a zone name like \"us-east-1a\".", x))
				continue
			}
			s.AvailabilityZone = x
		case "subnet_id":
			x, ok := str()
			if ok && !subnetPattern.MatchString(x) {
				bad(name, fmt.Sprintf("subnet_id = %q: must be a subnet ID like \"subnet-0123456789abcdef0\".", x))
				continue
			}
			s.SubnetID = x
		case "key_name":
			s.KeyName, _ = str()
		case "iam_instance_profile":
			s.IAMInstanceProfile, _ = str()
		case "security_group_ids":
			l, ok := asStrings(v)
			if !ok {
				bad(name, "security_group_ids must be a list of security group IDs.")
				continue
			}
			for _, g := range l {
				if !sgPattern.MatchString(g) {
					bad(name, fmt.Sprintf("security_group_ids: %q is not a security group ID like \"sg-0123456789abcdef0\".", g))
				}
			}
			s.SecurityGroupIDs = l
		case "shared_config_files", "shared_credentials_files":
			l, ok := asStrings(v)
			if !ok || len(l) == 0 {
				bad(name, fmt.Sprintf("%s must be a non-empty list of file paths.", name))
				continue
			}
			if name == "shared_config_files" {
				s.SharedConfigFiles = l
			} else {
				s.SharedCredentialsFiles = l
			}
		case "max_retries":
			f, ok := asNumber(v)
			if !ok || f < 0 || f != math.Trunc(f) || f > 50 {
				bad(name, fmt.Sprintf("max_retries = %s: must be a whole number from 0 to 50.", show(v)))
				continue
			}
			s.MaxRetries = int(f)
		case "tags":
			m, ok := asStringMap(v)
			if !ok {
				bad(name, "tags must be a map of strings.")
				continue
			}
			for k := range m {
				if strings.HasPrefix(k, "hvctl:") || strings.HasPrefix(strings.ToLower(k), "aws:") {
					bad(name, fmt.Sprintf("tags: the key %q is reserved (hvctl: and aws: prefixes).", k))
				}
			}
			s.Tags = m
		case "vpc_id":
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument",
				Detail:   "The aws provider does not create subnets in an existing VPC yet. Give the site's network an existing subnet instead (network { existing_id = \"subnet-...\" }, or subnet_id here), or leave both out and hvctl makes a VPC per site.",
				Subject:  subject(name),
			})
		default:
			detail := fmt.Sprintf("The aws provider has no argument %q.", name)
			if near := nearest(name, settingNames); near != "" {
				detail += fmt.Sprintf(" Did you mean %q?", near)
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument",
				Detail:   detail,
				Subject:  subject(name),
			})
		}
	}
	switch {
	case s.Region == "":
		if _, given := cfg.Attrs["region"]; !given {
			r := cfg.DeclRange
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing region",
				Detail:   fmt.Sprintf("The aws provider %s needs a region, like region = \"us-east-1\".", cfg.Ref()),
				Subject:  &r,
			})
		}
	case s.Endpoint == "" && !contains(Regions, s.Region):
		detail := fmt.Sprintf("%q is not an AWS region.", s.Region)
		if near := nearest(s.Region, Regions); near != "" {
			detail += fmt.Sprintf(" Did you mean %q?", near)
		} else {
			detail += " Regions look like \"us-east-1\" or \"eu-west-3\"."
		}
		detail += " (A region outside AWS's list is accepted only with an endpoint, for EC2-compatible clouds.)"
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown region",
			Detail:   detail,
			Subject:  subject("region"),
		})
	}
	if s.AvailabilityZone != "" && s.Region != "" && s.Endpoint == "" && !strings.HasPrefix(s.AvailabilityZone, s.Region) {
		bad("availability_zone", fmt.Sprintf("availability_zone = %q is not in region %q.", s.AvailabilityZone, s.Region))
	}
	if (s.AccessKey == "") != (s.SecretKey == "") {
		name := "access_key"
		if s.AccessKey == "" {
			name = "secret_key"
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incomplete static credentials",
			Detail:   "access_key and secret_key go together: give both, or neither to use the SDK's default credential chain (environment, profile, SSO, instance metadata).",
			Subject:  subject(name),
		})
	}
	if s.Profile != "" && s.AccessKey != "" {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Conflicting credentials",
			Detail:   "Give either profile or access_key/secret_key, not both.",
			Subject:  subject("profile"),
		})
	}
	return s, diags
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func asString(v cty.Value) (string, bool) {
	c, err := convert.Convert(v, cty.String)
	if err != nil || c.IsNull() {
		return "", false
	}
	return c.AsString(), true
}

func asNumber(v cty.Value) (float64, bool) {
	c, err := convert.Convert(v, cty.Number)
	if err != nil || c.IsNull() {
		return 0, false
	}
	f, _ := c.AsBigFloat().Float64()
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

func asStrings(v cty.Value) ([]string, bool) {
	c, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || c.IsNull() {
		return nil, false
	}
	var out []string
	for _, e := range c.AsValueSlice() {
		if e.IsNull() {
			return nil, false
		}
		out = append(out, e.AsString())
	}
	return out, true
}

func asStringMap(v cty.Value) (map[string]string, bool) {
	c, err := convert.Convert(v, cty.Map(cty.String))
	if err != nil || c.IsNull() {
		return nil, false
	}
	out := map[string]string{}
	for k, e := range c.AsValueMap() {
		if e.IsNull() {
			return nil, false
		}
		out[k] = e.AsString()
	}
	return out, true
}

// show renders a value for a diagnostic detail.
func show(v cty.Value) string { return provision.ShowValue(v) }

// nearest returns the candidate closest to name, or "" when none is close.
func nearest(name string, candidates []string) string { return provision.Nearest(name, candidates) }
