package controllers

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
)

// kstatusOfObject reads an object in memory the way Flux's health checks, kapp and cli-utils
// pollers do.
func kstatusOfObject(g Gomega, obj runtime.Object) status.Status {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// finishInMemory is finish without the status patch: the outcome's condition, the kind's Ready
// summary, and Reconciling/Stalled.
func finishInMemory(k statusKind[*dexv1.DexStaticClient], obj, before *dexv1.DexStaticClient, err error) (ctrl.Result, error) {
	res, err := k.report(obj, before, ctrl.Result{RequeueAfter: time.Hour}, err)
	k.summarize(obj)
	setKstatus(obj, before.GetConditions())
	obj.SetObservedGeneration(obj.GetGeneration())
	return res, err
}

// The type of a reconcile's outcome alone decides how kstatus reads the object, the condition
// and the workqueue's result: whatever its reason, a Stalled problem reads as Failed, anything
// else as InProgress; only Retry and other errors are returned for backoff.
func TestOutcomeTypeDecidesKstatusAndResult(t *testing.T) {
	down := errors.New("connection refused")
	k := statusKind[*dexv1.DexStaticClient]{summarize: summarizeClient, resync: func() time.Duration { return 10 * time.Minute }}
	for _, tc := range []struct {
		name       string
		err        error
		want       status.Status
		cond       metav1.ConditionStatus
		reason     string
		requeue    time.Duration
		returned   error
		stalledMsg string
	}{
		{"stalled", outcome.Stall("AnyNewReason", "spec.x: fix it"), status.FailedStatus, metav1.ConditionFalse, "AnyNewReason", 10 * time.Minute, nil, "spec.x: fix it"},
		{"stalled, not watched", outcome.StallPolling(dexv1.ReasonSecretNotFound, "create it"), status.FailedStatus, metav1.ConditionFalse, dexv1.ReasonSecretNotFound, 5 * time.Second, nil, "create it"},
		{"stalled inside a wrapped error", errors.Join(outcome.Stall(dexv1.ReasonInvalidSpec, "m")), status.FailedStatus, metav1.ConditionFalse, dexv1.ReasonInvalidSpec, 10 * time.Minute, nil, "m"},
		{"bare problem", &outcome.Problem{Reason: dexv1.ReasonClientIDConflict, Message: "owned by another"}, status.FailedStatus, metav1.ConditionFalse, dexv1.ReasonClientIDConflict, 10 * time.Minute, nil, "owned by another"},
		{"waiting", outcome.Wait(dexv1.ReasonProgressing, "provider not set up", time.Second), status.InProgressStatus, metav1.ConditionFalse, dexv1.ReasonProgressing, time.Second, nil, ""},
		{"waiting until the resync", outcome.Wait(dexv1.ReasonProviderNotFound, "create it", 0), status.InProgressStatus, metav1.ConditionFalse, dexv1.ReasonProviderNotFound, 10 * time.Minute, nil, ""},
		{"retry", outcome.RetryAs(dexv1.ReasonDexUnavailable, "Dex is down", down), status.InProgressStatus, metav1.ConditionFalse, dexv1.ReasonDexUnavailable, 0, down, ""},
		{"transient", down, status.InProgressStatus, metav1.ConditionFalse, dexv1.ReasonProgressing, 0, down, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			before := &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", Generation: 2}}
			setCondition(before, dexv1.ConditionSecretReady, metav1.ConditionTrue, dexv1.ReasonPublicClient, "")
			obj := before.DeepCopy()
			res, err := finishInMemory(k, obj, before, failedOn(dexv1.ConditionRegistered, tc.err))
			g.Expect(res.RequeueAfter).To(Equal(tc.requeue))
			if tc.returned == nil {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(tc.returned))
			}
			reg := findCondition(obj.Status.Conditions, dexv1.ConditionRegistered)
			g.Expect(reg.Status).To(Equal(tc.cond))
			g.Expect(reg.Reason).To(Equal(tc.reason))
			g.Expect(kstatusOfObject(g, obj)).To(Equal(tc.want))
			if tc.stalledMsg != "" {
				g.Expect(findCondition(obj.Status.Conditions, dexv1.ConditionStalled)).To(And(
					HaveField("Status", metav1.ConditionTrue), HaveField("Reason", tc.reason), HaveField("Message", tc.stalledMsg)))
			}
		})
	}
}

