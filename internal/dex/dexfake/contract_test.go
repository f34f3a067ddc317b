package dexfake_test

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"dexterity.dev/dexterity/test/dexmatrix/contract"
	"dexterity.dev/dexterity/test/harness"
)

// The contract: one table of behaviours (test/dexmatrix/contract), run against the real Dex
// (bin/dex, memory storage, through dex.NewClient as the controllers see it) and against the fake.
// Every step's outcome must be the one the table says, for both. test/dexmatrix runs the same
// table on every Dex release of harness.DexReleases.

// crudOn and crudOff are the real Dex with and without DEX_API_CONNECTORS_CRUD=true.
var crudOn, crudOff *contract.Real

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "dexfake-contract-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if crudOn, err = contract.StartReal(harness.DexOptions{Dir: dir + "/crud-on"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer crudOn.Close()
	if crudOff, err = contract.StartReal(harness.DexOptions{Dir: dir + "/crud-off", DisableConnectorsCRUD: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer crudOff.Close()
	code := m.Run()
	if code != 0 {
		for _, r := range []*contract.Real{crudOn, crudOff} {
			fmt.Fprintf(os.Stderr, "--- Dex log (%s) ---\n%s\n", r.Dex().LogPath(), tail(r.Dex().Log()))
		}
	}
	return code
}

func tail(s string) string {
	if len(s) > 8192 {
		return "..." + s[len(s)-8192:]
	}
	return s
}

// TestContract runs the table on bin/dex (the latest release, as hack/tools.sh builds it) and on
// the fake set up like it.
func TestContract(t *testing.T) {
	rel, ok := harness.LookupDexRelease(harness.LatestDexRelease)
	if !ok {
		t.Fatalf("harness.DexReleases has no %s", harness.LatestDexRelease)
	}
	contract.Run(t, rel,
		contract.Targets{CRUDOn: crudOn, CRUDOff: crudOff},
		&contract.Targets{CRUDOn: contract.NewFake(rel, false), CRUDOff: contract.NewFake(rel, true)})
}

// TestContractWithoutConnectorAPI runs the table for a release before v2.41 on the fake alone
// (test/dexmatrix compares it with the real v2.39.1): every connector call is Unimplemented.
func TestContractWithoutConnectorAPI(t *testing.T) {
	i := slices.IndexFunc(harness.DexReleases, func(r harness.DexRelease) bool { return !r.ConnectorAPI })
	if i < 0 {
		t.Fatal("harness.DexReleases has no release without the connector API (v2.39.1 is one): the matrix lost its oldest release")
	}
	rel := harness.DexReleases[i]
	fake := contract.Targets{CRUDOn: contract.NewFake(rel, false), CRUDOff: contract.NewFake(rel, true)}
	contract.Run(t, rel, fake, nil)
}
