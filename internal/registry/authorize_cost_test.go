package registry_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/test/harness"
)

// quickly is how long a registry request reaching a costly binding may take on a loaded test
// machine (the deadline is a few milliseconds; without the bound such requests take hours).
const quickly = 2 * time.Second

// getWithin is tt.get with a client timeout: a request the registry holds fails instead of
// hanging the test.
func getWithin(tt *testTenant, path, token string) (int, string, time.Duration) {
	req, err := http.NewRequest(http.MethodGet, registryURL+path, nil)
	if err != nil {
		panic(err)
	}
	req.Host = tt.host
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error(), time.Since(start)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), time.Since(start)
}

// TestCostlyBindingsDenyQuickly: a GroupBinding over the cost bound stored without the webhook
// (the attack of issue #14: nested all() over split(repeat(...)), which held a request for more
// than 20 s) denies at once with 403, and one within the bound that runs past the evaluation
// deadline is stopped, denied with 403, counted, and reported by an EvaluationDeadline event on
// the binding (one per minute), through the real API server and Dex tokens.
func TestCostlyBindingsDenyQuickly(t *testing.T) {
	ctx := context.Background()
	versionsPath := "/v1/modules/team-a/network/aws/versions"
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	bob := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.OtherUser)

	// Events go to the API server as the manager's would.
	cs, err := kubernetes.NewForConfig(env.Config)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	t.Cleanup(broadcaster.Shutdown)
	registry.SetEventRecorder(broadcaster.NewRecorder(harness.Scheme, corev1.EventSource{Component: "dexterity-registry"}), k8s)
	t.Cleanup(func() { registry.SetEventRecorder(nil, nil) })

	// waitFor polls until a request answers code with a body containing want, and checks that
	// every request answered quickly.
	waitFor := func(t *testing.T, tt *testTenant, tok string, code int, want string) {
		t.Helper()
		g := NewWithT(t)
		g.Eventually(func(g Gomega) {
			got, body, took := getWithin(tt, versionsPath, tok)
			g.Expect(took).To(BeNumerically("<", quickly), "the request took %s: %s", took, body)
			g.Expect(got).To(Equal(code), body)
			g.Expect(body).To(ContainSubstring(want))
		}, 30*time.Second, 50*time.Millisecond).Should(Succeed())
	}

	cases := []struct {
		name, expr string
	}{
		{"nested all over split(repeat)", `let parts = split(repeat("a,", 100000), ","); all(parts, {all(parts, {# != "b"})})`},
		{"reduce doubling a string", `reduce(1..24, #acc + #acc, "ab") == ""`},
		{"huge range", `any(1..100000000, {# < 0})`},
	}
	for _, tc := range cases {
		t.Run("over the bound: "+tc.name, func(t *testing.T) {
			tt := newTenant(t, tenantOptions{})
			tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
				binding("z-members", `"team-a" in groups`, []string{"team-a/*"}, nil))
			waitFor(t, tt, admin, http.StatusOK, `"1.0.0"`)
			// Evaluated first (bindings are sorted by name).
			tt.create(t, binding("a-costly", tc.expr, []string{"team-a/*"}, nil))
			waitFor(t, tt, admin, http.StatusForbidden, "GroupBinding a-costly has an expression over the cost bound")
		})
	}

	t.Run("past the deadline", func(t *testing.T) {
		g := NewWithT(t)
		// A deadline far below what the expression needs on any machine (400,000 iterations,
		// within the bound), so that the test does not depend on the machine's speed.
		prev := authz.SetDeadline(time.Millisecond)
		t.Cleanup(func() { authz.SetDeadline(prev) })
		tt := newTenant(t, tenantOptions{})
		tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
			binding("z-members", `"team-a" in groups`, []string{"team-a/*"}, nil))
		waitFor(t, tt, admin, http.StatusOK, `"1.0.0"`)
		slow := binding("a-slow", `any(1..10000, {any(1..40, {# == -1})})`, []string{"team-a/*"}, nil)
		deadlines := counter(t, "dexterity_groupbinding_evaluation_deadline_total", nil)
		decisions := counter(t, "dexterity_registry_auth_decisions_total", map[string]string{"reason": "evaluation_deadline"})
		tt.create(t, slow)
		waitFor(t, tt, admin, http.StatusForbidden, "GroupBinding a-slow: evaluating the expressions and resource patterns ran past the 1ms deadline")
		g.Expect(counter(t, "dexterity_groupbinding_evaluation_deadline_total", nil)).To(BeNumerically(">", deadlines))
		g.Expect(counter(t, "dexterity_registry_auth_decisions_total", map[string]string{"reason": "evaluation_deadline"})).To(BeNumerically(">", decisions))

		// The reason is visible on the binding: one Warning event.
		deadlineEvents := func(g Gomega) []corev1.Event {
			list := &corev1.EventList{}
			g.Expect(k8s.List(ctx, list, client.InNamespace(tt.ns))).To(Succeed())
			var out []corev1.Event
			for _, e := range list.Items {
				if e.InvolvedObject.Kind == "GroupBinding" && e.InvolvedObject.Name == "a-slow" && e.Reason == dexv1.ReasonEvaluationDeadline {
					out = append(out, e)
				}
			}
			return out
		}
		g.Eventually(deadlineEvents, 30*time.Second, 100*time.Millisecond).Should(ConsistOf(And(
			HaveField("Type", corev1.EventTypeWarning),
			HaveField("InvolvedObject.UID", slow.UID),
			HaveField("Message", ContainSubstring("ran past the 1ms deadline")),
			HaveField("Count", BeNumerically("==", 1)))))

		// Another caller hits the deadline too (denied and counted), but within the minute the
		// binding gets no second event (client-go would count a repeated one in Count).
		waitFor(t, tt, bob, http.StatusForbidden, "ran past the 1ms deadline")
		g.Consistently(deadlineEvents, 2*time.Second, 200*time.Millisecond).Should(ConsistOf(
			HaveField("Count", BeNumerically("==", 1))))
	})
}

