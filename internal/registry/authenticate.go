package registry

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
	"dexterity.dev/dexterity/internal/oidc"
)

// Authentication paths (the "path" label of dexterity_registry_auth_decisions_total).
const (
	pathOIDC   = "oidc"   // a token of the provider, audience matches
	pathClient = "client" // a token of the provider issued to another Dex client
	pathK8s    = "k8s"    // a token Kubernetes checks (TokenReview + SubjectAccessReview)
	pathNone   = "none"   // no usable token
)

// principal is an authenticated caller.
type principal struct {
	path     string
	name     string   // username, client:<id>, or the Kubernetes user name
	groups   []string // what GroupBindings see
	noGroups bool     // an OIDC user token without the groups claim
	user     *authnv1.UserInfo
	// clientID is the client of a client identity (path client); clientCredentials is true when
	// its token came from Dex's client_credentials grant. Either way the client was found to be a
	// client identity of the registry (clients.clientIdentity) when the clients were at version
	// checked.
	clientID          string
	clientCredentials bool
	checked           atomic.Int64
	// memo memoises GroupBinding decisions of this (cached) principal for the newest namespace
	// content version it has seen, so a repeated token skips expression evaluation too. A new
	// version (any binding, module or provider changed) replaces the memo: a principal never
	// keeps an older content snapshot alive (it holds the version number, not the snapshot).
	memo atomic.Pointer[decisionMemo]
}

// decisionMemo holds the decisions of one principal for one content version.
type decisionMemo struct {
	version uint64
	m       sync.Map // decisionKey -> decision
	n       atomic.Int32
}

type decisionKey struct {
	kind    resourceKind
	address string
}

// maxMemoisedDecisions bounds the memo of one principal.
const maxMemoisedDecisions = 64

// decide returns the GroupBinding decision for res, memoised per content snapshot.
// The evaluation stops with the request (ctx) as well as at its own deadline.
func (p *principal) decide(ctx context.Context, c *namespaceContent, res resource) decision {
	var bindings []*binding
	var version uint64
	if c != nil {
		bindings, version = c.bindings, c.version
	}
	k := decisionKey{kind: res.kind, address: res.address}
	memo := p.memo.Load()
	if memo != nil && memo.version == version {
		if d, ok := memo.m.Load(k); ok {
			return d.(decision)
		}
	}
	d := authorizeWithin(&authz.Evaluation{Context: ctx}, bindings, p.groups, res)
	// A deadline hit may come from a manager starved of CPU for a moment: not remembered.
	if d.reason == reasonEvaluationDeadline {
		return d
	}
	if memo == nil || memo.version < version {
		if next := (&decisionMemo{version: version}); p.memo.CompareAndSwap(memo, next) {
			memo = next
		} else {
			memo = p.memo.Load()
		}
	}
	if memo != nil && memo.version == version && memo.n.Add(1) <= maxMemoisedDecisions {
		memo.m.Store(k, d)
	}
	return d
}

// authError is a failed authentication, rendered as an HTTP error.
type authError struct {
	status  int    // 401 or 503
	path    string // which path rejected it
	reason  string // stable label
	message string // for the client
}

func (e *authError) Error() string { return e.message }

// creator creates TokenReviews and SubjectAccessReviews (the manager's client).
type creator interface {
	Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error
}

// verifiedKey identifies a verified token: the provider object (its UID: a provider deleted and
// recreated under the same name is another object), the provider's generation (a changed spec
// invalidates earlier verifications) and a 128-bit keyed hash of the token.
//
// The hash is two hash/maphash sums under secret seeds drawn at process start (of the whole
// token and of its signature), not SHA-256:
// SHA-256 of a typical Dex token costs ~1.4µs on the reference machine, more than the rest of
// an authorised request, while maphash costs ~0.1µs. Without the seeds nobody can compute a
// token's key, so a colliding token cannot be crafted; a chance collision has probability
// 2^-128. The raw token is never stored.
type verifiedKey struct {
	uid        types.UID
	generation int64
	hash       [2]uint64
}

var tokenSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// tokenHash is the cache key of a token: a keyed hash of the whole token and another of its
// last 64 bytes (the signature, different for every token).
func tokenHash(token string) [2]uint64 {
	tail := token
	if len(tail) > 64 {
		tail = tail[len(tail)-64:]
	}
	return [2]uint64{maphash.String(tokenSeeds[0], token), maphash.String(tokenSeeds[1], tail)}
}

