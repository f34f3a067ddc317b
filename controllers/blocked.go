package controllers

import (
	"time"

	"dexterity.dev/dexterity/internal/tenancy"
)

// blocked is a problem the user must fix (or another object must change); see tenancy.Blocked.
type blocked = tenancy.Blocked

func newBlocked(reason, message string) *blocked {
	return &blocked{Reason: reason, Message: message}
}

// newWaitingForSecret is a blocked problem about a Secret that does not exist (or is not the
// object's): the manager does not watch Secrets it has not labelled, so the object looks again
// with a backoff (pollAfter).
func newWaitingForSecret(reason, message string) *blocked {
	return &blocked{Reason: reason, Message: message, Poll: true}
}

// pollAfter is how long an object that has waited for age (the age of its failing condition)
// waits before it looks again: a quarter of its age, between 5 seconds and 5 minutes, so that a
// Secret created just after its object is found within seconds, and objects that wait for long
// cost one read each per 5 minutes.
func pollAfter(age time.Duration) time.Duration {
	return min(max(age/4, 5*time.Second), 5*time.Minute)
}
