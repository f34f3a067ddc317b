package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/importer"
)

// maxImportFile bounds the config file `dexterity import` reads.
const maxImportFile = 16 << 20

// runImport is `dexterity import -f <dex-config.yaml> [--namespace NS] [--provider NS/NAME]`:
// the manifests on stdout, warnings and the steps of the move on stderr. It returns the exit
// code: 0 done, 1 bad input, 2 bad usage.
func runImport(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dexterity import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		file, namespace, provider string
		helmValues, expandEnv     bool
		dexExpandEnv              bool
	)
	fs.StringVar(&file, "f", "", "Dex config file to import (- for stdin).")
	fs.StringVar(&namespace, "namespace", "", "Namespace of the objects (default: none written, kubectl's applies).")
	fs.StringVar(&provider, "provider", "", "OIDCProvider of the objects' providerRef, NAME or NS/NAME (default: dex, in the objects' namespace).")
	fs.BoolVar(&helmValues, "helm-values", false, "Read the file as values of Dex's Helm chart (the Dex config is under `config`).")
	fs.BoolVar(&expandEnv, "expand-env", false, "Resolve $VAR references, idEnv and secretEnv from this process's environment (run it where Dex's environment is set); without it their Secret values are left empty.")
	fs.BoolVar(&dexExpandEnv, "dex-expand-env", true, "Dex expands $VAR in connector configs (set false if Dex runs with DEX_EXPAND_ENV=false).")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: dexterity import -f <dex-config.yaml> [--namespace NS] [--provider NS/NAME] [--helm-values] [--expand-env]\n\n"+
			"Prints the DexStaticClient, DexConnector and Secret manifests that reproduce the config's\n"+
			"staticClients and connectors through Dexterity (for kubectl apply -f -); warnings and the\n"+
			"steps of the move go to stderr. See docs/migration.md.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dexterity import: unexpected argument %q; give the file with -f\n", fs.Arg(0))
		return 2
	}
	if file == "" {
		fmt.Fprintln(stderr, "dexterity import: -f is required: the Dex config file to import (- for stdin)")
		return 2
	}
	opts := importer.Options{Namespace: namespace, HelmValues: helmValues, LiteralDollars: !dexExpandEnv}
	if provider != "" {
		ns, name, found := strings.Cut(provider, "/")
		if !found {
			ns, name = "", provider
		}
		if name == "" || found && ns == "" || strings.Contains(name, "/") {
			fmt.Fprintf(stderr, "dexterity import: --provider %q: give NAME or NAMESPACE/NAME of an OIDCProvider\n", provider)
			return 2
		}
		opts.Provider = dexv1.ObjectRef{Namespace: ns, Name: name}
	}
	if expandEnv {
		opts.LookupEnv = os.LookupEnv
	}

	data, err := readImportFile(file, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "dexterity import: %v\n", err)
		return 1
	}
	res, err := importer.Import(data, opts)
	if err != nil {
		var errs importer.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintf(stderr, "%s: %v\n", file, e)
			}
		} else {
			fmt.Fprintf(stderr, "dexterity import: %s: %v\n", file, err)
		}
		return 1
	}
	out, err := res.Manifests()
	if err != nil {
		fmt.Fprintf(stderr, "dexterity import: %v\n", err)
		return 1
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s: %s\n", file, w)
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "dexterity import: failed to write the manifests: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "\n%s", res.Steps(file, opts))
	return 0
}

// readImportFile reads the file (or stdin for "-"), at most maxImportFile bytes.
func readImportFile(file string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("failed to open the config file: %w", err)
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxImportFile+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read the config file: %w", err)
	}
	if len(data) > maxImportFile {
		return nil, fmt.Errorf("the config file is over %d MiB; a Dex config is far smaller", maxImportFile>>20)
	}
	return data, nil
}
