package dexdeploy

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// Labels and annotations on what a Dex object renders.
const (
	// LabelDex names the Dex object that rendered an object (the manager's cache watches only
	// objects carrying it).
	LabelDex = "dexterity.dev/dex"
	// AnnotationConfigHash in the pod template rolls the Deployment when the config, or a Secret
	// it takes values from, changes.
	AnnotationConfigHash = "dexterity.dev/config-hash"
	// AnnotationAppliedHash records the hash of what the operator last wrote into an object, so a
	// resync that changes nothing writes nothing.
	AnnotationAppliedHash = "dexterity.dev/applied-hash"
)

// Names of the objects a Dex renders, all in its namespace.
type Names struct {
	Deployment, Service, ServiceAccount, Role, RoleBinding, PDB, PVC string
	Ingress, HTTPRoute, NetworkPolicy                                string
	ConfigSecret, CASecret, ServerSecret, ClientSecret               string
	OIDCProvider                                                     string
}

// NamesFor is the naming scheme: the Dex's own name for the workload, the Service and the
// OIDCProvider (so an in-cluster issuer is http://<name>.<namespace>.svc:5556/dex), suffixes for
// the rest.
func NamesFor(d *dexv1.Dex) Names {
	n := d.Name
	return Names{
		Deployment: n, Service: n, ServiceAccount: n, Role: n + "-storage", RoleBinding: n + "-storage",
		PDB: n, PVC: n + "-data", Ingress: n, HTTPRoute: n, NetworkPolicy: n,
		ConfigSecret: n + "-config", CASecret: n + "-grpc-ca", ServerSecret: n + "-grpc-server", ClientSecret: n + "-grpc-client",
		OIDCProvider: n,
	}
}

// Labels of every object a Dex renders; SelectorLabels pick its pods.
func Labels(d *dexv1.Dex) map[string]string {
	l := SelectorLabels(d)
	l["app.kubernetes.io/managed-by"] = "dexterity"
	l[LabelDex] = d.Name
	return l
}

// SelectorLabels pick a Dex's pods.
func SelectorLabels(d *dexv1.Dex) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "dex", "app.kubernetes.io/instance": d.Name}
}

func objectMeta(d *dexv1.Dex, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: d.Namespace, Labels: Labels(d)}
}

// ServerLeaf and ClientLeaf describe the two gRPC leaf certificates of a Dex.
func ServerLeaf(d *dexv1.Dex) Leaf {
	svc := ServiceHost(d)
	return Leaf{CommonName: svc, DNSNames: []string{svc, d.Name, d.Name + "." + d.Namespace, svc + ".cluster.local"}, Usage: x509.ExtKeyUsageServerAuth}
}

// ClientLeaf is the operator's client certificate.
func ClientLeaf(d *dexv1.Dex) Leaf {
	return Leaf{CommonName: "dexterity-operator", Usage: x509.ExtKeyUsageClientAuth}
}

// ConfigSecret holds Dex's configuration file.
func ConfigSecret(d *dexv1.Dex, config []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: objectMeta(d, NamesFor(d).ConfigSecret), Data: map[string][]byte{configFileKey: config}}
}

// TLSSecret is a Secret of certificate material (type Opaque: the CA's holds extra keys).
func TLSSecret(d *dexv1.Dex, name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: objectMeta(d, name), Data: data}
}

// ServiceAccount of the Dex pods, with spec.serviceAccountAnnotations (workload identity).
func ServiceAccount(d *dexv1.Dex) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: objectMeta(d, NamesFor(d).ServiceAccount)}
	if len(d.Spec.ServiceAccountAnnotations) > 0 {
		sa.Annotations = maps.Clone(d.Spec.ServiceAccountAnnotations)
	}
	return sa
}

// StorageResources are the custom resources of Dex's kubernetes storage (config/crd/dex).
var StorageResources = []string{"authcodes", "authrequests", "oauth2clients", "signingkeies", "refreshtokens",
	"passwords", "offlinesessionses", "connectors", "devicerequests", "devicetokens"}

// StorageRole lets Dex's kubernetes storage use its custom resources in its own namespace; the
// CRDs themselves ship with the operator, so Dex needs no cluster-wide permission.
func StorageRole(d *dexv1.Dex) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: objectMeta(d, NamesFor(d).Role), Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"dex.coreos.com"}, Resources: StorageResources,
		Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
	}}}
}

