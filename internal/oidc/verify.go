package oidc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	sigsjson "sigs.k8s.io/json"
)

// Identity is the verified identity carried by a token.
type Identity struct {
	// Subject is the "sub" claim.
	Subject string
	// Username is UsernamePrefix + the UsernameClaim.
	Username string
	// Groups are the GroupsClaim values (a string or an array of strings), each prefixed
	// with GroupsPrefix; nil if the claim is absent.
	Groups []string
	// HasGroupsClaim reports whether the GroupsClaim was present.
	HasGroupsClaim bool
	// Audience is the "aud" claim.
	Audience []string
	// AuthorizedParty is the "azp" claim.
	AuthorizedParty string
	// Expiry is the "exp" claim.
	Expiry time.Time

	payload []byte
}

// Claims decodes all claims of the token. Numbers are json.Number.
func (id *Identity) Claims() (map[string]any, error) {
	return decodeClaims(id.payload)
}

// Verify verifies rawToken: compact JWS with an allowed asymmetric algorithm, issuer,
// signature against the cached JWKS, expiry, audience (any of Config.Audiences), required
// claims and the username claim. Errors are *VerifyError.
func (p *Issuer) Verify(ctx context.Context, rawToken string) (*Identity, error) {
	return p.verifyAndCount(ctx, rawToken, true)
}

// VerifyForAnyAudience is Verify without the audience check, for callers that decide on
// the audience themselves (Identity.Audience). Issuer, expiry, signature and required
// claims are still checked. Errors are *VerifyError.
func (p *Issuer) VerifyForAnyAudience(ctx context.Context, rawToken string) (*Identity, error) {
	return p.verifyAndCount(ctx, rawToken, false)
}

func (p *Issuer) verifyAndCount(ctx context.Context, rawToken string, checkAudience bool) (*Identity, error) {
	id, verr := p.verify(ctx, rawToken, checkAudience)
	if verr != nil {
		verificationsTotal.WithLabelValues(p.name, string(verr.Reason)).Inc()
		return nil, verr
	}
	verificationsTotal.WithLabelValues(p.name, resultOK).Inc()
	return id, nil
}

func (p *Issuer) verify(ctx context.Context, raw string, checkAudience bool) (*Identity, *VerifyError) {
	jws, payload, verr := parseToken(raw)
	if verr != nil {
		return nil, verr
	}
	c, verr := p.readClaims(payload)
	if verr != nil {
		return nil, verr
	}
	if c.iss != p.cfg.IssuerURL {
		return nil, verifyErr(ReasonWrongIssuer, fmt.Sprintf("token issuer %q does not match %q", truncate(c.iss, 256), p.cfg.IssuerURL))
	}
	if p.keys.Load() == nil {
		return nil, verifyErr(ReasonNotReady, "no signing keys have been loaded for issuer "+p.cfg.IssuerURL)
	}
	verified, verr := p.verifySignature(ctx, jws)
	if verr != nil {
		return nil, verr
	}
	if !bytes.Equal(verified, payload) {
		// Not reached for compact JWS, but the claims must come from the verified payload.
		payload = verified
		if c, verr = p.readClaims(payload); verr != nil {
			return nil, verr
		}
		if c.iss != p.cfg.IssuerURL {
			return nil, verifyErr(ReasonWrongIssuer, "token issuer does not match")
		}
	}
	// The registered claims are checked here, from the case-sensitive decoding above: go-oidc's
	// verifier decodes them with encoding/json, which matches "ISS" or "Exp" to iss and exp.
	if verr := c.checkTimes(time.Now()); verr != nil {
		return nil, verr
	}
	if !c.audOK {
		return nil, verifyErr(ReasonNotJWT, "token is malformed: aud is not a string or an array of strings")
	}
	if checkAudience && !slices.ContainsFunc(c.aud, func(a string) bool { return slices.Contains(p.cfg.Audiences, a) }) {
		return nil, verifyErr(ReasonWrongAudience, "token audience does not include any accepted audience")
	}
	for _, rc := range p.cfg.RequiredClaims {
		if verr := checkRequiredClaim(c.all, rc); verr != nil {
			return nil, verr
		}
	}

	id := &Identity{
		Subject:         c.sub,
		Audience:        c.aud,
		Expiry:          c.exp,
		AuthorizedParty: c.azp,
		payload:         payload,
	}
	if c.username == "" {
		return nil, verifyErr(ReasonMissingClaim, fmt.Sprintf("username claim %q is missing or not a non-empty string", p.cfg.UsernameClaim))
	}
	id.Username = p.cfg.UsernamePrefix + c.username
	if c.hasGroups {
		if !c.groupsOK {
			return nil, verifyErr(ReasonMissingClaim, fmt.Sprintf("groups claim %q is not a string or an array of strings", p.cfg.GroupsClaim))
		}
		id.HasGroupsClaim = true
		id.Groups = make([]string, len(c.groups))
		for i, g := range c.groups {
			id.Groups[i] = p.cfg.GroupsPrefix + g
		}
	}
	return id, nil
}

