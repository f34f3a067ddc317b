package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DexSpec describes a Dex server this operator deploys and administers: its issuer, storage and
// pod settings, and the tenancy policy of the OIDCProvider it creates for it.
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || self.replicas <= 1 || !has(self.storage) || !has(self.storage.type) || self.storage.type in ['kubernetes', 'postgres']",fieldPath=".replicas",message="several replicas need a storage they can share: set spec.storage.type to kubernetes or postgres, or set spec.replicas to 1"
// +kubebuilder:validation:XValidation:rule="!has(self.staticPasswords) || size(self.staticPasswords) == 0 || self.enablePasswordDB",fieldPath=".staticPasswords",message="static passwords are served by Dex's password database: set spec.enablePasswordDB=true, or remove spec.staticPasswords"
// +kubebuilder:validation:XValidation:rule="!has(self.web) || !has(self.web.tls) || self.issuer.startsWith('https://')",fieldPath=".issuer",message="with spec.web.tls Dex serves HTTPS only: make the issuer an https URL, or remove spec.web.tls"
type DexSpec struct {
	// issuer is Dex's issuer URL, as clients and tokens see it. Same rules as an OIDCProvider's
	// issuerUrl: https, except for loopback and in-cluster hosts. For a Dex reached in the
	// cluster only, use http://<name>.<namespace>.svc:5556/dex.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && (url(self).getHostname() in ['localhost', '::1'] || self.matches('^http://127([.](25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}(:[0-9]*)?([/?#]|$)') || url(self).getHostname().endsWith('.svc') || url(self).getHostname().endsWith('.cluster.local'))))",message="must be an absolute https URL (http is allowed only for loopback hosts and in-cluster *.svc / *.cluster.local hosts), e.g. https://dex.example.com/dex"
	// +kubebuilder:validation:MaxLength=2048
	// +required
	Issuer string `json:"issuer"`

	// image is the Dex container image (default: the Dex release this operator is tested with).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// imagePullPolicy of the Dex container.
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// replicas of the Dex Deployment. More than one needs a storage they share (kubernetes or
	// postgres); a PodDisruptionBudget keeps one up during node drains.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=50
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// storage is where Dex keeps clients, connectors, keys and sessions.
	// +kubebuilder:default={type: kubernetes}
	// +optional
	Storage *DexStorage `json:"storage,omitempty"`

	// oauth2 settings of Dex.
	// +optional
	OAuth2 *DexOAuth2 `json:"oauth2,omitempty"`

	// expiry of Dex's tokens, keys and requests (Go durations, e.g. 24h, 10m).
	// +optional
	Expiry *DexExpiry `json:"expiry,omitempty"`

	// frontend is the look of Dex's login pages.
	// +optional
	Frontend *DexFrontend `json:"frontend,omitempty"`

	// web configures Dex's HTTP Service and CORS.
	// +optional
	Web *DexWeb `json:"web,omitempty"`

	// enablePasswordDB turns on Dex's local password database (the "local" connector).
	// +optional
	EnablePasswordDB bool `json:"enablePasswordDB,omitempty"`

	// staticPasswords are local users (tests and demos), each with its bcrypt hash in a Secret.
	// +listType=map
	// +listMapKey=email
	// +kubebuilder:validation:MaxItems=100
	// +optional
	StaticPasswords []DexStaticPassword `json:"staticPasswords,omitempty"`

	// logLevel of Dex: debug, info, warn or error.
	// +kubebuilder:validation:Enum=debug;info;warn;error
	// +kubebuilder:default=info
	// +optional
	LogLevel string `json:"logLevel,omitempty"`

	// resources of the Dex container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// nodeSelector of the Dex pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// tolerations of the Dex pods.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// affinity of the Dex pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// podAnnotations are added to the Dex pods.
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`
	// env adds environment variables to the Dex container (references to Secrets and
	// ConfigMaps of this namespace only, as for any pod).
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`
	// envFrom adds environment variables from Secrets or ConfigMaps of this namespace.
	// +optional
	EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`

	// logFormat of Dex's logs: json (default) or text.
	// +kubebuilder:validation:Enum=json;text
	// +kubebuilder:default=json
	// +optional
	LogFormat string `json:"logFormat,omitempty"`

	// ingress renders an Ingress (networking.k8s.io/v1) to Dex's http port, for the issuer's host
	// and path.
	// +optional
	Ingress *DexIngress `json:"ingress,omitempty"`

	// httpRoute renders a Gateway API HTTPRoute (gateway.networking.k8s.io/v1) to Dex's http port,
	// for the issuer's host and path. Needs the Gateway API CRDs in the cluster; without them the
	// Dex reports Exposed=False, reason GatewayAPIMissing.
	// +optional
	HTTPRoute *DexHTTPRoute `json:"httpRoute,omitempty"`

	// serviceMonitor renders a Prometheus Operator ServiceMonitor (monitoring.coreos.com/v1) of
	// Dex's telemetry port (/metrics), where its CRD exists; without it the Dex reports
	// Monitored=False, reason PrometheusOperatorMissing (and is otherwise unaffected).
	// +optional
	ServiceMonitor *DexServiceMonitor `json:"serviceMonitor,omitempty"`

	// networkPolicy renders a NetworkPolicy for the Dex pods: the gRPC port admits only the
	// operator's pods; the http and telemetry ports stay open.
	// +kubebuilder:default={enabled: true}
	// +optional
	NetworkPolicy *DexNetworkPolicy `json:"networkPolicy,omitempty"`

	// volumes are added to the Dex pods (CA files for connectors, custom web templates, ...).
	// The names config, grpc-tls, data, web-tls, postgres-ca and postgres-tls are the operator's.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(v, !(v.name in ['config', 'grpc-tls', 'data', 'web-tls', 'postgres-ca', 'postgres-tls']))",message="config, grpc-tls, data, web-tls, postgres-ca and postgres-tls are the names of the operator's volumes: rename the volume"
	// +listType=map
	// +listMapKey=name
	// +optional
	Volumes []corev1.Volume `json:"volumes,omitempty"`
	// volumeMounts are added to the Dex container; they may mount spec.volumes anywhere except
	// /etc/dex and /var/lib/dex (the operator's: config, certificates, sqlite3 database).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(m, !(m.mountPath in ['/etc/dex', '/var/lib/dex']) && !m.mountPath.startsWith('/etc/dex/') && !m.mountPath.startsWith('/var/lib/dex/'))",message="/etc/dex and /var/lib/dex are where the operator mounts Dex's config, certificates and database: mount the volume elsewhere"
	// +optional
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts,omitempty"`
	// imagePullSecrets of the Dex pods (Secrets of this namespace).
	// +kubebuilder:validation:MaxItems=16
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// topologySpreadConstraints of the Dex pods, e.g. across zones. Their labelSelector usually
	// selects app.kubernetes.io/instance: <name>.
	// +kubebuilder:validation:MaxItems=8
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// priorityClassName of the Dex pods.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// podLabels are added to the Dex pods. The labels the operator selects its pods with
	// (app.kubernetes.io/name, app.kubernetes.io/instance, app.kubernetes.io/managed-by,
	// dexterity.dev/dex), and the label of the operator's own pods (control-plane), cannot be set.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="!self.exists(k, k in ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by', 'dexterity.dev/dex', 'pod-template-hash'])",message="app.kubernetes.io/name, app.kubernetes.io/instance, app.kubernetes.io/managed-by, dexterity.dev/dex and pod-template-hash are the labels the operator selects the Dex pods with: remove them from spec.podLabels"
	// +kubebuilder:validation:XValidation:rule="!('control-plane' in self)",message="control-plane is the label of the operator's own pods (its Services and every Dex's gRPC NetworkPolicy select it): remove it from spec.podLabels"
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`
	// serviceAccountAnnotations are added to the Dex ServiceAccount (workload identity, e.g.
	// eks.amazonaws.com/role-arn or iam.gke.io/gcp-service-account).
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	ServiceAccountAnnotations map[string]string `json:"serviceAccountAnnotations,omitempty"`

	// configOverrides is merged into the Dex configuration the operator renders, for settings the
	// kind does not model (e.g. signer, oauth2.deviceFlow, frontend.dir). Objects merge key by
	// key, anything else replaces. Keys the operator owns are refused (ConfigValid=False naming
	// the key): issuer, storage, web.http, web.https, web.tlsCert, web.tlsKey, grpc, telemetry.http,
	// enablePasswordDB, staticPasswords, staticClients, connectors. The merged config is checked
	// against Dex's configuration format before anything rolls out (at most 32 KiB).
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	ConfigOverrides *apiextensionsv1.JSON `json:"configOverrides,omitempty"`

	// registryClientId is the clientId of the OIDCProvider created for this Dex: the registry's
	// own client in Dex, the primary audience of its tokens (default "dexterity-registry").
	// +kubebuilder:validation:MaxLength=253
	// +optional
	RegistryClientID string `json:"registryClientId,omitempty"`
	// allowedNamespaces of the OIDCProvider created for this Dex (which namespaces may attach
	// DexStaticClients; default Same).
	// +optional
	AllowedNamespaces *AllowedNamespaces `json:"allowedNamespaces,omitempty"`
	// connectorNamespaces of the OIDCProvider created for this Dex (which namespaces may attach
	// DexConnectors; default Same).
	// +optional
	ConnectorNamespaces *AllowedNamespaces `json:"connectorNamespaces,omitempty"`
	// clientIdPrefix of the OIDCProvider created for this Dex, e.g. "{namespace}-".
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClientIDPrefix string `json:"clientIdPrefix,omitempty"`
}

// DexStorageType names one of Dex's storages.
// +kubebuilder:validation:Enum=kubernetes;sqlite3;postgres;memory
type DexStorageType string

const (
	// DexStorageKubernetes keeps Dex's state in its dex.coreos.com custom resources.
	DexStorageKubernetes DexStorageType = "kubernetes"
	// DexStorageSQLite3 keeps Dex's state in a SQLite file on a PersistentVolumeClaim.
	DexStorageSQLite3 DexStorageType = "sqlite3"
	// DexStoragePostgres keeps Dex's state in a PostgreSQL database.
	DexStoragePostgres DexStorageType = "postgres"
	// DexStorageMemory keeps Dex's state in memory: lost on every restart (development only).
	DexStorageMemory DexStorageType = "memory"
)

// DexStorage selects and configures Dex's storage.
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'postgres' || has(self.postgres)",fieldPath=".postgres",message="storage type postgres needs spec.storage.postgres (host, database, user, passwordSecretRef)"
type DexStorage struct {
	// type is kubernetes (default), sqlite3, postgres or memory.
	// +kubebuilder:default=kubernetes
	// +optional
	Type DexStorageType `json:"type,omitempty"`
	// sqlite3 configures the PersistentVolumeClaim of the sqlite3 storage.
	// +optional
	SQLite3 *DexSQLite3Storage `json:"sqlite3,omitempty"`
	// postgres configures the postgres storage.
	// +optional
	Postgres *DexPostgresStorage `json:"postgres,omitempty"`
}

// DexSQLite3Storage is the volume of the sqlite3 storage.
type DexSQLite3Storage struct {
	// size of the PersistentVolumeClaim (default 1Gi).
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`
	// storageClassName of the PersistentVolumeClaim (default: the cluster's default class).
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// DexPostgresStorage is a PostgreSQL database for Dex.
type DexPostgresStorage struct {
	// host of the database server.
	// +kubebuilder:validation:MinLength=1
	// +required
	Host string `json:"host"`
	// port of the database server.
	// +kubebuilder:default=5432
	// +optional
	Port int32 `json:"port,omitempty"`
	// database name.
	// +kubebuilder:validation:MinLength=1
	// +required
	Database string `json:"database"`
	// user to connect as.
	// +kubebuilder:validation:MinLength=1
	// +required
	User string `json:"user"`
	// passwordSecretRef holds the user's password (passed to Dex through the environment).
	// +required
	PasswordSecretRef SecretKeyRef `json:"passwordSecretRef"`
	// sslMode: disable, require, verify-ca or verify-full (default). ssl.mode, when set, wins.
	// +kubebuilder:validation:Enum=disable;require;verify-ca;verify-full
	// +kubebuilder:default=verify-full
	// +optional
	SSLMode string `json:"sslMode,omitempty"`
	// ssl verifies the server against a private CA and authenticates Dex with a client
	// certificate.
	// +optional
	SSL *DexPostgresSSL `json:"ssl,omitempty"`
	// maxOpenConns caps Dex's open connections per pod (Dex's default 5).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxOpenConns int32 `json:"maxOpenConns,omitempty"`
	// maxIdleConns caps Dex's idle connections per pod (Dex's default 5).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxIdleConns int32 `json:"maxIdleConns,omitempty"`
	// connMaxLifetime is how long, in seconds, a connection is reused (Dex's default: forever).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	// +optional
	ConnMaxLifetime int32 `json:"connMaxLifetime,omitempty"`
	// connectionTimeout is how long, in seconds, Dex waits for a new connection (Dex's default:
	// forever).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	// +optional
	ConnectionTimeout int32 `json:"connectionTimeout,omitempty"`
}

// DexPostgresSSL is the TLS of Dex's postgres connection (mounted from Secrets into the pods).
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'disable' || (!has(self.caSecretRef) && !has(self.certSecretRef))",message="ssl.mode disable uses no certificate: remove caSecretRef and certSecretRef, or choose require, verify-ca or verify-full"
type DexPostgresSSL struct {
	// mode: disable, require, verify-ca or verify-full. Replaces sslMode when set.
	// +kubebuilder:validation:Enum=disable;require;verify-ca;verify-full
	// +optional
	Mode string `json:"mode,omitempty"`
	// caSecretRef is the key of a Secret holding the PEM CA that signed the server's certificate
	// (Dex's ssl.caFile).
	// +optional
	CASecretRef *SecretKeyRef `json:"caSecretRef,omitempty"`
	// certSecretRef names a kubernetes.io/tls Secret (tls.crt, tls.key) with Dex's client
	// certificate (Dex's ssl.certFile and ssl.keyFile).
	// +optional
	CertSecretRef *LocalObjectReference `json:"certSecretRef,omitempty"`
}

// DexOAuth2 mirrors Dex's oauth2 section.
type DexOAuth2 struct {
	// responseTypes Dex allows (default Dex's: code).
	// +optional
	ResponseTypes []string `json:"responseTypes,omitempty"`
	// grantTypes Dex allows (default Dex's).
	// +optional
	GrantTypes []string `json:"grantTypes,omitempty"`
	// skipApprovalScreen skips the consent screen.
	// +optional
	SkipApprovalScreen bool `json:"skipApprovalScreen,omitempty"`
	// alwaysShowLoginScreen shows the connector list even with one connector.
	// +optional
	AlwaysShowLoginScreen bool `json:"alwaysShowLoginScreen,omitempty"`
	// passwordConnector is the connector the password grant uses ("local" for the password DB).
	// +optional
	PasswordConnector string `json:"passwordConnector,omitempty"`
}

// DexExpiry mirrors Dex's expiry section; every value is a Go duration.
type DexExpiry struct {
	// signingKeys is how long a signing key is used before rotation (Dex's default 6h).
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	SigningKeys string `json:"signingKeys,omitempty"`
	// idTokens is the lifetime of ID tokens (Dex's default 24h).
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	IDTokens string `json:"idTokens,omitempty"`
	// authRequests is the lifetime of a login in progress (Dex's default 24h).
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	AuthRequests string `json:"authRequests,omitempty"`
	// deviceRequests is the lifetime of a device-code request (Dex's default 5m).
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	DeviceRequests string `json:"deviceRequests,omitempty"`
	// refreshTokens limits refresh tokens.
	// +optional
	RefreshTokens *DexRefreshTokenExpiry `json:"refreshTokens,omitempty"`
}

// DexRefreshTokenExpiry mirrors Dex's expiry.refreshTokens.
type DexRefreshTokenExpiry struct {
	// validIfNotUsedFor invalidates a refresh token unused this long.
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	ValidIfNotUsedFor string `json:"validIfNotUsedFor,omitempty"`
	// absoluteLifetime invalidates a refresh token this long after the login.
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	AbsoluteLifetime string `json:"absoluteLifetime,omitempty"`
	// reuseInterval lets a rotated refresh token be reused this long (retries).
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	ReuseInterval string `json:"reuseInterval,omitempty"`
	// disableRotation keeps refresh tokens unrotated.
	// +optional
	DisableRotation bool `json:"disableRotation,omitempty"`
}

// DexFrontend mirrors Dex's frontend section.
type DexFrontend struct {
	// issuer is the name shown on the login pages (Dex's default "dex").
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// logoURL of the login pages.
	// +optional
	LogoURL string `json:"logoURL,omitempty"`
	// theme of the login pages (Dex's default "light").
	// +optional
	Theme string `json:"theme,omitempty"`
}

// DexWeb configures Dex's HTTP endpoint and its Service.
type DexWeb struct {
	// serviceType of the Service (default ClusterIP).
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	ServiceType corev1.ServiceType `json:"serviceType,omitempty"`
	// serviceAnnotations are added to the Service.
	// +optional
	ServiceAnnotations map[string]string `json:"serviceAnnotations,omitempty"`
	// allowedOrigins for CORS requests to Dex's discovery, token and keys endpoints.
	// +optional
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
	// tls makes Dex serve HTTPS with the certificate of a Secret (the Service's http port then
	// serves HTTPS, and the probes use it). A renewed certificate rolls the pods.
	// +optional
	TLS *DexWebTLS `json:"tls,omitempty"`
	// clientRemoteIP tells Dex which header carries the client's address behind a proxy (logs and
	// rate limits), and which proxies to believe.
	// +optional
	ClientRemoteIP *DexClientRemoteIP `json:"clientRemoteIP,omitempty"`
	// headers are security headers Dex adds to its HTTP responses (Dex's web.headers).
	// +optional
	Headers *DexWebHeaders `json:"headers,omitempty"`
}

// DexWebTLS is Dex's HTTPS certificate.
type DexWebTLS struct {
	// secretRef names a kubernetes.io/tls Secret of this namespace (tls.crt, tls.key), such as
	// the Secret of a cert-manager Certificate. Its certificate must name the issuer's host, and
	// the Service's host <name>.<namespace>.svc when the issuer is another host (the operator
	// reads discovery and keys through the Service). A ca.crt in it becomes the OIDCProvider's
	// caBundle.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`
}

// DexClientRemoteIP mirrors Dex's web.clientRemoteIP.
// +kubebuilder:validation:XValidation:rule="!has(self.header) || size(self.header) == 0 || (has(self.trustedProxies) && size(self.trustedProxies) > 0)",fieldPath=".trustedProxies",message="with a header and no trusted proxies Dex would believe the header from any client: list the proxies' CIDRs in trustedProxies"
type DexClientRemoteIP struct {
	// header holding the client's address, e.g. X-Forwarded-For or X-Real-IP.
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +optional
	Header string `json:"header,omitempty"`
	// trustedProxies are the CIDRs (e.g. 10.0.0.0/8) whose header Dex believes.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="each trusted proxy must be a CIDR, e.g. 10.0.0.0/8 or 192.168.1.7/32"
	// +optional
	TrustedProxies []string `json:"trustedProxies,omitempty"`
}

// DexWebHeaders mirrors Dex's web.headers: each one set is added to Dex's HTTP responses.
type DexWebHeaders struct {
	// strictTransportSecurity is the Strict-Transport-Security header, e.g.
	// "max-age=31536000; includeSubDomains".
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	StrictTransportSecurity string `json:"strictTransportSecurity,omitempty"`
	// xFrameOptions is the X-Frame-Options header: DENY or SAMEORIGIN.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	XFrameOptions string `json:"xFrameOptions,omitempty"`
	// contentSecurityPolicy is the Content-Security-Policy header.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	ContentSecurityPolicy string `json:"contentSecurityPolicy,omitempty"`
	// xContentTypeOptions is the X-Content-Type-Options header: nosniff.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	XContentTypeOptions string `json:"xContentTypeOptions,omitempty"`
	// xXSSProtection is the X-XSS-Protection header, e.g. "1; mode=block".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	XXSSProtection string `json:"xXSSProtection,omitempty"`
}

// DexIngress is an Ingress to Dex: its host and path are the issuer's.
type DexIngress struct {
	// className is the IngressClass (default: the cluster's default class).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClassName string `json:"className,omitempty"`
	// annotations of the Ingress (the ingress controller's settings; with spec.web.tls the
	// backend speaks HTTPS, e.g. nginx.ingress.kubernetes.io/backend-protocol: HTTPS).
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// tlsSecretName is the Secret with the certificate the ingress controller serves for the
	// issuer's host (e.g. made by cert-manager from the Ingress's annotations). Empty: no TLS
	// section.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`
}

// DexHTTPRoute is a Gateway API HTTPRoute to Dex: its host and path are the issuer's.
type DexHTTPRoute struct {
	// parentRefs are the Gateways (or listeners of them) the route attaches to.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +required
	ParentRefs []DexGatewayParentRef `json:"parentRefs"`
	// annotations of the HTTPRoute.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// DexGatewayParentRef mirrors the Gateway API's ParentReference.
type DexGatewayParentRef struct {
	// group of the parent (default gateway.networking.k8s.io).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
	// kind of the parent (default Gateway).
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Kind string `json:"kind,omitempty"`
	// namespace of the parent (default: the Dex's).
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// name of the parent.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// sectionName is the listener of the Gateway.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SectionName string `json:"sectionName,omitempty"`
	// port of the Gateway's listener.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// DexNetworkPolicy configures the NetworkPolicy of the Dex pods.
type DexNetworkPolicy struct {
	// enabled renders the NetworkPolicy (default true).
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// DexStaticPassword is one user of Dex's password database; the bcrypt hash of its password
// comes from a Secret, so the rendered Dex config holds no secret value.
type DexStaticPassword struct {
	// email the user logs in with.
	// +kubebuilder:validation:MinLength=1
	// +required
	Email string `json:"email"`
	// username shown in tokens (name claim).
	// +kubebuilder:validation:MinLength=1
	// +required
	Username string `json:"username"`
	// userID is the user's stable id (sub is derived from it).
	// +kubebuilder:validation:MinLength=1
	// +required
	UserID string `json:"userID"`
	// groups of the user (groups claim).
	// +optional
	Groups []string `json:"groups,omitempty"`
	// hashSecretRef holds the bcrypt hash of the user's password.
	// +required
	HashSecretRef SecretKeyRef `json:"hashSecretRef"`
}

// DexStatus is the observed state of a Dex.
type DexStatus struct {
	// conditions: Ready, Available (from the Deployment), ConfigValid, Reconciling, Stalled.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// issuer Dex serves.
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// grpcAddress the operator reaches Dex's gRPC API at (in the cluster).
	// +optional
	GRPCAddress string `json:"grpcAddress,omitempty"`
	// oidcProviderRef names the OIDCProvider created for this Dex.
	// +optional
	OIDCProviderRef *ObjectRef `json:"oidcProviderRef,omitempty"`
	// replicas is the number of available Dex pods.
	// +optional
	Replicas int32 `json:"replicas"`
	// observedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Dex is a Dex server deployed and administered by this operator. Its name names its Service
// (and labels its objects), so it must be a DNS label of at most 63 characters.
// +kubebuilder:object:root=true
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')",message="metadata.name must be a DNS label (lower-case letters, digits and '-', starting with a letter, at most 63 characters): it names the Dex's Service; choose another name"
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuer`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Dex struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DexSpec   `json:"spec"`
	Status DexStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (d *Dex) GetConditions() []metav1.Condition { return d.Status.Conditions }

// SetConditions replaces the status conditions.
func (d *Dex) SetConditions(c []metav1.Condition) { d.Status.Conditions = c }

// +kubebuilder:object:root=true

// DexList is a list of Dex objects.
type DexList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Dex `json:"items"`
}

// StorageType is the storage type with its default applied.
func (d *Dex) StorageType() DexStorageType {
	if d.Spec.Storage == nil || d.Spec.Storage.Type == "" {
		return DexStorageKubernetes
	}
	return d.Spec.Storage.Type
}

// DesiredReplicas is spec.replicas with its default applied.
func (d *Dex) DesiredReplicas() int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func init() {
	SchemeBuilder.Register(&Dex{}, &DexList{})
}

// DexServiceMonitor asks for a ServiceMonitor of Dex's telemetry port.
type DexServiceMonitor struct {
	// enabled renders the ServiceMonitor.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// interval between scrapes, e.g. 30s (default: the Prometheus's own).
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))?$`
	// +optional
	Interval string `json:"interval,omitempty"`
	// labels of the ServiceMonitor, e.g. what a Prometheus's serviceMonitorSelector selects.
	// +kubebuilder:validation:MaxProperties=16
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}
