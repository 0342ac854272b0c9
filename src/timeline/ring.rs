//! One user's home timeline: a bounded, ordered set of notice ids in a ring, stored as
//! 32-bit offsets from a base id (4 bytes an entry), readable without a lock.
//!
//! Concurrency: a seqlock. `seq` is even when the ring is stable and odd while a
//! writer is inside; writers enter by a compare-exchange from even to odd (so writers
//! exclude each other), change the ring with relaxed atomic stores, and leave by
//! storing `seq + 2` with Release. Readers load `seq` (Acquire), copy what they need
//! with relaxed loads, fence (Acquire) and load `seq` again: if it changed, or was odd,
//! they retry. Readers never write and never wait for a lock; a writer holds the ring
//! for a few hundred nanoseconds at most.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// The id is now in the timeline.
    New,
    /// It was already there (deliveries are idempotent).
    Present,
    /// The timeline is full and the id is older than its oldest entry.
    TooOld,
}

/// A page of ids copied out of a ring, newest first.
#[derive(Debug, Default)]
pub(crate) struct Copied {
    /// True when the copy reached the oldest stored entry.
    pub(crate) reached_oldest: bool,
    /// The ring holds every delivered id at or above this and none below; 0 when
    /// nothing was ever dropped. Ids below it must come from elsewhere (a pull).
    pub(crate) floor: u64,
}

#[repr(align(64))]
pub(crate) struct Ring {
    /// The seqlock word (see the module comment). Written by writers only: even -> odd
    /// by compare-exchange on entry, odd -> odd + 1 (Release) on exit.
    seq: AtomicU32,
    /// Slot of the oldest entry. Written inside the seqlock only.
    head: AtomicU32,
    /// Entries stored. Written inside the seqlock only.
    len: AtomicU32,
    /// The ring holds every delivered id at or above `floor` and none below: raised
    /// (inside the seqlock) when entries are dropped for capacity or range, or by a
    /// merge that stored only the newest part of a longer history. Never lowered.
    floor: AtomicU64,
    /// Set when this ring was replaced by a larger one: writers that acquired it must
    /// retry on the new one. Written inside the seqlock only.
    retired: AtomicBool,
    /// Every stored id is `base + offset`. Written inside the seqlock only.
    base: AtomicU64,
    /// The newest stored id when `len > 0` (written inside the seqlock): deliveries
    /// compare against it without touching the slots, whose line is then only
    /// written, never waited for.
    newest: AtomicU64,
    slots: Box<[AtomicU32]>,
}

impl Ring {
    pub(crate) fn with_slots(slots: u32) -> Ring {
        Ring {
            seq: AtomicU32::new(0),
            head: AtomicU32::new(0),
            len: AtomicU32::new(0),
            floor: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            base: AtomicU64::new(0),
            newest: AtomicU64::new(0),
            slots: zeroed(slots as usize),
        }
    }

