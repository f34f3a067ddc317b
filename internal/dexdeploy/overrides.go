package dexdeploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// MaxConfigOverridesSize bounds spec.configOverrides (its JSON encoding).
const MaxConfigOverridesSize = 32 << 10

// OwnedConfigKeys are the paths of Dex's configuration the operator decides; spec.configOverrides
// may not set them (nor replace a section that holds one):
//   - issuer, storage: spec.issuer and spec.storage (and the OIDCProvider depends on both);
//   - web.http, web.https, web.tlsCert, web.tlsKey: the Service's http port and spec.web.tls;
//   - grpc: the operator's mutual-TLS API;
//   - telemetry.http: the probes; telemetry.enableProfiling: pprof on a port the NetworkPolicy
//     leaves open (and a LoadBalancer Service publishes) would be a CPU and information leak;
//   - enablePasswordDB, staticPasswords: spec.enablePasswordDB and spec.staticPasswords, and the
//     local connector Dex needs to start before its first DexConnector;
//   - staticClients, connectors: clients and connectors are DexStaticClients and DexConnectors
//     (a static client would escape the tenancy rules: prefixes, reserved audiences).
//
// The connector API switch (DEX_API_CONNECTORS_CRUD) is an environment variable, not a config key:
// see ReservedEnv.
var OwnedConfigKeys = []string{
	"issuer", "storage", "web.http", "web.https", "web.tlsCert", "web.tlsKey", "grpc", "telemetry.http", "telemetry.enableProfiling",
	"enablePasswordDB", "staticPasswords", "staticClients", "connectors",
}

// ReservedEnv are the environment variables the operator sets in the Dex container; spec.env may
// not set them (a later entry of the same name wins in Kubernetes). DEX_EXPAND_ENV must stay on:
// the postgres password reaches Dex as $DEX_POSTGRES_PASSWORD.
var ReservedEnv = []string{"DEX_API_CONNECTORS_CRUD", "DEX_EXPAND_ENV", "KUBERNETES_POD_NAMESPACE", envPostgresPassword}

// ConfigError is a spec that renders a Dex configuration the operator refuses: a key the operator
// owns (Owned), or a configuration Dex would not load. Path names the field.
type ConfigError struct {
	Path  string
	Msg   string
	Owned bool
}

func (e *ConfigError) Error() string { return e.Path + ": " + e.Msg }

// applyOverrides merges spec.configOverrides into the rendered config (JSON): objects key by key,
// anything else (lists included) replaces, null removes the key.
func applyOverrides(d *dexv1.Dex, rendered []byte) ([]byte, error) {
	o := d.Spec.ConfigOverrides
	if o == nil || len(o.Raw) == 0 {
		return rendered, nil
	}
	const field = "spec.configOverrides"
	if len(o.Raw) > MaxConfigOverridesSize {
		return nil, &ConfigError{Path: field, Msg: fmt.Sprintf("is %d bytes, more than %d: model the setting in the spec, or shorten it", len(o.Raw), MaxConfigOverridesSize)}
	}
	var over map[string]any
	if err := json.Unmarshal(o.Raw, &over); err != nil {
		return nil, &ConfigError{Path: field, Msg: "must be an object of Dex configuration keys: " + err.Error()}
	}
	if err := checkOverrideKeys(field, "", over, reflect.TypeFor[dexFileConfig]()); err != nil {
		return nil, err
	}
	if err := checkRelease(d, over); err != nil {
		return nil, err
	}
	var base map[string]any
	if err := json.Unmarshal(rendered, &base); err != nil {
		return nil, err
	}
	merge(base, over)
	return json.Marshal(base)
}

// merge merges over into base (see applyOverrides).
func merge(base, over map[string]any) {
	for k, v := range over {
		if v == nil {
			delete(base, k)
			continue
		}
		if ov, ok := v.(map[string]any); ok {
			if bv, ok := base[k].(map[string]any); ok {
				merge(bv, ov)
				continue
			}
		}
		base[k] = v
	}
}

