package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Group of Dexterity's API: sample objects of this group become alm-examples.
const apiGroup = "dexterity.dev"

// olmWebhookCertDir is where OLM mounts the webhook serving certificate it generates (and where
// controller-runtime looks by default).
const olmWebhookCertDir = "/tmp/k8s-webhook-server/serving-certs"

// builder fills in the CSV base from the rendered objects and collects the other bundle files.
type builder struct {
	csv   *operatorsv1alpha1.ClusterServiceVersion
	image string
	files map[string][]byte
}

// objectsByKind holds the rendered objects not yet placed, by kind, each kind sorted by
// namespace and name.
type objectsByKind map[string][]object

// take removes the objects of kind and returns them.
func (k objectsByKind) take(kind string) []object {
	objs := k[kind]
	delete(k, kind)
	return objs
}

// build places every rendered object (see the package doc) and sets alm-examples from samples.
func (b *builder) build(rendered, samples []object) error {
	if err := rejectUnsupported(rendered); err != nil {
		return err
	}
	objs := objectsByKind{}
	for _, o := range rendered {
		objs[o.Kind] = append(objs[o.Kind], o)
	}
	for _, list := range objs {
		sort.Slice(list, func(i, j int) bool { return list[i].String() < list[j].String() })
	}

	if err := b.setImage(); err != nil {
		return err
	}
	if err := b.crds(objs.take("CustomResourceDefinition")); err != nil {
		return err
	}
	d, err := b.deployment(objs.take("Deployment"))
	if err != nil {
		return err
	}
	services, err := b.webhooks(objs.take("ValidatingWebhookConfiguration"), objs.take("MutatingWebhookConfiguration"), objs.take("Service"), d)
	if err != nil {
		return err
	}
	objs["Service"] = services // not used by a webhook (e.g. metrics): as is
	sa := d.Spec.Template.Spec.ServiceAccountName
	if err := b.rbac(sa, objs); err != nil {
		return err
	}
	for _, o := range objs.take("ServiceAccount") {
		if o.Name != sa {
			objs["ServiceAccount"] = append(objs["ServiceAccount"], o) // not OLM's: as is
		}
	}
	b.csv.Spec.InstallStrategy.StrategyName = operatorsv1alpha1.InstallStrategyNameDeployment
	b.csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs = []operatorsv1alpha1.StrategyDeploymentSpec{
		{Name: d.Name, Label: labels.Set(d.Labels), Spec: d.Spec},
	}
	delete(objs, "Namespace") // OLM installs into the Subscription's namespace
	if err := b.asIs(objs); err != nil {
		return err
	}
	return b.examples(samples)
}

// rejectUnsupported fails on the objects bundlegen does not handle. config/ renders none of them;
// each would need more than being installed as is.
func rejectUnsupported(rendered []object) error {
	for _, o := range rendered {
		switch {
		case o.group() == "cert-manager.io":
			return fmt.Errorf("%s: cert-manager objects are not supported by bundlegen (under OLM the webhook serving certificate is OLM's)", o)
		case o.Kind == "Secret":
			return fmt.Errorf("%s: Secrets are not supported by bundlegen (under OLM the webhook serving certificate is OLM's; others would have to be handled explicitly)", o)
		}
	}
	return nil
}

// setImage resolves the operator image (-image, or the CSV base's containerImage annotation) and
// records it as containerImage.
func (b *builder) setImage() error {
	if b.csv.Annotations == nil {
		b.csv.Annotations = map[string]string{}
	}
	if b.image == "" {
		b.image = b.csv.Annotations["containerImage"]
	}
	if b.image == "" {
		return errors.New("no operator image: set metadata.annotations.containerImage in the CSV base or pass -image")
	}
	b.csv.Annotations["containerImage"] = b.image
	return nil
}

