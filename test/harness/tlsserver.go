package harness

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
)

// TLSServer is an httptest HTTPS server on 127.0.0.1 whose certificate (for 127.0.0.1 and
// localhost) is signed by a fresh CA of its own; give CACert to the client (e.g.
// Tofu.SetCACert). OpenTofu needs a host with a dot for registry addresses, so use Host()
// ("127.0.0.1:<port>"), not localhost.
type TLSServer struct {
	*httptest.Server
	// CACert is the PEM of the CA that signed the server certificate.
	CACert []byte
}

// StartTLSServer starts h on HTTPS. Close it when done.
func StartTLSServer(h http.Handler) (*TLSServer, error) {
	ca, err := newCA("harness-https-ca")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to load server certificate: %w", err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	return &TLSServer{Server: srv, CACert: ca.pem}, nil
}

// Host is "127.0.0.1:<port>", usable as an OpenTofu registry host.
func (s *TLSServer) Host() string {
	return strings.TrimPrefix(s.URL, "https://")
}

// Client returns an HTTP client trusting only CACert.
func (s *TLSServer) Client() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACert)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}
