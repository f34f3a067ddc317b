// Package metrics exports what the alerts and the dashboard of config/prometheus read and the
// other packages do not count themselves: how many objects of each kind are Ready, Reconciling
// or Stalled, how their specific conditions stand, since when the longest-stalled object of a
// kind waits for its user, and when the Dex gRPC certificates the operator uses expire.
//
// Everything is read at scrape time from the manager's cache (the objects) and the providers'
// TLS Secrets, so no controller writes a series and no series outlives its object. Labels are
// bounded: kind × state × condition type, never a tenant object's name; only OIDCProviders,
// which the platform team owns, are named (certificate expiry).
//
// The object series are exported by the elected leader only: the controllers, and so the
// informers the collector reads, run there, and a replica that is not the leader would otherwise
// start informers for every kind just to be scraped. Alert and dashboard expressions sum over
// replicas.
package metrics

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// Metric names (the rules and the dashboard of config/prometheus use them).
const (
	ObjectsName           = "dexterity_objects"
	ConditionsName        = "dexterity_object_conditions"
	StalledSinceName      = "dexterity_objects_stalled_since_timestamp_seconds"
	CertificateExpiryName = "dexterity_dex_certificate_expiry_timestamp_seconds"
)

// States of dexterity_objects: the kstatus reading of an object's conditions.
const (
	StateReady       = "ready"       // Ready=True (kstatus Current)
	StateStalled     = "stalled"     // Stalled=True: waits for its user (kstatus Failed)
	StateReconciling = "reconciling" // anything else: work in progress or a retry
)

// Certificate labels of dexterity_dex_certificate_expiry_timestamp_seconds.
const (
	CertificateClient = "client" // tls.crt of spec.dex.tls.secretRef: the operator's client certificate
	CertificateCA     = "ca"     // ca.crt: the CA(s) the operator trusts for Dex's server certificate
)

// tlsCertKey and tlsCAKey are the keys of an OIDCProvider's spec.dex.tls Secret.
const (
	tlsCertKey = corev1.TLSCertKey
	tlsCAKey   = "ca.crt"
)

// kind is one kind the collector counts, with the condition types it breaks down (a fixed list,
// so that the series are bounded and exist, at zero, before any object has the condition).
type kind struct {
	name       string
	list       func() client.ObjectList
	conditions []string
}

var kinds = []kind{
	{"OIDCProvider", func() client.ObjectList { return &dexv1.OIDCProviderList{} },
		[]string{dexv1.ConditionDexReachable, dexv1.ConditionDiscoveryReady, dexv1.ConditionKeysReady}},
	{"DexStaticClient", func() client.ObjectList { return &dexv1.DexStaticClientList{} },
		[]string{dexv1.ConditionRegistered, dexv1.ConditionSecretReady}},
	{"DexConnector", func() client.ObjectList { return &dexv1.DexConnectorList{} },
		[]string{dexv1.ConditionRegistered, dexv1.ConditionConnectorHealthy}},
	{"GroupBinding", func() client.ObjectList { return &dexv1.GroupBindingList{} }, nil},
	{"Dex", func() client.ObjectList { return &dexv1.DexList{} },
		[]string{dexv1.ConditionAvailable, dexv1.ConditionConfigValid}},
}

var conditionStatuses = []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown}

var (
	objectsDesc = prometheus.NewDesc(ObjectsName,
		"Objects by kind and state (ready, reconciling, stalled), from the manager's cache; exported by the leader.",
		[]string{"kind", "state"}, nil)
	conditionsDesc = prometheus.NewDesc(ConditionsName,
		"Objects by kind, specific condition type and its status (True, False, Unknown), from the manager's cache; exported by the leader.",
		[]string{"kind", "condition", "status"}, nil)
	stalledSinceDesc = prometheus.NewDesc(StalledSinceName,
		"Since when (the Stalled condition's lastTransitionTime, Unix seconds) the longest-stalled object of a kind waits for its user; absent while none of the kind is Stalled.",
		[]string{"kind"}, nil)
	certExpiryDesc = prometheus.NewDesc(CertificateExpiryName,
		"Expiry (notAfter, Unix seconds) of the Dex gRPC certificates of an OIDCProvider's spec.dex.tls Secret: certificate=client is tls.crt, certificate=ca the latest-expiring CA of ca.crt.",
		[]string{"namespace", "name", "certificate"}, nil)
)

