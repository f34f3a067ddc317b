package oidc

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestParseUnverified(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	jwt := func(header, payload string) string { return enc(header) + "." + enc(payload) + ".c2ln" }
	cases := []struct {
		raw    string
		ok     bool
		iss    string
		expiry time.Time
	}{
		{jwt(`{"alg":"RS256"}`, `{"iss":"https://k8s","exp":1800000000}`), true, "https://k8s", time.Unix(1800000000, 0)},
		{jwt(`{"alg":"RS256"}`, `{"iss":"x","exp":1.8e9}`), true, "x", time.Unix(1800000000, 0)},
		{jwt(`{"alg":"RS256"}`, `{"exp":1e300}`), true, "", time.Time{}},
		{jwt(`{"alg":"RS256"}`, `{"exp":"soon","iss":7}`), true, "", time.Time{}},
		{jwt(`{"alg":"RS256"}`, `{"exp":-5}`), true, "", time.Time{}},
		{jwt(`{}`, `{"iss":"x"}`), false, "", time.Time{}},
		{jwt(`{"alg":""}`, `{"iss":"x"}`), false, "", time.Time{}},
		{jwt(`null`, `{"iss":"x"}`), false, "", time.Time{}},
		{jwt(`{"alg":"RS256"}`, `null`), false, "", time.Time{}},
		{jwt(`{"alg":"RS256"}`, `[1]`), false, "", time.Time{}},
		{jwt(`{"alg":"RS256"}`, `{"iss":"x"} {}`), false, "", time.Time{}},
		{"garbage", false, "", time.Time{}},
		{"a.b", false, "", time.Time{}},
		{"a.b.c.d", false, "", time.Time{}},
	}
	for _, c := range cases {
		u, ok := ParseUnverified(c.raw)
		if ok != c.ok || u.Issuer != c.iss || !u.Expiry.Equal(c.expiry) {
			t.Errorf("ParseUnverified(%q) = %+v, %v; want iss %q, exp %v, %v", c.raw, u, ok, c.iss, c.expiry, c.ok)
		}
	}
}

func TestDexSubject(t *testing.T) {
	// Dex's encoding of ("foo", "bar") (server/tokens/claims_test.go) and of a client_credentials
	// subject, user_id only.
	for sub, want := range map[string][2]string{"CgNmb28SA2Jhcg": {"foo", "bar"}, "CgVyb2JvdA": {"robot", ""}} {
		user, conn, ok := DexSubject(sub)
		if !ok || user != want[0] || conn != want[1] {
			t.Errorf("DexSubject(%q) = %q, %q, %v; want %q, %q", sub, user, conn, ok, want[0], want[1])
		}
	}
	for _, bad := range []string{"", "robot", "CgNmb28SA2Jhcg==", "CgNmb2", "CgNmb28KA2Jhcg", "CAE", "_w", "Cv8"} {
		if user, conn, ok := DexSubject(bad); ok {
			t.Errorf("DexSubject(%q) = %q, %q, true; want false", bad, user, conn)
		}
	}
}
