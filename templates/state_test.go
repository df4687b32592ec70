package templates

import (
	"reflect"
	"strings"
	"testing"
)

func TestStateBlock(t *testing.T) {
	tests := []struct {
		path     string
		backend  string
		settings map[string]string
		enc      StateEncryption
	}{
		{"testdata/valid/state-pg.hcl", "pg", map[string]string{"conn_str": "postgres://hvctl@db.example/hvctl", "schema": "team_a"},
			StateEncryption{Passphrase: "correct horse battery staple"}},
		{"testdata/valid/state-s3.hcl", "s3", map[string]string{"bucket": "hvctl-state", "region": "eu-central-1", "use_path_style": "true"},
			StateEncryption{KeyEnv: "HVCTL_STATE_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			cfg := mustLoad(t, tt.path, LoadOptions{})
			sc := cfg.State
			if sc == nil {
				t.Fatal("no state config")
			}
			eq(t, "backend", sc.Backend, tt.backend)
			eq(t, "settings", sc.Settings, tt.settings)
			if sc.Encryption == nil {
				t.Fatal("no encryption")
			}
			eq(t, "passphrase", sc.Encryption.Passphrase, tt.enc.Passphrase)
			eq(t, "key_env", sc.Encryption.KeyEnv, tt.enc.KeyEnv)
		})
	}
	if cfg := mustLoad(t, "testdata/valid/vars.hcl", LoadOptions{}); cfg.State != nil {
		t.Errorf("a template without a state block has state %+v", cfg.State)
	}
}

func TestResolveState(t *testing.T) {
	pg := &StateConfig{Backend: "pg", Settings: map[string]string{"schema": "tmpl"}}
	tests := []struct {
		name    string
		sc      *StateConfig
		kvs     []string
		env     []string
		backend string
		want    map[string]string
		err     string
	}{
		{"no block is local", nil, nil, nil, "local", map[string]string{}, ""},
		{"local path", nil, []string{"path=/x/s.json"}, nil, "local", map[string]string{"path": "/x/s.json"}, ""},
		{"local foreign key", nil, []string{"conn_str=x"}, nil, "", nil, `conn_str is not a setting of the local backend`},
		{"not kv", nil, []string{"path"}, nil, "", nil, `expected KEY=VALUE`},
		{"pg from env", pg, nil, []string{"HVCTL_PG_CONN_STR=postgres://a/b"}, "pg", map[string]string{"conn_str": "postgres://a/b", "schema": "tmpl"}, ""},
		{"template beats env", pg, nil, []string{"HVCTL_PG_SCHEMA=envschema", "HVCTL_PG_CONN_STR=postgres://a/b"}, "pg", map[string]string{"conn_str": "postgres://a/b", "schema": "tmpl"}, ""},
		{"flag beats all", pg, []string{"schema=flag", "conn_str=postgres://c/d"}, []string{"HVCTL_PG_CONN_STR=postgres://a/b"}, "pg", map[string]string{"conn_str": "postgres://c/d", "schema": "flag"}, ""},
		{"pg default schema", &StateConfig{Backend: "pg"}, []string{"conn_str=postgres://a"}, nil, "pg", map[string]string{"conn_str": "postgres://a", "schema": "hvctl"}, ""},
		{"pg needs conn_str", pg, nil, nil, "", nil, "needs conn_str"},
		{"bad env schema", &StateConfig{Backend: "pg"}, nil, []string{"HVCTL_PG_SCHEMA=Bad-1", "HVCTL_PG_CONN_STR=x"}, "", nil, "environment variable HVCTL_PG_SCHEMA: The schema is a PostgreSQL identifier"},
		{"bad flag value", &StateConfig{Backend: "s3"}, []string{"bucket=b", "use_path_style=yes"}, nil, "", nil, "use_path_style is true or false"},
		{"s3 needs bucket", &StateConfig{Backend: "s3"}, []string{"region=x"}, nil, "", nil, "needs bucket"},
		{"s3 lock_lease", &StateConfig{Backend: "s3"}, []string{"bucket=b", "lock_lease=10s"}, nil, "s3", map[string]string{"bucket": "b", "lock_lease": "10s"}, ""},
		{"s3 lock_lease too short", &StateConfig{Backend: "s3"}, []string{"bucket=b", "lock_lease=200ms"}, nil, "", nil, "lock_lease is a duration of at least 1s"},
		{"s3 lock_lease no duration", &StateConfig{Backend: "s3"}, []string{"bucket=b", "lock_lease=long"}, nil, "", nil, "lock_lease is a duration of at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveState(tt.sc, tt.kvs, tt.env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Backend != tt.backend || !reflect.DeepEqual(got.Settings, tt.want) {
				t.Errorf("got %s %v, want %s %v", got.Backend, got.Settings, tt.backend, tt.want)
			}
		})
	}
	if pg.Settings["conn_str"] != "" {
		t.Error("ResolveState changed the template's settings")
	}
}

func TestPassphraseFrom(t *testing.T) {
	var none *StateEncryption
	if p, err := none.PassphraseFrom(nil); p != "" || err != nil {
		t.Errorf("nil encryption: %q %v", p, err)
	}
	e := &StateEncryption{KeyEnv: "K"}
	if p, err := e.PassphraseFrom([]string{"K=s3cret"}); p != "s3cret" || err != nil {
		t.Errorf("key_env: %q %v", p, err)
	}
	if _, err := e.PassphraseFrom([]string{"K="}); err == nil || !strings.Contains(err.Error(), "K (key_env), which is not set") {
		t.Errorf("unset key_env: %v", err)
	}
}