// StorageRoleBinding binds StorageRole to the Dex ServiceAccount.
func StorageRoleBinding(d *dexv1.Dex) *rbacv1.RoleBinding {
	n := NamesFor(d)
	return &rbacv1.RoleBinding{
		ObjectMeta: objectMeta(d, n.RoleBinding),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: n.Role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: n.ServiceAccount, Namespace: d.Namespace}},
	}
}

// Service exposes http, grpc and telemetry.
func Service(d *dexv1.Dex) *corev1.Service {
	s := &corev1.Service{ObjectMeta: objectMeta(d, NamesFor(d).Service), Spec: corev1.ServiceSpec{
		Type:     corev1.ServiceTypeClusterIP,
		Selector: SelectorLabels(d),
		Ports: []corev1.ServicePort{
			{Name: "http", Port: PortHTTP, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To(HTTPScheme(d))},
			{Name: "grpc", Port: PortGRPC, TargetPort: intstr.FromString("grpc"), Protocol: corev1.ProtocolTCP},
			{Name: "telemetry", Port: PortTelemetry, TargetPort: intstr.FromString("telemetry"), Protocol: corev1.ProtocolTCP},
		},
	}}
	if w := d.Spec.Web; w != nil {
		if w.ServiceType != "" {
			s.Spec.Type = w.ServiceType
		}
		if len(w.ServiceAnnotations) > 0 {
			s.Annotations = maps.Clone(w.ServiceAnnotations)
		}
	}
	return s
}

// PodDisruptionBudget keeps one Dex pod up (only rendered with more than one replica).
func PodDisruptionBudget(d *dexv1.Dex) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{ObjectMeta: objectMeta(d, NamesFor(d).PDB), Spec: policyv1.PodDisruptionBudgetSpec{
		MaxUnavailable: ptr.To(intstr.FromInt32(1)),
		Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(d)},
	}}
}

// PersistentVolumeClaim of the sqlite3 storage.
func PersistentVolumeClaim(d *dexv1.Dex) *corev1.PersistentVolumeClaim {
	size := resource.MustParse("1Gi")
	var class *string
	if s := d.Spec.Storage; s != nil && s.SQLite3 != nil {
		if s.SQLite3.Size != nil {
			size = *s.SQLite3.Size
		}
		class = s.SQLite3.StorageClassName
	}
	return &corev1.PersistentVolumeClaim{ObjectMeta: objectMeta(d, NamesFor(d).PVC), Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		StorageClassName: class,
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
	}}
}

