package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dexdeploy"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/tenancy"
)

// DexFinalizer keeps a Dex until its OIDCProvider is gone (which waits for the clients and
// connectors registered through it) and what it rendered is deleted.
const DexFinalizer = "dexterity.dev/dex-cleanup"

// indexDexSecret indexes Dex objects by the Secrets their spec takes values from.
const indexDexSecret = "dexterity.dev/dex-secret"

// DexReconciler deploys the Dex a Dex object describes and the OIDCProvider that administers it.
type DexReconciler struct {
	client.Client
	Recorder record.EventRecorder
	// Certs is the gRPC certificate lifetime policy (default dexdeploy.DefaultCertPolicy).
	Certs dexdeploy.CertPolicy
	// Now is the clock of certificate rotation (default time.Now).
	Now func() time.Time
	// ResyncPeriod between checks of an unchanged Dex (default 10m).
	ResyncPeriod time.Duration
	// MaxRetryDelay caps the backoff of failed reconciles (default 30s).
	MaxRetryDelay time.Duration
	// OperatorNamespace is the namespace of the operator's pods, which the NetworkPolicy of a Dex
	// admits to its gRPC port (default: $POD_NAMESPACE, then the pod's ServiceAccount namespace;
	// unknown: the operator's pod labels in any namespace).
	OperatorNamespace string
	// OperatorPodLabels select the operator's pods in that namespace (default
	// control-plane: controller-manager, the install's).
	OperatorPodLabels map[string]string
}

// +kubebuilder:rbac:groups=dexterity.dev,resources=dexes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=dexes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=dexes/finalizers,verbs=update
// +kubebuilder:rbac:groups=dexterity.dev,resources=oidcproviders,verbs=create;delete
// +kubebuilder:rbac:groups="",resources=secrets;services;serviceaccounts;persistentvolumeclaims,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses;networkpolicies,verbs=get;list;watch;create;update;delete
// HTTPRoutes are read and written directly (not watched: the CRD may be missing).
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;create;update;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;create;update;delete
// The Role a Dex's kubernetes storage gets can only be granted by a holder of the same rights.
// +kubebuilder:rbac:groups=dex.coreos.com,resources=authcodes;authrequests;oauth2clients;signingkeies;refreshtokens;passwords;offlinesessionses;connectors;devicerequests;devicetokens,verbs=get;list;watch;create;update;patch;delete;deletecollection

// Reconcile renders and applies everything a Dex object describes, then reports its state.
func (r *DexReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	d := &dexv1.Dex{}
	if err := r.Get(ctx, req.NamespacedName, d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := d.DeepCopy()
	res, err := r.reconcile(ctx, d, before)
	return r.statusKind().finish(ctx, d, before, res, err)
}

// statusKind is how a Dex's reconciles end: Ready from ConfigValid, Exposed and Available; a
// transient failure leaves ConfigValid Unknown (the config may well be valid).
func (r *DexReconciler) statusKind() statusKind[*dexv1.Dex] {
	return statusKind[*dexv1.Dex]{client: r.Client, recorder: r.Recorder, summarize: summarizeDex, resync: r.resyncPeriod, transient: metav1.ConditionUnknown}
}

// reconcile is the body of Reconcile: deletion, the finalizer, the rendering (reported on
// ConfigValid), then the Deployment's availability.
func (r *DexReconciler) reconcile(ctx context.Context, d, before *dexv1.Dex) (ctrl.Result, error) {
	if !d.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, d)
	}
	if !controllerutil.ContainsFinalizer(d, DexFinalizer) {
		orig := d.DeepCopy()
		controllerutil.AddFinalizer(d, DexFinalizer)
		// A patch: the cached object lacks what stripUnread dropped.
		if err := r.Patch(ctx, d, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("failed to add the finalizer of Dex %s/%s: %w", d.Namespace, d.Name, err)
		}
		before.Finalizers, before.ResourceVersion = d.Finalizers, d.ResourceVersion
	}
	renewAt, err := r.render(ctx, d)
	if err != nil {
		return ctrl.Result{}, failedOn(dexv1.ConditionConfigValid, err)
	}
	setCondition(d, dexv1.ConditionConfigValid, metav1.ConditionTrue, dexv1.ReasonConfigRendered, "")
	if err := r.reportAvailable(ctx, d); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeueAfter(d, min(time.Until(renewAt)+time.Second, r.resyncPeriod()))}, nil
}

