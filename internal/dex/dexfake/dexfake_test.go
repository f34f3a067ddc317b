package dexfake_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"

	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/dex/dexfake"
	"dexterity.dev/dexterity/test/harness"
)

// What the fake offers beyond Dex itself (counters, inspection, outage, reset); Dex's own
// behaviour is in contract_test.go.

func TestCallCounters(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := dexfake.New(dexfake.Options{Provider: "counters/test"})

	g.Expect(f.CreateClient(ctx, &api.Client{Id: "a", Secret: "s"})).To(Succeed())
	g.Expect(dex.IsAlreadyExists(f.CreateClient(ctx, &api.Client{Id: "a", Secret: "s"}))).To(BeTrue())
	_, err := f.GetClient(ctx, "a")
	g.Expect(err).NotTo(HaveOccurred())
	f.SetUnavailable(true)
	_, err = f.ListConnectors(ctx)
	g.Expect(dex.IsUnavailable(err)).To(BeTrue())
	f.SetUnavailable(false)

	g.Expect(f.Calls(dexfake.MethodCreateClient)).To(Equal(2), "failed calls count too")
	g.Expect(f.Calls(dexfake.MethodGetClient)).To(Equal(1))
	g.Expect(f.Calls(dexfake.MethodListConnectors)).To(Equal(1), "calls during an outage count too")
	g.Expect(f.Calls(dexfake.MethodDeleteClient)).To(BeZero())
	g.Expect(f.WriteCalls()).To(Equal(2))
	g.Expect(f.CallCounts()).To(Equal(map[string]int{"CreateClient": 2, "GetClient": 1, "ListConnectors": 1}))
	// The calls go through the real wrapper, so they are in its metrics too.
	g.Expect(harness.DexCalls("counters/test", "CreateClient")).To(BeEquivalentTo(2))

	f.Reset()
	g.Expect(f.Calls(dexfake.MethodCreateClient)).To(Equal(2), "Reset keeps the counters")
	f.ResetCalls()
	g.Expect(f.CallCounts()).To(BeEmpty())
	g.Expect(f.WriteCalls()).To(BeZero())
}

func TestInspectionAndCopies(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := dexfake.New(dexfake.Options{
		StaticClients:    []*api.Client{{Id: "static", Secret: "s", Name: "Static"}},
		StaticConnectors: []*api.Connector{dexfake.LocalConnector()},
	})
	in := &api.Client{Id: "b", Secret: "s", RedirectUris: []string{"https://b/cb"}}
	g.Expect(f.CreateClient(ctx, in)).To(Succeed())
	g.Expect(f.CreateClient(ctx, &api.Client{Id: "a", Secret: "s"})).To(Succeed())
	in.RedirectUris[0] = "changed by the caller"

	got, err := f.GetClient(ctx, "b")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.RedirectUris).To(Equal([]string{"https://b/cb"}), "the fake keeps its own copy of what it was sent")
	got.RedirectUris[0] = "changed by the reader"
	c, ok := f.Client("b")
	g.Expect(ok).To(BeTrue())
	g.Expect(c.RedirectUris).To(Equal([]string{"https://b/cb"}), "and hands out copies")

	var ids []string
	for _, c := range f.Clients() {
		ids = append(ids, c.Id)
	}
	g.Expect(ids).To(Equal([]string{"a", "b", "static"}), "created clients by id, then static ones")

	g.Expect(f.CreateConnector(ctx, &api.Connector{Id: "z", Type: "oidc", Name: "Z", Config: []byte(`{}`)})).To(Succeed())
	g.Expect(f.CreateConnector(ctx, &api.Connector{Id: "y", Type: "oidc", Name: "Y", Config: []byte(`{}`)})).To(Succeed())
	ids = nil
	for _, c := range f.Connectors() {
		ids = append(ids, c.Id)
	}
	g.Expect(ids).To(Equal([]string{"y", "z", "local"}))
	g.Expect(f.Calls(dexfake.MethodListConnectors)).To(BeZero(), "inspection is not a call")

	f.SetUnavailable(true)
	_, ok = f.Client("a")
	g.Expect(ok).To(BeTrue(), "inspection works during an outage")
	f.SetUnavailable(false)

	f.Reset()
	_, ok = f.Client("a")
	g.Expect(ok).To(BeFalse(), "Reset drops created clients")
	_, ok = f.Client("static")
	g.Expect(ok).To(BeTrue(), "and keeps static ones")
	g.Expect(f.Connectors()).To(HaveLen(1))
}