// Deployment runs Dex with the rendered config, the gRPC API on mutual TLS and connector CRUD
// switched on. configHash goes into the pod template: a new hash rolls the pods.
func Deployment(d *dexv1.Dex, env []corev1.EnvVar, configHash string) *appsv1.Deployment {
	n := NamesFor(d)
	image := d.Spec.Image
	if image == "" {
		image = DefaultImage
	}
	podAnnotations := maps.Clone(d.Spec.PodAnnotations)
	if podAnnotations == nil {
		podAnnotations = map[string]string{}
	}
	podAnnotations[AnnotationConfigHash] = configHash
	probe := func(path string, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("telemetry")}},
			PeriodSeconds:    10,
			FailureThreshold: failures,
		}
	}
	volumes := []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: n.ConfigSecret}}},
		{Name: "grpc-tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: n.ServerSecret}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: ConfigDir, ReadOnly: true},
		{Name: "grpc-tls", MountPath: GRPCTLSDir, ReadOnly: true},
	}
	if d.StorageType() == dexv1.DexStorageSQLite3 {
		volumes = append(volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: n.PVC},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "data", MountPath: SQLiteDir})
	}
	secretVolume := func(name, dir, secret string, items []corev1.KeyToPath, mode int32) {
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secret, Items: items, DefaultMode: ptr.To(mode),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: dir, ReadOnly: true})
	}
	tlsItems := []corev1.KeyToPath{{Key: KeyCert, Path: KeyCert}, {Key: KeyKey, Path: KeyKey}}
	if w := d.Spec.Web; w != nil && w.TLS != nil {
		secretVolume("web-tls", WebTLSDir, w.TLS.SecretRef.Name, tlsItems, 0o644)
	}
	if pg := d.Spec.Storage; d.StorageType() == dexv1.DexStoragePostgres && pg.Postgres != nil && pg.Postgres.SSL != nil {
		if ref := pg.Postgres.SSL.CASecretRef; ref != nil {
			secretVolume("postgres-ca", PostgresCADir, ref.Name, []corev1.KeyToPath{{Key: ref.Key, Path: KeyCABundle}}, 0o644)
		}
		if ref := pg.Postgres.SSL.CertSecretRef; ref != nil {
			// Postgres clients refuse a key readable by others: 0640 owned by root (the kubelet
			// adds the fsGroup's read bit to 0600 anyway).
			secretVolume("postgres-tls", PostgresTLS, ref.Name, tlsItems, 0o640)
		}
	}
	volumes = append(volumes, d.Spec.Volumes...)
	mounts = append(mounts, d.Spec.VolumeMounts...)
	podLabels := maps.Clone(d.Spec.PodLabels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, Labels(d)) // the selector labels always win (admission refuses them anyway)
	containerEnv := make([]corev1.EnvVar, 0, 2+len(env)+len(d.Spec.Env))
	containerEnv = append(containerEnv,
		corev1.EnvVar{Name: "DEX_API_CONNECTORS_CRUD", Value: "true"},
		// The kubernetes storage keeps its objects in the pod's namespace.
		corev1.EnvVar{Name: "KUBERNETES_POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
	)
	containerEnv = append(append(containerEnv, env...), d.Spec.Env...)
	// A new pod is up before an old one goes: a rollout (a config change, a renewed certificate)
	// never leaves the Service without a Dex.
	strategy := appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
		MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1)),
	}}
	if d.StorageType() == dexv1.DexStorageSQLite3 {
		// One pod owns the ReadWriteOnce volume at a time.
		strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	}
	return &appsv1.Deployment{
		ObjectMeta: objectMeta(d, n.Deployment),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(d.DesiredReplicas()),
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(d)},
			Strategy: strategy,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
				Spec: corev1.PodSpec{
					ServiceAccountName:           n.ServiceAccount,
					AutomountServiceAccountToken: ptr.To(d.StorageType() == dexv1.DexStorageKubernetes),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						FSGroup:        ptr.To[int64](1001),
					},
					Containers: []corev1.Container{{
						Name:            "dex",
						Image:           image,
						ImagePullPolicy: d.Spec.ImagePullPolicy,
						Command:         []string{BinaryPath, "serve", ConfigFile},
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: PortHTTP, Protocol: corev1.ProtocolTCP},
							{Name: "grpc", ContainerPort: PortGRPC, Protocol: corev1.ProtocolTCP},
							{Name: "telemetry", ContainerPort: PortTelemetry, Protocol: corev1.ProtocolTCP},
						},
						Env:            containerEnv,
						EnvFrom:        d.Spec.EnvFrom,
						VolumeMounts:   mounts,
						Resources:      d.Spec.Resources,
						ReadinessProbe: probe("/healthz/ready", 3),
						LivenessProbe:  probe("/healthz/live", 6),
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsUser:                ptr.To[int64](1001),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes:                   volumes,
					NodeSelector:              d.Spec.NodeSelector,
					Tolerations:               d.Spec.Tolerations,
					Affinity:                  d.Spec.Affinity,
					ImagePullSecrets:          d.Spec.ImagePullSecrets,
					TopologySpreadConstraints: d.Spec.TopologySpreadConstraints,
					PriorityClassName:         d.Spec.PriorityClassName,
				},
			},
		},
	}
}

// OIDCProviderSpec is what the Dex controller sets in the OIDCProvider it creates: the issuer, the
// in-cluster discovery address when the issuer is external, and spec.dex reaching the Service with
// the operator's client certificate under the Dex's tenancy policy. Every other field is the
// platform team's to set on the OIDCProvider itself.
//
// caBundle is the ca.crt of the web TLS Secret (empty: the provider's own caBundle is left alone).
func OIDCProviderSpec(d *dexv1.Dex, caBundle []byte) dexv1.OIDCProviderSpec {
	clientID := d.Spec.RegistryClientID
	if clientID == "" {
		clientID = DefaultRegistryClientID
	}
	return dexv1.OIDCProviderSpec{
		IssuerURL:    d.Spec.Issuer,
		DiscoveryURL: DiscoveryURL(d),
		CABundle:     string(caBundle),
		ClientID:     clientID,
		Dex: &dexv1.DexAdminSpec{
			GRPCAddress:         GRPCAddress(d),
			TLS:                 &dexv1.DexTLSSpec{SecretRef: dexv1.LocalObjectReference{Name: NamesFor(d).ClientSecret}},
			AllowedNamespaces:   d.Spec.AllowedNamespaces,
			ConnectorNamespaces: d.Spec.ConnectorNamespaces,
			ClientIDPrefix:      d.Spec.ClientIDPrefix,
		},
	}
}

// Hash is a short, stable digest of anything JSON-encodable (what the operator writes into an
// object; the inputs of the Dex config).
func Hash(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		b, _ := json.Marshal(p)
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
