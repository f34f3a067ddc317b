// Package outcome is the one vocabulary a reconcile of Dexterity ends with. A step that cannot go
// on says why by the type of the error it returns, where the problem is found:
//
//   - *Stalled: the object waits for the user (a spec or setting to fix, a Secret to create, an
//     id someone else holds). kstatus reads it as Stalled. It is looked at again when the object
//     or a watched object changes, at the resync period, and, when what it waits for is not
//     watched (Poll), with a backoff.
//   - *Waiting: the object waits for something that comes on its own (a provider being set up,
//     or created along with it). kstatus reads it as Reconciling; it is looked at again After.
//   - *Retry: a transient failure with its own reason (Dex unreachable). Reconciling; returned,
//     so the workqueue backs off.
//   - any other error: a transient failure reported as Progressing. Reconciling; returned.
//
// Stalled or not is decided by the type alone: a new reason needs no list to read right. The
// controllers turn an outcome into conditions, kstatus conditions, an event and a requeue in one
// place (controllers/status.go).
package outcome

import (
	"errors"
	"time"
)

// Problem is what an outcome reports on the object: a condition reason (a constant of
// api/v1alpha1) and a message that names the field and the fix. Every outcome wraps one, so code
// that needs only the reason and message (admission, which refuses or lets through whatever the
// controller would do) finds it with errors.As whatever the outcome.
type Problem struct {
	Reason  string
	Message string
}

func (p *Problem) Error() string { return p.Reason + ": " + p.Message }

// Stalled is a problem the user must fix (or another object must change) before reconciling can
// go on: it becomes a condition with this reason and message, not a retried error.
type Stalled struct {
	Problem
	// Poll says that what the object waits for is not watched (a Secret that does not exist
	// yet: the manager watches only the Secrets it labelled), so it is looked at again with a
	// backoff (PollAfter) rather than only at the resync period.
	Poll bool
}

// Unwrap returns the problem.
func (s *Stalled) Unwrap() error { return &s.Problem }

// Waiting is a problem that resolves itself without the user (an ordinary start-up order): the
// object is work in progress, and is looked at again After (zero: at the resync period, or when a
// watched object changes).
type Waiting struct {
	Problem
	After time.Duration
}

// Unwrap returns the problem.
func (w *Waiting) Unwrap() error { return &w.Problem }

// Retry is a transient failure reported with its own reason and message rather than as
// Progressing: the error is returned, so the workqueue retries with backoff.
type Retry struct {
	Problem
	Err error
}

func (r *Retry) Error() string { return r.Err.Error() }

// Unwrap returns the failure (dex.IsUnavailable and the like still see it).
func (r *Retry) Unwrap() error { return r.Err }

// Stall returns a Stalled problem.
func Stall(reason, message string) *Stalled {
	return &Stalled{Problem: Problem{Reason: reason, Message: message}}
}

// StallPolling returns a Stalled problem about something the manager does not watch (Poll).
func StallPolling(reason, message string) *Stalled {
	return &Stalled{Problem: Problem{Reason: reason, Message: message}, Poll: true}
}

// Wait returns a Waiting problem, looked at again after (zero: at the resync period).
func Wait(reason, message string, after time.Duration) *Waiting {
	return &Waiting{Problem: Problem{Reason: reason, Message: message}, After: after}
}

// RetryAs returns err as a Retry reported with reason and message (nil for a nil err).
func RetryAs(reason, message string, err error) error {
	if err == nil {
		return nil
	}
	return &Retry{Problem: Problem{Reason: reason, Message: message}, Err: err}
}

// IsStalled reports whether err is (or wraps) a Stalled problem.
func IsStalled(err error) bool {
	var s *Stalled
	return errors.As(err, &s)
}

// PollAfter is how long an object that has waited for waited (the age of its failing condition)
// waits before it looks again at something the manager does not watch: a quarter of its age,
// between 5 seconds and 5 minutes, so that a Secret created just after its object is found within
// seconds, and objects that wait for long cost one read each per 5 minutes.
func PollAfter(waited time.Duration) time.Duration {
	return min(max(waited/4, 5*time.Second), 5*time.Minute)
}