// render applies, in order: certificates, config, identity and RBAC, workload, Service,
// disruption budget, OIDCProvider. It returns when the certificates are next due for renewal.
func (r *DexReconciler) render(ctx context.Context, d *dexv1.Dex) (time.Time, error) {
	names := dexdeploy.NamesFor(d)
	bootstrap, err := r.needsBootstrapConnector(ctx, d)
	if err != nil {
		return time.Time{}, err
	}
	if err := validateDexSpec(d); err != nil {
		return time.Time{}, err
	}
	config, env, err := dexdeploy.Config(d, bootstrap)
	if err != nil {
		var ce *dexdeploy.ConfigError
		switch {
		case errors.As(err, &ce) && ce.Owned:
			return time.Time{}, outcome.Stall(dexv1.ReasonInvalidSpec, ce.Error())
		case errors.As(err, &ce):
			return time.Time{}, outcome.Stall(dexv1.ReasonInvalidConfig, ce.Error())
		}
		return time.Time{}, outcome.Stall(dexv1.ReasonInvalidSpec, err.Error())
	}
	refs, err := r.referencedSecrets(ctx, d)
	if err != nil {
		return time.Time{}, err
	}
	versions := refs.versions
	renewAt, serverCert, err := r.certificates(ctx, d, names)
	if err != nil {
		return time.Time{}, err
	}
	// Dex v2.45 does not pick up a certificate the kubelet updates in a mounted Secret (its file
	// watcher waits for the certificate file to be re-created; the kubelet swaps a symlink), so a
	// renewed server certificate or trust bundle rolls the pods like a changed config.
	configHash := dexdeploy.Hash(config, env, versions, serverCert[dexdeploy.KeyCert], serverCert[dexdeploy.KeyCABundle])
	steps := []func() error{
		func() error { return r.ensureSecret(ctx, d, dexdeploy.ConfigSecret(d, config)) },
		func() error { return r.ensureServiceAccount(ctx, d) },
		func() error { return r.ensureStorageRBAC(ctx, d) },
		func() error {
			return r.ensureDeployment(ctx, d, dexdeploy.Deployment(d, env, configHash))
		},
		func() error { return r.ensureService(ctx, d) },
		func() error { return r.ensurePDB(ctx, d) },
		func() error { return r.ensurePVC(ctx, d) },
		func() error { return r.ensureNetworkPolicy(ctx, d) },
		func() error { return r.ensureExposure(ctx, d) },
		func() error { return r.ensureServiceMonitor(ctx, d) },
		func() error { return r.ensureOIDCProvider(ctx, d, refs.webCA) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return time.Time{}, err
		}
	}
	d.Status.Issuer = d.Spec.Issuer
	d.Status.GRPCAddress = dexdeploy.GRPCAddress(d)
	d.Status.OIDCProviderRef = &dexv1.ObjectRef{Name: names.OIDCProvider, Namespace: d.Namespace}
	return renewAt, nil
}

// needsBootstrapConnector reports whether Dex must be given its local connector to start: no
// DexConnector is registered in it yet (see dexdeploy.Config), or its storage forgets them.
func (r *DexReconciler) needsBootstrapConnector(ctx context.Context, d *dexv1.Dex) (bool, error) {
	if d.Spec.EnablePasswordDB {
		return false, nil
	}
	if d.StorageType() == dexv1.DexStorageMemory {
		return true, nil
	}
	list := &dexv1.DexConnectorList{}
	key := tenancy.ProviderKey(d.Namespace, dexdeploy.NamesFor(d).OIDCProvider)
	if err := r.List(ctx, list, client.MatchingFields{indexConnectorProvider: key}); err != nil {
		return false, err
	}
	for _, c := range list.Items {
		if meta.IsStatusConditionTrue(c.Status.Conditions, dexv1.ConditionRegistered) {
			return false, nil
		}
	}
	return true, nil
}

// dexesForConnector maps a DexConnector to the Dex whose OIDCProvider it names (a registered
// connector ends the bootstrap connector; see needsBootstrapConnector).
func dexesForConnector(_ context.Context, o client.Object) []reconcile.Request {
	c, ok := o.(*dexv1.DexConnector)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: tenancy.RefKey(c.Namespace, c.Spec.ProviderRef)}}
}