type verifiedEntry struct {
	p       *principal
	expires time.Time
}

// tokenCache remembers successful OIDC verifications so that repeated requests with one
// token do not verify its signature again. It holds at most size entries (when full, an
// arbitrary entry makes room: Go's map iteration order) and an entry is never used past the
// token's exp or maxAge after verification. Lookups take a read lock only.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[verifiedKey]verifiedEntry
	size    int
	maxAge  time.Duration
	now     func() time.Time
}

func newTokenCache(size int, maxAge time.Duration) *tokenCache {
	// Not sized up front: a full cache is ~1.3 MiB that an idle registry never uses.
	return &tokenCache{entries: map[verifiedKey]verifiedEntry{}, size: size, maxAge: maxAge, now: time.Now}
}

func (c *tokenCache) get(k verifiedKey) (*principal, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !c.now().Before(e.expires) {
		c.mu.Lock()
		delete(c.entries, k)
		c.mu.Unlock()
		return nil, false
	}
	return e.p, true
}

func (c *tokenCache) add(k verifiedKey, p *principal, exp time.Time) {
	now := c.now()
	until := now.Add(c.maxAge)
	if !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, present := c.entries[k]; !present && len(c.entries) >= c.size {
		// Make room: expired entries first (a bounded scan), else an arbitrary one.
		scanned, evicted := 0, false
		for old, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, old)
				evicted = true
			}
			if scanned++; scanned >= 16 {
				break
			}
		}
		if !evicted {
			for old := range c.entries {
				delete(c.entries, old)
				break
			}
		}
	}
	c.entries[k] = verifiedEntry{p: p, expires: until}
}

// len is the number of cached verifications.
func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// remove drops one verification (its client stopped counting as authenticated).
func (c *tokenCache) remove(k verifiedKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, k)
}

// forget drops every verification made for one generation of one provider object: the provider
// was deleted, recreated under its name, or its spec changed. (Keys carry the UID and the
// generation, so such entries would never be used again; this frees them at once.)
func (c *tokenCache) forget(uid types.UID, generation int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if k.uid == uid && k.generation == generation {
			delete(c.entries, k)
		}
	}
}

// clientDirectory says which Dex clients are client identities of a registry (clients: from
// the ownership claims, never from a status).
type clientDirectory interface {
	// clientIdentity reports whether clientID may act as client:<clientID> in t's registry.
	clientIdentity(t *tenant, clientID string) bool
	// audienceHeldElsewhere names an audience of t that a client of another namespace holds in
	// t's Dex ("" when none).
	audienceHeldElsewhere(t *tenant) string
	// clientsChanged returns a number that changes whenever clientIdentity may answer
	// differently.
	clientsChanged() int64
}

// authenticator turns a bearer token into a principal following design.md §4's token table.
type authenticator struct {
	keys    *oidc.Cache
	kube    creator
	tokens  *tokenCache
	clients clientDirectory
	reviews *kubeCache
	sa      *serviceAccountFallback
}

// maxTokenBytes bounds the bearer tokens the registry looks at; real ones are a few KiB.
const maxTokenBytes = 64 << 10

// bearerToken returns the token of an "Authorization: Bearer" header, or "".
func bearerToken(r *http.Request) string {
	return bearerTokenOf(r.Header.Get("Authorization"))
}

// bearerTokenOf returns the token of an Authorization header value, or "".
func bearerTokenOf(h string) string {
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(h[7:])
}

// wellFormed reports whether token is a token68 (RFC 6750's b64token: letters, digits,
// "-._~+/", then "=" padding) of at most maxTokenBytes. Anything else is garbage, answered 401
// without asking anybody.
func wellFormed(token string) bool {
	if token == "" || len(token) > maxTokenBytes {
		return false
	}
	end := len(token)
	for end > 1 && token[end-1] == '=' {
		end--
	}
	for i := 0; i < end; i++ {
		if !token68[token[i]] {
			return false
		}
	}
	return true
}

// token68 are the characters of a token68 before its "=" padding.
var token68 = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/") {
		t[c] = true
	}
	return t
}()

