package v1alpha1

// Finalizers of the objects that own an entry in Dex. The validating-and-defaulting webhooks set
// them at creation (so that the controller need not patch each new object), and the controller
// adds them before its first write to Dex when they are missing. Neither proves ownership: a
// DexEntryClaim does.
const (
	// ClientFinalizer keeps a DexStaticClient until its client is deleted from Dex.
	ClientFinalizer = "dexterity.dev/dex-client"
	// ConnectorFinalizer keeps a DexConnector until its connector is deleted from Dex.
	ConnectorFinalizer = "dexterity.dev/dex-connector"
)

// LabelWatchedSecret marks the Secrets the operator watches. The manager caches (metadata only)
// and watches only Secrets with this label set to "true", so that its memory grows with the
// Secrets it uses rather than with every Secret of the cluster. The operator sets it on the
// Secrets it writes and on each Secret an object references, the first time it reads it; a
// Secret created with the label is noticed the moment it appears (one created without it, after
// the object that names it, at the object's next retry).
const LabelWatchedSecret = "dexterity.dev/watch"
