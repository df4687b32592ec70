package openstack

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/hashicorp/hcl/v2"
	"gopkg.in/yaml.v2"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/templates"
)

func init() { provision.Register("openstack", New) }

// Settings are an openstack provider block's settings.
type Settings struct {
	// Cloud is the clouds.yaml entry ("" = OS_CLOUD, else the OS_*
	// variables alone).
	Cloud  string
	Region string // region = overrides the entry's region_name / OS_REGION_NAME
	// AuthURL overrides the entry's auth_url (Keystone).
	AuthURL string
	// Endpoint, when set, replaces the service catalog: Nova at
	// ENDPOINT/compute/v2.1, Neutron at ENDPOINT/network, Glance at
	// ENDPOINT/image (the single-host devstack layout).
	Endpoint string
	// Credentials and scope, overriding clouds.yaml and OS_*.
	Username, Password, ProjectName, ProjectID    string
	UserDomainName, ProjectDomainName, DomainName string
	AppCredID, AppCredSecret                      string
	Insecure                                      bool

	AvailabilityZone string // availability_zone of every server
	KeyName          string // key_name: a Nova keypair for SSH
	Image            string // image: default image (name or ID) when a node names none
	Flavor           string // flavor: default flavor when a node has no instance type
	// ExternalNetwork is the provider network floating IPs come from and
	// site routers uplink to (name or ID); "" = the cloud's only
	// external network, if it has exactly one.
	ExternalNetwork string // external_network (or floating_ip_pool)
	// AgentURL, when set, is where cloud-init downloads the hvctl binary
	// from (to /usr/local/bin/hvctl); otherwise the image must have hvctl.
	AgentURL string // agent_url

	// StopIdle lets the elastic daemon stop an idle node (Nova os-stop)
	// instead of destroying it, and start it again (os-start) when work
	// comes back (stop_idle, default false).
	StopIdle bool
	// StoppedPrice is what a SHUTOFF server costs on this cloud, in $
	// per hour (stopped_price, default 0): clouds differ, many academic
	// ones charge nothing for a stopped server that holds quota, public
	// ones bill its flavor or its volume.
	StoppedPrice float64

	// Where credentials came from, for messages.
	CloudsFile string
}

// New is the openstack provider's provision.Factory: it checks the
// settings and loads the credentials (clouds.yaml, OS_*) without
// contacting the cloud; the first API call logs in.
func New(cfg *templates.Provider, env *provision.Env) (provision.Provider, hcl.Diagnostics) {
	s, diags := ParseSettings(cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	ao, eo, tlsCfg, d := loadCredentials(cfg, &s)
	diags = append(diags, d...)
	if diags.HasErrors() {
		return nil, diags
	}
	return open(env, cfg.Ref(), s, ao, eo, tlsCfg), diags
}

// ParseSettings checks an openstack provider block. Each bad value is an
// error diagnostic whose Subject is that argument's source range.
func ParseSettings(cfg *templates.Provider) (Settings, hcl.Diagnostics) {
	var s Settings
	var floatingPool string
	str := func(name string, into *string) provision.Setting {
		return provision.Setting{Name: name, Into: into, Must: "must be a string"}
	}
	url := func(name string, into *string) provision.Setting {
		return provision.Setting{Name: name, Into: into, Must: "must be an http:// or https:// URL",
			Valid: func(v any) bool {
				x := v.(string)
				return x == "" || strings.HasPrefix(x, "http://") || strings.HasPrefix(x, "https://")
			}}
	}
	secret := func(name string, into *string) provision.Setting {
		return provision.Setting{Name: name, Into: into, Must: "must be a string", Secret: true}
	}
	schema := provision.Schema{Provider: "openstack", Settings: []provision.Setting{
		str("cloud", &s.Cloud), str("region", &s.Region), url("auth_url", &s.AuthURL), url("endpoint", &s.Endpoint),
		str("username", &s.Username), secret("password", &s.Password), str("project_name", &s.ProjectName),
		str("project_id", &s.ProjectID), str("user_domain_name", &s.UserDomainName),
		str("project_domain_name", &s.ProjectDomainName), str("domain_name", &s.DomainName),
		str("application_credential_id", &s.AppCredID), secret("application_credential_secret", &s.AppCredSecret),
		str("availability_zone", &s.AvailabilityZone), str("key_name", &s.KeyName), str("image", &s.Image),
		str("flavor", &s.Flavor), str("external_network", &s.ExternalNetwork), str("floating_ip_pool", &floatingPool),
		url("agent_url", &s.AgentURL),
		{Name: "insecure", Into: &s.Insecure, Must: "must be true or false"},
		{Name: "stop_idle", Into: &s.StopIdle, Must: "must be true or false"},
		{Name: "stopped_price", Into: &s.StoppedPrice, Valid: provision.Between(0, math.MaxFloat64),
			Must: "must be the $ per hour a stopped server costs, 0 or more, like 0.01"},
	}, Hint: func(name string) string {
		if name == "network" || name == "network_id" {
			return "To reuse an existing network, set network { existing_id = \"...\" } on the site."
		}
		return ""
	}}
	diags := schema.Decode(cfg)
	if provision.Given(cfg, "floating_ip_pool") {
		if provision.Given(cfg, "external_network") {
			diags = append(diags, provision.SettingError(cfg, "floating_ip_pool", "Conflicting arguments",
				"Set external_network or floating_ip_pool (an older name for it), not both."))
		} else {
			s.ExternalNetwork = floatingPool
		}
	}
	return s, diags
}

// cloudsLocations is where clouds.yaml is looked for, in order: as
// gophercloud and python-openstackclient look for it.
func cloudsLocations() []string {
	if p := os.Getenv("OS_CLIENT_CONFIG_FILE"); p != "" {
		return []string{p}
	}
	var out []string
	if cwd, err := os.Getwd(); err == nil {
		out = append(out, filepath.Join(cwd, "clouds.yaml"))
	}
	cfgDir := os.Getenv("XDG_CONFIG_HOME")
	if cfgDir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cfgDir = filepath.Join(home, ".config")
		}
	}
	if cfgDir != "" {
		out = append(out, filepath.Join(cfgDir, "openstack", "clouds.yaml"))
	}
	return append(out, "/etc/openstack/clouds.yaml")
}

