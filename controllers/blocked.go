package controllers

import "dexterity.dev/dexterity/internal/tenancy"

// blocked is a problem the user must fix (or another object must change); see tenancy.Blocked.
type blocked = tenancy.Blocked

func newBlocked(reason, message string) *blocked {
	return &blocked{Reason: reason, Message: message}
}
