package dex

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The mapping of Dex's error semantics; the real-Dex behaviour behind each row is exercised in
// test/harness and controllers tests.
func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"GetClient on a missing id: Unknown \"not found\"", status.Error(codes.Unknown, "not found"), ErrNotFound},
		{"NotFound code", status.Error(codes.NotFound, "x"), ErrNotFound},
		{"AlreadyExists code", status.Error(codes.AlreadyExists, "x"), ErrAlreadyExists},
		{"connection refused", status.Error(codes.Unavailable, "connection error: connect: connection refused"), ErrUnavailable},
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), ErrUnavailable},
		{"TLS handshake", status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority\""), ErrTLS},
		{"connectors CRUD off", status.Error(codes.Unknown, "api_connectors_crud feature flag is not enabled"), ErrConnectorsCRUDDisabled},
		{"other Unknown error", status.Error(codes.Unknown, "update client: boom"), nil},
		{"not a gRPC status", errors.New("plain"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil {
				NewWithT(t).Expect(classify(tc.err)).To(Succeed())
				return
			}
			NewWithT(t).Expect(classify(tc.err)).To(Equal(tc.want))
		})
	}
}

func TestErrorIsAndLabels(t *testing.T) {
	g := NewWithT(t)
	e := &Error{Method: "GetClient", Kind: ErrNotFound, Err: status.Error(codes.Unknown, "not found")}
	g.Expect(IsNotFound(e)).To(BeTrue())
	g.Expect(IsUnavailable(e)).To(BeFalse())
	g.Expect(resultLabel(e)).To(Equal(ResultNotFound))
	g.Expect(e.Error()).To(ContainSubstring("GetClient"))

	flag := &Error{Method: "CreateClient", Kind: ErrAlreadyExists}
	g.Expect(IsAlreadyExists(flag)).To(BeTrue())
	g.Expect(flag.Error()).To(Equal("dex CreateClient: already exists in Dex"))

	tlsErr := &Error{Method: "GetVersion", Kind: ErrTLS, Err: errors.New("x509")}
	g.Expect(IsUnavailable(tlsErr)).To(BeTrue(), "a TLS failure also means Dex cannot be used")
	g.Expect(resultLabel(tlsErr)).To(Equal(ResultTLSError))
	g.Expect(resultLabel(nil)).To(Equal(ResultOK))
}
