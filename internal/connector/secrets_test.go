package connector

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestLiteralSecrets(t *testing.T) {
	tests := []struct {
		name   string
		typ    string
		config string
		want   []string
	}{
		{"github clientSecret", "github", `{"clientID": "a", "clientSecret": "b"}`, []string{"clientSecret"}},
		{"oidc clientSecret", "oidc", `{"issuer": "https://x", "clientSecret": "b"}`, []string{"clientSecret"}},
		{"ldap bindPW", "ldap", `{"bindDN": "cn=a", "bindPW": "pw"}`, []string{"bindPW"}},
		{"keystone password", "keystone", `{"keystonePassword": "pw"}`, []string{"keystonePassword"}},
		{"mockPassword", "mockPassword", `{"username": "u", "password": "p"}`, []string{"password"}},
		{"case-insensitive like Dex", "github", `{"ClientSecret": "b"}`, []string{"clientSecret"}},
		{"absent", "github", `{"clientID": "a"}`, nil},
		{"empty string", "github", `{"clientSecret": ""}`, nil},
		{"null", "ldap", `{"bindPW": null}`, nil},
		{"nil config", "oidc", ``, nil},
		{"type without secrets", "authproxy", `{"userHeader": "X"}`, nil},
		{"unknown type", "nope", `{"clientSecret": "b"}`, nil},
		{"invalid JSON", "github", `{`, nil},
		{"non-string value still literal", "github", `{"clientSecret": 42}`, []string{"clientSecret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(LiteralSecrets(tt.typ, []byte(tt.config))).To(Equal(tt.want))
		})
	}
}
