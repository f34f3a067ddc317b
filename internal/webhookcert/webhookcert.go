// Package webhookcert gives the validating webhook server its serving certificate when nobody else
// does, without cert-manager.
//
// Two modes, chosen at start-up by Setup:
//
//   - Provided: the webhook cert dir already holds tls.crt and tls.key that this manager did not
//     issue (OLM mounts its own there, so do cert-manager users). They are served as they are;
//     whoever put them there rotates them and keeps the webhook configuration's caBundle current.
//   - SelfManaged: otherwise (empty cert dir, as with config/default's emptyDir). The manager
//     creates the Secret --webhook-cert-secret in its namespace if it is missing, and
//     open-policy-agent/cert-controller's rotator keeps a self-signed CA and a serving certificate
//     for <service>.<namespace>.svc in it, rotates them before they expire and injects the CA into
//     the caBundle of the ValidatingWebhookConfiguration and of the MutatingWebhookConfiguration
//     (the defaulting webhooks). A controller writes the certificate from the
//     Secret into the cert dir (atomically, the way the kubelet writes Secret volumes), where the
//     webhook server picks up every change.
//
// Certificates this manager issued carry the issuer CAName/CAOrganization, so a restarted
// container that finds its own earlier certificate in the cert dir stays SelfManaged.
//
// In both modes the webhook server (Server) starts serving only once its certificate is in place,
// so the manager's /readyz check of the webhook server fails until then.
package webhookcert

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// Defaults of the flags: the names config/default renders (namePrefix "dexterity-").
const (
	DefaultSecretName        = "dexterity-webhook-server-cert"
	DefaultServiceName       = "dexterity-webhook-service"
	DefaultWebhookConfigName = "dexterity-validating-webhook-configuration"
	// DefaultMutatingWebhookConfigName is the configuration of the defaulting webhooks.
	DefaultMutatingWebhookConfigName = "dexterity-mutating-webhook-configuration"
)

// The issuer of every certificate this manager issues; it tells its own certificates from
// provided ones.
const (
	CAName         = "dexterity-webhook-ca"
	CAOrganization = "dexterity.dev"
)

// fieldOwner is the field manager of the caBundle updates.
const fieldOwner = "dexterity-webhook-cert"

// namespaceFile holds the pod's namespace in every pod with a service account token.
const namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Mode says who provides the webhook serving certificate.
type Mode string

const (
	// ModeProvided serves the certificate found in the cert dir as it is.
	ModeProvided Mode = "Provided"
	// ModeSelfManaged issues, rotates and injects the certificate.
	ModeSelfManaged Mode = "SelfManaged"
)

// Options say where the self-managed certificate is kept and what it is for.
type Options struct {
	// SecretName is the Secret, in Namespace, that holds the self-managed CA and certificate.
	// Empty turns self-management off: the cert dir must then hold a certificate.
	SecretName string
	// ServiceName is the webhook Service in Namespace; the certificate is issued for
	// <ServiceName>.<Namespace>.svc (and .svc.cluster.local).
	ServiceName string
	// WebhookConfigName is the ValidatingWebhookConfiguration whose caBundle is kept current.
	WebhookConfigName string
	// MutatingWebhookConfigName is the MutatingWebhookConfiguration whose caBundle is kept
	// current; empty: none.
	MutatingWebhookConfigName string
	// Namespace of the Secret and the Service: the manager's own. Empty: $POD_NAMESPACE, then the
	// namespace of the pod's service account.
	Namespace string
	// ExtraDNSNames are added to the certificate (e.g. localhost, for tests).
	ExtraDNSNames []string
	// Name prefixes the names of the two controllers Setup adds, which must be unique in a
	// process. Empty: "webhook-cert".
	Name string
}

// DefaultOptions are the flag defaults.
func DefaultOptions() Options {
	return Options{SecretName: DefaultSecretName, ServiceName: DefaultServiceName, WebhookConfigName: DefaultWebhookConfigName,
		MutatingWebhookConfigName: DefaultMutatingWebhookConfigName}
}

// BindFlags registers --webhook-cert-secret, --webhook-service-name, --webhook-config-name and
// --mutating-webhook-config-name.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	d := DefaultOptions()
	fs.StringVar(&o.SecretName, "webhook-cert-secret", d.SecretName, "Secret (in the manager's namespace) in which the manager keeps a self-signed webhook serving certificate when --webhook-cert-dir holds none of someone else's; empty: never self-manage.")
	fs.StringVar(&o.ServiceName, "webhook-service-name", d.ServiceName, "Service of the webhook server (in the manager's namespace), the name the self-managed certificate is issued for.")
	fs.StringVar(&o.WebhookConfigName, "webhook-config-name", d.WebhookConfigName, "ValidatingWebhookConfiguration whose caBundle the manager keeps current with a self-managed certificate.")
	fs.StringVar(&o.MutatingWebhookConfigName, "mutating-webhook-config-name", d.MutatingWebhookConfigName, "MutatingWebhookConfiguration (the defaulting webhooks that set finalizers) whose caBundle the manager keeps current with a self-managed certificate; empty: none.")
}

