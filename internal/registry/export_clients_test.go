package registry

// ClientClaimName is the name under which the registry looks up the DexEntryClaim of a client id,
// for the registry_test package (checked against the controllers' claim protocol there).
var ClientClaimName = clientClaimName