// crds writes the CRDs and checks that the CSV base owns exactly these.
func (b *builder) crds(objs []object) error {
	type key struct{ name, kind string }
	rendered := map[key][]string{} // → served versions
	for _, o := range objs {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := o.decode(crd); err != nil {
			return err
		}
		if crd.Spec.Conversion != nil && crd.Spec.Conversion.Strategy == apiextensionsv1.WebhookConverter {
			return fmt.Errorf("%s: conversion webhooks are not supported by bundlegen", o)
		}
		if _, ok := crd.Annotations["cert-manager.io/inject-ca-from"]; ok {
			return fmt.Errorf("%s: the annotation cert-manager.io/inject-ca-from is not supported by bundlegen (cert-manager's CA injection does not apply under OLM)", o)
		}
		k := key{crd.Name, crd.Spec.Names.Kind}
		for _, v := range crd.Spec.Versions {
			if v.Served {
				rendered[k] = append(rendered[k], v.Name)
			}
		}
		data, err := yaml.Marshal(o.Map)
		if err != nil {
			return err
		}
		if err := b.add("manifests/"+crd.Spec.Group+"_"+crd.Spec.Names.Plural+".yaml", data); err != nil {
			return err
		}
	}
	owned := map[key]bool{}
	for _, d := range b.csv.Spec.CustomResourceDefinitions.Owned {
		k := key{d.Name, d.Kind}
		versions, ok := rendered[k]
		if !ok {
			return fmt.Errorf("CSV base owns %s (%s), which config/crd does not define", d.Name, d.Kind)
		}
		if !slices.Contains(versions, d.Version) {
			return fmt.Errorf("CSV base owns %s version %s, which is not served (served: %v)", d.Name, d.Version, versions)
		}
		if d.Description == "" || d.DisplayName == "" {
			return fmt.Errorf("CSV base: owned CRD %s needs a displayName and a description", d.Name)
		}
		owned[k] = true
	}
	for _, k := range sortedKeysFunc(rendered, func(k key) string { return k.name }) {
		if !owned[k] {
			return fmt.Errorf("CRD %s (%s) is not in spec.customresourcedefinitions.owned of config/manifests/bases/dexterity.clusterserviceversion.yaml: add it with a displayName, description and descriptors", k.name, k.kind)
		}
	}
	return nil
}

// deployment decodes the one Deployment and points the operator's containers at the image.
func (b *builder) deployment(objs []object) (*appsv1.Deployment, error) {
	switch len(objs) {
	case 0:
		return nil, errors.New("config/manifests renders no Deployment")
	case 1:
	default:
		names := make([]string, 0, len(objs))
		for _, o := range objs {
			names = append(names, o.String())
		}
		return nil, fmt.Errorf("config/manifests renders %d Deployments (%s): more than one Deployment is not supported by bundlegen", len(objs), strings.Join(names, ", "))
	}
	d := &appsv1.Deployment{}
	if err := objs[0].decode(d); err != nil {
		return nil, err
	}
	if d.Spec.Template.Spec.ServiceAccountName == "" {
		return nil, fmt.Errorf("%s has no serviceAccountName: OLM grants permissions to named ServiceAccounts only", objs[0])
	}
	repo := imageRepository(b.image)
	pod := &d.Spec.Template.Spec
	for _, cs := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for i := range cs {
			if imageRepository(cs[i].Image) == repo {
				cs[i].Image = b.image
			}
		}
	}
	return d, nil
}

