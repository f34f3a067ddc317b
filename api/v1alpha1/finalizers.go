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