    /// Slots (the most entries this ring holds).
    pub(crate) fn slots(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Entries stored (a racy snapshot, for statistics).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed) as usize
    }

    /// Heap and header bytes of this ring.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Ring>() + self.slots.len() * 4
    }

    /// The slot the next newest entry goes to (a racy read, for a prefetch hint: any
    /// value it gives is a slot of this ring).
    pub(crate) fn tail_slot(&self) -> *const AtomicU32 {
        let cap = self.slots.len();
        let head = self.head.load(Ordering::Relaxed) as usize;
        let len = self.len.load(Ordering::Relaxed) as usize;
        &self.slots[(head + len) % cap.max(1)]
    }

    /// Enters as the writer, or `None` if the ring was retired (the caller retries on
    /// the replacement).
    pub(crate) fn lock(&self) -> Option<WriteGuard<'_>> {
        let seq = super::seqlock::enter(&self.seq, &self.retired)?;
        Some(WriteGuard { ring: self, seq })
    }

    /// Copies up to `max` ids strictly below `below` (all when `None`), newest first,
    /// into `out`. Retries until it gets a consistent copy.
    pub(crate) fn copy_below(&self, below: Option<u64>, max: usize, out: &mut Vec<u64>) -> Copied {
        let start = out.len();
        super::seqlock::read(&self.seq, || {
            out.truncate(start);
            self.copy_unchecked(below, max, out)
        })
    }

    /// The copy itself; only meaningful when the seq check around it passes (or inside
    /// the writer's own seqlock).
    fn copy_unchecked(&self, below: Option<u64>, max: usize, out: &mut Vec<u64>) -> Copied {
        let cap = self.slots.len();
        let head = self.head.load(Ordering::Relaxed) as usize;
        // A torn read can give any values; clamp so indexing stays in bounds.
        let len = (self.len.load(Ordering::Relaxed) as usize).min(cap);
        let base = self.base.load(Ordering::Relaxed);
        let at =
            |i: usize| base + u64::from(self.slots[wrap(head + i, cap)].load(Ordering::Relaxed));
        // Entries are ascending: find the first position not below `below`.
        let mut end = len;
        if let Some(below) = below {
            let (mut lo, mut hi) = (0, len);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if at(mid) < below {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            end = lo;
        }
        let take = end.min(max);
        for i in (end - take..end).rev() {
            out.push(at(i));
        }
        Copied {
            reached_oldest: take == end,
            floor: self.floor.load(Ordering::Relaxed),
        }
    }
}

/// `n` slots, all 0.
fn zeroed(n: usize) -> Box<[AtomicU32]> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

/// `i % cap` for `i < 2 * cap`, without a division (the hot path of every delivery).
/// A torn read may give any `i`; the modulo fallback keeps indexing in bounds.
#[inline]
fn wrap(i: usize, cap: usize) -> usize {
    if i < cap {
        i
    } else if i < 2 * cap {
        i - cap
    } else {
        i % cap
    }
}

/// The writer's hold on a ring; leaving happens on drop.
pub(crate) struct WriteGuard<'r> {
    ring: &'r Ring,
    seq: u32,
}

