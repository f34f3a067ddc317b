package registry

import (
	"net/http"
	"strings"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
)

// loginV1 is the login.v1 service of terraform.json.
type loginV1 struct {
	Client     string   `json:"client"`
	GrantTypes []string `json:"grant_types"`
	Authz      string   `json:"authz"`
	Token      string   `json:"token"`
	Ports      []int32  `json:"ports"`
	Scopes     []string `json:"scopes"`
}

type discoveryDoc struct {
	Modules   string   `json:"modules.v1"`
	Providers string   `json:"providers.v1"`
	Login     *loginV1 `json:"login.v1,omitempty"`
}

// discovery serves /.well-known/terraform.json (no authentication: clients read it first).
// login.v1 is present only when OIDC is enabled for the host's provider; its authz and token
// URLs are spec.authzUrl/tokenUrl when set, else the discovered endpoints of the issuer built
// from exactly the provider's spec (tenant.issuer): an issuer of an older spec that the key cache
// still holds for a moment is never advertised.
func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	t := s.tenantOf(w, r)
	if t == nil {
		return
	}
	doc := discoveryDoc{Modules: ModulesPath, Providers: ProvidersPath}
	p := t.provider
	if p.OIDCEnabled() {
		authzURL, tokenURL := p.Spec.AuthzURL, p.Spec.TokenURL
		if authzURL == "" || tokenURL == "" {
			issuer, ok := t.issuer(s.opts.Keys)
			if !ok || !issuer.Status().DiscoveryReady {
				writeError(w, http.StatusServiceUnavailable, "the registry has not loaded its issuer's discovery document yet; retry shortly")
				return
			}
			st := issuer.Status()
			if authzURL == "" {
				authzURL = st.AuthorizationEndpoint
			}
			if tokenURL == "" {
				tokenURL = st.TokenEndpoint
			}
		}
		ports := p.Spec.LoginPorts
		if len(ports) != 2 {
			ports = []int32{10000, 10010}
		}
		scopes := p.Spec.Scopes
		if len(scopes) == 0 {
			scopes = []string{"openid", "profile", "email", "groups"}
		}
		doc.Login = &loginV1{
			Client:     p.Spec.ClientID,
			GrantTypes: []string{"authz_code", "device_code"},
			Authz:      authzURL,
			Token:      tokenURL,
			Ports:      ports,
			Scopes:     scopes,
		}
	}
	writeJSON(w, http.StatusOK, doc)
}

type versionsDoc struct {
	Modules []moduleVersions `json:"modules"`
}

type moduleVersions struct {
	Versions []versionOnly `json:"versions"`
}

type versionOnly struct {
	Version string `json:"version"`
}

// segmentsBounded reports whether every segment of an escaped path, unescaped (as the routes'
// path values see it, "%2F" included), is at most authz.MaxSegmentBytes long.
func segmentsBounded(escaped string) bool {
	n := 0 // unescaped bytes of the current segment
	for i := 0; i < len(escaped); i++ {
		switch escaped[i] {
		case '/':
			n = 0
			continue
		case '%':
			i += 2 // an escaped path has two hex digits after every "%"
		}
		if n++; n > authz.MaxSegmentBytes {
			return false
		}
	}
	return true
}

func moduleResource(r *http.Request) resource {
	// Registry addresses are case-insensitive (OpenTofu and Terraform normalise them to lower
	// case): requests, served addresses and binding patterns are all compared in lower case.
	ns, name, system := strings.ToLower(r.PathValue("ns")), strings.ToLower(r.PathValue("name")), strings.ToLower(r.PathValue("system"))
	return resource{kind: kindModule, address: ns + "/" + name + "/" + system, name: name, segments: []string{ns, name, system}}
}

// authorized resolves the request's tenant and the Module or Provider serving res in its
// namespace (nil when none does), then authenticates and authorizes the request. It returns
// false when it wrote the response. Callers answer 404 for a missing object only after this,
// so that nobody learns which addresses exist without being allowed to see them.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, res resource) (*dexv1.Module, *dexv1.Provider, bool) {
	t := s.tenantOf(w, r)
	if t == nil {
		return nil, nil, false
	}
	var mod *dexv1.Module
	var provider *dexv1.Provider
	name := ""
	if c := s.store.contentOf(t.provider.Namespace); c != nil {
		if res.kind == kindModule {
			if mod = c.modules[res.address]; mod != nil {
				name = mod.Name
			}
		} else if provider = c.providers[res.address]; provider != nil {
			name = provider.Name
		}
	}
	if !s.access(w, r, t, res, name) {
		return nil, nil, false
	}
	return mod, provider, true
}

