//! Every user's home timeline: a slot per user holding the user's activity word and a
//! [`Ring`] that grows with its entries, in place (a user with no entries costs the
//! slot alone, 16 bytes).
//!
//! Rings are freed (when a user goes quiet, or is rebuilt) behind readers' backs, so a
//! slot's ring is a `crossbeam_epoch::Atomic`: readers pin, load, copy, unpin; unlinked
//! rings are destroyed once no pinned reader can hold them.
//!
//! The activity word sits beside the ring pointer so a delivery touches one cache
//! line for both; deliveries prefetch the slots and rings of the followers a few places
//! ahead (see [`Timelines::deliver`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_epoch::{self as epoch, Atomic, Owned};

use super::activity::State;
use super::ring::{Copied, Inserted, Ring};

/// One user: the activity word (see `activity.rs`) and the ring.
#[repr(align(16))]
pub(crate) struct UserSlot {
    pub(crate) state: AtomicU64,
    ring: Atomic<Ring>,
}

/// Hints the CPU to bring `ptr`'s cache line in (ready to be written, with `WRITE`);
/// a no-op where there is no such hint.
#[inline(always)]
pub(crate) fn prefetch_line<const WRITE: bool, T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and never changes memory, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_ET0, _MM_HINT_T0, _mm_prefetch};
        if WRITE {
            _mm_prefetch::<_MM_HINT_ET0>(ptr.cast::<i8>());
        } else {
            _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// [`prefetch_line`] for reading.
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    prefetch_line::<false, T>(ptr);
}

pub(crate) struct Timelines {
    pub(crate) slots: Box<[UserSlot]>,
    capacity: u32,
}

/// Memory figures of the timelines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimelineMemory {
    pub(crate) rings: u64,
    pub(crate) entries: u64,
    pub(crate) ring_bytes: u64,
    pub(crate) slot_bytes: u64,
}

