package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
)

const (
	tofuClientID    = "tofu-cli"
	tofuLoginPortLo = 10000
	tofuLoginPortHi = 10010
	tofuCmdTimeout  = 3 * time.Minute
)

// fakeRegistry is a minimal module and provider registry: service discovery with modules.v1,
// providers.v1 and login.v1 (pointing at Dex), one module ns/name/system 1.0.0 and one
// provider ns/x 1.0.0. API requests must carry "Authorization: Bearer <token>"; files under
// /files/ are served without authentication (tofu sends no credentials there).
type fakeRegistry struct {
	srv      *TLSServer
	issuer   string
	provider *SignedProvider
	module   string // tarball file name under filesDir
	filesDir string

	mu       sync.Mutex
	token    string // accepted bearer token ("" accepts none)
	status   map[string]int
	requests []registryRequest
}

type registryRequest struct {
	Method        string
	Path          string
	Authorization string
}

func newFakeRegistry(t *testing.T, issuer string) *fakeRegistry {
	t.Helper()
	g := NewWithT(t)
	r := &fakeRegistry{issuer: issuer, filesDir: t.TempDir(), status: map[string]int{}}
	var err error
	r.provider, err = BuildSignedProvider(t, r.filesDir, "ns", "x", "1.0.0", [][2]string{{runtime.GOOS, runtime.GOARCH}, {"linux", "arm64"}})
	g.Expect(err).NotTo(HaveOccurred())
	tarball, err := BuildModuleTarball(r.filesDir, map[string]string{
		"main.tf":          "variable \"name\" {\n  default = \"m\"\n}\n\noutput \"name\" {\n  value = var.name\n}\n",
		"nested/README.md": "a nested file\n",
	})
	g.Expect(err).NotTo(HaveOccurred())
	r.module = filepath.Base(tarball)
	r.srv, err = StartTLSServer(http.HandlerFunc(r.serve))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(r.srv.Close)
	return r
}

// setToken sets the bearer token the API accepts.
func (r *fakeRegistry) setToken(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.token = token
}

// failWith makes API requests whose path starts with prefix answer status (0 stops it).
func (r *fakeRegistry) failWith(prefix string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if status == 0 {
		delete(r.status, prefix)
	} else {
		r.status[prefix] = status
	}
}

// takeRequests returns the requests seen so far and forgets them.
func (r *fakeRegistry) takeRequests() []registryRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.requests
	r.requests = nil
	return out
}

func (r *fakeRegistry) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests = append(r.requests, registryRequest{Method: req.Method, Path: req.URL.Path, Authorization: req.Header.Get("Authorization")})
	token := r.token
	forced := 0
	for prefix, status := range r.status {
		if strings.HasPrefix(req.URL.Path, prefix) {
			forced = status
		}
	}
	r.mu.Unlock()

	base := r.srv.URL
	path := req.URL.Path
	switch {
	case path == "/.well-known/terraform.json":
		writeJSON(w, http.StatusOK, map[string]any{
			"modules.v1":   "/v1/modules/",
			"providers.v1": "/v1/providers/",
			"login.v1": map[string]any{
				"client":      tofuClientID,
				"grant_types": []string{"authz_code"},
				"authz":       r.issuer + "/auth",
				"token":       r.issuer + "/token",
				"ports":       []int{tofuLoginPortLo, tofuLoginPortHi},
				"scopes":      []string{"openid", "email", "profile", "groups"},
			},
		})
		return
	case strings.HasPrefix(path, "/files/"):
		http.StripPrefix("/files/", http.FileServer(http.Dir(r.filesDir))).ServeHTTP(w, req)
		return
	}

	if forced != 0 {
		writeJSON(w, forced, map[string]any{"errors": []string{http.StatusText(forced)}})
		return
	}
	if token == "" || req.Header.Get("Authorization") != "Bearer "+token {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []string{"missing or wrong bearer token"}})
		return
	}
	switch path {
	case "/v1/modules/ns/name/system/versions":
		writeJSON(w, http.StatusOK, map[string]any{"modules": []any{map[string]any{"versions": []any{map[string]any{"version": "1.0.0"}}}}})
	case "/v1/modules/ns/name/system/1.0.0/download":
		w.Header().Set("X-Terraform-Get", base+"/files/"+r.module)
		w.WriteHeader(http.StatusNoContent)
	case "/v1/providers/ns/x/versions":
		var platforms []map[string]string
		for _, p := range r.provider.Packages {
			platforms = append(platforms, map[string]string{"os": p.OS, "arch": p.Arch})
		}
		writeJSON(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{
			"version": "1.0.0", "protocols": []string{"5.0"}, "platforms": platforms,
		}}})
	default:
		var goos, arch string
		if n, _ := fmt.Sscanf(strings.ReplaceAll(strings.TrimPrefix(path, "/v1/providers/ns/x/1.0.0/download/"), "/", " "), "%s %s", &goos, &arch); n == 2 {
			if d, ok := r.provider.Download(goos, arch, base+"/files"); ok {
				writeJSON(w, http.StatusOK, d)
				return
			}
		}
		http.NotFound(w, req)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeConfig writes main.tf into a new working directory and returns it.
