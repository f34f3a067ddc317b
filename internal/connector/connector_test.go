package connector

import (
	"reflect"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestTypesMatchRegistry(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Types).To(ConsistOf(
		"github", "gitlab", "microsoft", "oidc", "google", "ldap", "saml", "oauth",
		"bitbucket-cloud", "gitea", "openshift", "keystone", "atlassian-crowd",
		"authproxy", "linkedin", "mockCallback", "mockPassword",
	))
	for _, typ := range Types {
		g.Expect(Validate(typ, nil)).To(BeNil(), "empty config for %s", typ)
		g.Expect(Validate(typ, []byte("{}"))).To(BeNil(), "{} for %s", typ)
	}
}

// Every secret field must exist in Dex's config struct as a string.
func TestSecretFieldsExistInDexTypes(t *testing.T) {
	for _, ct := range connectorTypes {
		t.Run(ct.name, func(t *testing.T) {
			g := NewWithT(t)
			for _, path := range ct.secrets {
				typ := reflect.TypeOf(ct.newConfig()).Elem()
				for _, seg := range strings.Split(path, ".") {
					f, ok := matchField(structFields(deref(typ)), seg)
					g.Expect(ok).To(BeTrue(), "%s has no field %q", ct.name, path)
					g.Expect(f.name).To(Equal(seg), "%s: path must use the json tag spelling", ct.name)
					typ = f.typ
				}
				g.Expect(typ.Kind()).To(Equal(reflect.String), "%s.%s", ct.name, path)
			}
		})
	}
}

func TestSecretFields(t *testing.T) {
	g := NewWithT(t)
	g.Expect(SecretFields("github")).To(Equal([]string{"clientSecret"}))
	g.Expect(SecretFields("ldap")).To(Equal([]string{"bindPW"}))
	g.Expect(SecretFields("keystone")).To(Equal([]string{"keystonePassword"}))
	g.Expect(SecretFields("mockPassword")).To(Equal([]string{"password"}))
	g.Expect(SecretFields("authproxy")).To(BeEmpty())
	g.Expect(SecretFields("nope")).To(BeNil())

	// The result is a copy.
	s := SecretFields("github")
	s[0] = "changed"
	g.Expect(SecretFields("github")).To(Equal([]string{"clientSecret"}))
}

func TestFieldErrorString(t *testing.T) {
	g := NewWithT(t)
	g.Expect(FieldError{Path: "userSearch.baseDN", Message: "expected a string"}.Error()).
		To(Equal("userSearch.baseDN: expected a string"))
	g.Expect(FieldError{Message: "bad"}.Error()).To(Equal("bad"))
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		name       string
		candidates []string
		want       string
	}{
		{"clientSecert", []string{"clientID", "clientSecret", "redirectURI"}, "clientSecret"},
		{"clientid", []string{"clientID", "clientSecret"}, "clientID"},
		{"redirectUrl", []string{"clientID", "redirectURI"}, "redirectURI"},
		{"bindPw", []string{"bindDN", "bindPW"}, "bindPW"},
		{"foo", []string{"clientID", "clientSecret"}, ""},
		{"port", []string{"host", "bindDN"}, ""},
		{"bitbucket", Types, "bitbucket-cloud"},
		{"mock", Types, ""},
		{"client", []string{"clientID", "clientSecret"}, ""},
		{"x", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(suggest(tt.name, tt.candidates)).To(Equal(tt.want))
		})
	}
}