// imageRepository is image without its tag or digest.
func imageRepository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// webhooks turns the Validating- and MutatingWebhookConfigurations into webhookdefinitions served
// by d, drops d's own mounts at OLM's certificate directory, and returns the Services that serve
// no webhook.
func (b *builder) webhooks(validating, mutating, services []object, d *appsv1.Deployment) ([]object, error) {
	svcs := map[string]*corev1.Service{}
	for _, o := range services {
		s := &corev1.Service{}
		if err := o.decode(s); err != nil {
			return nil, err
		}
		svcs[s.Name] = s
	}
	used := map[string]bool{}
	var defs []operatorsv1alpha1.WebhookDescription
	// add makes the definition of webhook w of o, with the fields both kinds of webhook share.
	add := func(o object, typ operatorsv1alpha1.WebhookAdmissionType, w admissionregistrationv1.ValidatingWebhook) (*operatorsv1alpha1.WebhookDescription, error) {
		def, err := webhookTarget(o, w.Name, w.ClientConfig, svcs, d)
		if err != nil {
			return nil, err
		}
		used[w.ClientConfig.Service.Name] = true
		if w.NamespaceSelector != nil {
			// OLM sets namespaceSelector itself, from the OperatorGroup.
			fmt.Fprintf(os.Stderr, "bundlegen: %s: namespaceSelector of webhook %s is replaced by OLM's\n", o, w.Name)
		}
		def.Type = typ
		def.Rules, def.FailurePolicy, def.MatchPolicy, def.ObjectSelector = w.Rules, w.FailurePolicy, w.MatchPolicy, w.ObjectSelector
		def.SideEffects, def.TimeoutSeconds, def.AdmissionReviewVersions = w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions
		defs = append(defs, def)
		return &defs[len(defs)-1], nil
	}
	for _, o := range validating {
		c := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := o.decode(c); err != nil {
			return nil, err
		}
		for _, w := range c.Webhooks {
			if _, err := add(o, operatorsv1alpha1.ValidatingAdmissionWebhook, w); err != nil {
				return nil, err
			}
		}
	}
	for _, o := range mutating {
		c := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := o.decode(c); err != nil {
			return nil, err
		}
		for _, w := range c.Webhooks {
			def, err := add(o, operatorsv1alpha1.MutatingAdmissionWebhook, admissionregistrationv1.ValidatingWebhook{
				Name: w.Name, ClientConfig: w.ClientConfig, Rules: w.Rules, FailurePolicy: w.FailurePolicy, MatchPolicy: w.MatchPolicy,
				NamespaceSelector: w.NamespaceSelector, ObjectSelector: w.ObjectSelector, SideEffects: w.SideEffects,
				TimeoutSeconds: w.TimeoutSeconds, AdmissionReviewVersions: w.AdmissionReviewVersions, MatchConditions: w.MatchConditions,
			})
			if err != nil {
				return nil, err
			}
			def.ReinvocationPolicy = w.ReinvocationPolicy
		}
	}
	sort.SliceStable(defs, func(i, j int) bool { return defs[i].GenerateName < defs[j].GenerateName })
	b.csv.Spec.WebhookDefinitions = defs

	if len(defs) > 0 {
		// OLM mounts its serving certificate at olmWebhookCertDir; the Deployment's own mounts
		// there (config/manager's emptyDir for the self-managed certificate) would shadow it.
		dropMounts(&d.Spec.Template.Spec, func(m corev1.VolumeMount) bool {
			return path.Clean(m.MountPath) == olmWebhookCertDir
		})
	}

	var rest []object
	for _, o := range services {
		if !used[o.Name] {
			rest = append(rest, o)
		}
	}
	return rest, nil
}

// webhookTarget is the part of a webhookdefinition that says where webhook name of o is served:
// OLM creates a Service <deployment>-service listening on containerPort and forwarding to
// targetPort, the same ports as the rendered Service's.
func webhookTarget(o object, name string, cc admissionregistrationv1.WebhookClientConfig, svcs map[string]*corev1.Service, d *appsv1.Deployment) (operatorsv1alpha1.WebhookDescription, error) {
	if cc.Service == nil {
		return operatorsv1alpha1.WebhookDescription{}, fmt.Errorf("%s: webhook %s: only clientConfig.service is supported under OLM", o, name)
	}
	svc, ok := svcs[cc.Service.Name]
	if !ok {
		return operatorsv1alpha1.WebhookDescription{}, fmt.Errorf("%s: webhook %s: Service %s is not rendered by config/manifests", o, name, cc.Service.Name)
	}
	port := int32(443)
	if cc.Service.Port != nil {
		port = *cc.Service.Port
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return operatorsv1alpha1.WebhookDescription{}, fmt.Errorf("%s: webhook %s: Service %s has no port %d", o, name, svc.Name, port)
	}
	target := sp.TargetPort
	if target.Type == intstr.Int && target.IntVal == 0 {
		target = intstr.FromInt32(sp.Port)
	}
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		return operatorsv1alpha1.WebhookDescription{}, fmt.Errorf("%s: webhook %s: Service %s does not select the pods of Deployment %s", o, name, svc.Name, d.Name)
	}
	return operatorsv1alpha1.WebhookDescription{
		GenerateName:   name,
		DeploymentName: d.Name,
		ContainerPort:  sp.Port,
		TargetPort:     &target,
		WebhookPath:    cc.Service.Path,
	}, nil
}

