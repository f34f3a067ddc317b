package registry

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
)

// resourceKind is what a request asks for.
type resourceKind int

const (
	kindModule resourceKind = iota
	kindProvider
)

func (k resourceKind) String() string {
	if k == kindProvider {
		return "provider"
	}
	return "module"
}

// resource is the registry object a request names: a module <namespace>/<name>/<system> or a
// provider <namespace>/<type>.
type resource struct {
	kind    resourceKind
	address string // namespace/name/system or namespace/type
	name    string // the module name or the provider type
}

// decision is the outcome of GroupBinding evaluation.
type decision struct {
	allowed bool
	binding string // the binding that decided, "" when none did
	reason  string // stable label: granted, not_granted, no_match, expression_error, evaluation_deadline
	message string // for the client
}

// reasonEvaluationDeadline is the decision reason (and metric label) of a binding whose
// evaluation ran past the deadline.
const reasonEvaluationDeadline = "evaluation_deadline"

// authorize evaluates the namespace's bindings, sorted by name, for groups: the first binding
// whose expression is true decides (allowed when one of its patterns matches the resource); a
// binding that failed to compile (or is over the cost bound) or fails to evaluate denies; no
// true expression denies. All the bindings share one evaluation deadline, so together they
// cannot hold the request longer than authz's deadline; the binding being evaluated when it
// passes denies (and gets an EvaluationDeadline event, see SetEventRecorder).
func authorize(bindings []*binding, groups []string, res resource) decision {
	var ev authz.Evaluation
	for _, b := range bindings {
		if b.compileErr != nil {
			what := "an invalid expression"
			if authz.IsTooCostly(b.compileErr) {
				what = "an expression over the cost bound"
			}
			return decision{binding: b.name, reason: "expression_error",
				message: fmt.Sprintf("GroupBinding %s has %s; access is denied until it is fixed", b.name, what)}
		}
		ok, err := ev.Evaluate(b.program, groups)
		if errors.Is(err, authz.ErrEvaluationDeadline) {
			reportEvaluationDeadline(b)
			return decision{binding: b.name, reason: reasonEvaluationDeadline,
				message: fmt.Sprintf("GroupBinding %s: evaluating the expressions ran past the %s deadline; access is denied (simplify the expression)", b.name, authz.Deadline())}
		}
		if err != nil {
			return decision{binding: b.name, reason: "expression_error",
				message: fmt.Sprintf("GroupBinding %s failed to evaluate; access is denied until it is fixed", b.name)}
		}
		if !ok {
			continue
		}
		patterns := b.modules
		if res.kind == kindProvider {
			patterns = b.providers
		}
		if matchesAny(patterns, res) {
			return decision{allowed: true, binding: b.name, reason: "granted"}
		}
		return decision{binding: b.name, reason: "not_granted",
			message: fmt.Sprintf("GroupBinding %s matches your groups but does not grant %s %s", b.name, res.kind, res.address)}
	}
	return decision{reason: "no_match", message: "no GroupBinding of this registry matches your groups"}
}

// deadlineEventInterval is the least time between two EvaluationDeadline events of one binding.
const deadlineEventInterval = time.Minute

// deadlineEvents records EvaluationDeadline events; nil until SetEventRecorder.
var deadlineEvents atomic.Pointer[eventSink]

type eventSink struct {
	recorder record.EventRecorder
	reader   client.Reader
	mu       sync.Mutex
	last     map[types.UID]time.Time
}

// SetEventRecorder makes the registry record a Warning event with reason EvaluationDeadline on a
// GroupBinding whose evaluation ran past the deadline, at most one per binding per minute.
// reader (the manager's cached client) finds the binding's namespace. A nil recorder records
// none (the default). The manager calls it once at start-up.
func SetEventRecorder(recorder record.EventRecorder, reader client.Reader) {
	if recorder == nil || reader == nil {
		deadlineEvents.Store(nil)
		return
	}
	deadlineEvents.Store(&eventSink{recorder: recorder, reader: reader, last: map[types.UID]time.Time{}})
}

// reportEvaluationDeadline records the event of b unless one was recorded within the interval.
// The request does not wait for it.
func reportEvaluationDeadline(b *binding) {
	sink := deadlineEvents.Load()
	if sink == nil || !sink.due(b.uid, time.Now()) {
		return
	}
	go sink.record(b.name, b.uid)
}

// due reports whether an event of uid may be recorded at now, and if so notes it.
func (s *eventSink) due(uid types.UID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.last[uid]; ok && now.Sub(last) < deadlineEventInterval {
		return false
	}
	if len(s.last) >= 4096 {
		for k, t := range s.last {
			if now.Sub(t) >= deadlineEventInterval {
				delete(s.last, k)
			}
		}
	}
	s.last[uid] = now
	return true
}

// record finds the binding by UID (bindings of any namespace; the Store keeps names only) and
// records the event.
func (s *eventSink) record(name string, uid types.UID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list := &dexv1.GroupBindingList{}
	if err := s.reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).WithName("registry").Error(err, "Failed to list GroupBindings for an EvaluationDeadline event", "groupBinding", name)
		return
	}
	for i := range list.Items {
		gb := &list.Items[i]
		if gb.UID != uid {
			continue
		}
		ref := &corev1.ObjectReference{Kind: "GroupBinding", APIVersion: dexv1.GroupVersion.String(),
			Namespace: gb.Namespace, Name: gb.Name, UID: gb.UID, ResourceVersion: gb.ResourceVersion}
		s.recorder.Eventf(ref, corev1.EventTypeWarning, dexv1.ReasonEvaluationDeadline,
			"Evaluating spec.expression for a registry request ran past the %s deadline, so the request was denied (403); simplify the expression (at most one such event per minute)",
			authz.Deadline())
		return
	}
}

// matchesAny reports whether one of patterns matches res. Patterns are path.Match globs
// ("*", "?", "[...]"; "*" does not cross "/"):
//   - without "/", a pattern matches the module name (or the provider type);
//   - with "/", it matches the address segment by segment, and a pattern of fewer segments
//     matches every address it is a prefix of: "team-a/*" grants every module and provider of
//     registry namespace team-a, "team-a/network" every system of module team-a/network.
func matchesAny(patterns []string, res resource) bool {
	for _, p := range patterns {
		if matchPattern(p, res) {
			return true
		}
	}
	return false
}

func matchPattern(p string, res resource) bool {
	if !strings.Contains(p, "/") {
		ok, err := path.Match(p, res.name)
		return err == nil && ok
	}
	ps, as := strings.Split(p, "/"), strings.Split(res.address, "/")
	if len(ps) > len(as) {
		return false
	}
	for i, seg := range ps {
		if ok, err := path.Match(seg, as[i]); err != nil || !ok {
			return false
		}
	}
	return true
}
