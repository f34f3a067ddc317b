package authz

import (
	"fmt"
	"path"
	"strings"
)

// Bounds of GroupBinding resource patterns (spec.moduleResources and spec.providerResources,
// path.Match globs matched per address segment by the registry). Matching one pattern segment
// against one address segment costs up to the product of their lengths (path.Match tries every
// position of every "*"), which the deadline cannot interrupt: with address segments of at most
// MaxSegmentBytes (the registry answers 404 for longer ones) and patterns of at most
// MaxPatternBytes, one match takes well under a millisecond, and the registry charges every
// match (GlobCost) to the request's Evaluation, whose deadline stops the rest.
const (
	// MaxSegmentBytes is the longest path segment (so address segment) the registry serves.
	MaxSegmentBytes = 256
	// MaxPatterns is the most patterns one list may hold (the CRD's maxItems: objects stored
	// before it are refused here).
	MaxPatterns = 100
	// MaxPatternBytes is the longest pattern (the CRD's maxLength of an item).
	MaxPatternBytes = 256
	// MaxPatternStars is the most "*" one pattern may hold.
	MaxPatternStars = 16

	// globPairNs is the estimated cost (ns) of one (pattern byte, name byte) pair of path.Match
	// in its worst case (a "*" followed by character classes), measured about 2.2 ns on the
	// reference machine.
	globPairNs = 3
)

// GlobCost is the estimated cost (ns, an upper bound) of path.Match of a pattern of patternLen
// bytes against a name of nameLen bytes, to Charge before the match.
func GlobCost(patternLen, nameLen int) int {
	return globPairNs * (patternLen + 1) * (nameLen + 1)
}

// PatternError is a GroupBinding resource pattern (or list of them) that is refused.
type PatternError struct {
	// Field is the list: "spec.moduleResources" or "spec.providerResources".
	Field string
	// Index is the pattern's index in the list, -1 when the list as a whole is refused.
	Index int
	// Pattern is the refused pattern ("" when the list is).
	Pattern string
	// Reason says why and how to fix it.
	Reason string
}

// Path is the field path of the refused pattern or list, e.g. "spec.moduleResources[3]".
func (e *PatternError) Path() string {
	if e.Index < 0 {
		return e.Field
	}
	return fmt.Sprintf("%s[%d]", e.Field, e.Index)
}

func (e *PatternError) Error() string { return e.Path() + " " + e.Reason }

// PatternErrors are all the refused patterns of a GroupBinding, in field order.
type PatternErrors []*PatternError

func (e PatternErrors) Error() string {
	msgs := make([]string, len(e))
	for i, pe := range e {
		msgs[i] = pe.Error()
	}
	return strings.Join(msgs, "; ")
}

// maxPatternErrors is the most PatternErrors CheckResources reports (a message stays short).
const maxPatternErrors = 8

// CheckResources checks a GroupBinding's spec.moduleResources and spec.providerResources: at
// most MaxPatterns patterns per list, each non-empty, at most MaxPatternBytes long with at most
// MaxPatternStars "*", no more segments than an address has (module <namespace>/<name>/<system>,
// provider <namespace>/<type>; a pattern without "/" matches the module name or provider type),
// and valid path.Match syntax. It returns nil or PatternErrors (the first few problems), each
// naming the field, e.g. "spec.moduleResources[3] has 20 "*", more than the 16 allowed; ...".
// The registry denies every request that reaches a binding with such a pattern, as for an
// expression that does not compile.
func CheckResources(moduleResources, providerResources []string) error {
	var errs PatternErrors
	errs = checkList(errs, "spec.moduleResources", moduleResources, 3, "a module address has 3 (<namespace>/<name>/<system>)")
	errs = checkList(errs, "spec.providerResources", providerResources, 2, "a provider address has 2 (<namespace>/<type>)")
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func checkList(errs PatternErrors, field string, patterns []string, segments int, address string) PatternErrors {
	if len(patterns) > MaxPatterns {
		return append(errs, &PatternError{Field: field, Index: -1,
			Reason: fmt.Sprintf("has %d patterns, more than the %d allowed; one pattern grants many addresses, e.g. \"team-a/*\"", len(patterns), MaxPatterns)})
	}
	for i, p := range patterns {
		if len(errs) >= maxPatternErrors {
			return errs
		}
		if reason := checkPattern(p, segments, address); reason != "" {
			errs = append(errs, &PatternError{Field: field, Index: i, Pattern: p, Reason: reason})
		}
	}
	return errs
}

// checkPattern returns why p is refused, or "".
func checkPattern(p string, segments int, address string) string {
	switch {
	case p == "":
		return "is empty; write a glob such as \"team-a/*\""
	case len(p) > MaxPatternBytes:
		return fmt.Sprintf("is %d bytes long, more than the %d allowed", len(p), MaxPatternBytes)
	case strings.Count(p, "*") > MaxPatternStars:
		return fmt.Sprintf("has %d \"*\", more than the %d allowed (\"*\" matches any run of characters within one segment)", strings.Count(p, "*"), MaxPatternStars)
	}
	if n := strings.Count(p, "/") + 1; n > segments {
		return fmt.Sprintf("has %d segments; %s, so it would never match", n, address)
	}
	for _, seg := range strings.Split(p, "/") {
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Sprintf("is not a valid glob (%v): use \"*\", \"?\", classes such as \"[a-z]\", and a backslash to escape one of these", err)
		}
	}
	return ""
}

// IsPatternError reports whether err (from CheckResources) refuses resource patterns.
func IsPatternError(err error) bool {
	_, ok := err.(PatternErrors)
	return ok
}