// dexSecrets is what the Secrets a Dex's spec names contribute to its rendering.
type dexSecrets struct {
	// versions go into the config hash: a digest of the data of each key the spec names (a
	// changed password, a renewed certificate). Not the Secret's resourceVersion: labels and
	// annotations (the operator's own watch label, cert-manager's) change it without changing
	// what Dex reads, and must not roll the pods. The digests are only ever part of the
	// config hash, which also covers the rendered config (a Secret).
	versions map[string]string
	// webCA is the ca.crt of the web TLS Secret, if any (the OIDCProvider's caBundle).
	webCA []byte
}

// referencedSecrets checks that every Secret key the spec names exists and returns what goes into
// the config hash (a changed password rolls the pods, which read it from the environment at
// start; a renewed certificate rolls them too: Dex does not reload its web certificate).
func (r *DexReconciler) referencedSecrets(ctx context.Context, d *dexv1.Dex) (dexSecrets, error) {
	out := dexSecrets{versions: map[string]string{}}
	for _, ref := range dexdeploy.SecretRefs(d) {
		s := &corev1.Secret{}
		// readSecret labels the Secret for the manager's watch of Secrets: a renewed certificate
		// or a changed password reaches this Dex at once.
		err := readSecret(ctx, r.Client, types.NamespacedName{Namespace: d.Namespace, Name: ref.Ref.Name}, s)
		if apierrors.IsNotFound(err) {
			// The manager watches only the Secrets it labelled: one created later is found by
			// looking again, with a backoff.
			return out, outcome.StallPolling(dexv1.ReasonSecretNotFound, fmt.Sprintf("%s: Secret %s/%s not found; create it with key %q", ref.Field, d.Namespace, ref.Ref.Name, ref.Ref.Key))
		}
		if err != nil {
			return out, err
		}
		data, ok := s.Data[ref.Ref.Key]
		if !ok {
			return out, outcome.StallPolling(dexv1.ReasonSecretNotFound, fmt.Sprintf("%s: Secret %s/%s has no key %q; add it, or point the field at the key that holds the value", ref.Field, d.Namespace, ref.Ref.Name, ref.Ref.Key))
		}
		out.versions[s.Name+"/"+ref.Ref.Key] = dexdeploy.Hash(data)
		if ref.Field == "spec.web.tls.secretRef" {
			out.webCA = s.Data[dexdeploy.KeyCABundle]
		}
	}
	return out, nil
}

// certificates keeps the gRPC CA, Dex's server certificate and the operator's client certificate
// current (see dexdeploy.CertPolicy for how rotation keeps the connection up). It returns when
// they are next due and the server Secret's data.
func (r *DexReconciler) certificates(ctx context.Context, d *dexv1.Dex, names dexdeploy.Names) (time.Time, map[string][]byte, error) {
	now, policy := r.now(), r.certPolicy()
	caSecret, err := r.ownedSecret(ctx, d, names.CASecret)
	if err != nil {
		return time.Time{}, nil, err
	}
	caData, ca, renewAt, err := dexdeploy.RotateCA(caSecret.Data, policy, d.Name, now)
	if err != nil {
		return time.Time{}, nil, err
	}
	if err := r.ensureSecret(ctx, d, dexdeploy.TLSSecret(d, names.CASecret, caData)); err != nil {
		return time.Time{}, nil, err
	}
	var serverData map[string][]byte
	for _, leaf := range []struct {
		name string
		leaf dexdeploy.Leaf
	}{{names.ServerSecret, dexdeploy.ServerLeaf(d)}, {names.ClientSecret, dexdeploy.ClientLeaf(d)}} {
		s, err := r.ownedSecret(ctx, d, leaf.name)
		if err != nil {
			return time.Time{}, nil, err
		}
		data, at, err := ca.IssueLeaf(s.Data, leaf.leaf, policy, now)
		if err != nil {
			return time.Time{}, nil, err
		}
		if err := r.ensureSecret(ctx, d, dexdeploy.TLSSecret(d, leaf.name, data)); err != nil {
			return time.Time{}, nil, err
		}
		renewAt = minTime(renewAt, at)
		if leaf.name == names.ServerSecret {
			serverData = data
		}
	}
	return renewAt, serverData, nil
}