// loadCredentials resolves the auth options the way gophercloud's
// clouds package (and the openstack CLI) does: the clouds.yaml entry
// named by cloud (or OS_CLOUD); without one, the OS_* variables. Block
// settings override both. Problems are diagnostics: a missing entry
// points at `cloud` and says where clouds.yaml was looked for.
func loadCredentials(cfg *templates.Provider, s *Settings) (gophercloud.AuthOptions, gophercloud.EndpointOpts, *tlsConfig, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	cloud := s.Cloud
	if cloud == "" {
		cloud = os.Getenv("OS_CLOUD")
	}
	var ao gophercloud.AuthOptions
	var eo gophercloud.EndpointOpts
	var tc *tlsConfig
	if cloud != "" {
		locs := cloudsLocations()
		found := ""
		for _, l := range locs {
			if _, err := os.Stat(l); err == nil {
				found = l
				break
			}
		}
		where := "OS_CLOUD"
		if s.Cloud != "" {
			where = "cloud"
		}
		if found == "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No clouds.yaml found",
				Detail: fmt.Sprintf("%s = %q names an entry of clouds.yaml, but there is no clouds.yaml in any of: %s. "+
					"Download one from Horizon (Project > API Access > Download OpenStack RC File > clouds.yaml), or point OS_CLIENT_CONFIG_FILE at it.",
					where, cloud, strings.Join(locs, ", ")),
				Subject: provision.Subject(cfg, "cloud")})
			return ao, eo, nil, diags
		}
		opts := []clouds.ParseOption{clouds.WithCloudName(cloud), clouds.WithLocations(found)}
		if s.Region != "" {
			opts = append(opts, clouds.WithRegion(s.Region))
		}
		if s.AuthURL != "" {
			opts = append(opts, clouds.WithIdentityEndpoint(s.AuthURL))
		}
		if s.Insecure {
			opts = append(opts, clouds.WithInsecure(true))
		}
		a, e, tlsCfg, err := clouds.Parse(opts...)
		if err != nil {
			detail := fmt.Sprintf("Reading %s: %v.", found, err)
			if strings.Contains(err.Error(), "not found in clouds.yaml") {
				detail = fmt.Sprintf("%s = %q: there is no such entry in %s (clouds.yaml is looked for in: %s; the first one found is used). Entries: %s.",
					where, cloud, found, strings.Join(locs, ", "), cloudEntries(found))
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "OpenStack cloud not found",
				Detail: detail, Subject: provision.Subject(cfg, "cloud")})
			return ao, eo, nil, diags
		}
		ao, eo, tc = a, e, &tlsConfig{cfg: tlsCfg}
		s.CloudsFile = found
	} else {
		a, err := authFromEnv()
		if err != nil && s.AuthURL == "" {
			r := cfg.DeclRange
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No OpenStack credentials",
				Detail: fmt.Sprintf("The openstack provider %s has no credentials: set cloud = \"NAME\" (an entry of clouds.yaml, looked for in %s), "+
					"or OS_CLOUD, or source an OpenStack RC file (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, ...). (%v)",
					cfg.Ref(), strings.Join(cloudsLocations(), ", "), err),
				Subject: &r})
			return ao, eo, nil, diags
		}
		ao = a
		eo = gophercloud.EndpointOpts{Region: os.Getenv("OS_REGION_NAME")}
		if it := os.Getenv("OS_INTERFACE"); it == "internal" || it == "internalURL" {
			eo.Availability = gophercloud.AvailabilityInternal
		}
		tc = &tlsConfig{insecure: s.Insecure}
	}
	// Block settings win.
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&ao.IdentityEndpoint, s.AuthURL)
	set(&ao.Username, s.Username)
	set(&ao.Password, s.Password)
	set(&ao.TenantName, s.ProjectName)
	set(&ao.TenantID, s.ProjectID)
	set(&ao.DomainName, s.UserDomainName)
	set(&ao.DomainName, s.DomainName)
	set(&ao.ApplicationCredentialID, s.AppCredID)
	set(&ao.ApplicationCredentialSecret, s.AppCredSecret)
	set(&eo.Region, s.Region)
	if (s.ProjectName != "" || s.ProjectID != "") && ao.Scope == nil {
		dn := s.ProjectDomainName
		if dn == "" {
			dn = ao.DomainName
		}
		ao.Scope = &gophercloud.AuthScope{ProjectID: s.ProjectID, ProjectName: s.ProjectName, DomainName: dn}
		if s.ProjectID != "" {
			ao.Scope.ProjectName, ao.Scope.DomainName = "", ""
		}
	}
	if ao.IdentityEndpoint == "" {
		r := cfg.DeclRange
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No OpenStack auth_url",
			Detail: "Neither clouds.yaml nor OS_AUTH_URL nor auth_url gives Keystone's URL.", Subject: &r})
	}
	ao.AllowReauth = true
	return ao, eo, tc, diags
}

