// Package connector checks Dex connector configurations against the config
// types of the Dex version the operator ships with, before they are sent to
// Dex through its gRPC API.
//
// Dex stores whatever JSON it is given for a connector and only decodes it
// when the connector is first used, so a typo in a field name or a value of
// the wrong JSON type would otherwise surface only as a failed login. Validate
// decodes the config strictly into Dex's own Go types (imported from the
// individual github.com/dexidp/dex/connector/... packages, never from Dex's
// server package, which would pull in cgo through sqlite).
package connector

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dexidp/dex/connector/atlassiancrowd"
	"github.com/dexidp/dex/connector/authproxy"
	"github.com/dexidp/dex/connector/bitbucketcloud"
	"github.com/dexidp/dex/connector/gitea"
	"github.com/dexidp/dex/connector/github"
	"github.com/dexidp/dex/connector/gitlab"
	"github.com/dexidp/dex/connector/google"
	"github.com/dexidp/dex/connector/keystone"
	"github.com/dexidp/dex/connector/ldap"
	"github.com/dexidp/dex/connector/linkedin"
	"github.com/dexidp/dex/connector/microsoft"
	"github.com/dexidp/dex/connector/mock"
	"github.com/dexidp/dex/connector/oauth"
	"github.com/dexidp/dex/connector/oidc"
	"github.com/dexidp/dex/connector/openshift"
	"github.com/dexidp/dex/connector/saml"
)

// connectorType describes one Dex connector type: how to get a fresh value of
// its config struct (as Dex's server.ConnectorsConfig does) and which fields
// of that struct hold secrets.
type connectorType struct {
	name      string
	newConfig func() any
	// secrets are dot-separated JSON paths, spelled as Dex's json tags.
	secrets []string
}

// clientSecret is the secret of every OAuth2-style connector.
var clientSecret = []string{"clientSecret"}

// connectorTypes mirrors the ConnectorsConfig map of Dex v2.45.1
// (server/server.go), in the order of Types. The deprecated alias
// "samlExperimental" is deliberately left out.
var connectorTypes = []connectorType{
	{"github", func() any { return new(github.Config) }, clientSecret},
	{"gitlab", func() any { return new(gitlab.Config) }, clientSecret},
	{"microsoft", func() any { return new(microsoft.Config) }, clientSecret},
	{"oidc", func() any { return new(oidc.Config) }, clientSecret},
	{"google", func() any { return new(google.Config) }, clientSecret},
	{"ldap", func() any { return new(ldap.Config) }, []string{"bindPW"}},
	{"saml", func() any { return new(saml.Config) }, nil},
	{"oauth", func() any { return new(oauth.Config) }, clientSecret},
	{"bitbucket-cloud", func() any { return new(bitbucketcloud.Config) }, clientSecret},
	{"gitea", func() any { return new(gitea.Config) }, clientSecret},
	{"openshift", func() any { return new(openshift.Config) }, clientSecret},
	{"keystone", func() any { return new(keystone.Config) }, []string{"keystonePassword"}},
	// Crowd calls it the application password; Dex names the field clientSecret.
	{"atlassian-crowd", func() any { return new(atlassiancrowd.Config) }, clientSecret},
	{"authproxy", func() any { return new(authproxy.Config) }, nil},
	{"linkedin", func() any { return new(linkedin.Config) }, clientSecret},
	{"mockCallback", func() any { return new(mock.CallbackConfig) }, nil},
	{"mockPassword", func() any { return new(mock.PasswordConfig) }, []string{"password"}},
}

// Types lists the supported connector types, in the same spelling as Dex's
// config `type`.
var Types = func() []string {
	names := make([]string, len(connectorTypes))
	for i, ct := range connectorTypes {
		names[i] = ct.name
	}
	return names
}()

func lookupType(typ string) (connectorType, bool) {
	for _, ct := range connectorTypes {
		if ct.name == typ {
			return ct, true
		}
	}
	return connectorType{}, false
}

// unknownTypeError is the FieldError returned for a type Dex does not know.
func unknownTypeError(typ string) FieldError {
	msg := fmt.Sprintf("unknown connector type %q; supported types are: %s", typ, strings.Join(Types, ", "))
	if s := suggest(typ, Types); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return FieldError{Path: "", Message: msg}
}

// FieldError is one problem, with a path relative to the connector config
// (e.g. "clientID", "userSearch.baseDN", "orgs[0].teams") and a message that
// says how to fix it. An empty Path means the config (or type) as a whole.
type FieldError struct{ Path, Message string }

// Error returns "<path>: <message>", or just the message when Path is empty.
func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// SecretFields returns the secret-bearing field paths of a type (for docs and
// messages). It returns nil for types without secrets and for unknown types.
func SecretFields(typ string) []string {
	ct, ok := lookupType(typ)
	if !ok {
		return nil
	}
	return slices.Clone(ct.secrets)
}
