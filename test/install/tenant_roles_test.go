package install

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
)

// Both installs ship the tenant roles: dexterity-tenant-edit aggregated into admin and edit
// (DexStaticClient, GroupBinding, Module, Provider; no status, no DexConnector, OIDCProvider or
// claim), dexterity-tenant-view into view.
func TestTenantRoles(t *testing.T) {
	g := NewWithT(t)
	byName := map[string]*rbacv1.ClusterRole{}
	for _, o := range ofKind(render(t, "default"), "ClusterRole") {
		r := &rbacv1.ClusterRole{}
		convert(t, o, r)
		byName[r.Name] = r
	}
	edit, view := byName["dexterity-tenant-edit"], byName["dexterity-tenant-view"]
	g.Expect(edit).NotTo(BeNil(), "config/default renders dexterity-tenant-edit")
	g.Expect(view).NotTo(BeNil(), "config/default renders dexterity-tenant-view")
	g.Expect(edit.Labels).To(And(HaveKeyWithValue("rbac.authorization.k8s.io/aggregate-to-admin", "true"), HaveKeyWithValue("rbac.authorization.k8s.io/aggregate-to-edit", "true")))
	g.Expect(edit.Labels).NotTo(HaveKey("rbac.authorization.k8s.io/aggregate-to-view"))
	g.Expect(view.Labels).To(HaveKeyWithValue("rbac.authorization.k8s.io/aggregate-to-view", "true"))
	for _, tc := range []struct {
		rules            []rbacv1.PolicyRule
		group, res, verb string
		allowed          bool
	}{
		{edit.Rules, "dexterity.dev", "dexstaticclients", "create", true},
		{edit.Rules, "dexterity.dev", "groupbindings", "update", true},
		{edit.Rules, "dexterity.dev", "modules", "delete", true},
		{edit.Rules, "dexterity.dev", "providers", "patch", true},
		{edit.Rules, "dexterity.dev", "dexstaticclients/status", "patch", false},
		{edit.Rules, "dexterity.dev", "dexconnectors", "create", false},
		{edit.Rules, "dexterity.dev", "oidcproviders", "create", false},
		{edit.Rules, "dexterity.dev", "dexes", "create", false},
		{edit.Rules, "dex.coreos.com", "oauth2clients", "create", false},
		{view.Rules, "dexterity.dev", "dexes", "list", false},
		{edit.Rules, "claims.dexterity.dev", "dexentryclaims", "create", false},
		{view.Rules, "dexterity.dev", "dexstaticclients", "list", true},
		{view.Rules, "dexterity.dev", "dexstaticclients", "create", false},
		{view.Rules, "dexterity.dev", "dexconnectors", "list", false},
	} {
		g.Expect(allows(tc.rules, tc.group, tc.res, tc.verb, "")).To(Equal(tc.allowed), "%s %s/%s", tc.verb, tc.group, tc.res)
	}
	for _, r := range []*rbacv1.ClusterRole{edit, view} {
		inBundle := &rbacv1.ClusterRole{}
		readFile(t, filepath.Join("bundle", "manifests", r.Name+"_rbac.authorization.k8s.io_v1_clusterrole.yaml"), inBundle)
		g.Expect(inBundle.Labels).To(Equal(r.Labels), "the bundle ships %s as config/default renders it", r.Name)
		g.Expect(inBundle.Rules).To(Equal(r.Rules), "the bundle ships %s as config/default renders it", r.Name)
	}
}
