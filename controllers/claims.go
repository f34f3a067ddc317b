package controllers

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/ownership"
	"dexterity.dev/dexterity/internal/tenancy"
)

// Ownership of Dex entries lives in internal/ownership (the claim protocol, its order of writes
// and the carry-over of objects of older versions); the controllers hand it one Scope per
// reconcile (dexentry.go). What the rest of the operator and its tests name is here.

const (
	// LabelClaimOwnerUID on a claim (DexEntryClaim, HostnameClaim) is its owner's UID.
	LabelClaimOwnerUID = ownership.LabelOwnerUID
	// AnnotationClaimDeletionPolicy on a DexEntryClaim mirrors its owner's spec.deletionPolicy
	// when that is Orphan (see ownership.AnnotationDeletionPolicy).
	AnnotationClaimDeletionPolicy = ownership.AnnotationDeletionPolicy
)

// ClaimName is the name of the DexEntryClaim of an entry: one name per (kind, Dex, id), so that
// two claims on one id cannot both be created.
func ClaimName(kind claimsv1.EntryKind, dexAddress, id string) string {
	return claimsv1.EntryClaimName(kind, dexAddress, id)
}

// dexAddress is the Dex a provider administers, as ownership compares it.
func dexAddress(p *dexv1.OIDCProvider) string { return tenancy.DexAddress(p) }

// patchMetadata patches annotations and finalizers (ownership.PatchMetadata).
func patchMetadata(ctx context.Context, c client.Client, obj client.Object, patch client.Patch) error {
	return ownership.PatchMetadata(ctx, c, obj, patch)
}
