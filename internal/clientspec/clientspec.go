// Package clientspec turns a DexStaticClient spec into the Dex client it stands for, and decides
// what, if anything, must change in Dex. It is pure logic: no I/O.
package clientspec

import (
	"slices"
	"strconv"
	"strings"

	api "github.com/dexidp/dex/api/v2"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// RedirectURIs is the effective redirect URI list: spec.redirectURIs plus
// http://localhost:<port><path> for every port of spec.loopbackRedirect, sorted, de-duplicated.
// Callers Check the spec first: for a spec Check refuses, RedirectURIs returns nil rather than
// build what the bounds forbid.
func RedirectURIs(spec *dexv1.DexStaticClientSpec) []string {
	if Check(spec) != nil {
		return nil
	}
	n := len(spec.RedirectURIs)
	lr := spec.LoopbackRedirect
	if lr != nil {
		n += int(lr.Ports[1]-lr.Ports[0]) + 1
	}
	out := make([]string, 0, n)
	out = append(out, spec.RedirectURIs...)
	if lr != nil {
		path := lr.Path
		if path == "" {
			path = DefaultLoopbackPath
		}
		for p := lr.Ports[0]; p <= lr.Ports[1]; p++ {
			out = append(out, loopbackPrefix+strconv.Itoa(int(p))+path)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Desired is the Dex client for a DexStaticClient with the given id and secret.
func Desired(c *dexv1.DexStaticClient, id, secret string) *api.Client {
	name := c.Spec.DisplayName
	if name == "" {
		name = id
	}
	peers := slices.Clone(c.Spec.TrustedPeers)
	slices.Sort(peers)
	return &api.Client{
		Id:           id,
		Secret:       secret,
		RedirectUris: RedirectURIs(&c.Spec),
		TrustedPeers: peers,
		Public:       c.Spec.Public,
		Name:         name,
		LogoUrl:      c.Spec.LogoURL,
	}
}

// Action is what must be done in Dex to make the actual client the desired one.
type Action int

const (
	// None: Dex already holds the desired client.
	None Action = iota
	// Create: the client is missing.
	Create
	// Update: UpdateClient can make the change.
	Update
	// Recreate: delete and create, because Dex cannot update the secret or the public flag, and
	// treats empty lists and strings in UpdateClient as "no change".
	Recreate
)

func (a Action) String() string {
	return [...]string{"None", "Create", "Update", "Recreate"}[a]
}

// Plan compares the actual client in Dex (nil when missing) with the desired one. The reason
// says which fields differ (never their values).
func Plan(actual, desired *api.Client) (Action, string) {
	if actual == nil {
		return Create, "client missing in Dex"
	}
	var recreate, update []string
	if actual.GetPublic() != desired.GetPublic() {
		recreate = append(recreate, "public")
	}
	if !desired.GetPublic() && actual.GetSecret() != desired.GetSecret() {
		recreate = append(recreate, "secret")
	}
	field := func(name string, differs, cannotClear bool) {
		if !differs {
			return
		}
		if cannotClear {
			recreate = append(recreate, name)
		} else {
			update = append(update, name)
		}
	}
	field("redirectURIs", !sameSet(actual.GetRedirectUris(), desired.GetRedirectUris()), len(desired.GetRedirectUris()) == 0)
	field("trustedPeers", !sameSet(actual.GetTrustedPeers(), desired.GetTrustedPeers()), len(desired.GetTrustedPeers()) == 0)
	field("name", actual.GetName() != desired.GetName(), desired.GetName() == "")
	field("logoUrl", actual.GetLogoUrl() != desired.GetLogoUrl(), desired.GetLogoUrl() == "")
	switch {
	case len(recreate) > 0:
		return Recreate, strings.Join(append(recreate, update...), ", ") + " differ"
	case len(update) > 0:
		return Update, strings.Join(update, ", ") + " differ"
	}
	return None, ""
}

// UpdateRequest is the UpdateClient request that sets every updatable field to desired.
func UpdateRequest(desired *api.Client) *api.UpdateClientReq {
	return &api.UpdateClientReq{
		Id:           desired.GetId(),
		RedirectUris: desired.GetRedirectUris(),
		TrustedPeers: desired.GetTrustedPeers(),
		Name:         desired.GetName(),
		LogoUrl:      desired.GetLogoUrl(),
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
