package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DexSpec describes a Dex server this operator deploys and administers: its issuer, storage and
// pod settings, and the tenancy policy of the OIDCProvider it creates for it.
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || self.replicas <= 1 || !has(self.storage) || !has(self.storage.type) || self.storage.type in ['kubernetes', 'postgres']",fieldPath=".replicas",message="several replicas need a storage they can share: set spec.storage.type to kubernetes or postgres, or set spec.replicas to 1"
// +kubebuilder:validation:XValidation:rule="!has(self.staticPasswords) || size(self.staticPasswords) == 0 || self.enablePasswordDB",fieldPath=".staticPasswords",message="static passwords are served by Dex's password database: set spec.enablePasswordDB=true, or remove spec.staticPasswords"
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
	// sslMode: disable, require, verify-ca or verify-full (default).
	// +kubebuilder:validation:Enum=disable;require;verify-ca;verify-full
	// +kubebuilder:default=verify-full
	// +optional
	SSLMode string `json:"sslMode,omitempty"`
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