// dropMounts removes the mounts for which drop is true, and the volumes nothing mounts anymore.
func dropMounts(pod *corev1.PodSpec, drop func(corev1.VolumeMount) bool) {
	dropped := map[string]bool{}
	for _, cs := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for i := range cs {
			cs[i].VolumeMounts = slices.DeleteFunc(cs[i].VolumeMounts, func(m corev1.VolumeMount) bool {
				if drop(m) {
					dropped[m.Name] = true
					return true
				}
				return false
			})
		}
	}
	for _, cs := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for _, c := range cs {
			for _, m := range c.VolumeMounts {
				delete(dropped, m.Name)
			}
		}
	}
	pod.Volumes = slices.DeleteFunc(pod.Volumes, func(v corev1.Volume) bool { return dropped[v.Name] })
}

// rbac turns the roles bound to the operator's ServiceAccount sa into permissions and
// clusterPermissions, taking the roles and bindings out of objs. Roles bound to nothing else, and
// bindings of other subjects, are put back to be installed as is.
func (b *builder) rbac(sa string, objs objectsByKind) error {
	roles, clusterRoles := objs.take("Role"), objs.take("ClusterRole")
	roleRules := map[string][]rbacv1.PolicyRule{}
	clusterRoleRules := map[string][]rbacv1.PolicyRule{}
	for _, o := range roles {
		r := &rbacv1.Role{}
		if err := o.decode(r); err != nil {
			return err
		}
		roleRules[r.Name] = r.Rules
	}
	for _, o := range clusterRoles {
		r := &rbacv1.ClusterRole{}
		if err := o.decode(r); err != nil {
			return err
		}
		if r.AggregationRule != nil {
			return fmt.Errorf("%s: aggregated ClusterRoles are not supported by bundlegen", o)
		}
		clusterRoleRules[r.Name] = r.Rules
	}
	usedRoles, usedClusterRoles := map[string]bool{}, map[string]bool{}
	var perms, clusterPerms []rbacv1.PolicyRule
	bound, clusterBound := false, false

	bind := func(o object, ref rbacv1.RoleRef, subjects []rbacv1.Subject, clusterWide bool) error {
		operator := 0
		for _, s := range subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == sa {
				operator++
			}
		}
		if operator == 0 {
			objs[o.Kind] = append(objs[o.Kind], o) // not about the operator: as is
			return nil
		}
		if operator != len(subjects) {
			return fmt.Errorf("%s binds the operator's ServiceAccount and other subjects: split it", o)
		}
		var rules []rbacv1.PolicyRule
		switch ref.Kind {
		case "Role":
			r, ok := roleRules[ref.Name]
			if !ok {
				return fmt.Errorf("%s refers to Role %s, which is not rendered", o, ref.Name)
			}
			rules, usedRoles[ref.Name] = r, true
		case "ClusterRole":
			r, ok := clusterRoleRules[ref.Name]
			if !ok {
				return fmt.Errorf("%s refers to ClusterRole %s, which is not rendered", o, ref.Name)
			}
			rules, usedClusterRoles[ref.Name] = r, true
		default:
			return fmt.Errorf("%s: unknown roleRef kind %s", o, ref.Kind)
		}
		if clusterWide {
			clusterPerms, clusterBound = append(clusterPerms, rules...), true
		} else {
			perms, bound = append(perms, rules...), true
		}
		return nil
	}
	for _, o := range objs.take("ClusterRoleBinding") {
		rb := &rbacv1.ClusterRoleBinding{}
		if err := o.decode(rb); err != nil {
			return err
		}
		if err := bind(o, rb.RoleRef, rb.Subjects, true); err != nil {
			return err
		}
	}
	for _, o := range objs.take("RoleBinding") {
		rb := &rbacv1.RoleBinding{}
		if err := o.decode(rb); err != nil {
			return err
		}
		if err := bind(o, rb.RoleRef, rb.Subjects, false); err != nil {
			return err
		}
	}
	// OLM creates only the ServiceAccounts named in permissions or clusterPermissions.
	if !bound && !clusterBound {
		return fmt.Errorf("ServiceAccount %s of the Deployment has no Role or ClusterRole bound: OLM would not create it", sa)
	}
	// Roles that only the operator uses are OLM's to create; others are installed as is.
	for _, o := range roles {
		if !usedRoles[o.Name] {
			objs["Role"] = append(objs["Role"], o)
		}
	}
	for _, o := range clusterRoles {
		if !usedClusterRoles[o.Name] {
			objs["ClusterRole"] = append(objs["ClusterRole"], o)
		}
	}
	strategy := &b.csv.Spec.InstallStrategy.StrategySpec
	strategy.Permissions, strategy.ClusterPermissions = nil, nil
	if bound {
		strategy.Permissions = []operatorsv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: sa, Rules: perms}}
	}
	if clusterBound {
		strategy.ClusterPermissions = []operatorsv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: sa, Rules: clusterPerms}}
	}
	return nil
}

