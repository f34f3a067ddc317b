// Package dexdeploy renders what a Dex object deploys: Dex's configuration, the Kubernetes objects
// that run it, and the gRPC certificates the operator talks to it with. Everything here is a pure
// function of the Dex object (and, for certificates, of the clock and the Secrets' current data);
// the Dex controller applies the results.
package dexdeploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// DefaultImage is the Dex release this operator is tested with.
const DefaultImage = "ghcr.io/dexidp/dex:v2.45.1"

// DefaultRegistryClientID is the clientId of the OIDCProvider created for a Dex.
const DefaultRegistryClientID = "dexterity-registry"

// Ports of the Dex container and its Service.
const (
	PortHTTP      = 5556
	PortGRPC      = 5557
	PortTelemetry = 5558
)

// Paths inside the Dex container.
const (
	BinaryPath    = "/usr/local/bin/dex"
	ConfigDir     = "/etc/dex/config"
	ConfigFile    = ConfigDir + "/config.yaml"
	GRPCTLSDir    = "/etc/dex/grpc-tls"
	WebTLSDir     = "/etc/dex/web-tls"
	PostgresCADir = "/etc/dex/postgres-ca"
	PostgresTLS   = "/etc/dex/postgres-tls"
	SQLiteDir     = "/var/lib/dex"
	configFileKey = "config.yaml"
)

// Environment variables the rendered config refers to (filled from Secrets by the kubelet).
const (
	envPostgresPassword = "DEX_POSTGRES_PASSWORD"
	envStaticHashPrefix = "DEX_STATIC_PASSWORD_HASH_"
)

// dexConfig is the subset of Dex's configuration file the operator writes. JSON is YAML, and
// encoding/json writes map keys sorted, so the same Dex object renders the same bytes.
type dexConfig struct {
	Issuer           string           `json:"issuer"`
	Storage          storageConfig    `json:"storage"`
	Web              webConfig        `json:"web"`
	GRPC             grpcConfig       `json:"grpc"`
	Telemetry        telemetryConfig  `json:"telemetry"`
	OAuth2           *dexv1.DexOAuth2 `json:"oauth2,omitempty"`
	Expiry           *dexv1.DexExpiry `json:"expiry,omitempty"`
	Frontend         *frontendConfig  `json:"frontend,omitempty"`
	Logger           loggerConfig     `json:"logger"`
	EnablePasswordDB bool             `json:"enablePasswordDB,omitempty"`
	StaticPasswords  []staticPassword `json:"staticPasswords,omitempty"`
}

type storageConfig struct {
	Type   string         `json:"type"`
	Config map[string]any `json:"config,omitempty"`
}

type webConfig struct {
	HTTP           string                `json:"http,omitempty"`
	HTTPS          string                `json:"https,omitempty"`
	TLSCert        string                `json:"tlsCert,omitempty"`
	TLSKey         string                `json:"tlsKey,omitempty"`
	AllowedOrigins []string              `json:"allowedOrigins,omitempty"`
	Headers        map[string]string     `json:"headers,omitempty"`
	ClientRemoteIP *clientRemoteIPConfig `json:"clientRemoteIP,omitempty"`
}

type clientRemoteIPConfig struct {
	Header         string   `json:"header,omitempty"`
	TrustedProxies []string `json:"trustedProxies,omitempty"`
}

type grpcConfig struct {
	Addr        string `json:"addr"`
	TLSCert     string `json:"tlsCert"`
	TLSKey      string `json:"tlsKey"`
	TLSClientCA string `json:"tlsClientCA"`
}

type telemetryConfig struct {
	HTTP string `json:"http"`
}

type frontendConfig struct {
	Issuer  string `json:"issuer,omitempty"`
	LogoURL string `json:"logoURL,omitempty"`
	Theme   string `json:"theme,omitempty"`
}

type loggerConfig struct {
	Level  string `json:"level"`
	Format string `json:"format"`
}

type staticPassword struct {
	Email       string   `json:"email"`
	Username    string   `json:"username"`
	UserID      string   `json:"userID"`
	Groups      []string `json:"groups,omitempty"`
	HashFromEnv string   `json:"hashFromEnv"`
}