// A problem that stalled an earlier reconcile and still decides Ready stays Stalled while a later
// step waits for something else; once it is fixed, the object is Current again.
func TestStalledProblemStillStanding(t *testing.T) {
	g := NewWithT(t)
	k := statusKind[*dexv1.DexStaticClient]{summarize: summarizeClient, resync: func() time.Duration { return time.Minute }}
	obj := &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}}
	_, err := finishInMemory(k, obj, obj.DeepCopy(), failedOn(dexv1.ConditionSecretReady, outcome.StallPolling(dexv1.ReasonSecretNotFound, "create it")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kstatusOfObject(g, obj)).To(Equal(status.FailedStatus))

	// SecretReady is not looked at again (an earlier step waits); it still decides Ready.
	before := obj.DeepCopy()
	_, err = finishInMemory(k, obj, before, failedOn(dexv1.ConditionRegistered, outcome.Wait(dexv1.ReasonProviderNotFound, "create the provider", 0)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(findCondition(obj.Status.Conditions, dexv1.ConditionReady).Reason).To(Equal(dexv1.ReasonSecretNotFound))
	g.Expect(kstatusOfObject(g, obj)).To(Equal(status.FailedStatus))

	// Another stalled step does not take the mark from the problem Ready shows.
	before = obj.DeepCopy()
	_, err = finishInMemory(k, obj, before, failedOn(dexv1.ConditionRegistered, outcome.Stall(dexv1.ReasonNamespaceNotAllowed, "ask the owner")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(findCondition(obj.Status.Conditions, dexv1.ConditionStalled)).To(And(
		HaveField("Reason", dexv1.ReasonSecretNotFound), HaveField("Message", "create it")))

	before = obj.DeepCopy()
	setCondition(obj, dexv1.ConditionSecretReady, metav1.ConditionTrue, dexv1.ReasonSecretAvailable, "")
	setCondition(obj, dexv1.ConditionRegistered, metav1.ConditionTrue, dexv1.ReasonReconciled, "")
	_, err = finishInMemory(k, obj, before, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kstatusOfObject(g, obj)).To(Equal(status.CurrentStatus))
	g.Expect(findCondition(obj.Status.Conditions, dexv1.ConditionStalled).Status).To(Equal(metav1.ConditionUnknown), "no Stalled condition left")
}

// An object that waits for an unwatched Secret looks again after a quarter of the time it has
// waited with this reason (never later than the resync).
func TestStalledPollingBacksOff(t *testing.T) {
	g := NewWithT(t)
	k := statusKind[*dexv1.DexStaticClient]{summarize: summarizeClient, resync: func() time.Duration { return time.Minute }}
	before := &dexv1.DexStaticClient{}
	before.Status.Conditions = []metav1.Condition{{Type: dexv1.ConditionSecretReady, Status: metav1.ConditionFalse, Reason: dexv1.ReasonSecretNotFound,
		LastTransitionTime: metav1.NewTime(time.Now().Add(-2 * time.Minute))}}
	res, _ := finishInMemory(k, before.DeepCopy(), before, failedOn(dexv1.ConditionSecretReady, outcome.StallPolling(dexv1.ReasonSecretNotFound, "m")))
	g.Expect(res.RequeueAfter).To(BeNumerically("~", 30*time.Second, time.Second))
	before.Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Now().Add(-time.Hour))
	res, _ = finishInMemory(k, before.DeepCopy(), before, failedOn(dexv1.ConditionSecretReady, outcome.StallPolling(dexv1.ReasonSecretNotFound, "m")))
	g.Expect(res.RequeueAfter).To(Equal(time.Minute))
}
