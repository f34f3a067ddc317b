package dexdeploy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"
)

var testPolicy = CertPolicy{CAValidity: 30 * time.Hour, LeafValidity: 3 * time.Hour, ActivationDelay: time.Hour}

var serverLeaf = Leaf{CommonName: "dex.ns.svc", DNSNames: []string{"dex.ns.svc", "dex"}, Usage: x509.ExtKeyUsageServerAuth}
var clientLeaf = Leaf{CommonName: "dexterity-operator", Usage: x509.ExtKeyUsageClientAuth}

// state is the three Secrets' data as the controller keeps them.
type state struct{ ca, server, client map[string][]byte }

func (s *state) step(t *testing.T, now time.Time) {
	t.Helper()
	var ca *CA
	var err error
	if s.ca, ca, _, err = RotateCA(s.ca, testPolicy, "dex", now); err != nil {
		t.Fatal(err)
	}
	if s.server, _, err = ca.IssueLeaf(s.server, serverLeaf, testPolicy, now); err != nil {
		t.Fatal(err)
	}
	if s.client, _, err = ca.IssueLeaf(s.client, clientLeaf, testPolicy, now); err != nil {
		t.Fatal(err)
	}
}

func leafCert(t *testing.T, data map[string][]byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data[KeyCert])
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshakeOK says whether a client holding clientData (its certificate and trust bundle) and a
// server holding serverData complete mutual TLS verification at now.
func handshakeOK(t *testing.T, serverData, clientData map[string][]byte, now time.Time) error {
	t.Helper()
	verify := func(leaf map[string][]byte, bundle []byte, name string, usage x509.ExtKeyUsage) error {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(bundle)
		_, err := leafCert(t, leaf).Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	if _, err := tls.X509KeyPair(serverData[KeyCert], serverData[KeyKey]); err != nil {
		return err
	}
	if err := verify(serverData, clientData[KeyCABundle], "dex.ns.svc", x509.ExtKeyUsageServerAuth); err != nil {
		return err
	}
	return verify(clientData, serverData[KeyCABundle], "", x509.ExtKeyUsageClientAuth)
}

func TestCertificatesStableUntilRenewal(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &state{}
	s.step(t, now)
	first := leafCert(t, s.server).SerialNumber
	s.step(t, now.Add(time.Hour)) // a third of the leaf lifetime: nothing to do
	if leafCert(t, s.server).SerialNumber.Cmp(first) != 0 {
		t.Fatal("server certificate re-issued before it was due")
	}
	if err := handshakeOK(t, s.server, s.client, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.step(t, now.Add(2*time.Hour+time.Minute)) // past two thirds: renewed
	if leafCert(t, s.server).SerialNumber.Cmp(first) == 0 {
		t.Fatal("server certificate not renewed two thirds into its lifetime")
	}
}

// TestRotationNeverBreaksTheConnection walks the clock through several leaf renewals and a CA
// renewal in 10-minute reconciles, and after every step checks the material each side may still
// hold: Dex reloads its mounted files with a delay (here up to 30 minutes, less than the
// activation delay), the operator reconnects with the new client Secret at once. Every
// combination must verify.
func TestRotationNeverBreaksTheConnection(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &state{}
	s.step(t, now)
	history := []state{*s}
	caSerials := map[string]bool{}
	for i := 0; i < 180; i++ { // 180 × 10 min = 30 h: the CA renews and activates once
		now = now.Add(10 * time.Minute)
		s.step(t, now)
		history = append(history, *s)
		caSerials[leafCert(t, map[string][]byte{KeyCert: s.ca[KeyCert]}).SerialNumber.String()] = true
		for lag := 0; lag <= 3 && lag < len(history); lag++ {
			dexView := history[len(history)-1-lag]
			if err := handshakeOK(t, dexView.server, s.client, now); err != nil {
				t.Fatalf("step %d (%s), Dex %d reconciles behind: %v", i, now, lag, err)
			}
			if err := handshakeOK(t, s.server, dexView.client, now); err != nil {
				t.Fatalf("step %d (%s), operator %d reconciles behind: %v", i, now, lag, err)
			}
		}
	}
	if len(caSerials) < 2 {
		t.Fatalf("the CA was never renewed in 30 h of a 30 h CA (%d signing CAs seen)", len(caSerials))
	}
}

func TestBrokenCASecretIsReplaced(t *testing.T) {
	now := time.Now()
	data, ca, _, err := RotateCA(map[string][]byte{KeyCert: []byte("garbage"), KeyKey: []byte("x")}, testPolicy, "dex", now)
	if err != nil || ca == nil || len(data[KeyCABundle]) == 0 {
		t.Fatalf("got %v, %v", data, err)
	}
	leaf, _, err := ca.IssueLeaf(map[string][]byte{KeyCert: []byte("garbage")}, serverLeaf, testPolicy, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := leafCert(t, leaf).DNSNames; len(got) != 2 {
		t.Fatalf("DNS names %v", got)
	}
}