impl WriteGuard<'_> {
    fn get(&self, i: usize) -> u64 {
        let r = self.ring;
        let cap = r.slots.len();
        let head = r.head.load(Ordering::Relaxed) as usize;
        r.base.load(Ordering::Relaxed)
            + u64::from(r.slots[wrap(head + i, cap)].load(Ordering::Relaxed))
    }

    fn set(&self, i: usize, id: u64) {
        let r = self.ring;
        let cap = r.slots.len();
        let head = r.head.load(Ordering::Relaxed) as usize;
        let offset = id - r.base.load(Ordering::Relaxed);
        debug_assert!(offset <= u64::from(u32::MAX), "offsets fit 32 bits");
        r.slots[wrap(head + i, cap)].store(offset as u32, Ordering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len.load(Ordering::Relaxed) as usize
    }

    /// A copy of this ring with `slots` slots (at least its length): the same
    /// entries, floor and base, laid out from slot 0 (for growing).
    pub(crate) fn copy_with_slots(&self, slots: u32) -> Ring {
        let r = self.ring;
        let len = self.len();
        debug_assert!(len <= slots as usize);
        let copy = Ring::with_slots(slots);
        let cap = r.slots.len();
        let head = r.head.load(Ordering::Relaxed) as usize;
        for (i, to) in copy.slots[..len].iter().enumerate() {
            to.store(
                r.slots[wrap(head + i, cap)].load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
        copy.len.store(len as u32, Ordering::Relaxed);
        copy.base
            .store(r.base.load(Ordering::Relaxed), Ordering::Relaxed);
        copy.newest
            .store(r.newest.load(Ordering::Relaxed), Ordering::Relaxed);
        copy.floor
            .store(r.floor.load(Ordering::Relaxed), Ordering::Relaxed);
        copy
    }

    /// Every id, oldest first (for moving into a larger ring).
    pub(crate) fn ids(&self) -> Vec<u64> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    /// Marks the ring replaced: writers that acquire it afterwards retry elsewhere.
    pub(crate) fn retire(&self) {
        self.ring.retired.store(true, Ordering::Relaxed);
    }

    /// Drops every entry below `floor` and refuses such ids from now on.
    pub(crate) fn raise_floor(&self, floor: u64) {
        while self.len() > 0 && self.get(0) < floor {
            self.drop_oldest();
        }
        self.ring.floor.fetch_max(floor, Ordering::Relaxed);
    }

    fn drop_oldest(&self) {
        let r = self.ring;
        let dropped = self.get(0);
        let cap = r.slots.len() as u32;
        let head = r.head.load(Ordering::Relaxed);
        r.head.store((head + 1) % cap, Ordering::Relaxed);
        r.len
            .store(r.len.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        r.floor.fetch_max(dropped + 1, Ordering::Relaxed);
    }

    /// Moves `base` to `new_base` (<= every stored id), rewriting the offsets.
    fn rebase(&self, new_base: u64) {
        let ids = self.ids();
        self.ring.base.store(new_base, Ordering::Relaxed);
        for (i, id) in ids.into_iter().enumerate() {
            self.set(i, id);
        }
    }

    /// Inserts `id` in order. `capacity` may be below the ring's slots (never above).
    pub(crate) fn insert(&self, id: u64, capacity: usize) -> Inserted {
        let r = self.ring;
        let len = self.len();
        // The common case: a new id, newer than everything stored, within range.
        if len > 0
            && id > r.newest.load(Ordering::Relaxed)
            && id - r.base.load(Ordering::Relaxed) <= u64::from(u32::MAX)
        {
            let capacity = capacity.min(r.slots.len());
            r.newest.store(id, Ordering::Relaxed);
            if len == capacity {
                // The oldest goes (raising the floor); the newest takes its slot.
                self.drop_oldest();
                self.set(len - 1, id);
                r.len.store(len as u32, Ordering::Relaxed);
            } else {
                self.set(len, id);
                r.len.store(len as u32 + 1, Ordering::Relaxed);
            }
            return Inserted::New;
        }
        let inserted = self.insert_in_order(id, capacity);
        let len = self.len();
        if len > 0 {
            r.newest.store(self.get(len - 1), Ordering::Relaxed);
        }
        inserted
    }

    /// Everything but the common case: first entry, out of order, range changes.
    fn insert_in_order(&self, id: u64, capacity: usize) -> Inserted {
        let r = self.ring;
        let capacity = capacity.min(r.slots.len());
        if id < r.floor.load(Ordering::Relaxed) {
            return Inserted::TooOld;
        }
        let len = self.len();
        if len == 0 {
            r.base.store(id, Ordering::Relaxed);
            r.head.store(0, Ordering::Relaxed);
            self.set(0, id);
            r.len.store(1, Ordering::Relaxed);
            return Inserted::New;
        }
        let oldest = self.get(0);
        if len == capacity && id < oldest {
            r.floor.fetch_max(id + 1, Ordering::Relaxed);
            return Inserted::TooOld;
        }
        // Keep every id representable: the span of a timeline fits 32 bits; drop the
        // oldest entries where a far newer id arrives, or refuse a far older one.
        let newest = self.get(len - 1);
        if id < oldest && newest - id > u64::from(u32::MAX) {
            r.floor.fetch_max(id + 1, Ordering::Relaxed);
            return Inserted::TooOld;
        }
        while self.len() > 0 && id > self.get(0) && id - self.get(0) > u64::from(u32::MAX) {
            self.drop_oldest();
        }
        if self.len() == 0 {
            return self.insert_in_order(id, capacity);
        }
        let base = r.base.load(Ordering::Relaxed);
        if id < base {
            self.rebase(id);
        } else if id - base > u64::from(u32::MAX) {
            self.rebase(self.get(0));
        }
        // Binary search for the position.
        let len = self.len();
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let v = self.get(mid);
            if v == id {
                return Inserted::Present;
            }
            if v < id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut at = lo;
        if len == capacity {
            self.drop_oldest();
            at -= 1;
        }
        let len = self.len();
        // Shift the newer entries up by one (usually none: new ids are the newest).
        for i in (at..len).rev() {
            let v = self.get(i);
            self.set(i + 1, v);
        }
        self.set(at, id);
        r.len.store(len as u32 + 1, Ordering::Relaxed);
        Inserted::New
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        super::seqlock::leave(&self.ring.seq, self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(ring: &Ring) -> Vec<u64> {
        let mut out = Vec::new();
        ring.copy_below(None, usize::MAX, &mut out);
        out
    }

    #[test]
    fn keeps_ids_ordered_unique_and_bounded() {
        let ring = Ring::with_slots(4);
        let w = ring.lock().unwrap();
        assert_eq!(w.insert(10, 4), Inserted::New);
        assert_eq!(w.insert(30, 4), Inserted::New);
        assert_eq!(w.insert(20, 4), Inserted::New);
        assert_eq!(w.insert(20, 4), Inserted::Present);
        assert_eq!(w.insert(5, 4), Inserted::New);
        assert_eq!(w.insert(40, 4), Inserted::New, "full: the oldest goes");
        assert_eq!(w.insert(1, 4), Inserted::TooOld);
        drop(w);
        assert_eq!(all(&ring), vec![40, 30, 20, 10]);
        let mut out = Vec::new();
        let c = ring.copy_below(Some(30), 1, &mut out);
        assert_eq!(out, vec![20]);
        assert!(!c.reached_oldest);
        assert_eq!(c.floor, 6, "5 was dropped, then 1 refused below it");
        out.clear();
        let c = ring.copy_below(Some(20), 5, &mut out);
        assert_eq!(out, vec![10]);
        assert!(c.reached_oldest);
    }

    #[test]
    fn a_larger_copy_keeps_entries_floor_and_order() {
        let ring = Ring::with_slots(4);
        {
            let w = ring.lock().unwrap();
            for id in [100, 101, 102, 103, 104, 105] {
                w.insert(id, 4); // wraps: the head moves off slot 0
            }
        }
        let w = ring.lock().unwrap();
        let larger = w.copy_with_slots(8);
        drop(w);
        assert_eq!(all(&larger), all(&ring));
        assert_eq!(all(&larger), vec![105, 104, 103, 102]);
        let mut out = Vec::new();
        assert_eq!(larger.copy_below(None, 8, &mut out).floor, 102);
        let lw = larger.lock().unwrap();
        assert_eq!(lw.insert(106, 8), Inserted::New);
        assert_eq!(lw.insert(101, 8), Inserted::TooOld, "below the kept floor");
        assert_eq!(lw.insert(104, 8), Inserted::Present);
        drop(lw);
        assert_eq!(all(&larger), vec![106, 105, 104, 103, 102]);
    }

    #[test]
    fn ids_far_apart_stay_exact() {
        let ring = Ring::with_slots(8);
        let w = ring.lock().unwrap();
        let big = 1u64 << 40;
        w.insert(big, 8);
        w.insert(big - 1000, 8);
        w.insert(big + 5, 8);
        assert_eq!(
            w.insert(3, 8),
            Inserted::TooOld,
            "too far below to represent"
        );
        w.insert(big + (1 << 33), 8);
        w.raise_floor(big + (1 << 33) + 1);
        assert_eq!(w.len(), 0);
        assert_eq!(w.insert(big + (1 << 33), 8), Inserted::TooOld);
        w.insert(big + (1 << 34), 8);
        drop(w);
        assert_eq!(
            all(&ring),
            vec![big + (1 << 34)],
            "the far older ones were dropped"
        );
    }

    #[test]
    fn readers_see_whole_states_while_a_writer_inserts() {
        let ring = Ring::with_slots(64);
        std::thread::scope(|s| {
            s.spawn(|| {
                for id in 1..20_000u64 {
                    let w = ring.lock().unwrap();
                    w.insert(id * 2, 64);
                    if id % 3 == 0 {
                        w.insert(id * 2 - 1, 64);
                    }
                }
            });
            for _ in 0..2 {
                s.spawn(|| {
                    let mut out = Vec::new();
                    for _ in 0..20_000 {
                        out.clear();
                        ring.copy_below(None, 64, &mut out);
                        assert!(
                            out.windows(2).all(|w| w[0] > w[1]),
                            "strictly descending: {out:?}"
                        );
                        assert!(out.len() <= 64);
                    }
                });
            }
        });
    }
}