var errGarbage = &authError{status: http.StatusUnauthorized, path: pathNone, reason: string(oidc.ReasonNotJWT),
	message: "the bearer token is not a JWT of this registry's issuer"}

func (a *authenticator) authenticate(ctx context.Context, t *tenant, token string) (*principal, *authError) {
	if token == "" {
		return nil, &authError{status: http.StatusUnauthorized, path: pathNone, reason: "missing_token",
			message: "authentication required: send Authorization: Bearer <token> (tofu login, or a credentials block in the CLI configuration)"}
	}
	if len(token) > maxTokenBytes {
		// Whatever it claims, nothing that long is parsed or hashed (real tokens are a few KiB).
		return nil, &authError{status: http.StatusUnauthorized, path: pathNone, reason: "malformed_token",
			message: fmt.Sprintf("the bearer token is longer than %d bytes", maxTokenBytes)}
	}
	spec := &t.provider.Spec
	if t.provider.OIDCEnabled() {
		// A token verified before under this provider object's current spec needs no parsing.
		k := verifiedKey{uid: t.uid, generation: t.generation, hash: tokenHash(token)}
		if p, ok := a.tokens.get(k); ok {
			if p.path != pathK8s {
				if aerr := a.audienceHeld(t); aerr != nil {
					return nil, aerr
				}
			}
			if aerr := a.recheckClient(t, k, p); aerr != nil {
				return nil, aerr
			}
			tokenCacheHits.Inc()
			return p, nil
		}
		// Verify parses the token once and says whether it claims this issuer (wrong_issuer and
		// not_jwt are checked before the signature); only error paths parse it a second time.
		// An issuer the key cache still holds for an older spec is not used (tenant.issuer).
		issuer, ok := t.issuer(a.keys)
		var id *oidc.Identity
		var err error
		if ok {
			id, err = issuer.Verify(ctx, token)
		}
		iss, isJWT := spec.IssuerURL, true
		var claimed oidc.Unverified
		if !ok || err != nil {
			claimed, isJWT = oidc.ParseUnverified(token)
			iss = claimed.Issuer
		}
		if isJWT && iss == spec.IssuerURL {
			// A token claiming this issuer is decided here and never falls back to Kubernetes.
			tokenCacheMisses.Inc()
			if !ok {
				return nil, errKeysNotLoaded
			}
			if aerr := a.audienceHeld(t); aerr != nil {
				return nil, aerr
			}
			return a.finishOIDC(ctx, t, k, issuer, token, id, err)
		}
		if !isJWT || !wellFormed(token) {
			// Garbage never reaches Kubernetes (a ServiceAccount token is a JWT).
			return nil, errGarbage
		}
		if spec.AllowServiceAccountFallback {
			return a.serviceAccount(ctx, token, claimed)
		}
		return nil, &authError{status: http.StatusUnauthorized, path: pathOIDC, reason: string(oidc.ReasonWrongIssuer),
			message: "the token was not issued by this registry's issuer"}
	}
	if spec.UseBearerToken {
		if !wellFormed(token) {
			return nil, &authError{status: http.StatusUnauthorized, path: pathNone, reason: "malformed_token",
				message: "the bearer token is malformed"}
		}
		claimed, _ := oidc.ParseUnverified(token)
		return a.kubernetes(ctx, token, claimed.Expiry, nil)
	}
	return nil, &authError{status: http.StatusUnauthorized, path: pathNone, reason: "no_authentication",
		message: "this registry accepts no tokens: its OIDCProvider has enabled=false and useBearerToken=false"}
}

// audienceHeld refuses the tokens of t's issuer while one of its audiences is registered in its
// Dex by a client of another namespace: such a token may have been issued through that client.
func (a *authenticator) audienceHeld(t *tenant) *authError {
	held := a.clients.audienceHeldElsewhere(t)
	if held == "" {
		return nil
	}
	return &authError{status: http.StatusUnauthorized, path: pathOIDC, reason: "audience_held_elsewhere",
		message: fmt.Sprintf("this registry refuses its issuer's tokens: its audience %q is registered in Dex by a client of another namespace (OIDCProvider reason AudienceHeldElsewhere); the platform team must resolve it", held)}
}

