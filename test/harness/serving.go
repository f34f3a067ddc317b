package harness

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
)

// ServingCert is a CA and a TLS server certificate it signed, as PEM (a webhook server's
// certificate as OLM or cert-manager would provide it).
type ServingCert struct {
	CACert, Cert, Key []byte
}

// NewServingCert creates a CA with the subject ca and a server certificate signed by it for
// localhost, 127.0.0.1 and the DNS names given.
func NewServingCert(ca pkix.Name, dnsNames ...string) (*ServingCert, error) {
	iss, err := newCAFor(ca)
	if err != nil {
		return nil, err
	}
	cert, key, err := iss.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    append([]string{"localhost"}, dnsNames...),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	return &ServingCert{CACert: iss.pem, Cert: cert, Key: key}, nil
}