// notBeforeLeeway is the clock skew allowed on nbf (go-oidc's, and other OIDC libraries').
const notBeforeLeeway = 5 * time.Minute

// claimValues are the claims Verify reads. Claim names are matched exactly, as JWT requires
// (RFC 7519 §10.1 names are case-sensitive): "ISS" or "Sub" are other claims.
type claimValues struct {
	iss, azp, sub, username string
	aud                     []string
	audOK                   bool // aud absent, a string, or an array of strings
	exp, nbf                time.Time
	hasExp, expOK           bool
	hasNbf, nbfOK           bool
	groups                  []string
	hasGroups, groupsOK     bool
	all                     map[string]any // only with required claims or a non-default mapping
}

// checkTimes checks exp (required, in the future) and nbf (if present, not after now plus the
// leeway).
func (c *claimValues) checkTimes(now time.Time) *VerifyError {
	switch {
	case !c.hasExp:
		return verifyErr(ReasonExpired, "token has no exp claim")
	case !c.expOK:
		return verifyErr(ReasonNotJWT, "token is malformed: exp is not a number")
	case !now.Before(c.exp):
		return verifyErr(ReasonExpired, "token expired at "+c.exp.UTC().Format(time.RFC3339))
	case c.hasNbf && !c.nbfOK:
		return verifyErr(ReasonNotJWT, "token is malformed: nbf is not a number")
	case c.hasNbf && now.Add(notBeforeLeeway).Before(c.nbf):
		return verifyErr(ReasonExpired, "token is not valid yet (nbf)")
	}
	return nil
}

// defaultClaims decodes the claims of the default mapping (username "sub", groups "groups")
// without building a map of every claim: the registry's hot path.
type defaultClaims struct {
	Iss    any             `json:"iss"`
	Azp    any             `json:"azp"`
	Sub    any             `json:"sub"`
	Aud    any             `json:"aud"`
	Exp    any             `json:"exp"`
	Nbf    any             `json:"nbf"`
	Groups json.RawMessage `json:"groups"`
}

// readClaims decodes what Verify needs from the payload: into a small struct for the default
// mapping, into a map of every claim when the provider maps other claims or requires some. Both
// match claim names case-sensitively.
func (p *Issuer) readClaims(payload []byte) (claimValues, *VerifyError) {
	var c claimValues
	notJSON := verifyErr(ReasonNotJWT, "token payload is not a JSON object")
	if p.cfg.UsernameClaim == "sub" && p.cfg.GroupsClaim == "groups" && len(p.cfg.RequiredClaims) == 0 {
		var d defaultClaims
		if len(payload) == 0 || payload[0] != '{' {
			return c, notJSON
		}
		// Case-sensitive, like the map: "Sub" or "GROUPS" are other claims, not these.
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(payload, &d); err != nil {
			return c, notJSON
		}
		c.iss, _ = d.Iss.(string)
		c.azp, _ = d.Azp.(string)
		c.sub, _ = d.Sub.(string)
		c.username = c.sub
		c.setRegistered(d.Aud, d.Exp, d.Nbf)
		if len(d.Groups) > 0 && string(d.Groups) != "null" {
			c.hasGroups = true
			var one string
			if err := json.Unmarshal(d.Groups, &c.groups); err == nil {
				c.groupsOK = true
			} else if err := json.Unmarshal(d.Groups, &one); err == nil {
				c.groups, c.groupsOK = []string{one}, true
			}
		}
		return c, nil
	}
	all, err := decodeClaims(payload)
	if err != nil {
		return c, notJSON
	}
	c.all = all
	c.iss, _ = all["iss"].(string)
	c.azp, _ = all["azp"].(string)
	c.sub, _ = all["sub"].(string)
	c.username, _ = all[p.cfg.UsernameClaim].(string)
	c.setRegistered(all["aud"], all["exp"], all["nbf"])
	if v, present := all[p.cfg.GroupsClaim]; present && v != nil {
		c.hasGroups = true
		c.groups, c.groupsOK = stringOrStrings(v)
	}
	return c, nil
}

