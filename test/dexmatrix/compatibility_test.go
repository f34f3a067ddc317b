package dexmatrix_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"dexterity.dev/dexterity/test/harness"
)

// compatRow is one row of the table in docs/compatibility.md.
type compatRow struct {
	release, module, apiModule, api, clients, connectors, mtls, groups string
}

// compatibilityTable parses the releases table of docs/compatibility.md.
func compatibilityTable(t *testing.T, root string) []compatRow {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "docs", "compatibility.md"))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	defer func() { _ = f.Close() }()
	var rows []compatRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "| v2.") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		NewWithT(t).Expect(cells).To(HaveLen(8), "row %q", line)
		rows = append(rows, compatRow{cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7]})
	}
	NewWithT(t).Expect(sc.Err()).NotTo(HaveOccurred())
	return rows
}

// toolsBuilds are the releases hack/tools.sh builds (its dex_release lines).
func toolsBuilds(t *testing.T, root string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "hack", "tools.sh"))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\s+dex_release (v\S+) `).FindAllStringSubmatch(string(data), -1) {
		out = append(out, m[1])
	}
	return out
}

// requireLine matches a require of go.mod: module path and version.
var requireLine = regexp.MustCompile(`(?m)^\s*(?:require\s+)?(github\.com/dexidp/dex(?:/api/v2)?) (v\S+)`)

// moduleVersions returns the versions of github.com/dexidp/dex and its api/v2 that a module under
// hack/tools requires.
func moduleVersions(t *testing.T, root, dir string) (dex, api string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "hack", "tools", dir, "go.mod"))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, m := range requireLine.FindAllStringSubmatch(string(data), -1) {
		if m[1] == "github.com/dexidp/dex" {
			dex = m[2]
		} else {
			api = m[2]
		}
	}
	return dex, api
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// TestCompatibilityTable: docs/compatibility.md lists exactly the releases TestReleases runs, in
// order, with the facts the matrix checks on each binary (harness.DexReleases), the module
// hack/tools pins for it, and hack/tools.sh builds each one.
func TestCompatibilityTable(t *testing.T) {
	g := NewWithT(t)
	root, err := harness.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	rows := compatibilityTable(t, root)

	var releases []string
	for _, r := range harness.DexReleases {
		releases = append(releases, r.Version)
	}
	var documented []string
	for _, r := range rows {
		documented = append(documented, r.release)
	}
	g.Expect(documented).To(Equal(releases), "docs/compatibility.md's rows and harness.DexReleases (what the matrix runs)")
	g.Expect(toolsBuilds(t, root)).To(ConsistOf(releases), "hack/tools.sh's dex_release lines and harness.DexReleases")
	g.Expect(releases[len(releases)-1]).To(Equal(harness.LatestDexRelease))

	for i, rel := range harness.DexReleases {
		row := rows[i]
		dexVersion, apiVersion := moduleVersions(t, root, rel.BinaryName())
		connectors, mtls := "yes", "yes"
		if !rel.ConnectorAPI {
			connectors = "no: `DexVersionUnsupported`"
		}
		if !rel.MTLS {
			mtls = "no: `DexTLSError`"
		}
		g.Expect(row).To(Equal(compatRow{
			release:    rel.Version,
			module:     dexVersion,
			apiModule:  apiVersion,
			api:        strconv.Itoa(int(rel.API)),
			clients:    "yes",
			connectors: connectors,
			mtls:       mtls,
			groups:     yesNo(rel.PasswordGroups),
		}), "docs/compatibility.md's row of %s (the module is hack/tools/%s)", rel.Version, rel.BinaryName())
	}
}