func TestVersionAndConnectorsCRUDSwitch(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := dexfake.New(dexfake.Options{Version: "v2.45.1", DisableConnectorsCRUD: true})
	v, err := f.GetVersion(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v.GetServer()).To(Equal("v2.45.1"))
	g.Expect(v.GetApi()).To(BeEquivalentTo(dexfake.APIVersion))

	_, err = f.ListConnectors(ctx)
	g.Expect(dex.IsConnectorsCRUDDisabled(err)).To(BeTrue())
	f.SetConnectorsCRUD(true)
	g.Expect(f.CreateConnector(ctx, &api.Connector{Id: "c", Type: "oidc", Name: "C", Config: []byte(`{}`)})).To(Succeed())
	f.SetConnectorsCRUD(false)
	g.Expect(dex.IsConnectorsCRUDDisabled(f.DeleteConnector(ctx, "c"))).To(BeTrue())
	g.Expect(f.Connectors()).To(HaveLen(1), "switching the flag keeps what is stored")
}

func TestOutageAndCrash(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := dexfake.New(dexfake.Options{})
	g.Expect(f.CreateClient(ctx, &api.Client{Id: "a", Secret: "s"})).To(Succeed())

	// A crash (what a nil connector does to Dex) outlasts the end of an outage; Reset restarts.
	err := f.CreateConnector(ctx, nil)
	g.Expect(dex.IsUnavailable(err)).To(BeTrue(), "%v", err)
	f.SetUnavailable(false)
	_, err = f.GetVersion(ctx)
	g.Expect(dex.IsUnavailable(err)).To(BeTrue(), "a crashed Dex stays down")
	f.Reset()
	_, err = f.GetVersion(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = f.GetClient(ctx, "a")
	g.Expect(dex.IsNotFound(err)).To(BeTrue(), "memory storage died with it")

	// An outage outlasts Reset.
	f.SetUnavailable(true)
	f.Reset()
	_, err = f.GetVersion(ctx)
	g.Expect(dex.IsUnavailable(err)).To(BeTrue())
}

func TestContextDone(t *testing.T) {
	g := NewWithT(t)
	f := dexfake.New(dexfake.Options{})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	err := f.CreateClient(cancelled, &api.Client{Id: "a", Secret: "s"})
	g.Expect(err).To(HaveOccurred())
	g.Expect(dex.IsUnavailable(err)).To(BeFalse(), "a cancelled call is not an outage (gRPC Canceled)")
	_, ok := f.Client("a")
	g.Expect(ok).To(BeFalse())

	expired, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	_, err = f.GetClient(expired, "a")
	g.Expect(dex.IsUnavailable(err)).To(BeTrue(), "a deadline is (gRPC DeadlineExceeded)")
}

// Many goroutines at once; meaningful with -race.
func TestConcurrentUse(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := dexfake.New(dexfake.Options{})
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				_ = f.CreateClient(ctx, &api.Client{Id: id, Secret: "s"})
				_ = f.UpdateClient(ctx, &api.UpdateClientReq{Id: id, Name: "n"})
				_, _ = f.GetClient(ctx, id)
				_ = f.CreateConnector(ctx, &api.Connector{Id: id, Type: "oidc", Name: "n", Config: []byte(`{}`)})
				_, _ = f.ListConnectors(ctx)
				if i%10 == 0 {
					_ = f.Clients()
					_ = f.CallCounts()
				}
			}
		}()
	}
	wg.Wait()
	g.Expect(f.Clients()).To(HaveLen(workers * each))
	g.Expect(f.Connectors()).To(HaveLen(workers * each))
	g.Expect(f.Calls(dexfake.MethodCreateClient)).To(Equal(workers * each))
	g.Expect(f.WriteCalls()).To(Equal(3 * workers * each))
}