// ownedSecret reads a Secret the Dex renders; a missing one reads as empty, one that belongs to
// something else is an error.
func (r *DexReconciler) ownedSecret(ctx context.Context, d *dexv1.Dex, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, s)
	if apierrors.IsNotFound(err) {
		return &corev1.Secret{}, nil
	}
	if err != nil {
		return nil, err
	}
	if !metav1.IsControlledBy(s, d) {
		return nil, ownedByOther(d, "Secret", name)
	}
	return s, nil
}

func ownedByOther(d *dexv1.Dex, kind, name string) error {
	return outcome.Stall(dexv1.ReasonOwnedByOther, fmt.Sprintf("%s %s/%s already exists and does not belong to Dex %s; delete or rename it, or give this Dex another name", kind, d.Namespace, name, d.Name))
}

func (r *DexReconciler) ensureSecret(ctx context.Context, d *dexv1.Dex, want *corev1.Secret) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
	// Labelled for the manager's watch of Secrets (Owns): a Secret of the Dex changed by someone
	// else is rewritten.
	return r.ensure(ctx, d, "Secret", s, watchedSecretLabels(want.Labels), dexdeploy.Hash(want.Data), func() { s.Data = want.Data })
}

func (r *DexReconciler) ensureServiceAccount(ctx context.Context, d *dexv1.Dex) error {
	want := dexdeploy.ServiceAccount(d)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
	hash := dexdeploy.Hash("v1")
	if len(want.Annotations) > 0 {
		hash = dexdeploy.Hash("v1", want.Annotations)
	}
	return r.ensure(ctx, d, "ServiceAccount", sa, want.Labels, hash, func() {
		for k, v := range want.Annotations {
			metav1.SetMetaDataAnnotation(&sa.ObjectMeta, k, v)
		}
	})
}

// ensureStorageRBAC grants the kubernetes storage its custom resources, and takes the grant away
// from a Dex on another storage.
func (r *DexReconciler) ensureStorageRBAC(ctx context.Context, d *dexv1.Dex) error {
	role, binding := dexdeploy.StorageRole(d), dexdeploy.StorageRoleBinding(d)
	if d.StorageType() != dexv1.DexStorageKubernetes {
		return errors.Join(r.deleteOwned(ctx, d, &rbacv1.RoleBinding{ObjectMeta: binding.ObjectMeta}),
			r.deleteOwned(ctx, d, &rbacv1.Role{ObjectMeta: role.ObjectMeta}))
	}
	gotRole := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: role.Namespace, Name: role.Name}}
	if err := r.ensure(ctx, d, "Role", gotRole, role.Labels, dexdeploy.Hash(role.Rules), func() { gotRole.Rules = role.Rules }); err != nil {
		return err
	}
	gotBinding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: binding.Namespace, Name: binding.Name}}
	return r.ensure(ctx, d, "RoleBinding", gotBinding, binding.Labels, dexdeploy.Hash(binding.RoleRef, binding.Subjects), func() {
		gotBinding.RoleRef, gotBinding.Subjects = binding.RoleRef, binding.Subjects
	})
}

func (r *DexReconciler) ensureDeployment(ctx context.Context, d *dexv1.Dex, want *appsv1.Deployment) error {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
	return r.ensure(ctx, d, "Deployment", dep, want.Labels, dexdeploy.Hash(want.Spec), func() { dep.Spec = want.Spec })
}

func (r *DexReconciler) ensureService(ctx context.Context, d *dexv1.Dex) error {
	want := dexdeploy.Service(d)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
	return r.ensure(ctx, d, "Service", svc, want.Labels, dexdeploy.Hash(want.Spec, want.Annotations), func() {
		// The API server assigns the cluster IPs; keep them.
		svc.Spec.Type, svc.Spec.Selector, svc.Spec.Ports = want.Spec.Type, want.Spec.Selector, want.Spec.Ports
		for k, v := range want.Annotations {
			metav1.SetMetaDataAnnotation(&svc.ObjectMeta, k, v)
		}
	})
}