func (s *Server) moduleVersions(w http.ResponseWriter, r *http.Request) {
	res := moduleResource(r)
	m, _, ok := s.authorized(w, r, res)
	if !ok {
		return
	}
	if m == nil {
		writeError(w, http.StatusNotFound, "module "+res.address+" not found")
		return
	}
	out := moduleVersions{Versions: make([]versionOnly, 0, len(m.Spec.Versions))}
	for _, v := range m.Spec.Versions {
		out.Versions = append(out.Versions, versionOnly{Version: v.Version})
	}
	writeJSON(w, http.StatusOK, versionsDoc{Modules: []moduleVersions{out}})
}

func (s *Server) moduleDownload(w http.ResponseWriter, r *http.Request) {
	res := moduleResource(r)
	m, _, ok := s.authorized(w, r, res)
	if !ok {
		return
	}
	version := r.PathValue("version")
	if m != nil {
		for _, v := range m.Spec.Versions {
			if v.Version == version {
				w.Header().Set("X-Terraform-Get", v.Source)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
	}
	writeError(w, http.StatusNotFound, "module "+res.address+" version "+version+" not found")
}

type providerVersionsDoc struct {
	Versions []providerVersion `json:"versions"`
}

type providerVersion struct {
	Version   string     `json:"version"`
	Protocols []string   `json:"protocols"`
	Platforms []platform `json:"platforms"`
}

type platform struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
}

type providerDownloadDoc struct {
	Protocols           []string    `json:"protocols"`
	OS                  string      `json:"os"`
	Arch                string      `json:"arch"`
	Filename            string      `json:"filename"`
	DownloadURL         string      `json:"download_url"`
	ShasumsURL          string      `json:"shasums_url"`
	ShasumsSignatureURL string      `json:"shasums_signature_url"`
	Shasum              string      `json:"shasum"`
	SigningKeys         signingKeys `json:"signing_keys"`
}

type signingKeys struct {
	GPGPublicKeys []gpgKey `json:"gpg_public_keys"`
}

type gpgKey struct {
	KeyID          string `json:"key_id"`
	ASCIIArmor     string `json:"ascii_armor"`
	TrustSignature string `json:"trust_signature,omitempty"`
	Source         string `json:"source,omitempty"`
	SourceURL      string `json:"source_url,omitempty"`
}

func providerResource(r *http.Request) resource {
	ns, typ := strings.ToLower(r.PathValue("ns")), strings.ToLower(r.PathValue("type"))
	return resource{kind: kindProvider, address: ns + "/" + typ, name: typ, segments: []string{ns, typ}}
}

func protocolsOf(v dexv1.ProviderVersion) []string {
	if len(v.Protocols) == 0 {
		return []string{"5.0"}
	}
	return v.Protocols
}

func (s *Server) providerVersions(w http.ResponseWriter, r *http.Request) {
	res := providerResource(r)
	_, p, ok := s.authorized(w, r, res)
	if !ok {
		return
	}
	if p == nil {
		writeError(w, http.StatusNotFound, "provider "+res.address+" not found")
		return
	}
	out := providerVersionsDoc{Versions: make([]providerVersion, 0, len(p.Spec.Versions))}
	for _, v := range p.Spec.Versions {
		pv := providerVersion{Version: v.Version, Protocols: protocolsOf(v)}
		for _, pl := range v.Platforms {
			pv.Platforms = append(pv.Platforms, platform{OS: pl.OS, Arch: pl.Arch})
		}
		out.Versions = append(out.Versions, pv)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) providerDownload(w http.ResponseWriter, r *http.Request) {
	res := providerResource(r)
	_, p, ok := s.authorized(w, r, res)
	if !ok {
		return
	}
	version, goos, arch := r.PathValue("version"), r.PathValue("os"), r.PathValue("arch")
	if p != nil {
		for _, v := range p.Spec.Versions {
			if v.Version != version {
				continue
			}
			for _, pl := range v.Platforms {
				if pl.OS != goos || pl.Arch != arch {
					continue
				}
				doc := providerDownloadDoc{
					Protocols: protocolsOf(v), OS: pl.OS, Arch: pl.Arch, Filename: pl.Filename,
					DownloadURL: pl.DownloadURL, ShasumsURL: pl.ShasumsURL,
					ShasumsSignatureURL: pl.ShasumsSignatureURL, Shasum: pl.Shasum,
				}
				for _, k := range p.Spec.SigningKeys.GPGPublicKeys {
					doc.SigningKeys.GPGPublicKeys = append(doc.SigningKeys.GPGPublicKeys, gpgKey{
						KeyID: k.KeyID, ASCIIArmor: k.ASCIIArmor, TrustSignature: k.TrustSignature,
						Source: k.Source, SourceURL: k.SourceURL,
					})
				}
				writeJSON(w, http.StatusOK, doc)
				return
			}
		}
	}
	writeError(w, http.StatusNotFound, "provider "+res.address+" "+version+" for "+goos+"/"+arch+" not found")
}
