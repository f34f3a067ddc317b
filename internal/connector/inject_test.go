package connector

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestInject(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		values  map[string]string
		want    string
		wantErr string
	}{
		{"top-level", `{"clientID": "a"}`, map[string]string{"clientSecret": "s"},
			`{"clientID": "a", "clientSecret": "s"}`, ""},
		{"replaces existing", `{"clientSecret": "old"}`, map[string]string{"clientSecret": "new"},
			`{"clientSecret": "new"}`, ""},
		{"nested into existing object", `{"userSearch": {"baseDN": "x"}}`, map[string]string{"userSearch.filter": "(a=b)"},
			`{"userSearch": {"baseDN": "x", "filter": "(a=b)"}}`, ""},
		{"creates intermediate objects", `{}`, map[string]string{"a.b.c": "v"},
			`{"a": {"b": {"c": "v"}}}`, ""},
		{"replaces null on the way", `{"a": null}`, map[string]string{"a.b": "v"},
			`{"a": {"b": "v"}}`, ""},
		{"nil config", ``, map[string]string{"bindPW": "pw"}, `{"bindPW": "pw"}`, ""},
		{"null config", `null`, map[string]string{"bindPW": "pw"}, `{"bindPW": "pw"}`, ""},
		{"no values", `{"x": 1.50}`, nil, `{"x": 1.50}`, ""},
		{"keeps numbers and HTML characters", `{"n": 12345678901234567890, "f": "<a&b>"}`, map[string]string{"s": "<&>"},
			`{"n": 12345678901234567890, "f": "<a&b>", "s": "<&>"}`, ""},
		{"non-object on the way", `{"userSearch": "x"}`, map[string]string{"userSearch.baseDN": "v"},
			"", `cannot set "userSearch.baseDN": "userSearch" is a string in the config, not an object`},
		{"deep non-object on the way", `{"a": {"b": [1]}}`, map[string]string{"a.b.c": "v"},
			"", `"a.b" is a list`},
		{"empty segment", `{}`, map[string]string{"a..b": "v"}, "", `invalid path "a..b"`},
		{"empty path", `{}`, map[string]string{"": "v"}, "", `invalid path ""`},
		{"config not an object", `[1]`, map[string]string{"a": "v"}, "", "must be a JSON object"},
		{"invalid config", `{`, map[string]string{"a": "v"}, "", "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Inject([]byte(tt.config), tt.values)
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(MatchJSON(tt.want))
		})
	}
}

func TestInjectDoesNotMutateInput(t *testing.T) {
	g := NewWithT(t)
	in := []byte(`{"userSearch": {"baseDN": "x"}, "bindDN": "cn=a"}`)
	orig := string(in)
	out, err := Inject(in, map[string]string{"bindPW": "pw", "userSearch.filter": "f"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(in)).To(Equal(orig))
	g.Expect(out).To(MatchJSON(`{"userSearch": {"baseDN": "x", "filter": "f"}, "bindDN": "cn=a", "bindPW": "pw"}`))
}

func TestValidateAfterInject(t *testing.T) {
	tests := []struct {
		typ    string
		config string
		values map[string]string
	}{
		{"github", `{"clientID": "a", "redirectURI": "https://dex/callback"}`, map[string]string{"clientSecret": "s3cr3t"}},
		{"oidc", `{"issuer": "https://idp", "clientID": "a"}`, map[string]string{"clientSecret": "s3cr3t"}},
		{"ldap", `{"host": "ldap:636", "bindDN": "cn=admin", "userSearch": {"baseDN": "ou=people"}}`, map[string]string{"bindPW": "pw"}},
		{"keystone", `{"keystoneHost": "http://k", "keystoneUsername": "admin"}`, map[string]string{"keystonePassword": "pw"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(LiteralSecrets(tt.typ, []byte(tt.config))).To(BeEmpty())
			out, err := Inject([]byte(tt.config), tt.values)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(Validate(tt.typ, out)).To(BeNil())
			g.Expect(LiteralSecrets(tt.typ, out)).To(Equal(SecretFields(tt.typ)))
		})
	}

	// Injecting at a wrong path is caught by Validate, without leaking the value.
	g := NewWithT(t)
	out, err := Inject([]byte(`{"clientID": "a"}`), map[string]string{"clientSecert": "hunter2"})
	g.Expect(err).NotTo(HaveOccurred())
	errs := Validate("github", out)
	g.Expect(errs).To(ConsistOf(FieldError{Path: "clientSecert", Message: `unknown field "clientSecert" in the config; did you mean "clientSecret"?`}))
}
