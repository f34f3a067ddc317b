package connector

import (
	"bytes"
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
)

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		typ    string
		config string
	}{
		{"github", "github", `{
			"clientID": "abc", "clientSecret": "s3cr3t", "redirectURI": "https://dex.example.com/callback",
			"orgs": [{"name": "acme", "teams": ["admins", "devs"]}],
			"loadAllGroups": false, "teamNameField": "slug", "useLoginAsID": true
		}`},
		{"oidc", "oidc", `{
			"issuer": "https://accounts.example.com", "clientID": "a", "clientSecret": "b",
			"redirectURI": "https://dex.example.com/callback",
			"scopes": ["openid", "email"], "insecureSkipVerify": true, "basicAuthUnsupported": null,
			"promptType": "login",
			"providerDiscoveryOverrides": {"tokenURL": "https://x/token"},
			"claimMapping": {"preferred_username": "upn", "email": "mail", "groups": "roles"},
			"claimModifications": {"newGroupFromClaims": [{"claims": ["a", "b"], "delimiter": ":", "clearDelimiter": true}],
				"filterGroupClaims": {"groupsFilter": "^team-"}, "modifyGroupNames": {"prefix": "oidc:"}}
		}`},
		{"ldap", "ldap", `{
			"host": "ldap.example.com:636", "insecureNoSSL": false, "insecureSkipVerify": false,
			"rootCAData": "aGVsbG8=", "bindDN": "cn=admin,dc=example,dc=org", "bindPW": "pw",
			"usernamePrompt": "Email",
			"userSearch": {"baseDN": "ou=People,dc=example,dc=org", "filter": "(objectClass=person)",
				"username": "mail", "idAttr": "DN", "emailAttr": "mail", "nameAttr": "cn", "preferredUsernameAttr": "uid"},
			"groupSearch": {"baseDN": "ou=Groups,dc=example,dc=org", "filter": "(objectClass=groupOfNames)",
				"userMatchers": [{"userAttr": "DN", "groupAttr": "member"}], "nameAttr": "cn"}
		}`},
		{"microsoft", "microsoft", `{
			"clientID": "a", "clientSecret": "b", "redirectURI": "https://dex/callback", "tenant": "organizations",
			"groups": ["g1"], "groupNameFormat": "name", "onlySecurityGroups": true, "scopes": ["user.read"]
		}`},
		{"mockCallback empty object", "mockCallback", `{}`},
		{"mockCallback null", "mockCallback", `null`},
		{"mockCallback nil", "mockCallback", ``},
		{"whitespace only", "github", "  \n"},
		{"keys match case-insensitively like in Dex", "github", `{"ClientID": "a", "clientsecret": "b"}`},
		{"null for any field", "github", `{"orgs": null, "loadAllGroups": null}`},
		{"google untagged fields", "google", `{"clientID": "a", "adminEmail": "x@y", "domainToAdminEmail": {"example.com": "admin@example.com"}}`},
		{"keystone", "keystone", `{"domain": "default", "keystoneHost": "http://k:5000", "keystoneUsername": "admin", "keystonePassword": "p"}`},
		{"authproxy", "authproxy", `{"userHeader": "X-Remote-User", "staticGroups": ["a"]}`},
		{"saml caData base64", "saml", `{"ssoURL": "https://idp/sso", "caData": "aGVs\nbG8=", "usernameAttr": "name"}`},
		{"atlassian-crowd", "atlassian-crowd", `{"baseURL": "https://crowd", "clientID": "app", "clientSecret": "pw", "groups": ["a"]}`},
		{"bitbucket-cloud", "bitbucket-cloud", `{"clientID": "a", "clientSecret": "b", "teams": ["t"], "includeTeamGroups": true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(Validate(tt.typ, []byte(tt.config))).To(BeNil())
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		config  string
		path    string
		message types.GomegaMatcher
	}{
		{"unknown field with suggestion", "github", `{"clientID": "a", "clientSecert": "b"}`,
			"clientSecert", And(ContainSubstring(`unknown field "clientSecert"`), ContainSubstring(`did you mean "clientSecret"?`))},
		{"unknown field without suggestion lists fields", "github", `{"color": "blue"}`,
			"color", And(ContainSubstring(`unknown field "color"`), ContainSubstring("known fields are: clientID, clientSecret"))},
		{"nested unknown field", "ldap", `{"userSearch": {"baseDn": "x", "bseDN": "y"}}`,
			"userSearch.bseDN", ContainSubstring(`did you mean "baseDN"?`)},
		{"unknown field in list element", "github", `{"orgs": [{"name": "a"}, {"name": "b", "team": ["x"]}]}`,
			"orgs[1].team", ContainSubstring(`did you mean "teams"?`)},
		{"mockCallback takes nothing", "mockCallback", `{"foo": 1}`,
			"foo", ContainSubstring("takes no configuration")},
		{"orgs as string", "github", `{"orgs": "x"}`,
			"orgs", And(ContainSubstring("expected a list of objects, got a string"), ContainSubstring("wrap the value in a list"))},
		{"teams element wrong type", "github", `{"orgs": [{"name": "a", "teams": [1]}]}`,
			"orgs[0].teams[0]", ContainSubstring("expected a string, got a number")},
		{"insecureSkipVerify as string", "oidc", `{"insecureSkipVerify": "yes"}`,
			"insecureSkipVerify", And(ContainSubstring("expected a boolean (true or false), got a string"), ContainSubstring("without quotes"))},
		{"string field as number", "ldap", `{"host": 389}`,
			"host", ContainSubstring("expected a string, got a number")},
		{"nested wrong type", "ldap", `{"userSearch": {"baseDN": ["a"]}}`,
			"userSearch.baseDN", ContainSubstring("expected a string, got a list")},
		{"struct as string", "ldap", `{"userSearch": "ou=people"}`,
			"userSearch", ContainSubstring("expected an object, got a string")},
		{"bad base64", "ldap", `{"rootCAData": "-----BEGIN CERTIFICATE-----"}`,
			"rootCAData", And(ContainSubstring("not valid base64"), ContainSubstring("base64-encode the whole PEM text"))},
		{"map value wrong type", "google", `{"domainToAdminEmail": {"example.com": true}}`,
			"domainToAdminEmail.example.com", ContainSubstring("expected a string, got a boolean")},
		{"pointer field wrong type", "oidc", `{"basicAuthUnsupported": "true"}`,
			"basicAuthUnsupported", ContainSubstring("without quotes")},
		{"not an object", "github", `["clientID"]`,
			"", ContainSubstring("must be a JSON object, got a list")},
		{"invalid JSON", "github", `{"clientID": }`,
			"", ContainSubstring("not valid JSON")},
		{"trailing data", "github", `{} {}`,
			"", ContainSubstring("not valid JSON")},
		{"unknown type", "gihub", `{}`,
			"", And(ContainSubstring(`unknown connector type "gihub"`), ContainSubstring("github, gitlab, microsoft"), ContainSubstring(`did you mean "github"?`))},
		{"type names are case-sensitive", "GitHub", `{}`,
			"", ContainSubstring(`did you mean "github"?`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			errs := Validate(tt.typ, []byte(tt.config))
			g.Expect(errs).To(HaveLen(1))
			g.Expect(errs[0].Path).To(Equal(tt.path))
			g.Expect(errs[0].Message).To(tt.message)
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	g := NewWithT(t)
	errs := Validate("ldap", []byte(`{"host": 1, "bindPw2": "x", "startTLS": "no", "userSearch": {"scope": 2}}`))
	paths := make([]string, len(errs))
	for i, e := range errs {
		paths[i] = e.Path
	}
	g.Expect(paths).To(Equal([]string{"bindPw2", "host", "startTLS", "userSearch.scope"}))
}

func TestValidateDoesNotEchoValues(t *testing.T) {
	g := NewWithT(t)
	errs := Validate("github", []byte(`{"loadAllGroups": "hunter2-secret"}`))
	g.Expect(errs).To(HaveLen(1))
	g.Expect(errs[0].Message).NotTo(ContainSubstring("hunter2"))
}

// The walk must agree with a strict encoding/json decode into Dex's types.
func TestValidateAgreesWithStrictDecode(t *testing.T) {
	configs := []string{
		`{"clientID": "a"}`, `{"CLIENTID": "a"}`, `{"orgs": "x"}`, `{"orgs": [{"name": 1}]}`,
		`{"rootCAData": "aGVsbG8="}`, `{"rootCAData": "%%%"}`, `{"rootCAData": [104, 105]}`,
		`{"insecureSkipVerify": "yes"}`, `{"userSearch": {"baseDN": "x"}}`, `{"userSearch": {"nope": 1}}`,
		`{"basicAuthUnsupported": true}`, `{"promptType": 3}`, `{"domainToAdminEmail": {"a": "b"}}`,
		`{"groupSearch": {"userMatchers": [{"userAttr": "uid", "groupAttr": "memberUid"}]}}`,
		`{"staticGroups": ["a"]}`, `{"keystonePassword": "x"}`, `{"password": "x"}`, `{"teams": [true]}`,
		`{"caData": "aGVsbG8="}`, `{"claimMapping": {"email": "mail"}}`, `{"AdminEmail": "a"}`,
	}
	for _, ct := range connectorTypes {
		for _, config := range configs {
			t.Run(ct.name+" "+config, func(t *testing.T) {
				dec := json.NewDecoder(bytes.NewReader([]byte(config)))
				dec.DisallowUnknownFields()
				decodeErr := dec.Decode(ct.newConfig())
				c := &checker{}
				doc, _ := decodeGeneric([]byte(config))
				c.check("", doc, reflectTypeOf(ct.newConfig()))
				walkOK := len(c.errs) == 0
				NewWithT(t).Expect(walkOK).To(Equal(decodeErr == nil), "walk: %v, decode: %v", c.errs, decodeErr)
			})
		}
	}
}
