package outcome_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"dexterity.dev/dexterity/internal/outcome"
)

// Each outcome is found by its type through wrapping, and its Problem (reason and message) by
// code that needs only those (admission); a Retry still is the error it retries.
func TestOutcomesAreFoundByType(t *testing.T) {
	cause := errors.New("connection refused")
	for _, tc := range []struct {
		name                  string
		err                   error
		stalled, waiting, rtr bool
		reason, text          string
	}{
		{"stalled", outcome.Stall("InvalidSpec", "spec.x: fix it"), true, false, false, "InvalidSpec", "InvalidSpec: spec.x: fix it"},
		{"stalled polling", outcome.StallPolling("SecretNotFound", "create it"), true, false, false, "SecretNotFound", "SecretNotFound: create it"},
		{"waiting", outcome.Wait("ProviderNotFound", "create it", 0), false, true, false, "ProviderNotFound", "ProviderNotFound: create it"},
		{"retry", outcome.RetryAs("DexUnavailable", "retrying", cause), false, false, true, "DexUnavailable", "connection refused"},
		{"wrapped stalled", fmt.Errorf("failed to x: %w", outcome.Stall("InvalidSpec", "m")), true, false, false, "InvalidSpec", "failed to x: InvalidSpec: m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var s *outcome.Stalled
			var w *outcome.Waiting
			var r *outcome.Retry
			var p *outcome.Problem
			g.Expect(errors.As(tc.err, &s)).To(Equal(tc.stalled))
			g.Expect(outcome.IsStalled(tc.err)).To(Equal(tc.stalled))
			g.Expect(errors.As(tc.err, &w)).To(Equal(tc.waiting))
			g.Expect(errors.As(tc.err, &r)).To(Equal(tc.rtr))
			g.Expect(tc.err.Error()).To(Equal(tc.text))
			if tc.rtr {
				g.Expect(errors.Is(tc.err, cause)).To(BeTrue())
				g.Expect(r.Reason).To(Equal(tc.reason))
				return
			}
			g.Expect(errors.As(tc.err, &p)).To(BeTrue())
			g.Expect(p.Reason).To(Equal(tc.reason))
		})
	}
	NewWithT(t).Expect(outcome.RetryAs("DexUnavailable", "m", nil)).To(Succeed())
}

// An object waiting for something unwatched looks again within seconds at first, then less and
// less often, never less than every 5 minutes.
func TestPollAfter(t *testing.T) {
	g := NewWithT(t)
	for waited, want := range map[time.Duration]time.Duration{
		0:                5 * time.Second,
		10 * time.Second: 5 * time.Second,
		time.Minute:      15 * time.Second,
		10 * time.Minute: 150 * time.Second,
		time.Hour:        5 * time.Minute,
		-time.Minute:     5 * time.Second,
	} {
		g.Expect(outcome.PollAfter(waited)).To(Equal(want), "after %s", waited)
	}
}