// ensurePDB keeps a disruption budget while there is more than one replica.
func (r *DexReconciler) ensurePDB(ctx context.Context, d *dexv1.Dex) error {
	want := dexdeploy.PodDisruptionBudget(d)
	if d.DesiredReplicas() <= 1 {
		return r.deleteOwned(ctx, d, &policyv1.PodDisruptionBudget{ObjectMeta: want.ObjectMeta})
	}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
	return r.ensure(ctx, d, "PodDisruptionBudget", pdb, want.Labels, dexdeploy.Hash(want.Spec), func() { pdb.Spec = want.Spec })
}

// ensurePVC creates the sqlite3 volume. It is never updated (a claim's spec is immutable) and
// never deleted while the Dex exists, even if the storage type changes: it holds Dex's data.
func (r *DexReconciler) ensurePVC(ctx context.Context, d *dexv1.Dex) error {
	if d.StorageType() != dexv1.DexStorageSQLite3 {
		return nil
	}
	want := dexdeploy.PersistentVolumeClaim(d)
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
	return r.ensure(ctx, d, "PersistentVolumeClaim", pvc, want.Labels, "", func() { pvc.Spec = want.Spec })
}

// ensureOIDCProvider creates the OIDCProvider for this Dex and keeps the fields the Dex decides
// (issuer, discovery address, client id, spec.dex); the platform team may set any other field
// (hostnames, audiences, claims, ...) on the OIDCProvider itself.
//
// With spec.web.tls, the TLS Secret's ca.crt (caBundle) becomes the provider's caBundle; without
// one, the provider's caBundle is the platform team's (a public CA needs none).
func (r *DexReconciler) ensureOIDCProvider(ctx context.Context, d *dexv1.Dex, caBundle []byte) error {
	want := dexdeploy.OIDCProviderSpec(d, caBundle)
	p := &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: dexdeploy.NamesFor(d).OIDCProvider}}
	return r.ensure(ctx, d, "OIDCProvider", p, dexdeploy.Labels(d), dexdeploy.Hash(want), func() {
		p.Spec.IssuerURL, p.Spec.DiscoveryURL, p.Spec.ClientID = want.IssuerURL, want.DiscoveryURL, want.ClientID
		if want.CABundle != "" {
			p.Spec.CABundle = want.CABundle
		}
		// spec.dex is the Dex's, except what the platform team decides on the provider itself:
		// whose clients are this registry's client identities.
		var identities *dexv1.AllowedNamespaces
		if p.Spec.Dex != nil {
			identities = p.Spec.Dex.ClientIdentityNamespaces
		}
		p.Spec.Dex = want.Dex.DeepCopy()
		if identities != nil {
			p.Spec.Dex.ClientIdentityNamespaces = identities
		}
	})
}

// ensure creates obj (named, empty) or brings it up to date: it reads the object, refuses one the
// Dex does not control, and writes only when hash (of what mutate puts in) differs from the hash
// recorded at the last write, so a resync of an unchanged Dex writes nothing. An empty hash means
// create only.
func (r *DexReconciler) ensure(ctx context.Context, d *dexv1.Dex, kind string, obj client.Object, lbls map[string]string, hash string, mutate func()) error {
	err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	switch {
	case apierrors.IsNotFound(err):
		mutate()
		obj.SetLabels(lbls)
		setAnnotation(obj, dexdeploy.AnnotationAppliedHash, hash)
		if err := controllerutil.SetControllerReference(d, obj, r.Scheme()); err != nil {
			return err
		}
		if err := r.Create(ctx, obj); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return ownedByOther(d, kind, obj.GetName()) // there, but not in the cache: not labelled as ours
			}
			return fmt.Errorf("failed to create %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)
		}
		return nil
	case err != nil:
		return err
	case !metav1.IsControlledBy(obj, d):
		return ownedByOther(d, kind, obj.GetName())
	case hash == "" || obj.GetAnnotations()[dexdeploy.AnnotationAppliedHash] == hash && labelsContain(obj.GetLabels(), lbls):
		return nil
	}
	mutate()
	l := obj.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, lbls)
	obj.SetLabels(l)
	setAnnotation(obj, dexdeploy.AnnotationAppliedHash, hash)
	if err := r.Update(ctx, obj); err != nil {
		return fmt.Errorf("failed to update %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// setAnnotation sets one annotation of obj.
func setAnnotation(obj client.Object, key, value string) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[key] = value
	obj.SetAnnotations(a)
}

func labelsContain(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// deleteOwned deletes obj if it exists and the Dex controls it.
func (r *DexReconciler) deleteOwned(ctx context.Context, d *dexv1.Dex, obj client.Object) error {
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, d) {
		return nil
	}
	return client.IgnoreNotFound(r.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground)))
}

