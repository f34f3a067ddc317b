package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// TLSMaterial holds PEM-encoded certificates and keys generated for a Dex
// instance started with DexOptions.MTLS.
//
// CACert signs ServerCert (used by Dex's gRPC listener) and ClientCert (a
// client certificate Dex accepts). OtherCACert is an unrelated CA that Dex
// does not trust; BadClientCert/BadClientKey is a client certificate signed
// by it, useful for asserting that Dex rejects untrusted clients.
type TLSMaterial struct {
	CACert        []byte
	ServerCert    []byte
	ServerKey     []byte
	ClientCert    []byte
	ClientKey     []byte
	OtherCACert   []byte
	BadClientCert []byte
	BadClientKey  []byte
}

// certValidity is how long generated certificates are valid for.
const certValidity = 24 * time.Hour

// issuer is a CA able to sign leaf certificates.
type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// generateTLSMaterial creates a fresh CA hierarchy: a trusted CA with a
// server and a client certificate, and an untrusted CA with a client
// certificate. All keys are ECDSA P-256.
func generateTLSMaterial() (*TLSMaterial, error) {
	ca, err := newCA("dex-harness-ca")
	if err != nil {
		return nil, err
	}
	otherCA, err := newCA("dex-harness-other-ca")
	if err != nil {
		return nil, err
	}

	serverCert, serverKey, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	clientCert, clientKey, err := ca.issue(clientTemplate("harness-client"))
	if err != nil {
		return nil, err
	}
	badCert, badKey, err := otherCA.issue(clientTemplate("harness-bad-client"))
	if err != nil {
		return nil, err
	}

	return &TLSMaterial{
		CACert:        ca.pem,
		ServerCert:    serverCert,
		ServerKey:     serverKey,
		ClientCert:    clientCert,
		ClientKey:     clientKey,
		OtherCACert:   otherCA.pem,
		BadClientCert: badCert,
		BadClientKey:  badKey,
	}, nil
}

// clientTemplate returns a certificate template for TLS client authentication.
func clientTemplate(commonName string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// newCA creates a self-signed CA certificate.
func newCA(commonName string) (*issuer, error) {
	return newCAFor(pkix.Name{CommonName: commonName})
}

// newCAFor creates a self-signed CA certificate with the given subject.
func newCAFor(subject pkix.Name) (*issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("failed to create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse CA certificate: %w", err)
	}
	return &issuer{
		cert: cert,
		key:  key,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// issue signs a new leaf certificate built from tmpl with a fresh key and
// returns the PEM-encoded certificate and PKCS#8 private key.
func (ca *issuer) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(certValidity)
	tmpl.BasicConstraintsValid = true

	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		nil
}

// randomSerial returns a random 128-bit certificate serial number.
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("failed to generate serial number: %w", err)
	}
	return serial, nil
}
