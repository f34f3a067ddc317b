package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InstallTenantRoles creates the tenant ClusterRoles of config/rbac/tenant_roles.yaml (with the
// "dexterity-" prefix config/default gives them) and then does what kube-controller-manager's
// clusterrole-aggregation controller does in a real cluster (envtest has none): it fills the
// rules of every ClusterRole with an aggregationRule (admin, edit, view) from the ClusterRoles
// its selectors match.
func InstallTenantRoles(ctx context.Context, c client.Client) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "tenant_roles.yaml"))
	if err != nil {
		return fmt.Errorf("failed to read tenant roles: %w", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var role rbacv1.ClusterRole
		if err := dec.Decode(&role); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("failed to decode tenant roles: %w", err)
		}
		role.Name = "dexterity-" + role.Name
		if err := c.Create(ctx, &role); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create ClusterRole %s: %w", role.Name, err)
		}
	}
	return AggregateClusterRoles(ctx, c)
}

// AggregateClusterRoles sets the rules of each ClusterRole with an aggregationRule to the union of
// the rules of the ClusterRoles its selectors match, as Kubernetes' aggregation controller does.
func AggregateClusterRoles(ctx context.Context, c client.Client) error {
	var all rbacv1.ClusterRoleList
	if err := c.List(ctx, &all); err != nil {
		return fmt.Errorf("failed to list ClusterRoles: %w", err)
	}
	for i := range all.Items {
		agg := &all.Items[i]
		if agg.AggregationRule == nil {
			continue
		}
		var rules []rbacv1.PolicyRule
		for _, sel := range agg.AggregationRule.ClusterRoleSelectors {
			s, err := metav1.LabelSelectorAsSelector(&sel)
			if err != nil {
				return err
			}
			for j := range all.Items {
				if o := &all.Items[j]; o.Name != agg.Name && s.Matches(labels.Set(o.Labels)) {
					rules = append(rules, o.Rules...)
				}
			}
		}
		agg.Rules = rules
		if err := c.Update(ctx, agg); err != nil {
			return fmt.Errorf("failed to aggregate ClusterRole %s: %w", agg.Name, err)
		}
	}
	return nil
}

// TenantClient returns a client that acts as user (impersonated) after binding that user to
// ClusterRole role (e.g. "edit") in namespace ns: a tenant with that role in its namespace only.
func TenantClient(ctx context.Context, admin client.Client, cfg *rest.Config, ns, user, role string) (client.Client, error) {
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-" + role, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := admin.Create(ctx, rb); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("failed to bind %s to %s in %s: %w", user, role, ns, err)
	}
	tc := rest.CopyConfig(cfg)
	tc.Impersonate = rest.ImpersonationConfig{UserName: user}
	return client.New(tc, client.Options{Scheme: Scheme})
}
