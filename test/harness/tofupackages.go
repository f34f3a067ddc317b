package harness

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// packageTime is the modification time written into archives so that they are reproducible.
var packageTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ProviderPackage is one provider zip for one platform.
type ProviderPackage struct {
	OS, Arch string
	// Filename is terraform-provider-<type>_<version>_<os>_<arch>.zip.
	Filename string
	// Path is the zip's absolute path.
	Path string
	// SHA256 is the hex SHA-256 of the zip (the registry's shasum).
	SHA256 string
}

// SignedProvider is a provider release laid out like a registry serves it: one zip per
// platform, terraform-provider-<type>_<version>_SHA256SUMS and its binary detached signature
// ..._SHA256SUMS.sig, all in Dir, signed with Key.
type SignedProvider struct {
	Namespace, Type, Version string
	Dir                      string
	Packages                 []ProviderPackage
	SHA256SumsFilename       string
	SHA256SumsPath           string
	SignatureFilename        string
	SignaturePath            string
	Key                      *GPGKey
}

// ProviderDownload is the registry's answer to GET <providers.v1><ns>/<type>/<version>/download/<os>/<arch>.
type ProviderDownload struct {
	Protocols           []string           `json:"protocols"`
	OS                  string             `json:"os"`
	Arch                string             `json:"arch"`
	Filename            string             `json:"filename"`
	DownloadURL         string             `json:"download_url"`
	SHASumsURL          string             `json:"shasums_url"`
	SHASumsSignatureURL string             `json:"shasums_signature_url"`
	SHASum              string             `json:"shasum"`
	SigningKeys         ProviderSigningKey `json:"signing_keys"`
}

// ProviderSigningKey is the signing_keys object of ProviderDownload.
type ProviderSigningKey struct {
	GPGPublicKeys []GPGPublicKey `json:"gpg_public_keys"`
}

// GPGPublicKey is one entry of signing_keys.gpg_public_keys.
type GPGPublicKey struct {
	KeyID      string `json:"key_id"`
	ASCIIArmor string `json:"ascii_armor"`
}

// BuildSignedProvider generates a throwaway GPG key and builds a signed provider release in dir
// for the given [os, arch] platforms (the current platform when none). Each zip holds one
// executable, terraform-provider-<type>_v<version>: a shell script that exits 1, enough for
// `tofu init` (which only installs and checks for that executable), not for plan or apply.
func BuildSignedProvider(t testing.TB, dir, namespace, typ, version string, platforms [][2]string) (*SignedProvider, error) {
	t.Helper()
	key, err := GenerateGPGKey(t, "Test signer for "+namespace+"/"+typ)
	if err != nil {
		return nil, err
	}
	return BuildSignedProviderWithKey(key, dir, namespace, typ, version, platforms)
}

// BuildSignedProviderWithKey is BuildSignedProvider with a given key.
func BuildSignedProviderWithKey(key *GPGKey, dir, namespace, typ, version string, platforms [][2]string) (*SignedProvider, error) {
	if len(platforms) == 0 {
		platforms = [][2]string{{runtime.GOOS, runtime.GOARCH}}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to resolve provider dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create provider dir: %w", err)
	}
	p := &SignedProvider{Namespace: namespace, Type: typ, Version: version, Dir: dir, Key: key}
	prefix := fmt.Sprintf("terraform-provider-%s_%s", typ, version)
	var sums []string
	for _, pl := range platforms {
		pkg := ProviderPackage{OS: pl[0], Arch: pl[1], Filename: fmt.Sprintf("%s_%s_%s.zip", prefix, pl[0], pl[1])}
		pkg.Path = filepath.Join(dir, pkg.Filename)
		script := fmt.Sprintf("#!/bin/sh\necho 'test package of provider %s/%s %s (%s_%s); not a real provider' >&2\nexit 1\n",
			namespace, typ, version, pl[0], pl[1])
		data, err := zipFile(fmt.Sprintf("terraform-provider-%s_v%s", typ, version), []byte(script))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(pkg.Path, data, 0o644); err != nil {
			return nil, fmt.Errorf("failed to write provider package: %w", err)
		}
		sum := sha256.Sum256(data)
		pkg.SHA256 = hex.EncodeToString(sum[:])
		sums = append(sums, pkg.SHA256+"  "+pkg.Filename+"\n")
		p.Packages = append(p.Packages, pkg)
	}
	sort.Strings(sums)

	p.SHA256SumsFilename = prefix + "_SHA256SUMS"
	p.SHA256SumsPath = filepath.Join(dir, p.SHA256SumsFilename)
	if err := os.WriteFile(p.SHA256SumsPath, []byte(strings.Join(sums, "")), 0o644); err != nil {
		return nil, fmt.Errorf("failed to write SHA256SUMS: %w", err)
	}
	p.SignatureFilename = p.SHA256SumsFilename + ".sig"
	p.SignaturePath = filepath.Join(dir, p.SignatureFilename)
	if err := key.DetachSign(p.SHA256SumsPath, p.SignaturePath); err != nil {
		return nil, err
	}
	return p, nil
}

