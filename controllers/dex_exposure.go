package controllers

import (
	"context"
	"fmt"
	"net"
	"os"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dexdeploy"
	"dexterity.dev/dexterity/internal/outcome"
)

// defaultOperatorPodLabels select the operator's pods of the install (config/manager).
var defaultOperatorPodLabels = map[string]string{"control-plane": "controller-manager"}

// serviceAccountNamespaceFile holds the namespace of an in-cluster pod.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// operatorPeer is how a Dex's NetworkPolicy recognises the operator's pods.
func (r *DexReconciler) operatorPeer() dexdeploy.OperatorPeer {
	p := dexdeploy.OperatorPeer{Namespace: r.OperatorNamespace, Labels: r.OperatorPodLabels}
	if p.Namespace == "" {
		p.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if p.Namespace == "" {
		if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
			p.Namespace = strings.TrimSpace(string(b))
		}
	}
	if len(p.Labels) == 0 {
		p.Labels = defaultOperatorPodLabels
	}
	return p
}

// validateDexSpec refuses, naming the field, what admission cannot check alone and the API server
// would refuse only when the rendered objects are written (which would retry forever instead of
// stalling): label and annotation syntax, environment variables the operator sets, mounts of
// volumes that are not there, an issuer host an Ingress or an HTTPRoute cannot route.
func validateDexSpec(d *dexv1.Dex) error {
	spec := field.NewPath("spec")
	errs := metavalidation.ValidateLabels(d.Spec.PodLabels, spec.Child("podLabels"))
	errs = append(errs, apivalidation.ValidateAnnotations(d.Spec.ServiceAccountAnnotations, spec.Child("serviceAccountAnnotations"))...)
	if d.Spec.Ingress != nil {
		errs = append(errs, apivalidation.ValidateAnnotations(d.Spec.Ingress.Annotations, spec.Child("ingress", "annotations"))...)
	}
	if d.Spec.HTTPRoute != nil {
		errs = append(errs, apivalidation.ValidateAnnotations(d.Spec.HTTPRoute.Annotations, spec.Child("httpRoute", "annotations"))...)
	}
	for i, e := range d.Spec.Env {
		if dexdeploy.ReservedEnvName(e.Name) {
			errs = append(errs, field.Forbidden(spec.Child("env").Index(i).Child("name"),
				fmt.Sprintf("%s is set by the operator (Dex's connector API, env expansion, storage and password settings); remove it, or use another name", e.Name)))
		}
	}
	for k := range d.Spec.PodLabels {
		if _, ok := defaultOperatorPodLabels[k]; ok {
			errs = append(errs, field.Forbidden(spec.Child("podLabels").Key(k),
				"the operator's own pods are selected by this label (its Services and the gRPC NetworkPolicy of every Dex): remove it"))
		}
	}
	volumes := map[string]bool{}
	for i, v := range d.Spec.Volumes {
		volumes[v.Name] = true
		if t := volumeType(v); t != "" {
			errs = append(errs, field.Forbidden(spec.Child("volumes").Index(i),
				fmt.Sprintf("%s volumes are not allowed (the operator creates the pod with its own rights): use configMap, secret, emptyDir, projected, downwardAPI, csi, ephemeral or persistentVolumeClaim, as the restricted Pod Security Standard allows", t)))
		}
	}
	for i, m := range d.Spec.VolumeMounts {
		if !volumes[m.Name] {
			errs = append(errs, field.NotFound(spec.Child("volumeMounts").Index(i).Child("name"), m.Name))
		}
		if p := path.Clean("/" + m.MountPath); reservedMountPath(p) {
			errs = append(errs, field.Forbidden(spec.Child("volumeMounts").Index(i).Child("mountPath"),
				fmt.Sprintf("%s is Dex's own (its config, data and certificates under /etc/dex and /var/lib/dex) or the image's programs (/, /bin, /sbin, /usr, /lib): mount somewhere else, e.g. /etc/dex-extra", p)))
		}
	}
	if rip := d.Spec.Web; rip != nil && rip.ClientRemoteIP != nil && rip.ClientRemoteIP.Header != "" && len(rip.ClientRemoteIP.TrustedProxies) == 0 {
		errs = append(errs, field.Required(spec.Child("web", "clientRemoteIP", "trustedProxies"),
			"with a header and no trusted proxies Dex would believe the header from any client (its logs and rate limits by address would be spoofed): list the proxies' CIDRs"))
	}
	if d.Spec.Ingress != nil {
		for k := range d.Spec.Ingress.Annotations {
			if strings.HasSuffix(k, "-snippet") {
				errs = append(errs, field.Forbidden(spec.Child("ingress", "annotations").Key(k),
					"configuration snippets run in the shared ingress controller (the operator creates the Ingress with its own rights): configure the controller, not this Ingress"))
			}
		}
	}
	if d.Spec.Ingress != nil || d.Spec.HTTPRoute != nil {
		host, _ := dexdeploy.IssuerHostPath(d)
		switch {
		case net.ParseIP(strings.Trim(host, "[]")) != nil:
			errs = append(errs, field.Invalid(spec.Child("issuer"), d.Spec.Issuer,
				"an Ingress or HTTPRoute routes a host name, not an IP address: give the issuer a host name, or remove spec.ingress and spec.httpRoute"))
		case strings.Contains(host, "*"):
			errs = append(errs, field.Invalid(spec.Child("issuer"), d.Spec.Issuer,
				"a wildcard host would route every matching host to this Dex: give the issuer one host name"))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return outcome.Stall(dexv1.ReasonInvalidSpec, errs.ToAggregate().Error())
}

// volumeType names the type of a volume the restricted Pod Security Standard does not allow
// (hostPath, gitRepo, nfs, ...), or "" for an allowed one.
func volumeType(v corev1.Volume) string {
	src := v.VolumeSource
	switch {
	case src.ConfigMap != nil, src.Secret != nil, src.EmptyDir != nil, src.Projected != nil, src.DownwardAPI != nil,
		src.CSI != nil, src.Ephemeral != nil, src.PersistentVolumeClaim != nil:
		return ""
	case src.HostPath != nil:
		return "hostPath"
	case src.GitRepo != nil:
		return "gitRepo"
	}
	return "this type of"
}

// reservedMountPath reports whether a (cleaned) mount path is at or under Dex's own directories,
// or over the image's programs.
func reservedMountPath(p string) bool {
	for _, dir := range []string{"/etc/dex", "/var/lib/dex", "/bin", "/sbin", "/usr", "/lib", "/lib64"} {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return p == "/" || p == "/etc" || p == "/var" || p == "/var/lib"
}

// ensureNetworkPolicy keeps the NetworkPolicy of the Dex pods (spec.networkPolicy.enabled,
// default true), and deletes it when disabled.
func (r *DexReconciler) ensureNetworkPolicy(ctx context.Context, d *dexv1.Dex) error {
	want := dexdeploy.NetworkPolicy(d, r.operatorPeer())
	if !dexdeploy.NetworkPolicyEnabled(d) {
		return r.deleteOwned(ctx, d, &networkingv1.NetworkPolicy{ObjectMeta: want.ObjectMeta})
	}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
	return r.ensure(ctx, d, "NetworkPolicy", np, want.Labels, dexdeploy.Hash(want.Spec), func() { np.Spec = want.Spec })
}

// ensureExposure keeps the Ingress and the HTTPRoute the Dex asks for (deleting those it no longer
// asks for) and sets Exposed. A cluster without the Gateway API gets no HTTPRoute and
// Exposed=False, GatewayAPIMissing; the check is repeated at every reconcile (and resync).
func (r *DexReconciler) ensureExposure(ctx context.Context, d *dexv1.Dex) error {
	ing := dexdeploy.Ingress(d)
	if d.Spec.Ingress == nil {
		if err := r.deleteOwned(ctx, d, &networkingv1.Ingress{ObjectMeta: ing.ObjectMeta}); err != nil {
			return err
		}
	} else {
		got := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ing.Namespace, Name: ing.Name}}
		if err := r.ensure(ctx, d, "Ingress", got, ing.Labels, dexdeploy.Hash(ing.Spec, ing.Annotations), func() {
			got.Spec = ing.Spec
			for k, v := range ing.Annotations {
				metav1.SetMetaDataAnnotation(&got.ObjectMeta, k, v)
			}
		}); err != nil {
			return err
		}
	}
	if d.Spec.HTTPRoute == nil {
		if err := r.deleteHTTPRoute(ctx, d); err != nil {
			return err
		}
		setCondition(d, dexv1.ConditionExposed, metav1.ConditionTrue, dexv1.ReasonRoutesApplied, "")
		return nil
	}
	installed, err := r.httpRouteInstalled()
	if err != nil {
		return err
	}
	if !installed {
		// Waits for the cluster's administrator, as a spec error waits for the user; the rest
		// of the Dex is rendered meanwhile.
		stallOn(d, dexv1.ConditionExposed, outcome.Stall(dexv1.ReasonGatewayAPIMissing,
			"spec.httpRoute: the cluster has no Gateway API (no gateway.networking.k8s.io/v1 HTTPRoute); install its CRDs, or remove spec.httpRoute (spec.ingress works without it)"))
		return nil
	}
	want := dexdeploy.HTTPRoute(d)
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(dexdeploy.HTTPRouteGVK)
	got.SetNamespace(want.GetNamespace())
	got.SetName(want.GetName())
	if err := r.ensure(ctx, d, "HTTPRoute", got, want.GetLabels(), dexdeploy.Hash(want.Object["spec"], want.GetAnnotations()), func() {
		got.Object["spec"] = want.Object["spec"]
		for k, v := range want.GetAnnotations() {
			setAnnotation(got, k, v)
		}
	}); err != nil {
		return err
	}
	setCondition(d, dexv1.ConditionExposed, metav1.ConditionTrue, dexv1.ReasonRoutesApplied, "")
	return nil
}

// ensureServiceMonitor keeps the ServiceMonitor spec.serviceMonitor asks for (deleting it when no
// longer asked for) and sets Monitored; without the Prometheus Operator's CRD it sets
// Monitored=False, PrometheusOperatorMissing, and renders nothing (checked again at every reconcile).
func (r *DexReconciler) ensureServiceMonitor(ctx context.Context, d *dexv1.Dex) error {
	want := dexdeploy.ServiceMonitor(d)
	if m := d.Spec.ServiceMonitor; m == nil || !m.Enabled {
		// Only a Dex that has shown Monitored may have one: the others ask nothing of the API
		// server (or of its discovery, where the CRD does not exist).
		if meta.FindStatusCondition(d.Status.Conditions, dexv1.ConditionMonitored) == nil {
			return nil
		}
		if err := r.deleteServiceMonitor(ctx, d); err != nil {
			return err
		}
		removeCondition(d, dexv1.ConditionMonitored)
		return nil
	}
	installed, err := r.kindInstalled(dexdeploy.ServiceMonitorGVK)
	if err != nil {
		return err
	}
	if !installed {
		setCondition(d, dexv1.ConditionMonitored, metav1.ConditionFalse, dexv1.ReasonPrometheusOperatorMissing,
			"spec.serviceMonitor: the cluster has no Prometheus Operator (no monitoring.coreos.com/v1 ServiceMonitor); install it, or scrape the Service's telemetry port another way")
		return nil
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(dexdeploy.ServiceMonitorGVK)
	got.SetNamespace(want.GetNamespace())
	got.SetName(want.GetName())
	if err := r.ensure(ctx, d, "ServiceMonitor", got, want.GetLabels(), dexdeploy.Hash(want.Object["spec"], want.GetLabels()), func() {
		got.Object["spec"] = want.Object["spec"]
	}); err != nil {
		return err
	}
	setCondition(d, dexv1.ConditionMonitored, metav1.ConditionTrue, dexv1.ReasonServiceMonitorApplied, "")
	return nil
}

// deleteServiceMonitor deletes the Dex's ServiceMonitor, if the Prometheus Operator's CRD exists and
// it has one.
func (r *DexReconciler) deleteServiceMonitor(ctx context.Context, d *dexv1.Dex) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(dexdeploy.ServiceMonitorGVK)
	u.SetNamespace(d.Namespace)
	u.SetName(dexdeploy.NamesFor(d).Service)
	if err := r.deleteOwned(ctx, d, u); err != nil && !meta.IsNoMatchError(err) {
		return fmt.Errorf("failed to delete ServiceMonitor %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

// httpRouteInstalled asks the API server's discovery (through the manager's REST mapper, which
// looks again after a miss) whether HTTPRoutes exist.
func (r *DexReconciler) httpRouteInstalled() (bool, error) {
	return r.kindInstalled(dexdeploy.HTTPRouteGVK)
}

// kindInstalled asks the API server's discovery (through the manager's REST mapper, which looks
// again after a miss) whether the kind gvk is served.
func (r *DexReconciler) kindInstalled(gvk schema.GroupVersionKind) (bool, error) {
	_, err := r.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("failed to discover %s: %w", gvk, err)
}

// deleteHTTPRoute deletes the Dex's HTTPRoute, if the Gateway API exists and it has one.
func (r *DexReconciler) deleteHTTPRoute(ctx context.Context, d *dexv1.Dex) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(dexdeploy.HTTPRouteGVK)
	u.SetNamespace(d.Namespace)
	u.SetName(dexdeploy.NamesFor(d).HTTPRoute)
	err := r.deleteOwned(ctx, d, u)
	if meta.IsNoMatchError(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to delete HTTPRoute %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

// gatewayAPIRecheck is how often a Dex whose HTTPRoute waits for the Gateway API looks again.
const gatewayAPIRecheck = time.Minute

// requeueAfter shortens the requeue of a Dex that waits for the Gateway API.
func requeueAfter(d *dexv1.Dex, after time.Duration) time.Duration {
	if c := meta.FindStatusCondition(d.Status.Conditions, dexv1.ConditionExposed); c != nil && c.Reason == dexv1.ReasonGatewayAPIMissing {
		return min(after, gatewayAPIRecheck)
	}
	return after
}
