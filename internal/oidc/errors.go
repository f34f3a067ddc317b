package oidc

import "errors"

// Reason classifies why a token was rejected. The values are stable: they are used as
// the result label of dexterity_oidc_verifications_total and may be shown to clients.
type Reason string

// Reasons a token is rejected.
const (
	// ReasonNotJWT: the token is not a compact JWS with a JSON object payload.
	ReasonNotJWT Reason = "not_jwt"
	// ReasonWrongIssuer: the token's "iss" is not the provider's issuer.
	ReasonWrongIssuer Reason = "wrong_issuer"
	// ReasonExpired: the token is expired, has no "exp", or is not yet valid ("nbf").
	ReasonExpired Reason = "expired"
	// ReasonWrongAudience: none of the token's audiences is accepted.
	ReasonWrongAudience Reason = "wrong_audience"
	// ReasonUnknownKey: the token's key id is not in the JWKS, even after a refetch.
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonBadSignature: no key of the JWKS verifies the signature.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonUnsupportedAlg: the token's "alg" is not an allowed asymmetric algorithm.
	ReasonUnsupportedAlg Reason = "unsupported_alg"
	// ReasonMissingClaim: a required, username or groups claim is missing or has a wrong value.
	ReasonMissingClaim Reason = "missing_claim"
	// ReasonNotReady: the provider has never loaded any keys.
	ReasonNotReady Reason = "keys_not_loaded"
)

// VerifyError is the error returned by Issuer.Verify. Detail never contains the token.
type VerifyError struct {
	Reason Reason
	Detail string
}

// Error returns the reason and detail.
func (e *VerifyError) Error() string {
	return string(e.Reason) + ": " + e.Detail
}

// ReasonOf returns the Reason of a *VerifyError in err's chain, or "" if there is none.
func ReasonOf(err error) Reason {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

func verifyErr(reason Reason, detail string) *VerifyError {
	return &VerifyError{Reason: reason, Detail: detail}
}

// truncate bounds attacker-controlled strings quoted in error details.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
