package controllers

import "dexterity.dev/dexterity/internal/ownership"

// Ownership of Dex entries lives in internal/ownership (the claim protocol, its order of writes
// and the carry-over of objects of older versions); the controllers hand it one Scope per
// reconcile (dexentry.go). The names the rest of the operator and its tests use are here.

const (
	// LabelClaimOwnerUID on a claim (DexEntryClaim, HostnameClaim) is its owner's UID.
	LabelClaimOwnerUID = ownership.LabelOwnerUID
	// AnnotationClaimDeletionPolicy on a DexEntryClaim mirrors its owner's spec.deletionPolicy
	// when that is Orphan (see ownership.AnnotationDeletionPolicy).
	AnnotationClaimDeletionPolicy = ownership.AnnotationDeletionPolicy
)
