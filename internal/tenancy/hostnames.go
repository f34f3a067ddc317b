package tenancy

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// NormalizeHostname is how registry host names are compared: without case.
func NormalizeHostname(h string) string { return strings.ToLower(strings.TrimSpace(h)) }

// HostnameHolder returns the OIDCProvider among all that serves registry host h: first come,
// first served, i.e. the oldest provider listing h (then by namespace/name), among those not
// being deleted. ok is false when none lists h.
func HostnameHolder(all []dexv1.OIDCProvider, h string) (holder *dexv1.OIDCProvider, ok bool) {
	h = NormalizeHostname(h)
	for i := range all {
		p := &all[i]
		if !p.DeletionTimestamp.IsZero() || !listsHostname(p, h) {
			continue
		}
		if holder == nil || Older(p, holder) {
			holder = p
		}
	}
	return holder, holder != nil
}

// HostnameConflict is a host in p's spec.hostnames that an older provider already serves.
type HostnameConflict struct {
	Host   string
	Holder types.NamespacedName
}

// HostnameConflicts returns the hosts of p's spec.hostnames that another provider in all serves
// (p itself may or may not be in all; a provider is identified by namespace/name). A p not yet
// created (admission) counts as the newest.
func HostnameConflicts(p *dexv1.OIDCProvider, all []dexv1.OIDCProvider) []HostnameConflict {
	var out []HostnameConflict
	seen := map[string]bool{}
	for _, raw := range p.Spec.Hostnames {
		h := NormalizeHostname(raw)
		if seen[h] {
			continue
		}
		seen[h] = true
		candidates := make([]dexv1.OIDCProvider, 0, len(all)+1)
		for i := range all {
			if all[i].Namespace != p.Namespace || all[i].Name != p.Name {
				candidates = append(candidates, all[i])
			}
		}
		self := *p
		if self.CreationTimestamp.IsZero() { // being created (admission): the newest of all
			self.CreationTimestamp = metav1.Now()
		}
		candidates = append(candidates, self)
		holder, ok := HostnameHolder(candidates, h)
		if ok && (holder.Namespace != p.Namespace || holder.Name != p.Name) {
			out = append(out, HostnameConflict{Host: h, Holder: types.NamespacedName{Namespace: holder.Namespace, Name: holder.Name}})
		}
	}
	return out
}

func listsHostname(p *dexv1.OIDCProvider, h string) bool {
	for _, x := range p.Spec.Hostnames {
		if NormalizeHostname(x) == h {
			return true
		}
	}
	return false
}

// HostnameClaimName is the name of the HostnameClaim of a registry host name: one name per host
// (normalized), so that two claims on one host cannot both be created.
func HostnameClaimName(host string) string {
	h := sha256.Sum256([]byte(NormalizeHostname(host)))
	return "host-" + hex.EncodeToString(h[:20])
}