// checkOverrideKeys walks the overrides against Dex's configuration format (t): every key must be
// one of Dex's, spelled as Dex's documentation spells it (Go's JSON decoder would also take
// "Issuer" for "issuer", which would slip past the list of owned keys), and none may be one the
// operator owns or replace a section that holds one.
func checkOverrideKeys(field, prefix string, over map[string]any, t reflect.Type) error {
	keys := make([]string, 0, len(over))
	for k := range over {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		for _, owned := range OwnedConfigKeys {
			switch {
			case strings.EqualFold(path, owned):
				return &ConfigError{Path: field + "." + path, Owned: true, Msg: "is set by the operator and cannot be overridden; " + ownedHint(owned)}
			case strings.HasPrefix(strings.ToLower(owned), strings.ToLower(path)+"."):
				if _, isObject := over[k].(map[string]any); !isObject {
					return &ConfigError{Path: field + "." + path, Owned: true, Msg: fmt.Sprintf("must be an object: it holds %s, which the operator sets", owned)}
				}
			}
		}
		if t == nil {
			continue // free-form (a map, or a section Dex decodes itself)
		}
		sf, ok := jsonField(t, k)
		if !ok {
			msg := "is not a key of Dex's configuration (Dex " + strings.TrimPrefix(DefaultImage, "ghcr.io/dexidp/dex:") + ")"
			if alt, found := jsonFieldFold(t, k); found {
				msg = fmt.Sprintf("is spelled %q in Dex's configuration", alt)
			}
			return &ConfigError{Path: field + "." + path, Msg: msg}
		}
		if sub, ok := over[k].(map[string]any); ok {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			var next reflect.Type
			if ft.Kind() == reflect.Struct {
				next = ft
			}
			if err := checkOverrideKeys(field, path, sub, next); err != nil {
				return err
			}
		}
	}
	return nil
}

func ownedHint(key string) string {
	switch key {
	case "issuer":
		return "set spec.issuer"
	case "storage":
		return "set spec.storage"
	case "web.https", "web.tlsCert", "web.tlsKey":
		return "set spec.web.tls"
	case "enablePasswordDB", "staticPasswords":
		return "set spec." + key
	case "staticClients":
		return "create a DexStaticClient"
	case "connectors":
		return "create a DexConnector"
	}
	return "the operator's Service, probes and gRPC API depend on it"
}

// jsonField finds the field of struct t whose JSON name is exactly name.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// jsonFieldFold finds the JSON name of struct t that equals name but for case.
func jsonFieldFold(t reflect.Type, name string) (string, bool) {
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); strings.EqualFold(tag, name) {
			return tag, true
		}
	}
	return "", false
}

// Releases of Dex that added a top-level configuration key (older ones ignore the key silently).
var keyAddedIn = map[string][3]int{"signer": {2, 45, 0}}

var releaseTag = regexp.MustCompile(`:v([0-9]+)\.([0-9]+)\.([0-9]+)(?:@.*)?$`)

// ImageRelease is the Dex release spec.image names (its tag vX.Y.Z), ok false when the tag says
// no release (a digest only, latest, a custom tag).
func ImageRelease(d *dexv1.Dex) (rel [3]int, ok bool) {
	image := d.Spec.Image
	if image == "" {
		image = DefaultImage
	}
	m := releaseTag.FindStringSubmatch(image)
	if m == nil {
		return rel, false
	}
	for i := range rel {
		rel[i], _ = strconv.Atoi(m[i+1])
	}
	return rel, true
}

