package dex

import (
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Typed errors. Every Dex quirk is mapped to one of these here, and only here.
var (
	// ErrNotFound: the client or connector does not exist in Dex.
	ErrNotFound = errors.New("not found in Dex")
	// ErrAlreadyExists: a client or connector with that id exists in Dex.
	ErrAlreadyExists = errors.New("already exists in Dex")
	// ErrUnavailable: Dex could not be reached (connection refused, timeout, shutting down).
	ErrUnavailable = errors.New("dex is unavailable")
	// ErrTLS: the TLS handshake with Dex failed (unknown CA, rejected client certificate, ...).
	ErrTLS = errors.New("TLS handshake with Dex failed")
	// ErrReadOnly: the client or connector comes from Dex's configuration file (staticClients,
	// connectors, the password database): the API cannot change or delete it.
	ErrReadOnly = errors.New("defined in Dex's configuration file, read-only through the API")
	// ErrConnectorsCRUDDisabled: Dex runs without DEX_API_CONNECTORS_CRUD=true.
	ErrConnectorsCRUDDisabled = errors.New("dex's connector API is disabled: start Dex with the environment variable DEX_API_CONNECTORS_CRUD=true")
	// ErrUnimplemented: this Dex release does not have the RPC (connector CRUD came with v2.41).
	ErrUnimplemented = errors.New("this Dex release does not implement the call")
)

// Error is a failed Dex call: the RPC, the typed kind (one of the Err* values, or nil for
// anything else) and the underlying error.
type Error struct {
	Method string
	Kind   error
	Err    error
}

func (e *Error) Error() string {
	if e.Kind != nil && e.Err == nil {
		return "dex " + e.Method + ": " + e.Kind.Error()
	}
	if e.Kind != nil {
		return "dex " + e.Method + ": " + e.Kind.Error() + ": " + e.Err.Error()
	}
	return "dex " + e.Method + ": " + e.Err.Error()
}

// Unwrap lets errors.Is match both the kind and the underlying error.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// IsNotFound reports whether err means the object is not in Dex.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err means the object already exists in Dex.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsUnavailable reports whether err means Dex could not be reached (including TLS failures).
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTLS) }

// IsTLS reports whether err is a TLS handshake failure.
func IsTLS(err error) bool { return errors.Is(err, ErrTLS) }

// IsReadOnly reports whether Dex refused to change an entry of its configuration file.
func IsReadOnly(err error) bool { return errors.Is(err, ErrReadOnly) }

// IsConnectorsCRUDDisabled reports whether Dex refused a connector call for lack of the feature flag.
func IsConnectorsCRUDDisabled(err error) bool { return errors.Is(err, ErrConnectorsCRUDDisabled) }

// IsUnimplemented reports whether the Dex release lacks the RPC.
func IsUnimplemented(err error) bool { return errors.Is(err, ErrUnimplemented) }

// classify maps a gRPC error of a Dex call to one of the typed kinds (nil when none fits).
func classify(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	msg := st.Message()
	switch {
	case isTLSMessage(msg):
		return ErrTLS
	case st.Code() == codes.Unavailable, st.Code() == codes.DeadlineExceeded:
		return ErrUnavailable
	case st.Code() == codes.NotFound:
		return ErrNotFound
	case st.Code() == codes.AlreadyExists:
		return ErrAlreadyExists
	case st.Code() == codes.Unimplemented:
		return ErrUnimplemented
	// Dex's GetClient returns the storage error as Unknown "not found".
	case st.Code() == codes.Unknown && msg == "not found":
		return ErrNotFound
	case strings.Contains(msg, "api_connectors_crud feature flag is not enabled"):
		return ErrConnectorsCRUDDisabled
	// Dex's static storage: "static clients: read-only cannot update client", and the like.
	case strings.Contains(msg, "read-only"):
		return ErrReadOnly
	}
	return nil
}

func isTLSMessage(msg string) bool {
	for _, s := range []string{"tls:", "x509:", "authentication handshake failed", "certificate"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