// cloudEntries lists the entries of a clouds.yaml, for a message.
func cloudEntries(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable)"
	}
	var f struct {
		Clouds map[string]any `yaml:"clouds"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil || len(f.Clouds) == 0 {
		return "none"
	}
	names := make([]string, 0, len(f.Clouds))
	for n := range f.Clouds {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Timing are the provider's waits; tests shorten them.
type Timing struct {
	Poll       time.Duration // between status reads while waiting (5s)
	MaxBackoff time.Duration // cap of one throttling backoff (30s)
	Retries    int           // HTTP-level retries of 429/503 before giving up to the engine (5)
	DeleteWait time.Duration // how long Delete waits for a server to go (5m)
}

// DefaultTiming is the production timing.
var DefaultTiming = Timing{Poll: 5 * time.Second, MaxBackoff: 30 * time.Second, Retries: 5, DeleteWait: 5 * time.Minute}

// authFromEnv reads the OS_* variables of an OpenStack RC file, as the
// openstack CLI does (OS_USER_DOMAIN_NAME and OS_PROJECT_DOMAIN_NAME
// included, which gophercloud's AuthOptionsFromEnv does not read).
func authFromEnv() (gophercloud.AuthOptions, error) {
	env := func(keys ...string) string {
		for _, k := range keys {
			if v := os.Getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	ao := gophercloud.AuthOptions{
		IdentityEndpoint:            env("OS_AUTH_URL"),
		Username:                    env("OS_USERNAME"),
		UserID:                      env("OS_USER_ID", "OS_USERID"),
		Password:                    env("OS_PASSWORD"),
		DomainName:                  env("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"),
		DomainID:                    env("OS_USER_DOMAIN_ID", "OS_DOMAIN_ID"),
		TokenID:                     env("OS_TOKEN"),
		ApplicationCredentialID:     env("OS_APPLICATION_CREDENTIAL_ID"),
		ApplicationCredentialName:   env("OS_APPLICATION_CREDENTIAL_NAME"),
		ApplicationCredentialSecret: env("OS_APPLICATION_CREDENTIAL_SECRET"),
	}
	if id := env("OS_PROJECT_ID", "OS_TENANT_ID"); id != "" {
		ao.Scope = &gophercloud.AuthScope{ProjectID: id}
	} else if name := env("OS_PROJECT_NAME", "OS_TENANT_NAME"); name != "" {
		ao.Scope = &gophercloud.AuthScope{ProjectName: name,
			DomainName: env("OS_PROJECT_DOMAIN_NAME", "OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"),
			DomainID:   env("OS_PROJECT_DOMAIN_ID")}
		if ao.Scope.DomainID != "" {
			ao.Scope.DomainName = ""
		}
	}
	switch {
	case ao.IdentityEndpoint == "":
		return ao, fmt.Errorf("OS_AUTH_URL is not set")
	case ao.TokenID != "", ao.ApplicationCredentialID != "" && ao.ApplicationCredentialSecret != "":
	case ao.Username == "" && ao.UserID == "":
		return ao, fmt.Errorf("OS_USERNAME is not set")
	case ao.Password == "":
		return ao, fmt.Errorf("OS_PASSWORD is not set")
	}
	return ao, nil
}