// checkRelease refuses an override key the release spec.image names does not know (design.md §8:
// a field a release does not know is refused naming the field and the release).
func checkRelease(d *dexv1.Dex, over map[string]any) error {
	rel, ok := ImageRelease(d)
	if !ok {
		return nil
	}
	for key, added := range keyAddedIn {
		if _, set := over[key]; set && slices.Compare(rel[:], added[:]) < 0 {
			return &ConfigError{Path: "spec.configOverrides." + key, Msg: fmt.Sprintf(
				"Dex v%d.%d.%d (spec.image) does not know %s (added in v%d.%d.%d) and would ignore it: use a newer image, or remove the key",
				rel[0], rel[1], rel[2], key, added[0], added[1], added[2])}
		}
	}
	return nil
}

// dexFileConfig mirrors the configuration file of Dex v2.45.1 (cmd/dex/config.go, which is package
// main and cannot be imported): the keys Dex reads and their types. Sections Dex decodes by a type
// field (storage, signer, connectors) or that the operator owns are kept raw. Dex itself ignores
// unknown keys; checkDexConfig does not.
type dexFileConfig struct {
	Issuer           string          `json:"issuer"`
	Storage          json.RawMessage `json:"storage"`
	Web              dexWeb          `json:"web"`
	Telemetry        dexTelemetry    `json:"telemetry"`
	OAuth2           dexOAuth2       `json:"oauth2"`
	GRPC             json.RawMessage `json:"grpc"`
	Expiry           dexExpiry       `json:"expiry"`
	Logger           dexLogger       `json:"logger"`
	Frontend         dexFrontend     `json:"frontend"`
	Signer           *dexSigner      `json:"signer"`
	Connectors       json.RawMessage `json:"connectors"`
	StaticClients    json.RawMessage `json:"staticClients"`
	EnablePasswordDB bool            `json:"enablePasswordDB"`
	StaticPasswords  json.RawMessage `json:"staticPasswords"`
}

type dexWeb struct {
	HTTP           string            `json:"http"`
	HTTPS          string            `json:"https"`
	Headers        dexHeaders        `json:"headers"`
	TLSCert        string            `json:"tlsCert"`
	TLSKey         string            `json:"tlsKey"`
	TLSMinVersion  string            `json:"tlsMinVersion"`
	TLSMaxVersion  string            `json:"tlsMaxVersion"`
	AllowedOrigins []string          `json:"allowedOrigins"`
	AllowedHeaders []string          `json:"allowedHeaders"`
	ClientRemoteIP dexClientRemoteIP `json:"clientRemoteIP"`
}

type dexHeaders struct {
	ContentSecurityPolicy   string `json:"Content-Security-Policy"`
	XFrameOptions           string `json:"X-Frame-Options"`
	XContentTypeOptions     string `json:"X-Content-Type-Options"`
	XXSSProtection          string `json:"X-XSS-Protection"`
	StrictTransportSecurity string `json:"Strict-Transport-Security"`
}

type dexClientRemoteIP struct {
	Header         string   `json:"header"`
	TrustedProxies []string `json:"trustedProxies"`
}

type dexTelemetry struct {
	HTTP            string `json:"http"`
	EnableProfiling bool   `json:"enableProfiling"`
}

type dexOAuth2 struct {
	GrantTypes            []string `json:"grantTypes"`
	ResponseTypes         []string `json:"responseTypes"`
	SkipApprovalScreen    bool     `json:"skipApprovalScreen"`
	AlwaysShowLoginScreen bool     `json:"alwaysShowLoginScreen"`
	PasswordConnector     string   `json:"passwordConnector"`
}

type dexExpiry struct {
	SigningKeys    string          `json:"signingKeys"`
	IDTokens       string          `json:"idTokens"`
	AuthRequests   string          `json:"authRequests"`
	DeviceRequests string          `json:"deviceRequests"`
	RefreshTokens  dexRefreshToken `json:"refreshTokens"`
}

type dexRefreshToken struct {
	DisableRotation   bool   `json:"disableRotation"`
	ReuseInterval     string `json:"reuseInterval"`
	AbsoluteLifetime  string `json:"absoluteLifetime"`
	ValidIfNotUsedFor string `json:"validIfNotUsedFor"`
}

