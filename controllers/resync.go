package controllers

import (
	"context"
	"hash/fnv"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Drift repair (design.md §2: a periodic, jittered resync that reads Dex and repairs what
// differs) used to be a delayed requeue per object: every in-sync reconcile ended with
// RequeueAfter, which keeps an entry per object in the work queue's delay heap and waiting map for
// the whole period (about 0.5 KB per object measured with 10,000 clients; design.md §7: 4 KiB per
// client). resyncSource is one ticker per kind instead. The period is cut into slots of about a
// second; each object falls in the slot its UID hashes to, and each tick enqueues the objects of
// the slot it is in (and of any slot a late tick skipped: resyncCursor), read from the informer's
// store without copying. Every object is still looked at once per period, at a phase of its own,
// so resyncs stay spread over the period as the jitter spread them, and the queue holds only what
// is due.

// maxResyncSlots bounds the slots of a period (one per second up to an hour): a tick's work is
// one pass over the kind's cached objects (whatever number of slots it enqueues: resyncCursor),
// so it runs at most once a second.
const maxResyncSlots = 3600

// resyncSlots is the number of slots a period is cut into.
func resyncSlots(period time.Duration) int {
	return max(1, min(maxResyncSlots, int(period/time.Second)))
}

// resyncSlot is the slot of an object with uid among slots.
func resyncSlot(uid string, slots int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(uid))
	return int(h.Sum32() % uint32(slots))
}

// slotAt is the slot that is due at t: slots follow the wall clock, so that a new leader resyncs
// each object at the same phase as the one before it.
func slotAt(t time.Time, tick time.Duration, slots int) int {
	return int((t.UnixNano() / int64(tick)) % int64(slots))
}

// resyncSource enqueues every object of obj's kind once per period (see above). It reads the
// informer of that kind from informers (the manager's cache).
func resyncSource(informers cache.Informers, obj client.Object, period time.Duration) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		inf, err := informers.GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		store, ok := inf.(toolscache.SharedIndexInformer)
		if !ok {
			// controller-runtime hands out client-go's informers; a test of this file fails if that
			// changes.
			ctrl.LoggerFrom(ctx).Error(nil, "The informer has no store; drift repair is off", "kind", obj.GetObjectKind().GroupVersionKind().Kind)
			return nil
		}
		slots := resyncSlots(period)
		tick := period / time.Duration(slots)
		go func() {
			t := time.NewTicker(tick)
			defer t.Stop()
			cursor := resyncCursor{tick: tick, slots: slots}
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					if first, count := cursor.due(now); count > 0 {
						enqueueSlots(store.GetStore().List(), first, count, slots, q)
					}
				}
			}
		}()
		return nil
	})
}

// resyncCursor remembers which slot the resync of a kind enqueued last, so that every slot is
// enqueued once per period however the ticks fall. A ticker drops the ticks its receiver is not
// ready for (a manager starved of CPU for a moment, a long pause), and the wall clock the slots
// follow may be stepped forward (NTP, a resumed virtual machine): taking only the slot of the
// tick's time would skip the slots in between, and their objects would go without drift repair
// for a whole period more.
type resyncCursor struct {
	tick  time.Duration
	slots int
	// last is the number of the tick (since the Unix epoch) whose slot was enqueued last; zero
	// before the first tick.
	last int64
}

// due returns the slots to enqueue at now: count slots (at most every slot, once) from first,
// wrapping around. They are the slots after the last one enqueued up to now's; only now's on
// the first tick, or when the clock went back (the slots in between were enqueued already, and
// waiting for the clock to catch up would stop drift repair meanwhile); none when now's slot is
// the last one enqueued.
func (c *resyncCursor) due(now time.Time) (first, count int) {
	n := now.UnixNano() / int64(c.tick)
	switch {
	case n == c.last:
		return 0, 0
	case c.last == 0 || n < c.last:
		count = 1
	default:
		count = int(min(n-c.last, int64(c.slots)))
	}
	c.last = n
	return (slotAt(now, c.tick, c.slots) - count + 1 + c.slots) % c.slots, count
}

// enqueueSlots adds the objects of count slots from first (wrapping around) to q, in one pass
// over objs.
func enqueueSlots(objs []any, first, count, slots int, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	for _, o := range objs {
		obj, ok := o.(client.Object)
		if !ok || (resyncSlot(string(obj.GetUID()), slots)-first+slots)%slots >= count {
			continue
		}
		q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
	}
}