var errKeysNotLoaded = &authError{status: http.StatusServiceUnavailable, path: pathOIDC, reason: "keys_not_loaded",
	message: "the registry has not loaded its issuer's signing keys yet; retry shortly"}

// issuer returns the key cache's issuer for t: the one built from t.keyConfig. The key cache
// follows OIDCProviders through its own informer handler (controllers.KeyCacheSync), so for a
// moment after a change (or a delete and a re-create) it may still hold the issuer of an older
// spec, whose audiences and claim mapping must not decide; ok is false then, as while no keys are
// loaded. The issuer found is remembered, so a request costs one cache lookup.
func (t *tenant) issuer(keys *oidc.Cache) (issuer *oidc.Issuer, ok bool) {
	if issuer, ok = keys.Get(t.key); !ok || issuer == t.current.Load() {
		return issuer, ok
	}
	if issuer, ok, _ = keys.Lookup(t.key, t.keyConfig); !ok || issuer == nil {
		return nil, false
	}
	t.current.Store(issuer)
	return issuer, true
}

// recheckClient checks a cached client identity again when the claims, DexStaticClients,
// providers or namespace labels changed since it was last checked: a client that is no longer a
// client identity (made public, deleted, its claim released, its namespace no longer admitted)
// stops being accepted at once.
func (a *authenticator) recheckClient(t *tenant, k verifiedKey, p *principal) *authError {
	if p.path != pathClient {
		return nil
	}
	v := a.clients.clientsChanged()
	if p.checked.Load() == v {
		return nil
	}
	if !a.clients.clientIdentity(t, p.clientID) {
		a.tokens.remove(k)
		return unauthenticatedClient(p.clientID)
	}
	p.checked.Store(v)
	return nil
}

func unauthenticatedClient(clientID string) *authError {
	return &authError{status: http.StatusUnauthorized, path: pathClient, reason: "unauthenticated_client",
		message: fmt.Sprintf("invalid token: it was issued to client %q, which did not authenticate as a client of this registry "+
			"(a public client, a client no confidential DexStaticClient owns in this Dex, or one owned from a namespace that the "+
			"OIDCProvider's spec.dex.clientIdentityNamespaces does not admit); use a token of a confidential client of this registry's namespace", clientID)}
}

// finishOIDC completes the verification of a token that claims the provider's issuer (id, err
// are the result of issuer.Verify) and caches the principal under k.
func (a *authenticator) finishOIDC(ctx context.Context, t *tenant, k verifiedKey, issuer *oidc.Issuer, token string, id *oidc.Identity, err error) (*principal, *authError) {
	if err != nil && !issuer.Status().KeysReady {
		return nil, errKeysNotLoaded
	}
	path := pathOIDC
	if err != nil && oidc.ReasonOf(err) == oidc.ReasonWrongAudience && t.provider.Spec.AllowClientCredentials {
		id, err = issuer.VerifyForAnyAudience(ctx, token)
		path = pathClient
	}
	if err != nil {
		reason := oidc.ReasonOf(err)
		return nil, &authError{status: http.StatusUnauthorized, path: path, reason: string(reason),
			message: fmt.Sprintf("invalid token: %s", describeReason(reason))}
	}
	var p *principal
	if path == pathClient {
		clientID := id.AuthorizedParty
		if clientID == "" && len(id.Audience) == 1 {
			clientID = id.Audience[0]
		}
		if clientID == "" {
			return nil, &authError{status: http.StatusUnauthorized, path: path, reason: "unknown_client",
				message: "invalid token: it names no authorized party (azp) and several audiences"}
		}
		// Only a client that authenticated becomes client:<id> (anyone can obtain a token
		// through a public client), and only one that its ownership claim gives to a namespace
		// this provider admits: a client-credentials token (Dex issues those to confidential
		// clients only) proves the secret, not whose client it is, so it is checked the same way.
		name := "client:" + clientID
		p = &principal{path: pathClient, name: name, groups: []string{name}, clientID: clientID,
			clientCredentials: isClientCredentials(id.Subject, clientID)}
		v := a.clients.clientsChanged() // before the check: a change meanwhile re-checks
		if !a.clients.clientIdentity(t, clientID) {
			return nil, unauthenticatedClient(clientID)
		}
		p.checked.Store(v)
	} else {
		p = &principal{path: pathOIDC, name: id.Username, groups: id.Groups, noGroups: !id.HasGroupsClaim}
	}
	a.tokens.add(k, p, id.Expiry)
	return p, nil
}

