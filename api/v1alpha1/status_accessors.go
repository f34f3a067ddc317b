package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Accessors the controllers finish every reconcile with (controllers/status.go): the generation a
// status describes, the status itself for comparing two versions of an object, and the time of
// the last sync with Dex where a kind records one.

// SetObservedGeneration records the generation the status describes.
func (o *DexStaticClient) SetObservedGeneration(g int64) { o.Status.ObservedGeneration = g }

// StatusForCompare returns the status, for comparing two versions of the object.
func (o *DexStaticClient) StatusForCompare() any { return &o.Status }

// GetLastSyncTime returns status.lastSyncTime.
func (o *DexStaticClient) GetLastSyncTime() *metav1.Time { return o.Status.LastSyncTime }

// SetLastSyncTime sets status.lastSyncTime.
func (o *DexStaticClient) SetLastSyncTime(t *metav1.Time) { o.Status.LastSyncTime = t }

// SetObservedGeneration records the generation the status describes.
func (o *DexConnector) SetObservedGeneration(g int64) { o.Status.ObservedGeneration = g }

// StatusForCompare returns the status, for comparing two versions of the object.
func (o *DexConnector) StatusForCompare() any { return &o.Status }

// SetObservedGeneration records the generation the status describes.
func (p *OIDCProvider) SetObservedGeneration(g int64) { p.Status.ObservedGeneration = g }

// StatusForCompare returns the status, for comparing two versions of the object.
func (p *OIDCProvider) StatusForCompare() any { return &p.Status }

// SetObservedGeneration records the generation the status describes.
func (d *Dex) SetObservedGeneration(g int64) { d.Status.ObservedGeneration = g }

// StatusForCompare returns the status, for comparing two versions of the object.
func (d *Dex) StatusForCompare() any { return &d.Status }

// SetObservedGeneration records the generation the status describes.
func (o *GroupBinding) SetObservedGeneration(g int64) { o.Status.ObservedGeneration = g }

// StatusForCompare returns the status, for comparing two versions of the object.
func (o *GroupBinding) StatusForCompare() any { return &o.Status }
