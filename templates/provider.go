package templates

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// providerTypes are the provider types a template may use, sorted.
var providerTypes = []string{"aws", "local", "openstack", "sim", "static"}

// providerAttrs are the settings each provider type accepts. Their
// meaning is checked by the provider at plan time, not here.
var providerAttrs = map[string][]string{
	"local": {"boot_time", "boot_fail_rate", "outside_interfaces", "stop_idle"},
	"sim":   {"boot_time", "api_rate", "fail_rate", "capacity", "boot_fail_rate", "seed", "world", "start_time", "stopped_price"},
	"aws": {"region", "profile", "endpoint", "access_key", "secret_key", "session_token",
		"availability_zone", "subnet_id", "vpc_id", "key_name", "security_group_ids",
		"iam_instance_profile", "shared_config_files", "shared_credentials_files",
		"assume_role_arn", "max_retries", "tags", "stop_idle", "ebs_price"},
	"openstack": {"cloud", "region", "auth_url", "endpoint", "username", "password",
		"project_name", "project_id", "user_domain_name", "project_domain_name", "domain_name",
		"application_credential_id", "application_credential_secret", "insecure",
		"availability_zone", "network", "network_id", "floating_ip_pool", "key_name",
		"image", "flavor", "external_network", "agent_url", "stop_idle", "stopped_price"},
	"static": {"user", "private_key", "known_hosts", "insecure_accept_new", "port", "become", "agent_binary", "install_dir", "connect_timeout", "jump_host"},
}

func providerSchema(typ string) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, a := range providerAttrs[typ] {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a})
	}
	return s
}

func (l *loader) decodeProvider(b *hcl.Block) {
	typ, name := b.Labels[0], b.Labels[1]
	if !contains(providerTypes, typ) {
		l.diags = append(l.diags, errorf(b.LabelRanges[0], "Unknown provider type",
			"There is no provider type %q.%s Provider types are %s.", typ, didYouMean(typ, providerTypes), quotedList(providerTypes)))
		return
	}
	if !l.checkIdent("provider", name, b.LabelRanges[1]) {
		return
	}
	if prev := l.providers[typ][name]; prev != nil {
		l.diags = append(l.diags, errorf(b.DefRange, "Duplicate provider",
			"A provider %q %q was already defined at %s. Provider names must be unique within their type.", typ, name, prev.DeclRange))
		return
	}
	p := &Provider{Type: typ, Name: name, Attrs: map[string]cty.Value{}, AttrRanges: map[string]hcl.Range{}, DeclRange: b.DefRange}
	content, diags := b.Body.Content(providerSchema(typ))
	l.diags = append(l.diags, diags...)
	for _, a := range sortAttrs(content.Attributes) {
		v, ok := l.eval(a.Expr, l.ctxLocals, scopeLocals)
		if !ok || v.IsNull() {
			continue
		}
		p.Attrs[a.Name] = v
		p.AttrRanges[a.Name] = a.Expr.Range()
	}
	if l.providers[typ] == nil {
		l.providers[typ] = map[string]*Provider{}
	}
	l.providers[typ][name] = p
	l.cfg.Providers = append(l.cfg.Providers, p)
}

// providerObject is the value of provider.*: provider.TYPE.NAME is an
// object {type, name} that a site's provider attribute resolves.
func (l *loader) providerObject() cty.Value {
	types := map[string]cty.Value{}
	for _, t := range providerTypes {
		names := map[string]cty.Value{
			"default": cty.ObjectVal(map[string]cty.Value{"type": cty.StringVal(t), "name": cty.StringVal("default")}),
		}
		for n := range l.providers[t] {
			names[n] = cty.ObjectVal(map[string]cty.Value{"type": cty.StringVal(t), "name": cty.StringVal(n)})
		}
		types[t] = cty.ObjectVal(names)
	}
	return cty.ObjectVal(types)
}

// provider returns the provider typ/name: an explicit block, or the
// implicit default configuration of typ, created on first use.
func (l *loader) provider(typ, name string) *Provider {
	if p := l.providers[typ][name]; p != nil {
		return p
	}
	if name != "default" {
		return nil
	}
	p := l.implicit[typ]
	if p == nil {
		p = &Provider{Type: typ, Name: "default", Implicit: true, Attrs: map[string]cty.Value{}, AttrRanges: map[string]hcl.Range{}}
		l.implicit[typ] = p
	}
	return p
}