// Setup decides who provides the webhook serving certificate of srv, which must be the manager's
// webhook server, and returns the mode. Self-managing, it creates the Secret if it is missing and
// adds the rotator and the cert dir writer to mgr; srv then starts serving once the certificate
// is in the cert dir and the CA is injected.
func Setup(ctx context.Context, mgr ctrl.Manager, srv *Server, o Options) (Mode, error) {
	log := mgr.GetLogger().WithName("webhook-cert")
	dir := srv.CertDir()
	if o.SecretName == "" {
		log.Info("Serving the webhook certificate from the cert dir; self-management is off", "certDir", dir)
		return ModeProvided, nil
	}
	provided, err := Provided(dir, srv.certName, srv.keyName)
	if err != nil {
		return "", err
	}
	if provided {
		log.Info("Serving the webhook certificate provided in the cert dir", "certDir", dir)
		return ModeProvided, nil
	}
	if o.ServiceName == "" || o.WebhookConfigName == "" {
		return "", errors.New("failed to set up webhook certificates: the webhook Service and ValidatingWebhookConfiguration names must be set")
	}
	ns, err := o.namespace()
	if err != nil {
		return "", err
	}
	if err := resetDir(dir, srv.certName, srv.keyName); err != nil {
		return "", err
	}
	key := types.NamespacedName{Namespace: ns, Name: o.SecretName}
	if err := ensureSecret(ctx, mgr.GetClient(), key); err != nil {
		return "", err
	}

	name := o.Name
	if name == "" {
		name = "webhook-cert"
	}
	host := o.ServiceName + "." + ns + ".svc"
	ready := make(chan struct{})
	if err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      key,
		CertDir:        dir,
		CertName:       srv.certName,
		KeyName:        srv.keyName,
		CAName:         CAName,
		CAOrganization: CAOrganization,
		DNSName:        host,
		ExtraDNSNames:  append([]string{host + ".cluster.local"}, o.ExtraDNSNames...),
		IsReady:        ready,
		Webhooks:       o.webhooks(),
		FieldOwner:     fieldOwner,
		// Every replica serves webhooks and needs the certificate in its own cert dir.
		RequireLeaderElection: false,
		// Inject the CA only once this replica's cert dir holds a certificate.
		EnableReadinessCheck: true,
		ControllerName:       name + "-rotator",
	}); err != nil {
		return "", fmt.Errorf("failed to add webhook certificate rotator: %w", err)
	}
	// The Secret is watched metadata only: it is read from the API server.
	if err := (&dirWriter{Reader: mgr.GetAPIReader(), Secret: key, Dir: dir, CertName: srv.certName, KeyName: srv.keyName}).setupWithManager(mgr, name+"-writer"); err != nil {
		return "", fmt.Errorf("failed to add webhook certificate writer: %w", err)
	}
	srv.waitFor(ready)
	log.Info("Managing the webhook certificate", "secret", key.String(), "dnsName", host, "webhookConfiguration", o.WebhookConfigName, "mutatingWebhookConfiguration", o.MutatingWebhookConfigName, "certDir", dir)
	return ModeSelfManaged, nil
}

// webhooks are the configurations whose caBundle the rotator keeps current.
func (o Options) webhooks() []rotator.WebhookInfo {
	out := []rotator.WebhookInfo{{Name: o.WebhookConfigName, Type: rotator.Validating}}
	if o.MutatingWebhookConfigName != "" {
		out = append(out, rotator.WebhookInfo{Name: o.MutatingWebhookConfigName, Type: rotator.Mutating})
	}
	return out
}

func (o Options) namespace() (string, error) {
	if o.Namespace != "" {
		return o.Namespace, nil
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns, nil
	}
	if data, err := os.ReadFile(namespaceFile); err == nil && strings.TrimSpace(string(data)) != "" {
		return strings.TrimSpace(string(data)), nil
	}
	return "", errors.New("failed to determine the manager's namespace for the webhook certificate Secret: set POD_NAMESPACE")
}

// ensureSecret creates the (empty) certificate Secret if it is missing: the rotator fills it but
// does not create it. Transient errors are retried for a while.
func ensureSecret(ctx context.Context, c client.Client, key types.NamespacedName) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, time.Second, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: map[string]string{
				"app.kubernetes.io/name":       "dexterity",
				"app.kubernetes.io/component":  "webhook-certificate",
				"app.kubernetes.io/managed-by": "dexterity",
				dexv1.LabelWatchedSecret:       "true",
			}},
			Type: corev1.SecretTypeOpaque,
		}
		err := c.Create(ctx, s)
		if apierrors.IsAlreadyExists(err) {
			// Made by an older version, without the label the manager's cache selects
			// Secrets by: the rotator would not see it.
			patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:"true"}}}`, dexv1.LabelWatchedSecret)
			err = c.Patch(ctx, s, client.RawPatch(types.MergePatchType, patch))
		}
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsForbidden(err) || apierrors.IsInvalid(err):
			return false, err
		default:
			last = err
			return false, nil
		}
	})
	if err != nil {
		if last != nil && wait.Interrupted(err) {
			err = last
		}
		return fmt.Errorf("failed to create webhook certificate Secret %s: %w", key, err)
	}
	return nil
}