// Collector is a prometheus.Collector of the operator's state. Build it with NewCollector.
type Collector struct {
	reader  client.Reader
	elected <-chan struct{}
	// Timeout bounds one scrape's reads (default 10s).
	Timeout time.Duration
	// MinInterval is how long the series of one reading of the objects are served again
	// (default 10s): however many scrapes arrive, and however often, the objects are read at
	// most once per MinInterval and by one scrape at a time; the others wait for that reading
	// and send its series. Anyone who can reach the metrics port could otherwise make the
	// leader list every object once per request, concurrently.
	MinInterval time.Duration

	mu    sync.Mutex
	certs map[types.NamespacedName]certMemo // parsed TLS Secrets by Secret

	snapMu sync.Mutex
	snap   []prometheus.Metric
	snapAt time.Time
}

// certMemo is the parsed expiry of one version of a TLS Secret.
type certMemo struct {
	uid, resourceVersion string
	client, ca           time.Time // zero: the key is missing or holds no certificate
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector that reads objects through reader, which should be the
// manager's client (objects from the cache; Secrets, which the manager does not cache, from the
// API server, each read again only when its resourceVersion changed), and exports them once
// elected is closed (the manager's Elected(); it is closed at once without leader election).
func NewCollector(reader client.Reader, elected <-chan struct{}) *Collector {
	return &Collector{reader: reader, elected: elected, Timeout: 10 * time.Second, MinInterval: 10 * time.Second, certs: map[types.NamespacedName]certMemo{}}
}

// Register registers a new collector with r (the manager binary passes controller-runtime's
// metrics.Registry, which its /metrics endpoint serves).
func Register(r prometheus.Registerer, reader client.Reader, elected <-chan struct{}) error {
	if err := r.Register(NewCollector(reader, elected)); err != nil {
		return fmt.Errorf("failed to register the state metrics: %w", err)
	}
	return nil
}

// Describe sends the descriptors of every series the collector may export.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{objectsDesc, conditionsDesc, stalledSinceDesc, certExpiryDesc} {
		ch <- d
	}
}

// Collect reads the objects and sends their series; nothing before the replica is the leader.
// A kind that cannot be read is left out of this scrape (and logged) rather than failing the
// whole scrape, which would read as the manager being down.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.elected:
	default:
		return
	}
	c.snapMu.Lock()
	if c.snap == nil || time.Since(c.snapAt) >= c.MinInterval {
		c.snap, c.snapAt = c.read(), time.Now()
	}
	snap := c.snap
	c.snapMu.Unlock()
	for _, m := range snap {
		ch <- m
	}
}

// read reads the objects once and returns their series.
func (c *Collector) read() []prometheus.Metric {
	ch := make(chan prometheus.Metric, 64)
	done := make(chan []prometheus.Metric)
	go func() {
		var out []prometheus.Metric
		for m := range ch {
			out = append(out, m)
		}
		done <- out
	}()
	c.collect(ch)
	close(ch)
	return <-done
}

func (c *Collector) collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	for _, k := range kinds {
		list := k.list()
		if err := c.reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
			ctrl.Log.WithName("metrics").Error(err, "Failed to list objects for the state metrics", "kind", k.name)
			continue
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			ctrl.Log.WithName("metrics").Error(err, "Failed to read the list for the state metrics", "kind", k.name)
			continue
		}
		collectKind(ch, k, items)
		if providers, ok := list.(*dexv1.OIDCProviderList); ok {
			c.collectCertificates(ctx, ch, providers.Items)
		}
	}
}

type withConditions interface {
	GetConditions() []metav1.Condition
}