type dexLogger struct {
	Level  string `json:"level"`
	Format string `json:"format"`
}

// dexFrontend mirrors Dex's server.WebConfig (no JSON tags there: Go matches these names).
type dexFrontend struct {
	Dir     string            `json:"dir"`
	LogoURL string            `json:"logoURL"`
	Issuer  string            `json:"issuer"`
	Theme   string            `json:"theme"`
	Extra   map[string]string `json:"extra"`
}

type dexSigner struct {
	Type   string          `json:"type"`
	Config json.RawMessage `json:"config"`
}

// checkDexConfig loads a rendered configuration the way Dex v2.45.1 does (serve.go: decode, then
// Config.Validate and the checks of the server's start: durations, log level and format, TLS
// versions, trusted proxies), strictly: an unknown key or a value of the wrong type is an error
// naming it, where Dex would ignore or fail at start.
func checkDexConfig(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c dexFileConfig
	if err := dec.Decode(&c); err != nil {
		return &ConfigError{Path: "spec.configOverrides", Msg: "Dex would not load the merged configuration: " + err.Error()}
	}
	bad := func(path, format string, args ...any) error {
		return &ConfigError{Path: "spec.configOverrides." + path, Msg: fmt.Sprintf(format, args...)}
	}
	for path, v := range map[string]string{
		"expiry.signingKeys": c.Expiry.SigningKeys, "expiry.idTokens": c.Expiry.IDTokens, "expiry.authRequests": c.Expiry.AuthRequests,
		"expiry.deviceRequests": c.Expiry.DeviceRequests, "expiry.refreshTokens.reuseInterval": c.Expiry.RefreshTokens.ReuseInterval,
		"expiry.refreshTokens.absoluteLifetime":  c.Expiry.RefreshTokens.AbsoluteLifetime,
		"expiry.refreshTokens.validIfNotUsedFor": c.Expiry.RefreshTokens.ValidIfNotUsedFor,
	} {
		if v == "" {
			continue
		}
		if _, err := time.ParseDuration(v); err != nil {
			return bad(path, "%q is not a Go duration (e.g. 24h, 10m)", v)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Logger.Level)); c.Logger.Level != "" && err != nil {
		return bad("logger.level", "%q is not a log level: debug, info, warn or error", c.Logger.Level)
	}
	if f := strings.ToLower(c.Logger.Format); f != "" && f != "json" && f != "text" {
		return bad("logger.format", "%q is not json or text", c.Logger.Format)
	}
	for path, v := range map[string]string{"web.tlsMinVersion": c.Web.TLSMinVersion, "web.tlsMaxVersion": c.Web.TLSMaxVersion} {
		if v != "" && v != "1.2" && v != "1.3" {
			return bad(path, "%q is not a TLS version Dex supports: 1.2 or 1.3", v)
		}
	}
	if c.Web.TLSMinVersion != "" && c.Web.TLSMaxVersion != "" && c.Web.TLSMinVersion > c.Web.TLSMaxVersion {
		return bad("web.tlsMinVersion", "is greater than web.tlsMaxVersion")
	}
	for i, p := range c.Web.ClientRemoteIP.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			return bad(fmt.Sprintf("web.clientRemoteIP.trustedProxies[%d]", i), "%q is not a CIDR", p)
		}
	}
	if c.Signer != nil && c.Signer.Type != "local" && c.Signer.Type != "vault" {
		return bad("signer.type", "%q is not a signer type of Dex: local or vault", c.Signer.Type)
	}
	return nil
}

// ReservedEnvName reports whether the operator sets the environment variable name in the Dex
// container (ReservedEnv, and the variables of the static password hashes).
func ReservedEnvName(name string) bool {
	return slices.Contains(ReservedEnv, name) || strings.HasPrefix(name, envStaticHashPrefix)
}