impl Timelines {
    pub(crate) fn new(users: u32, capacity: u32) -> Timelines {
        assert!(capacity > 0, "a timeline holds at least one entry");
        Timelines {
            slots: (0..users)
                .map(|_| UserSlot {
                    state: AtomicU64::new(0),
                    ring: Atomic::null(),
                })
                .collect(),
            capacity,
        }
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Inserts the ids into `user`'s timeline, in one hold of its writer lock per
    /// ring. Returns how many were new.
    pub(crate) fn insert(&self, user: u32, ids: &[u64]) -> usize {
        self.insert_pinned(user, ids, &epoch::pin())
    }

    /// Like [`Timelines::insert`], but a ring created here (also with no ids) gets at
    /// least `slots_hint` slots (capped at the capacity): a rebuild passes the number
    /// of authors the user follows, who are about to deliver, so the ring does not
    /// add its chunks one by one during the deliveries that follow.
    pub(crate) fn insert_sized(&self, user: u32, ids: &[u64], slots_hint: usize) -> usize {
        let guard = epoch::pin();
        let slot = &self.slots[user as usize].ring;
        let shared = slot.load(Ordering::Acquire, &guard);
        if shared.is_null() && slots_hint > 0 {
            self.install_first(slot, shared, &guard, ids.len().max(slots_hint));
        }
        self.insert_pinned(user, ids, &guard)
    }

    /// Delivers notice `id` to each user of `users` whose activity word passes
    /// `accept` (which may also act on it, e.g. mark a quiet user stale), with one
    /// epoch pin for the batch and the slots and rings of the users a few places ahead
    /// prefetched: a delivery is a handful of cache misses, and they overlap.
    /// Returns how many got it.
    pub(crate) fn deliver(
        &self,
        users: &[u32],
        id: u64,
        mut accept: impl FnMut(u32, State) -> bool,
    ) -> u64 {
        // Three stages, each a few users behind the last: the slot (activity word and
        // ring pointer), then the ring's header through that pointer, then the slot
        // of the ring the delivery will write, through the header.
        const SLOT_AHEAD: usize = 24;
        const RING_AHEAD: usize = 16;
        const TAIL_AHEAD: usize = 8;
        let guard = epoch::pin();
        let mut delivered = 0;
        for (i, &user) in users.iter().enumerate() {
            if let Some(&ahead) = users.get(i + SLOT_AHEAD) {
                prefetch(&self.slots[ahead as usize]);
            }
            if let Some(&ahead) = users.get(i + RING_AHEAD) {
                // Acquire: the ring's fields are read below (Release-published).
                let ring = self.slots[ahead as usize]
                    .ring
                    .load(Ordering::Acquire, &guard);
                // SAFETY: loaded under `guard`; rings are destroyed only after unlinking.
                if let Some(ring) = unsafe { ring.as_ref() } {
                    prefetch_line::<true, _>(ring);
                    prefetch_line::<true, _>(ring.second_line());
                }
            }
            if let Some(&ahead) = users.get(i + TAIL_AHEAD) {
                // Acquire: the ring's fields are read below (Release-published).
                let ring = self.slots[ahead as usize]
                    .ring
                    .load(Ordering::Acquire, &guard);
                // SAFETY: loaded under `guard`; rings are destroyed only after unlinking.
                if let Some(ring) = unsafe { ring.as_ref() } {
                    prefetch_line::<true, _>(ring.tail_slot());
                }
            }
            let state = State::of(self.slots[user as usize].state.load(Ordering::SeqCst));
            if accept(user, state) {
                self.insert_pinned(user, &[id], &guard);
                delivered += 1;
            }
        }
        delivered
    }

    fn insert_pinned(&self, user: u32, ids: &[u64], guard: &epoch::Guard) -> usize {
        if ids.is_empty() {
            return 0;
        }
        let slot = &self.slots[user as usize].ring;
        loop {
            let shared = slot.load(Ordering::Acquire, guard);
            // SAFETY: the pointer was loaded under `guard`; a ring is only destroyed
            // through `defer_destroy` after it was unlinked, so it lives while pinned.
            let Some(ring) = (unsafe { shared.as_ref() }) else {
                self.install_first(slot, shared, guard, ids.len());
                continue;
            };
            // Retired: unlinked since the load; retry on what the slot holds now.
            let Some(w) = ring.lock() else { continue };
            return ids
                .iter()
                .filter(|&&id| w.insert(id) == Inserted::New)
                .count();
        }
    }

    /// Runs `f` holding the writer lock of `user`'s ring (created when missing).
    fn with_ring<T>(
        &self,
        user: u32,
        f: impl FnOnce(&Ring, &super::ring::WriteGuard<'_>) -> T,
    ) -> T {
        let slot = &self.slots[user as usize].ring;
        let guard = epoch::pin();
        loop {
            let shared = slot.load(Ordering::Acquire, &guard);
            // SAFETY: loaded under `guard`; rings are destroyed only after unlinking.
            let Some(ring) = (unsafe { shared.as_ref() }) else {
                self.install_first(slot, shared, &guard, 0);
                continue;
            };
            if let Some(w) = ring.lock() {
                return f(ring, &w);
            }
        }
    }

    /// Puts a first, small ring in an empty slot (unless another thread just did).
    fn install_first(
        &self,
        slot: &Atomic<Ring>,
        empty: epoch::Shared<'_, Ring>,
        guard: &epoch::Guard,
        entries: usize,
    ) {
        // Sized for what is about to go in (a rebuild stores hundreds at once).
        let wanted = entries.min(self.capacity as usize) as u32;
        let first = Owned::new(Ring::new(self.capacity, wanted));
        // Losing the race is fine: the other thread's ring is as good.
        let _ = slot.compare_exchange(empty, first, Ordering::AcqRel, Ordering::Acquire, guard);
    }

    /// Copies up to `max` ids of `user`'s timeline below `below`, newest first.
    pub(crate) fn copy_below(
        &self,
        user: u32,
        below: Option<u64>,
        max: usize,
        out: &mut Vec<u64>,
    ) -> Copied {
        let guard = epoch::pin();
        let shared = self.slots[user as usize]
            .ring
            .load(Ordering::Acquire, &guard);
        // SAFETY: loaded under `guard`; rings are destroyed only after unlinking.
        match unsafe { shared.as_ref() } {
            Some(ring) => ring.copy_below(below, max, out),
            None => Copied {
                reached_oldest: true,
                floor: 0,
            },
        }
    }

    /// Drops the entries of `user`'s timeline below `floor`, and refuses such ids from
    /// now on (reads take them from a pull instead).
    pub(crate) fn raise_floor(&self, user: u32, floor: u64) {
        self.with_ring(user, |_, w| {
            w.raise_floor(floor);
        });
    }

    /// Frees `user`'s timeline (a rebuild, after its `begin_rebuild`).
    pub(crate) fn free(&self, user: u32) {
        let guard = epoch::pin();
        let slot = &self.slots[user as usize].ring;
        let shared = slot.load(Ordering::Acquire, &guard);
        // SAFETY: loaded under `guard`.
        let Some(ring) = (unsafe { shared.as_ref() }) else {
            return;
        };
        let Some(w) = ring.lock() else { return };
        w.retire();
        slot.store(epoch::Shared::null(), Ordering::Release);
        drop(w);
        // SAFETY: unlinked above and retired.
        unsafe { guard.defer_destroy(shared) };
    }

    /// Marks `user` stale if its word is still `seen` (see `make_stale`) and frees its
    /// ring: the user went quiet; its next read rebuilds. The word is changed holding
    /// the ring's writer lock, which `free` takes too, so the ring freed is the one the
    /// user had when it went stale: a rebuild that began after it frees that ring
    /// itself (finding it retired), and one that began before makes this fail. (Made
    /// stale first and freed after, without the lock, a worker could unlink the ring a
    /// rebuild had just stored, leaving a ready user with no ring.) False when the word
    /// moved.
    pub(crate) fn make_stale_and_free(&self, user: u32, seen: State) -> bool {
        let guard = epoch::pin();
        let slot = &self.slots[user as usize].ring;
        loop {
            let shared = slot.load(Ordering::Acquire, &guard);
            // SAFETY: loaded under `guard`; rings are destroyed only after unlinking.
            let Some(ring) = (unsafe { shared.as_ref() }) else {
                return self.make_stale(user, seen);
            };
            // Retired: unlinked since the load; retry on what the slot holds now.
            let Some(w) = ring.lock() else { continue };
            if !self.make_stale(user, seen) {
                return false;
            }
            w.retire();
            slot.store(epoch::Shared::null(), Ordering::Release);
            drop(w);
            // SAFETY: unlinked above and retired.
            unsafe { guard.defer_destroy(shared) };
            return true;
        }
    }

    /// Counts every ring (a walk over all users: for stats, not for hot paths; the
    /// delivery path keeps no shared counters, which would bounce between workers).
    pub(crate) fn memory(&self) -> TimelineMemory {
        let guard = epoch::pin();
        let mut memory = TimelineMemory {
            slot_bytes: (self.slots.len() * std::mem::size_of::<UserSlot>()) as u64,
            ..Default::default()
        };
        for slot in self.slots.iter() {
            let shared = slot.ring.load(Ordering::Acquire, &guard);
            // SAFETY: loaded under `guard`; rings are destroyed only after unlinking.
            if let Some(ring) = unsafe { shared.as_ref() } {
                memory.rings += 1;
                memory.entries += ring.len() as u64;
                memory.ring_bytes += ring.bytes() as u64;
            }
        }
        memory
    }
}

impl Drop for Timelines {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer is left.
        let guard = unsafe { epoch::unprotected() };
        for slot in self.slots.iter() {
            let shared = slot
                .ring
                .swap(epoch::Shared::null(), Ordering::Relaxed, guard);
            if !shared.is_null() {
                // SAFETY: exclusively owned now.
                drop(unsafe { shared.into_owned() });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots_of(t: &Timelines, user: u32) -> Option<u32> {
        let guard = epoch::pin();
        let shared = t.slots[user as usize].ring.load(Ordering::Acquire, &guard);
        // SAFETY: loaded under `guard`.
        unsafe { shared.as_ref() }.map(Ring::slots)
    }

    #[test]
    fn rings_start_at_the_hint_and_grow_by_chunks() {
        let t = Timelines::new(4, 800);
        assert_eq!(slots_of(&t, 0), None, "no entries, no ring");
        t.insert_sized(0, &[], 100);
        assert_eq!(slots_of(&t, 0), Some(128), "sized for the followed authors");
        t.insert_sized(1, &[], 5000);
        assert_eq!(slots_of(&t, 1), Some(800), "never past the capacity");
        t.insert_sized(2, &[], 0);
        assert_eq!(slots_of(&t, 2), None, "no hint, no ring yet");
        let ids: Vec<u64> = (1..=9).collect();
        t.insert(2, &ids[..8]);
        assert_eq!(slots_of(&t, 2), Some(8));
        assert_eq!(t.deliver(&[2, 3], 9, |_, _| true), 2);
        assert_eq!(slots_of(&t, 2), Some(24), "grew, keeping every entry");
        let mut out = Vec::new();
        t.copy_below(2, None, 100, &mut out);
        assert_eq!(out, ids.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(slots_of(&t, 3), Some(8));
    }
}
