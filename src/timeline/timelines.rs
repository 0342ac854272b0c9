//! Every user's home timeline: a slot per user holding a [`Ring`] that grows with its
//! entries (a user with no entries costs the slot alone, 8 bytes).
//!
//! Rings are replaced (to grow) and freed (when a user goes quiet) behind readers'
//! backs, so a slot is a `crossbeam_epoch::Atomic`: readers pin, load, copy, unpin;
//! replaced rings are destroyed once no pinned reader can hold them.

use std::sync::atomic::{AtomicI64, Ordering};

use crossbeam_epoch::{self as epoch, Atomic, Owned};

use super::ring::{Copied, Inserted, Ring};

/// Slot counts a ring grows through, up to the capacity.
const GROWTH: [u32; 5] = [8, 32, 128, 512, 2048];

pub(crate) struct Timelines {
    slots: Box<[Atomic<Ring>]>,
    capacity: u32,
    /// Entries stored over all rings (a gauge: grows on insert, shrinks on free).
    entries: AtomicI64,
    /// Bytes of all rings (headers and slots).
    bytes: AtomicI64,
    /// Rings allocated.
    rings: AtomicI64,
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
            slots: (0..users).map(|_| Atomic::null()).collect(),
            capacity,
            entries: AtomicI64::new(0),
            bytes: AtomicI64::new(0),
            rings: AtomicI64::new(0),
        }
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    fn size_after(&self, slots: u32) -> u32 {
        GROWTH
            .iter()
            .copied()
            .find(|&g| g > slots)
            .unwrap_or(u32::MAX)
            .min(self.capacity)
    }

    /// Inserts the ids into `user`'s timeline, in one hold of its writer lock per
    /// ring. Returns how many were new.
    pub(crate) fn insert(&self, user: u32, ids: &[u64]) -> usize {
        let slot = &self.slots[user as usize];
        let guard = epoch::pin();
        let mut new = 0;
        let mut rest = ids;
        while !rest.is_empty() {
            let shared = slot.load(Ordering::Acquire, &guard);
            // SAFETY: the pointer was loaded under `guard`; a ring is only destroyed
            // through `defer_destroy` after it was unlinked, so it lives while pinned.
            let Some(ring) = (unsafe { shared.as_ref() }) else {
                self.install_first(slot, shared, &guard);
                continue;
            };
            let Some(w) = ring.lock() else { continue };
            while let Some((&id, tail)) = rest.split_first() {
                if w.len() == ring.slots() as usize && ring.slots() < self.capacity {
                    break; // grow first
                }
                let before = w.len();
                if w.insert(id, self.capacity as usize) == Inserted::New {
                    new += 1;
                }
                self.entries
                    .fetch_add(w.len() as i64 - before as i64, Ordering::Relaxed);
                rest = tail;
            }
            if rest.is_empty() {
                break;
            }
            // Grow: copy into a larger ring, publish it, retire the old one.
            let larger = Ring::with_slots(self.size_after(ring.slots()));
            {
                let lw = larger.lock().expect("a new ring is not retired");
                for id in w.ids() {
                    lw.insert(id, self.capacity as usize);
                }
                lw.raise_floor(w.floor());
            }
            let bytes = larger.bytes() as i64 - ring.bytes() as i64;
            w.retire();
            slot.store(Owned::new(larger), Ordering::Release);
            drop(w);
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
            // SAFETY: the old ring is unlinked from the slot (replaced above) and
            // retired, so no new reader or writer can reach it.
            unsafe { guard.defer_destroy(shared) };
        }
        new
    }

    /// Runs `f` holding the writer lock of `user`'s ring (created when missing).
    fn with_ring<T>(
        &self,
        user: u32,
        f: impl FnOnce(&Ring, &super::ring::WriteGuard<'_>) -> T,
    ) -> T {
        let slot = &self.slots[user as usize];
        let guard = epoch::pin();
        loop {
            let shared = slot.load(Ordering::Acquire, &guard);
            // SAFETY: loaded under `guard`; rings are destroyed only after unlinking.
            let Some(ring) = (unsafe { shared.as_ref() }) else {
                self.install_first(slot, shared, &guard);
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
    ) {
        let first = Owned::new(Ring::with_slots(self.size_after(0)));
        let bytes = first.bytes() as i64;
        if slot
            .compare_exchange(empty, first, Ordering::AcqRel, Ordering::Acquire, guard)
            .is_ok()
        {
            self.rings.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
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
        let shared = self.slots[user as usize].load(Ordering::Acquire, &guard);
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
            let before = w.len();
            w.raise_floor(floor);
            self.entries
                .fetch_sub(before as i64 - w.len() as i64, Ordering::Relaxed);
        });
    }

    /// Frees `user`'s timeline (the user went quiet; the next read rebuilds it).
    pub(crate) fn free(&self, user: u32) {
        let guard = epoch::pin();
        let slot = &self.slots[user as usize];
        let shared = slot.load(Ordering::Acquire, &guard);
        // SAFETY: loaded under `guard`.
        let Some(ring) = (unsafe { shared.as_ref() }) else {
            return;
        };
        let Some(w) = ring.lock() else { return };
        let len = w.len() as i64;
        w.retire();
        slot.store(epoch::Shared::null(), Ordering::Release);
        drop(w);
        self.entries.fetch_sub(len, Ordering::Relaxed);
        self.bytes.fetch_sub(ring.bytes() as i64, Ordering::Relaxed);
        self.rings.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: unlinked above and retired.
        unsafe { guard.defer_destroy(shared) };
    }

    pub(crate) fn memory(&self) -> TimelineMemory {
        TimelineMemory {
            rings: self.rings.load(Ordering::Relaxed).max(0) as u64,
            entries: self.entries.load(Ordering::Relaxed).max(0) as u64,
            ring_bytes: self.bytes.load(Ordering::Relaxed).max(0) as u64,
            slot_bytes: (self.slots.len() * std::mem::size_of::<Atomic<Ring>>()) as u64,
        }
    }
}

impl Drop for Timelines {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer is left.
        let guard = unsafe { epoch::unprotected() };
        for slot in self.slots.iter() {
            let shared = slot.swap(epoch::Shared::null(), Ordering::Relaxed, guard);
            if !shared.is_null() {
                // SAFETY: exclusively owned now.
                drop(unsafe { shared.into_owned() });
            }
        }
    }
}
