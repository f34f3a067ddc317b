package controllers

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

func TestResyncSlots(t *testing.T) {
	g := NewWithT(t)
	for period, want := range map[time.Duration]int{
		500 * time.Millisecond: 1, 2 * time.Second: 2, 10 * time.Minute: 600, 2 * time.Hour: maxResyncSlots,
	} {
		g.Expect(resyncSlots(period)).To(Equal(want), "period %s", period)
	}
}

// Over one period (every slot once), every object is enqueued exactly once, and no slot holds
// much more than its share.
func TestResyncEnqueuesEveryObjectOncePerPeriod(t *testing.T) {
	g := NewWithT(t)
	const n = 5000
	slots := resyncSlots(10 * time.Minute)
	objs := make([]any, n)
	for i := range objs {
		objs[i] = &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("t%d", i%50), Name: fmt.Sprintf("c%d", i), UID: uuid.NewUUID()}}
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	seen := map[types.NamespacedName]int{}
	largest := 0
	for slot := range slots {
		enqueueSlots(objs, slot, 1, slots, q)
		largest = max(largest, q.Len())
		for q.Len() > 0 {
			req, _ := q.Get()
			seen[req.NamespacedName]++
			q.Done(req)
		}
	}
	g.Expect(seen).To(HaveLen(n))
	for key, times := range seen {
		g.Expect(times).To(Equal(1), "%s", key)
	}
	g.Expect(largest).To(BeNumerically("<=", 4*n/slots), "the busiest slot holds %d objects of %d in %d slots", largest, n, slots)
}

// Slots follow the wall clock: one tick after another moves to the next slot, and the slot of a
// time does not depend on when the ticker started.
func TestResyncSlotFollowsTheClock(t *testing.T) {
	g := NewWithT(t)
	tick, slots := time.Second, 600
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	g.Expect(slotAt(t0.Add(tick), tick, slots)).To(Equal((slotAt(t0, tick, slots) + 1) % slots))
	g.Expect(slotAt(t0.Add(time.Duration(slots)*tick), tick, slots)).To(Equal(slotAt(t0, tick, slots)))
}

// Drift repair survives ticks that come late (a ticker drops the ticks its receiver was not
// ready for) and a wall clock stepped forward or back: over a period's worth of clock, every
// object is enqueued at least once, and a tick never enqueues an object twice.
func TestResyncCatchesUpOnSkippedTicks(t *testing.T) {
	const n, slots = 2000, 60
	tick := time.Second
	objs := make([]any, n)
	for i := range objs {
		objs[i] = &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("t%d", i%20), Name: fmt.Sprintf("c%d", i), UID: uuid.NewUUID()}}
	}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec)*tick + 300*time.Millisecond) }
	for _, tc := range []struct {
		name  string
		ticks []time.Time
	}{
		// One tick a second, but the receiver was busy for three of them in a row.
		{"dropped ticks", func() (out []time.Time) {
			for s := 0; s <= slots; s++ {
				if s < 20 || s > 23 {
					out = append(out, at(s))
				}
			}
			return out
		}()},
		// The clock jumps 30 minutes ahead after ten ticks, then ticks on.
		{"clock stepped forward", func() (out []time.Time) {
			for s := 0; s < 10; s++ {
				out = append(out, at(s))
			}
			for s := 0; s < 5; s++ {
				out = append(out, at(1800+s))
			}
			return out
		}()},
		// The clock goes back ten minutes after ten ticks: drift repair goes on from there.
		{"clock stepped back", func() (out []time.Time) {
			for s := 0; s < 10; s++ {
				out = append(out, at(s))
			}
			for s := 0; s <= slots; s++ {
				out = append(out, at(-600+s))
			}
			return out
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
			defer q.ShutDown()
			cursor := resyncCursor{tick: tick, slots: slots}
			seen := map[types.NamespacedName]int{}
			for _, now := range tc.ticks {
				if first, count := cursor.due(now); count > 0 {
					enqueueSlots(objs, first, count, slots, q)
				}
				for q.Len() > 0 {
					req, _ := q.Get()
					seen[req.NamespacedName]++
					q.Done(req)
				}
			}
			g.Expect(seen).To(HaveLen(n), "objects left out of drift repair")
		})
	}
}

// A tick in the slot already enqueued (two ticks within one slot) enqueues nothing more.
func TestResyncTickInTheSameSlotEnqueuesNothing(t *testing.T) {
	g := NewWithT(t)
	cursor := resyncCursor{tick: time.Second, slots: 600}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	_, count := cursor.due(t0.Add(100 * time.Millisecond))
	g.Expect(count).To(Equal(1))
	_, count = cursor.due(t0.Add(900 * time.Millisecond))
	g.Expect(count).To(BeZero())
	first, count := cursor.due(t0.Add(1100 * time.Millisecond))
	g.Expect(count).To(Equal(1))
	g.Expect(first).To(Equal(slotAt(t0.Add(time.Second), time.Second, 600)))
}