func writeTofuConfig(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(content), 0o644); err != nil {
		t.Fatalf("failed to write main.tf: %v", err)
	}
	return dir
}

func tofuContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), tofuCmdTimeout)
	t.Cleanup(cancel)
	return ctx
}

// TestTofu drives the real tofu binary against a fake registry whose login.v1 is the real Dex:
// login, init with the stored token and with a CLI config credentials block, and init failing
// on 401 and 403.
func TestTofu(t *testing.T) {
	g := NewWithT(t)
	tf := NewTofu(t, t.TempDir())

	d := startDex(t, DexOptions{})
	var redirects []string
	for port := tofuLoginPortLo; port <= tofuLoginPortHi; port++ {
		redirects = append(redirects, fmt.Sprintf("http://localhost:%d/login", port))
	}
	_, err := dexClient(t, d).CreateClient(rpcContext(t), &api.CreateClientReq{Client: &api.Client{
		Id: tofuClientID, Name: "OpenTofu CLI", Public: true, RedirectUris: redirects,
	}})
	g.Expect(err).NotTo(HaveOccurred())

	reg := newFakeRegistry(t, d.IssuerURL())
	host := reg.srv.Host()
	g.Expect(tf.SetCACert(reg.srv.CACert)).To(Succeed())

	initConfig := fmt.Sprintf(`
terraform {
  required_providers {
    x = {
      source  = "%[1]s/ns/x"
      version = "1.0.0"
    }
  }
}

module "m" {
  source  = "%[1]s/ns/name/system"
  version = "1.0.0"
}
`, host)

	var token string
	t.Run("login through Dex stores a Dex token", func(t *testing.T) {
		g := NewWithT(t)
		ctx := tofuContext(t)
		err := tf.Login(ctx, host, func(authURL string) error {
			g.Expect(authURL).To(HavePrefix(d.IssuerURL() + "/auth?"))
			g.Expect(authURL).To(ContainSubstring("client_id=" + tofuClientID))
			g.Expect(authURL).To(ContainSubstring("code_challenge_method=S256"))
			g.Expect(authURL).To(MatchRegexp(`redirect_uri=http%3A%2F%2Flocalhost%3A100(0\d|10)%2Flogin`))
			return DexPasswordLogin(ctx, nil, authURL, AdminUser.Email, AdminUser.Password)
		})
		g.Expect(err).NotTo(HaveOccurred())

		token, err = tf.StoredToken(host)
		g.Expect(err).NotTo(HaveOccurred())
		provider, err := oidc.NewProvider(ctx, d.IssuerURL())
		g.Expect(err).NotTo(HaveOccurred())
		verified, err := provider.Verifier(&oidc.Config{ClientID: tofuClientID}).Verify(ctx, token)
		g.Expect(err).NotTo(HaveOccurred(), "the stored token must be a token Dex signed for %s", tofuClientID)
		var claims struct {
			Email  string   `json:"email"`
			Groups []string `json:"groups"`
		}
		g.Expect(verified.Claims(&claims)).To(Succeed())
		g.Expect(claims.Email).To(Equal(AdminUser.Email))
		g.Expect(claims.Groups).To(ConsistOf(AdminUser.Groups))
	})
	if token == "" {
		t.Fatal("login failed; the other subtests need its token")
	}
	reg.setToken(token)

	t.Run("wrong password is reported", func(t *testing.T) {
		g := NewWithT(t)
		other := NewTofu(t, t.TempDir())
		g.Expect(other.SetCACert(reg.srv.CACert)).To(Succeed())
		ctx := tofuContext(t)
		err := other.Login(ctx, host, func(authURL string) error {
			return DexPasswordLogin(ctx, nil, authURL, AdminUser.Email, "wrong")
		})
		g.Expect(err).To(MatchError(ContainSubstring("Dex rejected the credentials")))
	})

	t.Run("init sends the stored token and installs the module and the signed provider", func(t *testing.T) {
		g := NewWithT(t)
		reg.takeRequests()
		dir := writeTofuConfig(t, initConfig)
		stdout, _, err := tf.Run(tofuContext(t), dir, "init", "-input=false", "-no-color")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(stdout).To(ContainSubstring("OpenTofu has been successfully initialized!"))
		g.Expect(stdout).To(ContainSubstring("signed, key ID " + reg.provider.Key.KeyID))

		platform := runtime.GOOS + "_" + runtime.GOARCH
		g.Expect(filepath.Join(dir, ".terraform", "providers", host, "ns", "x", "1.0.0", platform, "terraform-provider-x_v1.0.0")).To(BeAnExistingFile())
		g.Expect(filepath.Join(dir, ".terraform", "modules", "m", "main.tf")).To(BeAnExistingFile())
		g.Expect(filepath.Join(dir, ".terraform", "modules", "m", "nested", "README.md")).To(BeAnExistingFile())

		apiRequests := 0
		var files []string
		for _, r := range reg.takeRequests() {
			switch {
			case strings.HasPrefix(r.Path, "/v1/"):
				apiRequests++
				g.Expect(r.Authorization).To(Equal("Bearer "+token), "request to %s", r.Path)
			case strings.HasPrefix(r.Path, "/files/"):
				files = append(files, r.Method+" "+strings.TrimPrefix(r.Path, "/files/"))
				// Tofu sends credentials to the registry API only, never to download URLs.
				g.Expect(r.Authorization).To(BeEmpty(), "request to %s", r.Path)
			}
		}
		// Module versions and download, provider versions and download.
		g.Expect(apiRequests).To(BeNumerically(">=", 4))
		pkg, _ := reg.provider.Package(runtime.GOOS, runtime.GOARCH)
		g.Expect(files).To(ContainElements("GET "+reg.module, "GET "+pkg.Filename,
			"GET "+reg.provider.SHA256SumsFilename, "GET "+reg.provider.SignatureFilename))
		t.Logf("file requests: %v", files)
	})

	t.Run("init sends a token from a credentials block of the CLI config", func(t *testing.T) {
		g := NewWithT(t)
		other := NewTofu(t, t.TempDir())
		g.Expect(other.SetCACert(reg.srv.CACert)).To(Succeed())
		g.Expect(other.SetCredentials(host, "static-token")).To(Succeed())
		reg.setToken("static-token")
		t.Cleanup(func() { reg.setToken(token) })
		reg.takeRequests()

		dir := writeTofuConfig(t, initConfig)
		_, _, err := other.Run(tofuContext(t), dir, "init", "-input=false", "-no-color")
		g.Expect(err).NotTo(HaveOccurred())
		for _, r := range reg.takeRequests() {
			if strings.HasPrefix(r.Path, "/v1/") {
				g.Expect(r.Authorization).To(Equal("Bearer static-token"), "request to %s", r.Path)
			}
		}
	})

	providerOnly := fmt.Sprintf("terraform {\n  required_providers {\n    x = {\n      source  = \"%s/ns/x\"\n      version = \"1.0.0\"\n    }\n  }\n}\n", host)
	moduleOnly := fmt.Sprintf("module \"m\" {\n  source  = \"%s/ns/name/system\"\n  version = \"1.0.0\"\n}\n", host)
	anonymous := NewTofu(t, t.TempDir())
	g.Expect(anonymous.SetCACert(reg.srv.CACert)).To(Succeed())
	for _, tc := range []struct {
		name   string
		tofu   *Tofu
		prefix string // API paths answering status
		status int
		config string
		want   []string
	}{
		{"module versions 401", tf, "/v1/modules/", http.StatusUnauthorized, moduleOnly,
			[]string{"Error: Error accessing remote module registry", "error looking up module versions: 401 Unauthorized"}},
		{"module versions 403", tf, "/v1/modules/", http.StatusForbidden, moduleOnly,
			[]string{"Error: Error accessing remote module registry", "error looking up module versions: 403 Forbidden"}},
		{"module download 403", tf, "/v1/modules/ns/name/system/1.0.0/", http.StatusForbidden, moduleOnly,
			[]string{"Error: Error accessing remote module registry", "error getting download location for \"" + host + "/ns/name/system\": 403 Forbidden"}},
		{"module without credentials", anonymous, "", 0, moduleOnly,
			[]string{"Error: Error accessing remote module registry", "error looking up module versions: 401 Unauthorized"}},
		// Tofu reports 401 and 403 from the provider API alike.
		{"provider versions 401", tf, "/v1/providers/", http.StatusUnauthorized, providerOnly,
			[]string{"Error: Failed to resolve provider packages", "Could not resolve provider " + host + "/ns/x: host " + host + " rejected the given authentication credentials"}},
		{"provider versions 403", tf, "/v1/providers/", http.StatusForbidden, providerOnly,
			[]string{"Error: Failed to resolve provider packages", "Could not resolve provider " + host + "/ns/x: host " + host + " rejected the given authentication credentials"}},
		{"provider download 403", tf, "/v1/providers/ns/x/1.0.0/", http.StatusForbidden, providerOnly,
			[]string{"Error: Failed to install provider", "Error while installing " + host + "/ns/x v1.0.0: host " + host + " rejected the given authentication credentials"}},
		{"provider without credentials", anonymous, "", 0, providerOnly,
			[]string{"Error: Failed to resolve provider packages", "Could not resolve provider " + host + "/ns/x: host " + host + " requires authentication credentials"}},
	} {
		t.Run("init fails on "+tc.name, func(t *testing.T) {
			g := NewWithT(t)
			if tc.status != 0 {
				reg.failWith(tc.prefix, tc.status)
				t.Cleanup(func() { reg.failWith(tc.prefix, 0) })
			}
			dir := writeTofuConfig(t, tc.config)
			_, stderr, err := tc.tofu.Run(tofuContext(t), dir, "init", "-input=false", "-no-color")
			g.Expect(err).To(HaveOccurred())
			t.Logf("tofu init stderr on %s:\n%s", tc.name, stderr)
			for _, want := range tc.want {
				g.Expect(UnwrapOutput(stderr)).To(ContainSubstring(want))
			}
		})
	}
}