// Config is Dex's configuration file for d, and the environment variables it refers to. The file
// holds no secret value: the postgres password and the password hashes come from Secrets through
// the environment (Dex expands $VAR in its storage config and reads hashFromEnv).
//
// bootstrapConnector turns Dex's local password connector on even when spec.enablePasswordDB is
// off: Dex refuses to start without any connector ("server: no connectors specified"), and the
// connectors of DexConnector objects reach Dex only through its API, once it runs. The controller
// sets it until a DexConnector is registered in this Dex (then the connector is in Dex's storage),
// and always on the memory storage (which forgets it on every restart). With no static password
// the local connector has no user.
func Config(d *dexv1.Dex, bootstrapConnector bool) ([]byte, []corev1.EnvVar, error) {
	c := dexConfig{
		Issuer: d.Spec.Issuer,
		Web:    webConfig{HTTP: listen(PortHTTP)},
		GRPC: grpcConfig{
			Addr:        listen(PortGRPC),
			TLSCert:     GRPCTLSDir + "/" + KeyCert,
			TLSKey:      GRPCTLSDir + "/" + KeyKey,
			TLSClientCA: GRPCTLSDir + "/" + KeyCABundle,
		},
		Telemetry:        telemetryConfig{HTTP: listen(PortTelemetry)},
		OAuth2:           d.Spec.OAuth2,
		Expiry:           d.Spec.Expiry,
		Logger:           loggerConfig{Level: d.Spec.LogLevel, Format: d.Spec.LogFormat},
		EnablePasswordDB: d.Spec.EnablePasswordDB || bootstrapConnector,
	}
	if c.Logger.Level == "" {
		c.Logger.Level = "info"
	}
	if c.Logger.Format == "" {
		c.Logger.Format = "json"
	}
	if w := d.Spec.Web; w != nil {
		c.Web.AllowedOrigins = w.AllowedOrigins
		if w.TLS != nil {
			// One port, one scheme: the Service's http port serves HTTPS.
			c.Web.HTTP, c.Web.HTTPS = "", listen(PortHTTP)
			c.Web.TLSCert, c.Web.TLSKey = WebTLSDir+"/"+KeyCert, WebTLSDir+"/"+KeyKey
		}
		if r := w.ClientRemoteIP; r != nil && (r.Header != "" || len(r.TrustedProxies) > 0) {
			c.Web.ClientRemoteIP = &clientRemoteIPConfig{Header: r.Header, TrustedProxies: r.TrustedProxies}
		}
		c.Web.Headers = webHeaders(w.Headers)
	}
	if f := d.Spec.Frontend; f != nil {
		c.Frontend = &frontendConfig{Issuer: f.Issuer, LogoURL: f.LogoURL, Theme: f.Theme}
	}
	var env []corev1.EnvVar
	switch d.StorageType() {
	case dexv1.DexStorageKubernetes:
		// The CRDs ship with the operator: Dex only checks they are there.
		c.Storage = storageConfig{Type: "kubernetes", Config: map[string]any{"inCluster": true, "crdHandling": "check"}}
	case dexv1.DexStorageSQLite3:
		c.Storage = storageConfig{Type: "sqlite3", Config: map[string]any{"file": SQLiteDir + "/dex.db"}}
	case dexv1.DexStorageMemory:
		c.Storage = storageConfig{Type: "memory"}
	case dexv1.DexStoragePostgres:
		pg := d.Spec.Storage.Postgres
		if pg == nil {
			return nil, nil, fmt.Errorf("spec.storage.postgres: storage type postgres needs host, database, user and passwordSecretRef")
		}
		port := pg.Port
		if port == 0 {
			port = 5432
		}
		mode := pg.SSLMode
		if pg.SSL != nil && pg.SSL.Mode != "" {
			mode = pg.SSL.Mode
		}
		if mode == "" {
			mode = "verify-full"
		}
		ssl := map[string]any{"mode": mode}
		if pg.SSL != nil && pg.SSL.CASecretRef != nil {
			ssl["caFile"] = PostgresCADir + "/" + KeyCABundle
		}
		if pg.SSL != nil && pg.SSL.CertSecretRef != nil {
			ssl["certFile"], ssl["keyFile"] = PostgresTLS+"/"+KeyCert, PostgresTLS+"/"+KeyKey
		}
		cfg := map[string]any{
			"host": pg.Host, "port": port, "database": pg.Database, "user": pg.User,
			"password": "$" + envPostgresPassword, "ssl": ssl,
		}
		for key, v := range map[string]int32{"maxOpenConns": pg.MaxOpenConns, "maxIdleConns": pg.MaxIdleConns,
			"connMaxLifetime": pg.ConnMaxLifetime, "connectionTimeout": pg.ConnectionTimeout} {
			if v > 0 {
				cfg[key] = v
			}
		}
		c.Storage = storageConfig{Type: "postgres", Config: cfg}
		env = append(env, secretEnv(envPostgresPassword, pg.PasswordSecretRef))
	default:
		return nil, nil, fmt.Errorf("spec.storage.type: %q is not one of kubernetes, sqlite3, postgres, memory", d.StorageType())
	}
	for i, p := range d.Spec.StaticPasswords {
		name := envStaticHashPrefix + strconv.Itoa(i)
		c.StaticPasswords = append(c.StaticPasswords, staticPassword{
			Email: p.Email, Username: p.Username, UserID: p.UserID, Groups: p.Groups, HashFromEnv: name,
		})
		env = append(env, secretEnv(name, p.HashSecretRef))
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, nil, err
	}
	if b, err = applyOverrides(d, b); err != nil {
		return nil, nil, err
	}
	if err := checkDexConfig(b); err != nil {
		return nil, nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), env, nil
}