// reportAvailable sets Available and status.replicas from the Deployment.
func (r *DexReconciler) reportAvailable(ctx context.Context, d *dexv1.Dex) error {
	dep := &appsv1.Deployment{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: dexdeploy.NamesFor(d).Deployment}, dep); err != nil {
		if apierrors.IsNotFound(err) {
			setCondition(d, dexv1.ConditionAvailable, metav1.ConditionFalse, dexv1.ReasonDeploymentUnavailable, "the Deployment is being created")
			return nil
		}
		return err
	}
	d.Status.Replicas = dep.Status.AvailableReplicas
	want := d.DesiredReplicas()
	rolledOut := dep.Status.ObservedGeneration >= dep.Generation && dep.Status.UpdatedReplicas >= want
	available := findDeploymentCondition(dep, appsv1.DeploymentAvailable)
	switch {
	case want == 0:
		setCondition(d, dexv1.ConditionAvailable, metav1.ConditionFalse, dexv1.ReasonDeploymentUnavailable, "spec.replicas is 0: no Dex pod runs")
	case rolledOut && available && dep.Status.AvailableReplicas > 0:
		setCondition(d, dexv1.ConditionAvailable, metav1.ConditionTrue, dexv1.ReasonDeploymentAvailable,
			fmt.Sprintf("%d of %d Dex pods available", dep.Status.AvailableReplicas, want))
	default:
		setCondition(d, dexv1.ConditionAvailable, metav1.ConditionFalse, dexv1.ReasonDeploymentUnavailable,
			fmt.Sprintf("Deployment %s: %d of %d pods updated, %d available", dep.Name, dep.Status.UpdatedReplicas, want, dep.Status.AvailableReplicas))
	}
	return nil
}

func findDeploymentCondition(dep *appsv1.Deployment, t appsv1.DeploymentConditionType) bool {
	for _, c := range dep.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// finalize deletes the OIDCProvider first and waits until it is gone (its own finalizer waits for
// the clients and connectors registered through it, which need this Dex running to leave it),
// then everything else the Dex rendered.
func (r *DexReconciler) finalize(ctx context.Context, d *dexv1.Dex) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(d, DexFinalizer) {
		return ctrl.Result{}, nil
	}
	names := dexdeploy.NamesFor(d)
	p := &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: names.OIDCProvider}}
	if err := r.deleteOwned(ctx, d, p); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Get(ctx, client.ObjectKeyFromObject(p), p); err == nil && metav1.IsControlledBy(p, d) {
		setCondition(d, dexv1.ConditionAvailable, metav1.ConditionFalse, dexv1.ReasonDeleting,
			fmt.Sprintf("waiting for OIDCProvider %s/%s to be deleted; it waits for the DexStaticClients and DexConnectors registered through it", p.Namespace, p.Name))
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	} else if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: d.Namespace, Name: name} }
	owned := []client.Object{
		&appsv1.Deployment{ObjectMeta: meta(names.Deployment)},
		&policyv1.PodDisruptionBudget{ObjectMeta: meta(names.PDB)},
		&corev1.Service{ObjectMeta: meta(names.Service)},
		&networkingv1.Ingress{ObjectMeta: meta(names.Ingress)},
		&networkingv1.NetworkPolicy{ObjectMeta: meta(names.NetworkPolicy)},
		&rbacv1.RoleBinding{ObjectMeta: meta(names.RoleBinding)},
		&rbacv1.Role{ObjectMeta: meta(names.Role)},
		&corev1.ServiceAccount{ObjectMeta: meta(names.ServiceAccount)},
		&corev1.PersistentVolumeClaim{ObjectMeta: meta(names.PVC)},
		&corev1.Secret{ObjectMeta: meta(names.ConfigSecret)},
		&corev1.Secret{ObjectMeta: meta(names.ServerSecret)},
		&corev1.Secret{ObjectMeta: meta(names.ClientSecret)},
		&corev1.Secret{ObjectMeta: meta(names.CASecret)},
	}
	if err := r.deleteHTTPRoute(ctx, d); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.deleteServiceMonitor(ctx, d); err != nil {
		return ctrl.Result{}, err
	}
	for _, o := range owned {
		if err := r.deleteOwned(ctx, d, o); err != nil {
			return ctrl.Result{}, fmt.Errorf("failed to delete %T %s of Dex %s/%s: %w", o, o.GetName(), d.Namespace, d.Name, err)
		}
	}
	orig := d.DeepCopy()
	controllerutil.RemoveFinalizer(d, DexFinalizer)
	if err := r.Patch(ctx, d, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}