// isClientCredentials reports whether sub is the subject Dex gives a client_credentials token of
// clientID: the client id as the user id, and no connector.
func isClientCredentials(sub, clientID string) bool {
	userID, connID, ok := oidc.DexSubject(sub)
	return ok && connID == "" && userID != "" && userID == clientID
}

func describeReason(r oidc.Reason) string {
	switch r {
	case oidc.ReasonExpired:
		return "expired or not yet valid; run tofu login again"
	case oidc.ReasonWrongAudience:
		return "issued to another client (audience); log in with this registry's client"
	case oidc.ReasonBadSignature, oidc.ReasonUnknownKey:
		return "signature does not verify with the issuer's keys"
	default:
		return string(r)
	}
}

// kubernetes authenticates token with a TokenReview (answers cached briefly: kubeCache).
// Authorization (SubjectAccessReview) is done per resource by authorizeKubernetes. exp is the
// token's exp (zero when unknown): no answer is cached past it. With a limiter, a TokenReview
// is made only when the limiter allows it (503 otherwise).
func (a *authenticator) kubernetes(ctx context.Context, token string, exp time.Time, limiter *rate.Limiter) (*principal, *authError) {
	p, err := a.reviews.tokenReview(ctx, token, exp, func(ctx context.Context) (*principal, error) {
		if limiter != nil && !limiter.Allow() {
			serviceAccountThrottled.Inc()
			return nil, errThrottled
		}
		tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}
		if err := a.kube.Create(ctx, tr); err != nil {
			return nil, fmt.Errorf("failed to create TokenReview: %w", err)
		}
		if !tr.Status.Authenticated {
			return nil, nil
		}
		u := tr.Status.User
		return &principal{path: pathK8s, name: u.Username, groups: u.Groups, user: &u}, nil
	})
	switch {
	case errors.Is(err, errThrottled):
		return nil, &authError{status: http.StatusServiceUnavailable, path: pathK8s, reason: "fallback_rate_limited",
			message: "the registry is checking too many ServiceAccount tokens with Kubernetes (the API server publishes no service-account keys to verify them against first, so these checks are rate-limited); retry shortly"}
	case err != nil:
		return nil, &authError{status: http.StatusServiceUnavailable, path: pathK8s, reason: "tokenreview_failed",
			message: "the registry could not check the token with Kubernetes; retry shortly"}
	}
	return reviewed(p)
}

// reviewed is the result of Kubernetes' answer about a token (nil: not authenticated).
func reviewed(p *principal) (*principal, *authError) {
	if p == nil {
		return nil, &authError{status: http.StatusUnauthorized, path: pathK8s, reason: "not_authenticated",
			message: "Kubernetes did not authenticate the token"}
	}
	return p, nil
}

// authorizeKubernetes asks Kubernetes whether the principal may get the Module or Provider
// (objectName; "" when no object serves the address) in the tenant's namespace (answers cached
// briefly: kubeCache).
func (a *authenticator) authorizeKubernetes(ctx context.Context, p *principal, ns string, kind resourceKind, objectName string) (bool, string, error) {
	resource := "modules"
	if kind == kindProvider {
		resource = "providers"
	}
	return a.reviews.accessReview(ctx, p.user, ns, resource, objectName, func(ctx context.Context) (bool, string, error) {
		extra := map[string]authzv1.ExtraValue{}
		for k, v := range p.user.Extra {
			extra[k] = authzv1.ExtraValue(v)
		}
		sar := &authzv1.SubjectAccessReview{
			Spec: authzv1.SubjectAccessReviewSpec{
				User: p.user.Username, UID: p.user.UID, Groups: p.user.Groups, Extra: extra,
				ResourceAttributes: &authzv1.ResourceAttributes{
					Namespace: ns, Verb: "get", Group: dexv1.GroupVersion.Group, Resource: resource, Name: objectName,
				},
			},
		}
		if err := a.kube.Create(ctx, sar); err != nil {
			return false, "", fmt.Errorf("failed to create SubjectAccessReview: %w", err)
		}
		return sar.Status.Allowed, sar.Status.Reason, nil
	})
}
