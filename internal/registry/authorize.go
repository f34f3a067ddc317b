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
	kind     resourceKind
	address  string   // namespace/name/system or namespace/type
	name     string   // the module name or the provider type
	segments []string // namespace, name, system or namespace, type (each at most authz.MaxSegmentBytes)
}

// decision is the outcome of GroupBinding evaluation.
type decision struct {
	allowed bool
	binding string // the binding that decided, "" when none did
	reason  string // stable label: granted, not_granted, no_match, expression_error, pattern_error, evaluation_deadline
	message string // for the client
}

// reasonEvaluationDeadline is the decision reason (and metric label) of a binding whose
// evaluation ran past the deadline.
const reasonEvaluationDeadline = "evaluation_deadline"

// authorizeWithin evaluates the namespace's bindings, sorted by name, for groups: the first binding
// whose expression is true decides (allowed when one of its patterns matches the resource); a
// binding that failed to compile (or is over the cost bound, or has a refused resource pattern)
// or fails to evaluate denies; no true expression denies. All the bindings share one evaluation
// deadline, which also counts the glob matching of their resource patterns, so together they
// cannot hold the request longer than authz's deadline; the binding being evaluated when it
// passes denies (and gets an EvaluationDeadline event, see SetEventRecorder). ev carries the
// deadline; its Context (the request's) stops the evaluation with the request.
func authorizeWithin(ev *authz.Evaluation, bindings []*binding, groups []string, res resource) decision {
	for _, b := range bindings {
		if b.compileErr != nil {
			what := "an invalid expression"
			if authz.IsTooCostly(b.compileErr) {
				what = "an expression over the cost bound"
			}
			return decision{binding: b.name, reason: "expression_error",
				message: fmt.Sprintf("GroupBinding %s has %s; access is denied until it is fixed", b.name, what)}
		}
		if b.patternErr != nil {
			return decision{binding: b.name, reason: "pattern_error",
				message: fmt.Sprintf("GroupBinding %s has a refused resource pattern (%s); access is denied until it is fixed", b.name, patternField(b.patternErr))}
		}
		ok, err := ev.Evaluate(b.program, groups)
		if err != nil {
			return stopped(b, err, "evaluate")
		}
		if !ok {
			continue
		}
		patterns := b.modules
		if res.kind == kindProvider {
			patterns = b.providers
		}
		matched, err := matchesAny(ev, patterns, res)
		if err != nil {
			return stopped(b, err, "match")
		}
		if matched {
			return decision{allowed: true, binding: b.name, reason: "granted"}
		}
		return decision{binding: b.name, reason: "not_granted",
			message: fmt.Sprintf("GroupBinding %s matches your groups but does not grant %s %s", b.name, res.kind, res.address)}
	}
	return decision{reason: "no_match", message: "no GroupBinding of this registry matches your groups"}
}

// stopped is the decision of binding b whose evaluation or matching failed with err.
func stopped(b *binding, err error, what string) decision {
	switch {
	case authz.Stopped(err):
		// The request ran past its own deadline (or the client went away): nobody reads the
		// answer, and it must not be memoised as the binding's decision.
		return decision{binding: b.name, reason: reasonEvaluationDeadline,
			message: "the request ran past its deadline"}
	case errors.Is(err, authz.ErrEvaluationDeadline):
		reportEvaluationDeadline(b)
		return decision{binding: b.name, reason: reasonEvaluationDeadline,
			message: fmt.Sprintf("GroupBinding %s: evaluating the expressions and resource patterns ran past the %s deadline; access is denied (simplify the expression or the patterns)", b.name, authz.Deadline())}
	}
	return decision{binding: b.name, reason: "expression_error",
		message: fmt.Sprintf("GroupBinding %s failed to %s; access is denied until it is fixed", b.name, what)}
}

// patternField names the first refused pattern of err (from authz.CheckResources).
func patternField(err error) string {
	var pe authz.PatternErrors
	if errors.As(err, &pe) && len(pe) > 0 {
		return pe[0].Path()
	}
	return "spec.moduleResources or spec.providerResources"
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
			"Evaluating spec.expression and matching the resource patterns for a registry request ran past the %s deadline, so the request was denied (403); simplify the expression or the patterns (at most one such event per minute)",
			authz.Deadline())
		return
	}
}

// pattern is a compiled resource pattern: lower-cased (registry addresses are case-insensitive)
// and split into segments once per binding generation.
type pattern struct {
	segments []string
	address  bool // the pattern has "/": it matches the address, else the name
}

// compilePatterns compiles the resource patterns of a binding (checked by authz.CheckResources).
func compilePatterns(raw []string) []pattern {
	out := make([]pattern, len(raw))
	for i, p := range raw {
		p = strings.ToLower(p)
		out[i] = pattern{segments: strings.Split(p, "/"), address: strings.Contains(p, "/")}
	}
	return out
}

// matchesAny reports whether one of patterns matches res. Patterns are path.Match globs
// ("*", "?", "[...]"; "*" does not cross "/"):
//   - without "/", a pattern matches the module name (or the provider type);
//   - with "/", it matches the address segment by segment, and a pattern of fewer segments
//     matches every address it is a prefix of: "team-a/*" grants every module and provider of
//     registry namespace team-a, "team-a/network" every system of module team-a/network.
//
// Every segment match is charged to ev (authz.GlobCost) before it runs: once ev's deadline has
// passed, matching stops with its error.
func matchesAny(ev *authz.Evaluation, patterns []pattern, res resource) (bool, error) {
	for _, p := range patterns {
		if ok, err := matchPattern(ev, p, res); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func matchPattern(ev *authz.Evaluation, p pattern, res resource) (bool, error) {
	if !p.address {
		return matchSegment(ev, p.segments[0], res.name)
	}
	if len(p.segments) > len(res.segments) {
		return false, nil
	}
	for i, seg := range p.segments {
		if ok, err := matchSegment(ev, seg, res.segments[i]); !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

func matchSegment(ev *authz.Evaluation, pat, name string) (bool, error) {
	if err := ev.Charge(authz.GlobCost(len(pat), len(name))); err != nil {
		return false, err
	}
	ok, err := path.Match(pat, name)
	return err == nil && ok, nil
}