// TestLongNamesAndCostlyGlobsAnswerQuickly (issue: "Registry CPU burn. Team A's user sends long
// module names while a GroupBinding carries huge globs"), through the API server, Dex tokens and
// the registry's port: a binding with the costliest globs the CRD admits (100 patterns of 256
// bytes) against 256-byte names is cut off at the evaluation deadline (403 in milliseconds),
// and longer names are 404 before authentication (a garbage token gets 404, not 401).
func TestLongNamesAndCostlyGlobsAnswerQuickly(t *testing.T) {
	g := NewWithT(t)
	prev := authz.SetDeadline(time.Millisecond) // far below what matching all the patterns takes
	t.Cleanup(func() { authz.SetDeadline(prev) })
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	tt := newTenant(t, tenantOptions{})
	seg := "*" + strings.Repeat("[a-z]", (authz.MaxPatternBytes-2)/5) + "b"
	patterns := make([]string, authz.MaxPatterns)
	for i := range patterns {
		patterns[i] = seg[:len(seg)-1] + string(rune('c'+i%20))
	}
	tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("members", `"team-a" in groups`, patterns, patterns))

	name := strings.Repeat("a", authz.MaxSegmentBytes)
	longest := "/v1/modules/" + name + "/" + name + "/" + name + "/versions"
	g.Eventually(func(g Gomega) {
		code, body, took := getWithin(tt, longest, admin)
		g.Expect(took).To(BeNumerically("<", quickly), "the request took %s: %s", took, body)
		g.Expect(code).To(Equal(http.StatusForbidden), body)
		g.Expect(body).To(ContainSubstring("GroupBinding members: evaluating the expressions and resource patterns ran past the 1ms deadline"))
	}, 30*time.Second, 50*time.Millisecond).Should(Succeed())
	code, body, took := getWithin(tt, "/v1/providers/"+name+"/"+name+"/versions", admin)
	g.Expect(code).To(Equal(http.StatusForbidden), body)
	g.Expect(took).To(BeNumerically("<", quickly))

	for _, path := range []string{
		"/v1/modules/team-a/" + name + "a/aws/versions",
		"/v1/modules/team-a/" + strings.Repeat("a", 64<<10) + "/aws/versions",
		"/v1/providers/team-a/" + strings.Repeat("a", 64<<10) + "/versions",
	} {
		code, body, took := getWithin(tt, path, "garbage")
		g.Expect(code).To(Equal(http.StatusNotFound), "%.60s...: %s", path, body)
		g.Expect(body).To(ContainSubstring("a path segment is longer than 256 bytes"))
		g.Expect(took).To(BeNumerically("<", quickly))
	}
	code, body, _ = getWithin(tt, "/v1/modules/team-a/"+name+"/aws/versions", "garbage")
	g.Expect(code).To(Equal(http.StatusUnauthorized), "256 bytes: authentication answers: %s", body)
}
