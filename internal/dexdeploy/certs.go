package dexdeploy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// CertPolicy says how long the gRPC certificates of a Dex live and when they are renewed.
//
// Rotation never breaks the operator's connection: a leaf (Dex's server certificate or the
// operator's client certificate) is re-issued by the same CA a third of its lifetime before it
// expires, and both sides trust that CA. A CA is renewed a third of its lifetime before it
// expires in two steps: the new CA first joins the trust bundle of both sides (ca.crt of both
// Secrets, which Dex reloads from its mounted files), and only ActivationDelay later does it start
// signing leaves, once every Dex pod has seen the bundle that trusts it. Old CAs stay in the
// bundle until they expire.
type CertPolicy struct {
	CAValidity      time.Duration
	LeafValidity    time.Duration
	ActivationDelay time.Duration
}

// DefaultCertPolicy: CAs for 10 years, leaves for 90 days (renewed after 60), a new CA signs one
// hour after it was distributed (the kubelet refreshes Secret volumes within about a minute).
var DefaultCertPolicy = CertPolicy{
	CAValidity:      10 * 365 * 24 * time.Hour,
	LeafValidity:    90 * 24 * time.Hour,
	ActivationDelay: time.Hour,
}

// Keys of the CA Secret. The trust bundle (ca.crt) is also the ca.crt of both leaf Secrets.
const (
	KeyCABundle = "ca.crt"
	KeyCert     = "tls.crt"
	KeyKey      = "tls.key"
	keyNextCert = "next.crt"
	keyNextKey  = "next.key"
)

// Leaf says what a leaf certificate is for.
type Leaf struct {
	CommonName string
	DNSNames   []string
	Usage      x509.ExtKeyUsage
}

// keyPair is a parsed certificate with its key.
type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// CA is the state of a Dex's gRPC certificate authority, as kept in its Secret.
type CA struct {
	signing *keyPair
	next    *keyPair
	bundle  []*x509.Certificate
}

// RotateCA brings the CA Secret's data up to date at now: creates the CA when there is none,
// starts a renewal, activates a renewed CA, drops expired CAs from the bundle. It returns the new
// data (equal to data when nothing changed), the CA, and the earliest time something will change.
func RotateCA(data map[string][]byte, p CertPolicy, name string, now time.Time) (map[string][]byte, *CA, time.Time, error) {
	ca := &CA{}
	ca.signing, _ = parsePair(data[KeyCert], data[KeyKey])
	ca.next, _ = parsePair(data[keyNextCert], data[keyNextKey])
	if ca.signing != nil && (!ca.signing.cert.IsCA || !now.Before(ca.signing.cert.NotAfter)) {
		ca.signing = nil
	}
	if ca.signing == nil && ca.next != nil {
		ca.signing, ca.next = ca.next, nil // no usable CA left: the renewed one signs at once
	}
	var err error
	if ca.signing == nil {
		if ca.signing, err = newCA(name, now, p.CAValidity); err != nil {
			return nil, nil, time.Time{}, err
		}
	}
	if ca.next != nil && !now.Before(ca.next.cert.NotBefore.Add(p.ActivationDelay)) {
		ca.signing, ca.next = ca.next, nil
	}
	if ca.next == nil && !now.Before(renewAt(ca.signing.cert)) {
		if ca.next, err = newCA(name, now, p.CAValidity); err != nil {
			return nil, nil, time.Time{}, err
		}
	}
	// The bundle: every CA still valid that was trusted before, plus the signing and next CAs.
	ca.bundle = []*x509.Certificate{ca.signing.cert}
	if ca.next != nil {
		ca.bundle = append(ca.bundle, ca.next.cert)
	}
	for _, c := range parseCerts(data[KeyCABundle]) {
		if now.Before(c.NotAfter) && !slices.ContainsFunc(ca.bundle, c.Equal) {
			ca.bundle = append(ca.bundle, c)
		}
	}
	out := map[string][]byte{KeyCABundle: ca.BundlePEM(), KeyCert: ca.signing.certPEM, KeyKey: ca.signing.keyPEM}
	if ca.next != nil {
		out[keyNextCert], out[keyNextKey] = ca.next.certPEM, ca.next.keyPEM
	}
	next := renewAt(ca.signing.cert)
	if ca.next != nil {
		next = ca.next.cert.NotBefore.Add(p.ActivationDelay)
	}
	for _, c := range ca.bundle {
		if c.NotAfter.Before(next) {
			next = c.NotAfter
		}
	}
	return out, ca, next, nil
}

// BundlePEM is the trust bundle, PEM-encoded.
func (ca *CA) BundlePEM() []byte {
	var b bytes.Buffer
	for _, c := range ca.bundle {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// IssueLeaf brings a leaf Secret's data (tls.crt, tls.key, ca.crt) up to date: re-issues the
// certificate when it is missing, broken, not signed by the signing CA, for other names, or due
// for renewal. It returns the new data and when the leaf is due for renewal.
func (ca *CA) IssueLeaf(data map[string][]byte, leaf Leaf, p CertPolicy, now time.Time) (map[string][]byte, time.Time, error) {
	kp, _ := parsePair(data[KeyCert], data[KeyKey])
	if kp == nil || !leafFits(kp.cert, ca.signing.cert, leaf, now) {
		var err error
		if kp, err = issue(ca.signing, leaf, now, p.LeafValidity); err != nil {
			return nil, time.Time{}, err
		}
	}
	return map[string][]byte{KeyCert: kp.certPEM, KeyKey: kp.keyPEM, KeyCABundle: ca.BundlePEM()}, renewAt(kp.cert), nil
}

func leafFits(c, signer *x509.Certificate, leaf Leaf, now time.Time) bool {
	return c.CheckSignatureFrom(signer) == nil &&
		!now.Before(c.NotBefore) && now.Before(renewAt(c)) &&
		c.Subject.CommonName == leaf.CommonName &&
		slices.Equal(c.DNSNames, leaf.DNSNames) &&
		slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{leaf.Usage})
}

// renewAt is two thirds into a certificate's lifetime.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

func newCA(name string, now time.Time, validity time.Duration) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name + " gRPC CA", Organization: []string{"dexterity.dev"}},
		NotBefore:             now.Add(-time.Minute).Truncate(time.Second), // clock skew
		NotAfter:              now.Add(validity).Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, nil)
}

func issue(ca *keyPair, leaf Leaf, now time.Time, validity time.Duration) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: leaf.CommonName},
		DNSNames:    leaf.DNSNames,
		NotBefore:   now.Add(-time.Minute).Truncate(time.Second),
		NotAfter:    now.Add(validity).Truncate(time.Second),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{leaf.Usage},
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	return sign(tmpl, ca)
}

// sign creates a P-256 key and a certificate for it, self-signed when parent is nil.
func sign(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		return nil, err
	}
	issuerCert, issuerKey := tmpl, key
	if parent != nil {
		issuerCert, issuerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, &key.PublicKey, issuerKey)
	if err != nil {
		return nil, fmt.Errorf("failed to create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return parsePair(certPEM, keyPEM)
}

func parsePair(certPEM, keyPEM []byte) (*keyPair, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("no PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("key does not match certificate")
	}
	return &keyPair{cert: cert, key: key, certPEM: certPEM, keyPEM: keyPEM}, nil
}

func parseCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}