// collectKind sends the state and condition counts of one kind's objects.
func collectKind(ch chan<- prometheus.Metric, k kind, items []runtime.Object) {
	states := map[string]int{StateReady: 0, StateReconciling: 0, StateStalled: 0}
	conds := map[[2]string]int{}
	for _, t := range k.conditions {
		for _, s := range conditionStatuses {
			conds[[2]string{t, string(s)}] = 0
		}
	}
	var stalledSince time.Time
	for _, item := range items {
		o, ok := item.(withConditions)
		if !ok {
			continue
		}
		cs := o.GetConditions()
		switch {
		case meta.IsStatusConditionTrue(cs, dexv1.ConditionReady):
			states[StateReady]++
		case meta.IsStatusConditionTrue(cs, dexv1.ConditionStalled):
			states[StateStalled]++
			if t := meta.FindStatusCondition(cs, dexv1.ConditionStalled).LastTransitionTime.Time; !t.IsZero() && (stalledSince.IsZero() || t.Before(stalledSince)) {
				stalledSince = t
			}
		default:
			states[StateReconciling]++
		}
		for _, t := range k.conditions {
			if cond := meta.FindStatusCondition(cs, t); cond != nil {
				if key := [2]string{t, string(cond.Status)}; hasKey(conds, key) {
					conds[key]++
				}
			}
		}
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(n), k.name, state)
	}
	for key, n := range conds {
		ch <- prometheus.MustNewConstMetric(conditionsDesc, prometheus.GaugeValue, float64(n), k.name, key[0], key[1])
	}
	if !stalledSince.IsZero() {
		ch <- prometheus.MustNewConstMetric(stalledSinceDesc, prometheus.GaugeValue, float64(stalledSince.Unix()), k.name)
	}
}

// collectCertificates sends the expiry of the client certificate and CA of every provider with
// spec.dex.tls. The Secrets are parsed again only when they changed.
func (c *Collector) collectCertificates(ctx context.Context, ch chan<- prometheus.Metric, providers []dexv1.OIDCProvider) {
	seen := map[types.NamespacedName]bool{}
	for i := range providers {
		p := &providers[i]
		if p.Spec.Dex == nil || p.Spec.Dex.Insecure || p.Spec.Dex.TLS == nil {
			continue
		}
		key := types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.Dex.TLS.SecretRef.Name}
		seen[key] = true
		m, err := c.certificates(ctx, key)
		if err != nil {
			ctrl.Log.WithName("metrics").V(1).Info("No certificate metrics for a provider", "oidcProvider", klog.KObj(p), "error", err.Error())
			continue
		}
		if !m.client.IsZero() {
			ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(m.client.Unix()), p.Namespace, p.Name, CertificateClient)
		}
		if !m.ca.IsZero() {
			ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(m.ca.Unix()), p.Namespace, p.Name, CertificateCA)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.certs {
		if !seen[key] {
			delete(c.certs, key)
		}
	}
}

// certificates returns the parsed expiry of a TLS Secret: memoised while its metadata shows the
// same UID and resourceVersion.
func (c *Collector) certificates(ctx context.Context, key types.NamespacedName) (certMemo, error) {
	md := &metav1.PartialObjectMetadata{}
	md.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := c.reader.Get(ctx, key, md); err != nil {
		return certMemo{}, fmt.Errorf("failed to get Secret %s: %w", key, err)
	}
	c.mu.Lock()
	held, ok := c.certs[key]
	c.mu.Unlock()
	if ok && held.uid == string(md.UID) && held.resourceVersion == md.ResourceVersion {
		return held, nil
	}
	var s corev1.Secret
	if err := c.reader.Get(ctx, key, &s); err != nil {
		return certMemo{}, fmt.Errorf("failed to get Secret %s: %w", key, err)
	}
	m := certMemo{uid: string(s.UID), resourceVersion: s.ResourceVersion,
		client: firstNotAfter(s.Data[tlsCertKey]), ca: latestNotAfter(s.Data[tlsCAKey])}
	c.mu.Lock()
	c.certs[key] = m
	c.mu.Unlock()
	return m, nil
}

// firstNotAfter is the expiry of the first certificate of a PEM chain (the leaf), or zero.
func firstNotAfter(data []byte) time.Time {
	for _, cert := range parseCertificates(data) {
		return cert.NotAfter
	}
	return time.Time{}
}

// latestNotAfter is the latest expiry of a PEM bundle, or zero. A bundle that carries an old and
// a new CA during a rotation is as good as its newest CA.
func latestNotAfter(data []byte) time.Time {
	var latest time.Time
	for _, cert := range parseCertificates(data) {
		if cert.NotAfter.After(latest) {
			latest = cert.NotAfter
		}
	}
	return latest
}

// parseCertificates returns the certificates of PEM data, skipping what does not parse.
func parseCertificates(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, cert)
		}
	}
}

func hasKey(m map[[2]string]int, k [2]string) bool {
	_, ok := m[k]
	return ok
}