// setRegistered records aud, exp and nbf as decoded (nil when absent).
func (c *claimValues) setRegistered(aud, exp, nbf any) {
	c.audOK = aud == nil
	if aud != nil {
		c.aud, c.audOK = stringOrStrings(aud)
	}
	c.hasExp = exp != nil
	c.exp, c.expOK = numericDate(exp)
	c.hasNbf = nbf != nil
	c.nbf, c.nbfOK = numericDate(nbf)
}

// maxNumericDate bounds NumericDates (seconds) so that huge values cannot overflow time
// arithmetic (year ~36812).
const maxNumericDate = 1 << 40

// numericDate decodes a JWT NumericDate (seconds since the epoch, possibly fractional) as decoded
// by encoding/json with UseNumber (json.Number) or by sigs.k8s.io/json (int64, float64). ok is
// false for anything else, or for a value outside (-2^40, 2^40).
func numericDate(v any) (time.Time, bool) {
	var f float64
	switch n := v.(type) {
	case int64:
		if n <= -maxNumericDate || n >= maxNumericDate {
			return time.Time{}, false
		}
		return time.Unix(n, 0), true
	case float64:
		f = n
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return numericDate(i)
		}
		var err error
		if f, err = n.Float64(); err != nil {
			return time.Time{}, false
		}
	default:
		return time.Time{}, false
	}
	if math.IsNaN(f) || f <= -maxNumericDate || f >= maxNumericDate {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func checkRequiredClaim(claims map[string]any, rc RequiredClaim) *VerifyError {
	v, ok := claims[rc.Name]
	if !ok || v == nil {
		return verifyErr(ReasonMissingClaim, fmt.Sprintf("required claim %q is missing", rc.Name))
	}
	if rc.Value == "" {
		return nil
	}
	s, isString := v.(string)
	if !isString {
		s = fmt.Sprint(v)
	}
	if s != rc.Value {
		return verifyErr(ReasonMissingClaim, fmt.Sprintf("required claim %q does not have the required value", rc.Name))
	}
	return nil
}

// stringOrStrings accepts a JSON string or an array of strings.
func stringOrStrings(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		return []string{t}, true
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// parseToken parses a compact JWS once (go-jose: header, payload and signature) with an allowed
// algorithm; the key set reuses the result. When parsing fails it says why.
func parseToken(raw string) (*jose.JSONWebSignature, []byte, *VerifyError) {
	jws, err := jose.ParseSignedCompact(raw, allowedAlgs)
	if err == nil && len(jws.Signatures) == 1 {
		return jws, jws.UnsafePayloadWithoutVerification(), nil
	}
	header, payload, ok := splitJWT(raw)
	if !ok {
		return nil, nil, verifyErr(ReasonNotJWT, "token is not a compact JWS")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if !isJSONObject(header) || sigsjson.UnmarshalCaseSensitivePreserveInts(header, &hdr) != nil {
		return nil, nil, verifyErr(ReasonNotJWT, "token header is not a JSON object")
	}
	if _, err := decodeClaims(payload); err != nil {
		return nil, nil, verifyErr(ReasonNotJWT, "token payload is not a JSON object")
	}
	if !isAllowedAlg(hdr.Alg) {
		return nil, nil, verifyErr(ReasonUnsupportedAlg, fmt.Sprintf("signing algorithm %q is not allowed: only asymmetric algorithms are accepted", truncate(hdr.Alg, 32)))
	}
	return nil, nil, verifyErr(ReasonNotJWT, "token is not a well-formed JWS")
}

// splitJWT decodes the header and payload of a compact JWS ("h.p.s") without verifying it.
func splitJWT(raw string) (header, payload []byte, ok bool) {
	h, rest, found := strings.Cut(raw, ".")
	if !found {
		return nil, nil, false
	}
	pl, sig, found := strings.Cut(rest, ".")
	if !found || strings.Contains(sig, ".") || h == "" || pl == "" {
		return nil, nil, false
	}
	header, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil, nil, false
	}
	payload, err = base64.RawURLEncoding.DecodeString(pl)
	if err != nil {
		return nil, nil, false
	}
	return header, payload, true
}

func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	if claims == nil {
		return nil, errors.New("payload is null")
	}
	if dec.More() {
		return nil, errors.New("trailing data after payload")
	}
	return claims, nil
}

// UnverifiedIssuer returns the "iss" claim of a JWT without verifying the token, to pick
// the provider that should verify it. It returns "", false if raw is not a JWT.
func UnverifiedIssuer(raw string) (string, bool) {
	_, payload, ok := splitJWT(raw)
	if !ok || !isJSONObject(payload) {
		return "", false
	}
	var claims struct {
		Iss any `json:"iss"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(payload, &claims); err != nil {
		return "", false
	}
	iss, _ := claims.Iss.(string)
	return iss, true
}

// Unverified is what a JWT says about itself before any verification: only for routing a token
// (to a verifier, or to Kubernetes) and for bounding how long an answer about it is cached, never
// for trusting it. Claim names are matched exactly: "ISS" is not "iss".
type Unverified struct {
	// Issuer is the "iss" claim ("" when absent or not a string).
	Issuer string
	// Expiry is the "exp" claim (zero when absent or not a positive number).
	Expiry time.Time
}

// ParseUnverified decodes the header and the claims of a compact JWS without verifying it. ok
// is false unless raw has three dot-separated base64url parts whose header is a JSON object
// naming an algorithm and whose payload is a JSON object. Names are matched case-sensitively,
// as JWT requires: a token carrying "iss" and "ISS" has the issuer of "iss".
func ParseUnverified(raw string) (Unverified, bool) {
	header, payload, ok := splitJWT(raw)
	if !ok {
		return Unverified{}, false
	}
	var hdr struct {
		Alg any `json:"alg"`
	}
	if !isJSONObject(header) || sigsjson.UnmarshalCaseSensitivePreserveInts(header, &hdr) != nil {
		return Unverified{}, false
	}
	if alg, _ := hdr.Alg.(string); alg == "" {
		return Unverified{}, false
	}
	var claims struct {
		Iss any `json:"iss"`
		Exp any `json:"exp"`
	}
	if !isJSONObject(payload) || sigsjson.UnmarshalCaseSensitivePreserveInts(payload, &claims) != nil {
		return Unverified{}, false
	}
	var u Unverified
	u.Issuer, _ = claims.Iss.(string)
	if exp, ok := numericDate(claims.Exp); ok && exp.Unix() > 0 {
		u.Expiry = exp
	}
	return u, true
}

// isJSONObject reports whether b starts (after white space) with '{'.
func isJSONObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// DexSubject decodes a "sub" claim of Dex: the base64url (unpadded) protobuf of
// IDTokenSubject{user_id = 1, conn_id = 2}. ok is false when sub is not such an encoding. Dex
// issues a subject without a connector (connID == "") only to the client_credentials grant, where
// userID is the client id (server/grants/clientcredentials.go); a user's subject always names the
// connector the user logged in through.
func DexSubject(sub string) (userID, connID string, ok bool) {
	if sub == "" {
		return "", "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(sub)
	if err != nil {
		return "", "", false
	}
	var seen [3]bool
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return "", "", false
		}
		b = b[n:]
		field, wireType := tag>>3, tag&7
		switch wireType {
		case 0: // varint
			if _, n = binary.Uvarint(b); n <= 0 {
				return "", "", false
			}
			b = b[n:]
		case 1: // fixed64
			if len(b) < 8 {
				return "", "", false
			}
			b = b[8:]
		case 5: // fixed32
			if len(b) < 4 {
				return "", "", false
			}
			b = b[4:]
		case 2: // length-delimited
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return "", "", false
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			if field == 1 || field == 2 {
				if seen[field] || !utf8.Valid(v) {
					return "", "", false
				}
				seen[field] = true
				if field == 1 {
					userID = string(v)
				} else {
					connID = string(v)
				}
			}
		default:
			return "", "", false
		}
		if field == 0 || ((field == 1 || field == 2) && wireType != 2) {
			return "", "", false
		}
	}
	return userID, connID, true
}
