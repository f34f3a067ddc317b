package v1alpha1

// Condition types. Ready summarises the specific conditions of each kind.
const (
	// ConditionReady is true when the object is fully reconciled and usable.
	ConditionReady = "Ready"
	// ConditionReconciling is true while the operator works on the object or retries (a Dex
	// outage, a provider not there yet); kstatus reads it as InProgress.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is true when the operator cannot go on without the user (a conflict, a
	// missing Secret, an invalid spec); kstatus reads it as Failed.
	ConditionStalled = "Stalled"

	// ConditionDexReachable is true when the operator can call the provider's Dex gRPC API.
	ConditionDexReachable = "DexReachable"
	// ConditionDiscoveryReady is true when the issuer's discovery document was fetched and checked.
	ConditionDiscoveryReady = "DiscoveryReady"
	// ConditionKeysReady is true when the issuer's signing keys are loaded.
	ConditionKeysReady = "KeysReady"

	// ConditionRegistered is true when the object's client or connector exists in Dex as specified.
	ConditionRegistered = "Registered"
	// ConditionSecretReady is true when the client secret is available.
	ConditionSecretReady = "SecretReady"
	// ConditionConnectorHealthy is true when Dex initialised the connector.
	ConditionConnectorHealthy = "ConnectorHealthy"

	// ConditionAvailable is true when a Dex object's Deployment has its minimum of available pods.
	ConditionAvailable = "Available"
	// ConditionConfigValid is true when a Dex object's spec rendered into a Dex configuration and
	// everything it refers to (Secrets) is there.
	ConditionConfigValid = "ConfigValid"
)

// Condition reasons (CamelCase, stable: users and docs/troubleshooting.md rely on them).
const (
	// ReasonReconciled means everything the object asks for is in place.
	ReasonReconciled = "Reconciled"
	// ReasonProgressing means the operator is working on the object.
	ReasonProgressing = "Progressing"
	// ReasonDeleting means the object is being removed.
	ReasonDeleting = "Deleting"

	// ReasonDexReachable means a gRPC call to Dex succeeded.
	ReasonDexReachable = "DexReachable"
	// ReasonDexUnavailable means Dex's gRPC API could not be reached.
	ReasonDexUnavailable = "DexUnavailable"
	// ReasonDexTLSError means the TLS handshake with Dex failed (CA, client certificate, host name).
	ReasonDexTLSError = "DexTLSError"
	// ReasonDexTLSSecretInvalid means the Secret named by spec.dex.tls.secretRef is missing or
	// does not hold usable ca.crt / tls.crt / tls.key.
	ReasonDexTLSSecretInvalid = "DexTLSSecretInvalid"
	// ReasonDexNotManaged means the provider has no spec.dex section.
	ReasonDexNotManaged = "DexNotManaged"

	// ReasonProviderNotFound means providerRef names no OIDCProvider.
	ReasonProviderNotFound = "ProviderNotFound"
	// ReasonProviderNotManaged means providerRef names an OIDCProvider without spec.dex.
	ReasonProviderNotManaged = "ProviderNotManaged"
	// ReasonProviderDeleting means providerRef names an OIDCProvider that is being deleted: it
	// takes no new clients or connectors.
	ReasonProviderDeleting = "ProviderDeleting"
	// ReasonNamespaceNotAllowed means the provider's spec.dex.allowedNamespaces excludes this namespace.
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonClientIDPrefixMismatch means the client id does not start with the provider's prefix.
	ReasonClientIDPrefixMismatch = "ClientIDPrefixMismatch"
	// ReasonClientIDConflict means another DexStaticClient owns the same client id in the same Dex.
	ReasonClientIDConflict = "ClientIDConflict"
	// ReasonClientExistsInDex means the client id exists in Dex and was not created by Dexterity.
	ReasonClientExistsInDex = "ClientExistsInDex"
	// ReasonSecretNotFound means the referenced Secret or key is missing.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretAvailable means the client secret was read.
	ReasonSecretAvailable = "SecretAvailable"
	// ReasonSecretGenerated means the operator created the client Secret.
	ReasonSecretGenerated = "SecretGenerated"
	// ReasonPublicClient means the client is public and needs no secret.
	ReasonPublicClient = "PublicClient"
	// ReasonInvalidSpec means the spec cannot be applied; the message says which field and how to fix it.
	ReasonInvalidSpec = "InvalidSpec"

	// ReasonConnectorIDConflict means another DexConnector owns the same connector id in the same Dex.
	ReasonConnectorIDConflict = "ConnectorIDConflict"
	// ReasonConnectorExistsInDex means the connector id exists in Dex and was not created by Dexterity.
	ReasonConnectorExistsInDex = "ConnectorExistsInDex"
	// ReasonConnectorsCRUDDisabled means Dex runs without DEX_API_CONNECTORS_CRUD=true.
	ReasonConnectorsCRUDDisabled = "ConnectorsCRUDDisabled"
	// ReasonInvalidConfig means the connector config would not load in Dex.
	ReasonInvalidConfig = "InvalidConfig"
	// ReasonConnectorFailed means Dex could not initialise the connector.
	ReasonConnectorFailed = "ConnectorFailed"

	// ReasonDiscoveryFailed means the discovery document could not be fetched or is invalid.
	ReasonDiscoveryFailed = "DiscoveryFailed"
	// ReasonKeysRefreshFailed means the last key refresh failed; the last good keys are still used.
	ReasonKeysRefreshFailed = "KeysRefreshFailed"
	// ReasonKeysFetchFailed means the JWKS could not be fetched.
	ReasonKeysFetchFailed = "KeysFetchFailed"
	// ReasonCompileError means a GroupBinding expression does not compile to a boolean.
	ReasonCompileError = "CompileError"
	// ReasonExpressionTooCostly means a GroupBinding expression is over the cost bound (it could
	// build unbounded strings or lists, or nests loops too deep); the message names the part.
	ReasonExpressionTooCostly = "ExpressionTooCostly"
	// ReasonInvalidResourcePattern means a GroupBinding's moduleResources or providerResources
	// holds a glob the registry refuses (over its bounds, more segments than an address, or
	// malformed); the message names it.
	ReasonInvalidResourcePattern = "InvalidResourcePattern"
	// ReasonEvaluationDeadline means evaluating a GroupBinding expression ran past its deadline
	// (the request was denied).
	ReasonEvaluationDeadline = "EvaluationDeadline"
	// ReasonDeploymentAvailable means the Dex Deployment has its minimum of available pods.
	ReasonDeploymentAvailable = "DeploymentAvailable"
	// ReasonDeploymentUnavailable means the Dex Deployment's pods are not (yet) available.
	ReasonDeploymentUnavailable = "DeploymentUnavailable"
	// ReasonConfigRendered means the Dex configuration was rendered and applied.
	ReasonConfigRendered = "ConfigRendered"
	// ReasonOwnedByOther means an object the Dex would create (Deployment, Service, Secret,
	// OIDCProvider) already exists and belongs to something else.
	ReasonOwnedByOther = "OwnedByOther"
	// ReasonHostnameConflict means another OIDCProvider already serves a host in spec.hostnames.
	ReasonHostnameConflict = "HostnameConflict"
	// ReasonClientIDReserved means the client id is an OIDCProvider's audience (its clientId or
	// one of its audiences): only a DexStaticClient in that provider's namespace may register it.
	ReasonClientIDReserved = "ClientIDReserved"
	// ReasonAudienceHeldElsewhere means an audience of this OIDCProvider is registered in Dex by an
	// object of another namespace; the registry refuses this provider's tokens until it is resolved.
	ReasonAudienceHeldElsewhere = "AudienceHeldElsewhere"
	// ReasonKeysPublished means the registry verifies ServiceAccount tokens against the keys the
	// API server publishes before any TokenReview.
	ReasonKeysPublished = "KeysPublished"
	// ReasonRateLimited means the API server publishes no service-account keys to the manager,
	// so the ServiceAccount fallback's TokenReviews are rate-limited instead.
	ReasonRateLimited = "RateLimited"
	// ReasonCredentialsWritten means the credentials Secret (spec.credentials) holds the client's
	// id, secret and issuer.
	ReasonCredentialsWritten = "CredentialsWritten"
	// ReasonDexVersionUnsupported means the Dex release lacks what the object needs (a DexConnector
	// on a Dex before v2.41, which has no connector API); the message names the release and the
	// minimum. Nothing was written to Dex.
	ReasonDexVersionUnsupported = "DexVersionUnsupported"
)

