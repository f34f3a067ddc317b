package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	sigsjson "sigs.k8s.io/json"
)

// Fetcher GETs a path of the Kubernetes API server (e.g. "/.well-known/openid-configuration")
// with the manager's credentials and returns the body of a 200 response. It returns an error
// wrapping ErrNotPublished when the API server does not serve the path to the manager (404, or
// 401/403: discovery switched off or not granted).
type Fetcher func(ctx context.Context, path string) ([]byte, error)

// ErrNotPublished is wrapped by a Fetcher's error when the API server does not serve a path.
var ErrNotPublished = errors.New("not served by the API server")

// apiServerJWKSPath is where kube-apiserver serves its service-account keys, whatever jwks_uri
// its discovery document advertises to the outside (--service-account-jwks-uri).
const apiServerJWKSPath = "/openid/v1/jwks"

// serviceAccountMetricsName is the provider label of this key set's metrics (no OIDCProvider
// key, "namespace/name", can be spelled so).
const serviceAccountMetricsName = "kubernetes-serviceaccounts"

// Defaults of ServiceAccountKeys.
const (
	defaultSARefreshInterval = time.Hour
	maxSARetryInterval       = 5 * time.Minute
)

// ServiceAccountKeys is the cluster's service-account issuer and the keys the API server
// publishes for it (ServiceAccountIssuerDiscovery: its /.well-known/openid-configuration and the
// JWKS it names), loaded through a Fetcher, refreshed every RefreshInterval and, at most once per
// UnknownKidCooldown, on a token naming an unknown key id. The last good keys are kept through
// failures. It verifies ServiceAccount tokens locally (signature, exp, nbf) so that only tokens
// the API server signed are sent to a TokenReview. It is safe for concurrent use.
type ServiceAccountKeys struct {
	// RefreshInterval is the refresh period (default 1h), jittered by ±10%.
	RefreshInterval time.Duration
	// UnknownKidCooldown bounds fetches triggered by unknown key ids (default 30s).
	UnknownKidCooldown time.Duration

	fetch   Fetcher
	state   atomic.Pointer[saState]
	fetches atomic.Int64

	mu           sync.Mutex // guards the fields below
	notPublished bool
	lastError    string
	lastFetch    time.Time

	kidMu        sync.Mutex
	kidCall      chan struct{}
	lastKidFetch time.Time
}

// saState is an immutable issuer and key set.
type saState struct {
	issuer string
	keys   *keySnapshot
}

// ServiceAccountStatus is a snapshot of a ServiceAccountKeys.
type ServiceAccountStatus struct {
	// Issuer is the cluster's service-account issuer ("" until discovered).
	Issuer string
	// KeysReady is true once keys were loaded; kept through later failures.
	KeysReady bool
	// Keys is the number of usable keys cached.
	Keys int
	// NotPublished is true when the last attempt found that the API server does not publish its
	// issuer or keys to the manager (discovery off, not granted, or a JWKS without usable keys).
	NotPublished bool
	// LastError is the error of the last attempt ("" after a success).
	LastError string
	// LastFetch is the time of the last successful load.
	LastFetch time.Time
	// Fetches counts discovery and JWKS loads, successful or not.
	Fetches int64
}

// NewServiceAccountKeys returns a key set loaded through fetch; nothing is fetched before Refresh
// or Run.
func NewServiceAccountKeys(fetch Fetcher) *ServiceAccountKeys {
	return &ServiceAccountKeys{fetch: fetch}
}

func (s *ServiceAccountKeys) interval() time.Duration {
	if s.RefreshInterval > 0 {
		return s.RefreshInterval
	}
	return defaultSARefreshInterval
}

func (s *ServiceAccountKeys) cooldown() time.Duration {
	if s.UnknownKidCooldown > 0 {
		return s.UnknownKidCooldown
	}
	return defaultUnknownKidCooldown
}

// Status returns a snapshot of the key set's state.
func (s *ServiceAccountKeys) Status() ServiceAccountStatus {
	s.mu.Lock()
	st := ServiceAccountStatus{NotPublished: s.notPublished, LastError: s.lastError, LastFetch: s.lastFetch}
	s.mu.Unlock()
	if cur := s.state.Load(); cur != nil {
		st.Issuer = cur.issuer
		if cur.keys != nil {
			st.KeysReady, st.Keys = true, len(cur.keys.keys)
		}
	}
	st.Fetches = s.fetches.Load()
	return st
}

// Issuer returns the cluster's service-account issuer, "" until it was discovered.
func (s *ServiceAccountKeys) Issuer() string {
	if cur := s.state.Load(); cur != nil {
		return cur.issuer
	}
	return ""
}