// summarizeDex sets Ready from ConfigValid and Available, and Exposed when the Dex asks for an
// Ingress or an HTTPRoute.
func summarizeDex(d *dexv1.Dex) {
	if d.Spec.Ingress == nil && d.Spec.HTTPRoute == nil {
		removeCondition(d, dexv1.ConditionExposed)
		summarizeReady(d, dexv1.ConditionConfigValid, dexv1.ConditionAvailable)
		return
	}
	// Exposed before Available: a missing Gateway API waits for an administrator (Stalled), which
	// says more than pods that are not up yet.
	summarizeReady(d, dexv1.ConditionConfigValid, dexv1.ConditionExposed, dexv1.ConditionAvailable)
}

func (r *DexReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *DexReconciler) certPolicy() dexdeploy.CertPolicy {
	p := r.Certs
	if p.CAValidity == 0 {
		p.CAValidity = dexdeploy.DefaultCertPolicy.CAValidity
	}
	if p.LeafValidity == 0 {
		p.LeafValidity = dexdeploy.DefaultCertPolicy.LeafValidity
	}
	if p.ActivationDelay == 0 {
		p.ActivationDelay = dexdeploy.DefaultCertPolicy.ActivationDelay
	}
	return p
}

func (r *DexReconciler) resyncPeriod() time.Duration {
	if r.ResyncPeriod > 0 {
		return r.ResyncPeriod
	}
	return 10 * time.Minute
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// DexCacheOptions limits the manager's cache of the kinds only Dex objects render to the objects
// carrying dexdeploy.LabelDex: the operator never holds every Deployment or Service of the cluster
// in memory. (An unlabelled object of the same name is invisible to the cache; creating it fails
// with AlreadyExists, which reads as OwnedByOther.)
func DexCacheOptions() map[client.Object]cache.ByObject {
	req, _ := labels.NewRequirement(dexdeploy.LabelDex, selection.Exists, nil)
	sel := cache.ByObject{Label: labels.NewSelector().Add(*req)}
	return map[client.Object]cache.ByObject{
		&appsv1.Deployment{}: sel, &corev1.Service{}: sel, &corev1.ServiceAccount{}: sel,
		&corev1.PersistentVolumeClaim{}: sel, &rbacv1.Role{}: sel, &rbacv1.RoleBinding{}: sel,
		&policyv1.PodDisruptionBudget{}: sel, &networkingv1.Ingress{}: sel, &networkingv1.NetworkPolicy{}: sel,
	}
}

// SetupWithManager registers the controller: a Dex is reconciled when it changes, when its
// Deployment's status or its OIDCProvider changes, when a Secret it renders or names changes.
func (r *DexReconciler) SetupWithManager(mgr ctrl.Manager) error {
	maxDelay := r.MaxRetryDelay
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&dexv1.Dex{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionStarted{}))).
		Owns(&appsv1.Deployment{}).
		Owns(&networkingv1.Ingress{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&dexv1.OIDCProvider{}).
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		Watches(&dexv1.DexConnector{}, handler.EnqueueRequestsFromMapFunc(dexesForConnector)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return requestsFromList(ctx, r, &dexv1.DexList{}, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexDexSecret: o.GetName()})
		}), builder.OnlyMetadata).
		WithOptions(controller.Options{
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, maxDelay),
		}).
		Named("dex").
		Complete(r)
}

// dexSecretNames are the Secrets a Dex's spec takes values from (for indexDexSecret).
func dexSecretNames(d *dexv1.Dex) []string {
	var out []string
	for _, ref := range dexdeploy.SecretRefs(d) {
		if !slices.Contains(out, ref.Ref.Name) {
			out = append(out, ref.Ref.Name)
		}
	}
	return out
}
