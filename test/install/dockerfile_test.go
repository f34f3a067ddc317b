package install

import (
	"bufio"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// dockerfile is what the tests read of the Dockerfile.
type dockerfile struct {
	copies   []string // source folders the builder stage copies
	buildEnv []string // KEY=VALUE before `go build`
	build    []string // the go build arguments
	final    string   // FROM of the last stage
	user     string
	entry    string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	defer func() { _ = f.Close() }()
	var d dockerfile
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "FROM":
			d.final = fields[1]
		case "COPY":
			if len(fields) == 3 && strings.HasSuffix(fields[1], "/") {
				d.copies = append(d.copies, strings.TrimSuffix(fields[1], "/"))
			}
		case "RUN":
			for i, w := range fields[1:] {
				if w == "go" && i+2 < len(fields) && fields[i+2] == "build" {
					d.buildEnv = fields[1 : i+1]
					d.build = fields[i+3:]
				}
			}
		case "USER":
			d.user = fields[1]
		case "ENTRYPOINT":
			d.entry = strings.Join(fields[1:], " ")
		}
	}
	NewWithT(t).Expect(sc.Err()).NotTo(HaveOccurred())
	return d
}

// The image cannot be built here (no Docker engine), so this test runs the Dockerfile's own
// `go build` line and checks what the image would contain: a static manager binary, every
// source folder it needs, a distroless non-root base without a shell.
func TestDockerfileBuild(t *testing.T) {
	g := NewWithT(t)
	d := readDockerfile(t)
	g.Expect(d.build).NotTo(BeEmpty(), "the builder stage runs go build")
	g.Expect(d.buildEnv).To(ContainElement("CGO_ENABLED=0"), "a static build")
	g.Expect(d.final).To(HavePrefix("gcr.io/distroless/static"), "distroless, no shell")
	g.Expect(d.final).To(HaveSuffix(":nonroot"))
	g.Expect(d.user).To(Equal("65532:65532"))
	g.Expect(d.entry).To(Equal(`["/dexterity"]`), "exec form: no shell needed")

	// Every folder of the module the manager imports is copied into the builder.
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "../../cmd/dexterity").Output()
	g.Expect(err).NotTo(HaveOccurred())
	for _, pkg := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(pkg, "dexterity.dev/dexterity/")
		if !ok {
			continue
		}
		g.Expect(d.copies).To(ContainElement(strings.SplitN(rel, "/", 2)[0]), "the Dockerfile copies %s (imported by the manager)", rel)
	}

	// The same go build, output redirected into a temporary folder.
	args := append([]string(nil), d.build...)
	bin := filepath.Join(t.TempDir(), "dexterity")
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1] = bin
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), d.buildEnv...)
	b, err := cmd.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", b)

	ef, err := elf.Open(bin)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = ef.Close() }()
	for _, p := range ef.Progs {
		g.Expect(p.Type).NotTo(Equal(elf.PT_INTERP), "the binary is static (no dynamic loader)")
	}
	libs, err := ef.ImportedLibraries()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(libs).To(BeEmpty())

	help, _ := exec.Command(bin, "--help").CombinedOutput()
	for _, flag := range []string{"-registry-bind-address", "-enable-webhooks", "-dex-resync-period", "-leader-elect"} {
		g.Expect(string(help)).To(ContainSubstring(flag))
	}
}