// ConditionServiceAccountFallback says, on an OIDCProvider with allowServiceAccountFallback, how
// the registry checks ServiceAccount tokens (KeysPublished or RateLimited). It is not part of
// Ready: the fallback works either way.
const ConditionServiceAccountFallback = "ServiceAccountFallback"

// The Dex kind's exposure (spec.ingress, spec.httpRoute).
const (
	// ConditionExposed is true on a Dex with spec.ingress or spec.httpRoute when the Ingress and
	// the HTTPRoute it asks for are applied; absent otherwise. Part of Ready.
	ConditionExposed = "Exposed"
	// ReasonRoutesApplied means the Ingress and HTTPRoute a Dex asks for are applied.
	ReasonRoutesApplied = "RoutesApplied"
	// ReasonGatewayAPIMissing means a Dex asks for an HTTPRoute but the cluster has no Gateway API
	// CRDs (gateway.networking.k8s.io/v1 HTTPRoute); nothing was rendered for it. Install the
	// Gateway API, or remove spec.httpRoute.
	ReasonGatewayAPIMissing = "GatewayAPIMissing"
	// ConditionMonitored is true on a Dex with spec.serviceMonitor.enabled when its ServiceMonitor
	// is applied. It does not count towards Ready.
	ConditionMonitored = "Monitored"
	// ReasonServiceMonitorApplied means the ServiceMonitor a Dex asks for is applied.
	ReasonServiceMonitorApplied = "ServiceMonitorApplied"
	// ReasonPrometheusOperatorMissing means a Dex asks for a ServiceMonitor but the cluster has no
	// monitoring.coreos.com/v1 ServiceMonitor CRD.
	ReasonPrometheusOperatorMissing = "PrometheusOperatorMissing"
)