// Run refreshes until ctx is done: at once, then every RefreshInterval ±10%; after a failure
// it retries from 1s, doubling, up to 5 minutes (or RefreshInterval if shorter).
func (s *ServiceAccountKeys) Run(ctx context.Context) {
	backoff := time.Second
	for {
		next := jitter(s.interval())
		if err := s.Refresh(ctx); err != nil {
			next = min(backoff, s.interval(), maxSARetryInterval)
			backoff = min(backoff*2, maxSARetryInterval) // doubled without a cap it overflows after ~2 h of failures
		} else {
			backoff = time.Second
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Refresh loads the discovery document and then the JWKS. On failure the last good issuer and
// keys are kept and the error is recorded (Status) and returned.
func (s *ServiceAccountKeys) Refresh(ctx context.Context) error {
	s.fetches.Add(1)
	issuer, keys, err := s.load(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		jwksFetchesTotal.WithLabelValues(serviceAccountMetricsName, resultError).Inc()
		s.lastError = err.Error()
		s.notPublished = errors.Is(err, ErrNotPublished)
		return err
	}
	jwksFetchesTotal.WithLabelValues(serviceAccountMetricsName, resultOK).Inc()
	keysGauge.WithLabelValues(serviceAccountMetricsName).Set(float64(len(keys)))
	s.state.Store(&saState{issuer: issuer, keys: newKeySnapshot(keys)})
	s.lastError, s.notPublished, s.lastFetch = "", false, time.Now()
	return nil
}

func (s *ServiceAccountKeys) load(ctx context.Context) (string, []jose.JSONWebKey, error) {
	body, err := s.fetch(ctx, wellKnownPath)
	if err != nil {
		return "", nil, fmt.Errorf("failed to fetch the API server's %s: %w", wellKnownPath, err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &doc); err != nil {
		return "", nil, fmt.Errorf("failed to decode the API server's %s: %w", wellKnownPath, err)
	}
	if doc.Issuer == "" {
		return "", nil, fmt.Errorf("failed to validate the API server's %s: issuer is missing: %w", wellKnownPath, ErrNotPublished)
	}
	// The keys are read from the API server itself: at the path of jwks_uri, else where
	// kube-apiserver always serves them (jwks_uri may name a host outside the cluster).
	paths := []string{apiServerJWKSPath}
	if u, err := url.Parse(doc.JWKSURI); err == nil && u.Path != "" && u.Path != apiServerJWKSPath {
		paths = []string{u.Path, apiServerJWKSPath}
	}
	for i, path := range paths {
		body, err = s.fetch(ctx, path)
		if err == nil || i == len(paths)-1 || !errors.Is(err, ErrNotPublished) {
			break
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("failed to fetch the API server's service-account keys: %w", err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return "", nil, fmt.Errorf("failed to parse the API server's service-account keys: %v: %w", err, ErrNotPublished)
	}
	return doc.Issuer, keys, nil
}

// ServiceAccountClaims is what a verified ServiceAccount token says.
type ServiceAccountClaims struct {
	// Expiry is the "exp" claim.
	Expiry time.Time
}

// Verify verifies a token of the service-account issuer locally: a compact JWS with an allowed
// algorithm, "iss" (case-sensitive) equal to the discovered issuer, a signature of one of the
// published keys, exp in the future and nbf (if any) not in the future. It says nothing about
// the audience, or whether the token was revoked or its pod is gone: a TokenReview decides
// those. Errors are *VerifyError; ReasonNotReady until keys were loaded.
func (s *ServiceAccountKeys) Verify(ctx context.Context, raw string) (ServiceAccountClaims, *VerifyError) {
	jws, payload, verr := parseToken(raw)
	if verr != nil {
		return ServiceAccountClaims{}, verr
	}
	var claims struct {
		Iss any `json:"iss"`
		Exp any `json:"exp"`
		Nbf any `json:"nbf"`
	}
	if !isJSONObject(payload) || sigsjson.UnmarshalCaseSensitivePreserveInts(payload, &claims) != nil {
		return ServiceAccountClaims{}, verifyErr(ReasonNotJWT, "token payload is not a JSON object")
	}
	cur := s.state.Load()
	if cur == nil || cur.keys == nil {
		return ServiceAccountClaims{}, verifyErr(ReasonNotReady, "the API server's service-account keys have not been loaded")
	}
	if iss, _ := claims.Iss.(string); iss != cur.issuer {
		return ServiceAccountClaims{}, verifyErr(ReasonWrongIssuer, fmt.Sprintf("token issuer %q is not the cluster's service-account issuer", truncate(iss, 256)))
	}
	if _, verr := cur.keys.verifyRefetching(ctx, jws, s.fetchForUnknownKid, func() *keySnapshot {
		if st := s.state.Load(); st != nil {
			return st.keys
		}
		return nil
	}); verr != nil {
		return ServiceAccountClaims{}, verr
	}
	var c claimValues
	c.setRegistered(nil, claims.Exp, claims.Nbf)
	if verr := c.checkTimes(time.Now()); verr != nil {
		return ServiceAccountClaims{}, verr
	}
	return ServiceAccountClaims{Expiry: c.exp}, nil
}

// fetchForUnknownKid refreshes because a token named an unknown key id: at most one refresh
// starts per UnknownKidCooldown; callers arriving while one runs wait for it. It reports whether
// a refresh completed.
func (s *ServiceAccountKeys) fetchForUnknownKid(ctx context.Context) bool {
	s.kidMu.Lock()
	if call := s.kidCall; call != nil {
		s.kidMu.Unlock()
		select {
		case <-call:
			return true
		case <-ctx.Done():
			return false
		}
	}
	now := time.Now()
	if !s.lastKidFetch.IsZero() && now.Sub(s.lastKidFetch) < s.cooldown() {
		s.kidMu.Unlock()
		return false
	}
	call := make(chan struct{})
	s.kidCall, s.lastKidFetch = call, now
	s.kidMu.Unlock()

	// Shared by the waiters: not cancelled with the first caller's request.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultHTTPTimeout)
	_ = s.Refresh(rctx)
	cancel()

	s.kidMu.Lock()
	s.kidCall = nil
	s.kidMu.Unlock()
	close(call)
	return true
}