// installableAsIs are the kinds OLM (registry+v1 bundles) installs from bundle/manifests besides
// the CSV and CRDs (Secrets too, but bundlegen rejects them: rejectUnsupported).
var installableAsIs = map[string]bool{
	"ClusterRole": true, "ClusterRoleBinding": true, "ConfigMap": true, "Role": true, "RoleBinding": true,
	"Service": true, "ServiceAccount": true,
	"PrometheusRule": true, "ServiceMonitor": true, "PodDisruptionBudget": true, "PriorityClass": true,
	"VerticalPodAutoscaler": true, "ConsoleYAMLSample": true, "ConsoleQuickStart": true,
	"ConsoleCLIDownload": true, "ConsoleLink": true,
}

// asIs writes the remaining objects OLM can install to manifests/<name>_<group>_<version>_<kind>.yaml
// without their namespace, and leaves out the others with a notice.
func (b *builder) asIs(objs objectsByKind) error {
	for _, kind := range sortedKeys(objs) {
		for _, o := range objs[kind] {
			if !installableAsIs[kind] {
				fmt.Fprintf(os.Stderr, "bundlegen: left out %s: OLM cannot install a %s from a bundle\n", o, kind)
				continue
			}
			meta, _ := o.Map["metadata"].(map[string]any)
			delete(meta, "namespace")
			data, err := yaml.Marshal(o.Map)
			if err != nil {
				return err
			}
			name := strings.ToLower(strings.Join([]string{o.Name, strings.ReplaceAll(o.APIVersion, "/", "_"), o.Kind}, "_")) + ".yaml"
			if err := b.add("manifests/"+name, data); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *builder) add(name string, data []byte) error {
	if _, dup := b.files[name]; dup {
		return fmt.Errorf("two objects would be written to %s", name)
	}
	b.files[name] = data
	return nil
}

// examples sets alm-examples to the dexterity.dev objects of config/samples, without namespaces
// (the console creates them in the namespace the user is in), sorted by kind and name. Internal
// kinds (the CSV's internal-objects annotation) need no example.
func (b *builder) examples(samples []object) error {
	var ex []object
	for _, o := range samples {
		if o.group() == apiGroup {
			ex = append(ex, o)
		}
	}
	sort.SliceStable(ex, func(i, j int) bool {
		if ex[i].Kind != ex[j].Kind {
			return ex[i].Kind < ex[j].Kind
		}
		if ex[i].Name != ex[j].Name {
			return ex[i].Name < ex[j].Name
		}
		return ex[i].Namespace < ex[j].Namespace
	})
	kinds := map[string]bool{}
	items := make([]map[string]any, 0, len(ex))
	for _, o := range ex {
		delete(o.Map["metadata"].(map[string]any), "namespace")
		items = append(items, o.Map)
		kinds[o.Kind] = true
	}
	var internal []string
	if raw := b.csv.Annotations["operators.operatorframework.io/internal-objects"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &internal); err != nil {
			return fmt.Errorf("CSV base: operators.operatorframework.io/internal-objects is not a JSON list of CRD names: %w", err)
		}
	}
	for _, d := range b.csv.Spec.CustomResourceDefinitions.Owned {
		if !kinds[d.Kind] && !slices.Contains(internal, d.Name) {
			return fmt.Errorf("config/samples has no %s: every owned kind needs an example (alm-examples)", d.Kind)
		}
	}
	js, err := json.MarshalIndent(items, "", "  ")
	if err != nil {
		return err
	}
	b.csv.Annotations["alm-examples"] = string(js)
	return nil
}