// webHeaders are Dex's web.headers, keyed by header name as Dex's config spells them.
func webHeaders(h *dexv1.DexWebHeaders) map[string]string {
	if h == nil {
		return nil
	}
	out := map[string]string{}
	for name, v := range map[string]string{
		"Strict-Transport-Security": h.StrictTransportSecurity, "X-Frame-Options": h.XFrameOptions,
		"Content-Security-Policy": h.ContentSecurityPolicy, "X-Content-Type-Options": h.XContentTypeOptions,
		"X-XSS-Protection": h.XXSSProtection,
	} {
		if v != "" {
			out[name] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// HTTPScheme is the scheme Dex's http port serves: https with spec.web.tls.
func HTTPScheme(d *dexv1.Dex) string {
	if d.Spec.Web != nil && d.Spec.Web.TLS != nil {
		return "https"
	}
	return "http"
}

func listen(port int) string { return net.JoinHostPort("0.0.0.0", strconv.Itoa(port)) }

func secretEnv(name string, ref dexv1.SecretKeyRef) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key,
	}}}
}

// SecretRefs lists every Secret key the rendered Dex needs, with the field that names it (the
// controller checks they exist before it rolls anything out).
func SecretRefs(d *dexv1.Dex) []FieldSecretRef {
	var out []FieldSecretRef
	if d.StorageType() == dexv1.DexStoragePostgres && d.Spec.Storage.Postgres != nil {
		out = append(out, FieldSecretRef{Field: "spec.storage.postgres.passwordSecretRef", Ref: d.Spec.Storage.Postgres.PasswordSecretRef})
	}
	for i, p := range d.Spec.StaticPasswords {
		out = append(out, FieldSecretRef{Field: fmt.Sprintf("spec.staticPasswords[%d].hashSecretRef", i), Ref: p.HashSecretRef})
	}
	tlsPair := func(field, name string) {
		for _, key := range []string{KeyCert, KeyKey} {
			out = append(out, FieldSecretRef{Field: field, Ref: dexv1.SecretKeyRef{Name: name, Key: key}})
		}
	}
	if w := d.Spec.Web; w != nil && w.TLS != nil {
		tlsPair("spec.web.tls.secretRef", w.TLS.SecretRef.Name)
	}
	if d.StorageType() == dexv1.DexStoragePostgres && d.Spec.Storage.Postgres != nil && d.Spec.Storage.Postgres.SSL != nil {
		ssl := d.Spec.Storage.Postgres.SSL
		if ssl.CASecretRef != nil {
			out = append(out, FieldSecretRef{Field: "spec.storage.postgres.ssl.caSecretRef", Ref: *ssl.CASecretRef})
		}
		if ssl.CertSecretRef != nil {
			tlsPair("spec.storage.postgres.ssl.certSecretRef", ssl.CertSecretRef.Name)
		}
	}
	return out
}

// FieldSecretRef is a Secret key and the spec field that names it (certificates are files in the
// pods; the other values reach Dex through the environment).
type FieldSecretRef struct {
	Field string
	Ref   dexv1.SecretKeyRef
}

// ServiceHost is the in-cluster DNS name of a Dex's Service.
func ServiceHost(d *dexv1.Dex) string { return d.Name + "." + d.Namespace + ".svc" }

// GRPCAddress is where the operator reaches a Dex's gRPC API.
func GRPCAddress(d *dexv1.Dex) string {
	return net.JoinHostPort(ServiceHost(d), strconv.Itoa(PortGRPC))
}

// DiscoveryURL is the in-cluster address of the issuer when the issuer itself is another host
// (an Ingress, a public name), else "": the OIDCProvider then fetches discovery and keys from the
// Service while tokens keep the public issuer.
func DiscoveryURL(d *dexv1.Dex) string {
	u, err := url.Parse(d.Spec.Issuer)
	if err != nil {
		return ""
	}
	host := u.Hostname()
	if host == ServiceHost(d) || host == ServiceHost(d)+".cluster.local" {
		return ""
	}
	return HTTPScheme(d) + "://" + net.JoinHostPort(ServiceHost(d), strconv.Itoa(PortHTTP)) + strings.TrimSuffix(u.EscapedPath(), "/")
}
