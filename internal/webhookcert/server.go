package webhookcert

import (
	"context"
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Server is controller-runtime's webhook server that, once Setup chose to self-manage the
// certificate, starts only when the certificate is in the cert dir and the CA is injected. Until
// it serves, its StartedChecker (the manager's /readyz check "webhooks") fails.
type Server struct {
	webhook.Server
	certDir, certName, keyName string
	ready                      <-chan struct{}
}

var _ webhook.Server = &Server{}

// NewServer returns a webhook server for o; the manager takes it as ctrl.Options.WebhookServer.
func NewServer(o webhook.Options) *Server {
	// The defaults of controller-runtime's webhook server, which Setup needs to know.
	if o.CertDir == "" {
		o.CertDir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
	}
	if o.CertName == "" {
		o.CertName = "tls.crt"
	}
	if o.KeyName == "" {
		o.KeyName = "tls.key"
	}
	return &Server{Server: webhook.NewServer(o), certDir: o.CertDir, certName: o.CertName, keyName: o.KeyName}
}

// CertDir is the directory the server reads tls.crt and tls.key from.
func (s *Server) CertDir() string { return s.certDir }

// waitFor makes Start wait until ready is closed. Call it before the manager starts.
func (s *Server) waitFor(ready <-chan struct{}) { s.ready = ready }

// Start serves once the certificate is ready, until ctx is done.
func (s *Server) Start(ctx context.Context) error {
	if s.ready != nil {
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil
		}
	}
	return s.Server.Start(ctx)
}