// Package returns the package for os/arch.
func (p *SignedProvider) Package(goos, arch string) (ProviderPackage, bool) {
	for _, pkg := range p.Packages {
		if pkg.OS == goos && pkg.Arch == arch {
			return pkg, true
		}
	}
	return ProviderPackage{}, false
}

// Download returns the registry's download answer for os/arch, with the files served at
// baseURL/<filename> (baseURL may be relative to the download endpoint; tofu resolves it).
func (p *SignedProvider) Download(goos, arch, baseURL string) (ProviderDownload, bool) {
	pkg, ok := p.Package(goos, arch)
	if !ok {
		return ProviderDownload{}, false
	}
	base := strings.TrimSuffix(baseURL, "/") + "/"
	return ProviderDownload{
		Protocols:           []string{"5.0"},
		OS:                  goos,
		Arch:                arch,
		Filename:            pkg.Filename,
		DownloadURL:         base + pkg.Filename,
		SHASumsURL:          base + p.SHA256SumsFilename,
		SHASumsSignatureURL: base + p.SignatureFilename,
		SHASum:              pkg.SHA256,
		SigningKeys: ProviderSigningKey{GPGPublicKeys: []GPGPublicKey{{
			KeyID:      p.Key.KeyID,
			ASCIIArmor: p.Key.ASCIIArmor,
		}}},
	}, true
}

// zipFile returns a zip holding one executable file.
func zipFile(name string, content []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	hdr := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: packageTime}
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("failed to add %s to zip: %w", name, err)
	}
	if _, err := w.Write(content); err != nil {
		return nil, fmt.Errorf("failed to write %s to zip: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("failed to close zip: %w", err)
	}
	return buf.Bytes(), nil
}

// BuildModuleTarball writes a module-*.tar.gz in dir holding files (slash-separated relative
// path -> content, e.g. "main.tf") and returns its path. A module source or X-Terraform-Get
// location can point at it as https://host/path/module-x.tar.gz (or with ?archive=tar.gz).
func BuildModuleTarball(dir string, files map[string]string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("failed to create module dir: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range names {
		clean := filepath.ToSlash(filepath.Clean(name))
		if filepath.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") {
			return "", fmt.Errorf("failed to add %q to module: path must be relative and inside the module", name)
		}
		content := []byte(files[name])
		hdr := &tar.Header{Name: clean, Mode: 0o644, Size: int64(len(content)), ModTime: packageTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", fmt.Errorf("failed to add %s to module: %w", name, err)
		}
		if _, err := tw.Write(content); err != nil {
			return "", fmt.Errorf("failed to write %s to module: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("failed to close module tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return "", fmt.Errorf("failed to close module gzip: %w", err)
	}
	f, err := os.CreateTemp(dir, "module-*.tar.gz")
	if err != nil {
		return "", fmt.Errorf("failed to create module tarball: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return "", fmt.Errorf("failed to write module tarball: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("failed to write module tarball: %w", err)
	}
	return f.Name(), nil
}

// ProviderSpec is the spec of a Provider object publishing this release, with every platform's
// files served at baseURL + "/" + filename.
func (p *SignedProvider) ProviderSpec(baseURL string) dexv1.ProviderSpec {
	base := strings.TrimSuffix(baseURL, "/") + "/"
	v := dexv1.ProviderVersion{Version: p.Version, Protocols: []string{"5.0"}}
	for _, pkg := range p.Packages {
		v.Platforms = append(v.Platforms, dexv1.ProviderPlatform{
			OS: pkg.OS, Arch: pkg.Arch, Filename: pkg.Filename, DownloadURL: base + pkg.Filename, Shasum: pkg.SHA256,
			ShasumsURL: base + p.SHA256SumsFilename, ShasumsSignatureURL: base + p.SignatureFilename,
		})
	}
	return dexv1.ProviderSpec{
		Namespace: p.Namespace, Type: p.Type,
		SigningKeys: dexv1.SigningKeys{GPGPublicKeys: []dexv1.GPGPublicKey{{KeyID: p.Key.KeyID, ASCIIArmor: p.Key.ASCIIArmor}}},
		Versions:    []dexv1.ProviderVersion{v},
	}
}
