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
//!
//! Storage: chunks of slots that double in size (8, 16, 32, ... slots; the last one
//! takes whatever the capacity leaves), added as the ring fills and never moved or
//! freed before the ring itself. Growing is one allocation: no copy, and no smaller
//! array left behind in the allocator (growing by copying into arrays twice the size
//! leaves them in its free lists: about 10 resident bytes an entry once full, for 4
//! used).

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// The fewest slots in a first chunk; chunk `k` has `first << k`.
const FIRST_CHUNK_MIN: u32 = 8;
/// Chunks a ring may have; the last takes the rest of the capacity, however large.
const CHUNKS: usize = 8;

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

/// The header takes two cache lines: the first holds what every delivery reads and
/// writes, and the pointers to the first three chunks.
#[repr(C, align(64))]
pub(crate) struct Ring {
    /// The seqlock word (see the module comment). Written by writers only: even -> odd
    /// by compare-exchange on entry, odd -> odd + 1 (Release) on exit.
    seq: AtomicU32,
    /// Slot of the oldest entry. Written inside the seqlock only.
    head: AtomicU32,
    /// Entries stored. Written inside the seqlock only.
    len: AtomicU32,
    /// Slots in the chunks added so far: the ring's modulus. Written inside the
    /// seqlock only; chunks are published (Release) before it grows past them.
    slots: AtomicU32,
    /// Every stored id is `base + offset`. Written inside the seqlock only.
    base: AtomicU64,
    /// The newest stored id when `len > 0` (written inside the seqlock): deliveries
    /// compare against it without touching the slots, whose line is then only
    /// written, never waited for.
    newest: AtomicU64,
    /// The ring holds every delivered id at or above `floor` and none below: raised
    /// (inside the seqlock) when entries are dropped for capacity or range, or by a
    /// merge that stored only the newest part of a longer history. Never lowered.
    floor: AtomicU64,
    /// Chunk `k` (`chunk_len(k)` slots), or null until added. Set once (Release),
    /// inside the seqlock; freed only with the ring.
    chunks: [AtomicPtr<AtomicU32>; CHUNKS],
    /// The most entries it holds (the timeline capacity). Fixed.
    capacity: u32,
    /// log2 of the first chunk's slots (a power of two: the size the ring was made
    /// for, so a ring sized for what goes in keeps it in one array). Fixed.
    shift: u32,
    /// Set when this ring was unlinked from its user: writers that acquired it must
    /// retry on the slot. Written inside the seqlock only.
    retired: AtomicBool,
}

// The layout the comment above promises (with 8-byte pointers): two lines, the first
// ending with chunk 2's pointer.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Ring>() == 128);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::offset_of!(Ring, chunks) + 3 * 8 == 64);

impl Ring {
    /// An empty ring holding at most `capacity` entries, with chunks for `slots` of
    /// them (at least the first chunk) already added: one chunk, unless `slots` is
    /// above the capacity's power of two.
    pub(crate) fn new(capacity: u32, slots: u32) -> Ring {
        assert!(capacity > 0, "a timeline holds at least one entry");
        let first = slots
            .clamp(FIRST_CHUNK_MIN, capacity.max(FIRST_CHUNK_MIN))
            .next_power_of_two();
        let ring = Ring {
            seq: AtomicU32::new(0),
            head: AtomicU32::new(0),
            len: AtomicU32::new(0),
            slots: AtomicU32::new(0),
            base: AtomicU64::new(0),
            newest: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            chunks: Default::default(),
            capacity,
            shift: first.trailing_zeros(),
            retired: AtomicBool::new(false),
        };
        while ring.slots.load(Ordering::Relaxed) < slots.clamp(1, capacity) {
            ring.add_chunk();
        }
        ring
    }

    /// The first slot of chunk `k`.
    #[inline]
    fn chunk_start(&self, k: usize) -> u32 {
        ((1u32 << k) - 1) << self.shift
    }

    /// The chunk holding slot `p`.
    #[inline]
    fn chunk_of(&self, p: u32) -> usize {
        ((31 - ((p >> self.shift) + 1).leading_zeros()) as usize).min(CHUNKS - 1)
    }

    /// Slots of chunk `k`: doubling, the last one (by index or by capacity) taking
    /// the rest of the capacity.
    fn chunk_len(&self, k: usize) -> u32 {
        let rest = self.capacity - self.chunk_start(k);
        if k == CHUNKS - 1 {
            rest
        } else {
            (1u32 << (self.shift + k as u32)).min(rest)
        }
    }

    /// Adds the next chunk (the ring has fewer slots than its capacity). Only in a
    /// new ring or inside the seqlock.
    fn add_chunk(&self) {
        let slots = self.slots.load(Ordering::Relaxed);
        debug_assert!(slots < self.capacity);
        let k = self.chunk_of(slots);
        debug_assert_eq!(self.chunk_start(k), slots);
        let len = self.chunk_len(k) as usize;
        let chunk: Box<[AtomicU32]> = (0..len).map(|_| AtomicU32::new(0)).collect();
        let ptr = Box::into_raw(chunk).cast::<AtomicU32>();
        self.chunks[k].store(ptr, Ordering::Release);
        self.slots.store(slots + len as u32, Ordering::Relaxed);
    }

    /// Slot `p` (below `slots`), or `None` when its chunk is not there: only a reader
    /// racing a writer sees that, and its copy is thrown away.
    #[inline]
    fn slot(&self, p: u32) -> Option<&AtomicU32> {
        let k = self.chunk_of(p);
        let ptr = self.chunks[k].load(Ordering::Acquire);
        if ptr.is_null() {
            return None;
        }
        // Torn values can give any `p`: bound it by the chunk's own length.
        let offset = p
            .saturating_sub(self.chunk_start(k))
            .min(self.chunk_len(k) - 1);
        // SAFETY: a non-null chunk pointer came from `Box::into_raw` of a slice of
        // `chunk_len(k)` slots, published with Release after its initialisation and
        // freed only when the ring is dropped (after every reader and writer left:
        // rings are unlinked and destroyed through the epoch); `offset` is below
        // that length.
        Some(unsafe { &*ptr.add(offset as usize) })
    }

    /// The address of slot `p`, for a prefetch (never read through).
    fn slot_addr(&self, p: u32) -> *const AtomicU32 {
        let k = self.chunk_of(p);
        let ptr = self.chunks[k].load(Ordering::Relaxed);
        ptr.wrapping_add(p.saturating_sub(self.chunk_start(k)) as usize)
    }

    /// Slots in the chunks added so far.
    pub(crate) fn slots(&self) -> u32 {
        self.slots.load(Ordering::Relaxed)
    }

    /// Entries stored (a racy snapshot, for statistics).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed) as usize
    }

    /// Heap and header bytes of this ring.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Ring>() + self.slots() as usize * 4
    }

    /// Where the next newest entry goes, for a prefetch hint (a racy read: any value
    /// it gives is an address inside this ring's chunks, or near a null pointer).
    pub(crate) fn tail_slot(&self) -> *const AtomicU32 {
        let slots = self.slots.load(Ordering::Relaxed).max(1);
        let head = self.head.load(Ordering::Relaxed);
        let len = self.len.load(Ordering::Relaxed);
        self.slot_addr(wrap(head.wrapping_add(len), slots))
    }

    /// The header's second cache line (the pointers to chunks 3 to 7).
    pub(crate) fn second_line(&self) -> *const AtomicPtr<AtomicU32> {
        &self.chunks[CHUNKS - 1]
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
        let slots = self.slots.load(Ordering::Relaxed).max(1);
        let head = self.head.load(Ordering::Relaxed);
        // A torn read can give any values; clamp so positions stay in bounds.
        let len = self.len.load(Ordering::Relaxed).min(slots) as usize;
        let base = self.base.load(Ordering::Relaxed);
        let at = |i: usize| {
            self.slot(wrap(head.wrapping_add(i as u32), slots))
                .map_or(0, |s| base + u64::from(s.load(Ordering::Relaxed)))
        };
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

impl Drop for Ring {
    fn drop(&mut self) {
        for k in 0..CHUNKS {
            let ptr = *self.chunks[k].get_mut();
            if !ptr.is_null() {
                let len = self.chunk_len(k) as usize;
                // SAFETY: made by `Box::into_raw` of a slice of `chunk_len(k)` slots
                // in `add_chunk`; `&mut self`: nobody else can reach it.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
            }
        }
    }
}

/// `i % cap` for `i < 2 * cap`, without a division (the hot path of every delivery).
/// A torn read may give any `i`; the modulo fallback keeps indexing in bounds.
#[inline]
fn wrap(i: u32, cap: u32) -> u32 {
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
    /// Slot of position `i` (0 the oldest); inside the seqlock every chunk below
    /// `slots` is there.
    fn slot(&self, i: usize) -> &AtomicU32 {
        let r = self.ring;
        let slots = r.slots.load(Ordering::Relaxed);
        let head = r.head.load(Ordering::Relaxed);
        r.slot(wrap(head + i as u32, slots))
            .expect("the writer sees every chunk it added")
    }

    fn get(&self, i: usize) -> u64 {
        self.ring.base.load(Ordering::Relaxed) + u64::from(self.slot(i).load(Ordering::Relaxed))
    }

    fn set(&self, i: usize, id: u64) {
        let offset = id - self.ring.base.load(Ordering::Relaxed);
        debug_assert!(offset <= u64::from(u32::MAX), "offsets fit 32 bits");
        self.slot(i).store(offset as u32, Ordering::Relaxed);
    }

    /// Makes room for one more entry below the capacity: adds a chunk when every slot
    /// is taken. The entries must sit from slot 0 up for the ring's modulus to grow
    /// under them: when they wrap (an old entry was dropped), they are laid out again
    /// from slot 0 first (rare: rings grow while they fill, and drop only once full).
    fn grow(&self) {
        let r = self.ring;
        if r.head.load(Ordering::Relaxed) != 0 {
            let ids = self.ids();
            r.head.store(0, Ordering::Relaxed);
            for (i, id) in ids.into_iter().enumerate() {
                self.set(i, id);
            }
        }
        r.add_chunk();
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len.load(Ordering::Relaxed) as usize
    }

    /// Every id, oldest first.
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
        self.set_floor(floor);
    }

    fn drop_oldest(&self) {
        let r = self.ring;
        let dropped = self.get(0);
        let slots = r.slots.load(Ordering::Relaxed);
        let head = r.head.load(Ordering::Relaxed);
        r.head.store(wrap(head + 1, slots), Ordering::Relaxed);
        r.len
            .store(r.len.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        self.set_floor(dropped + 1);
    }

    /// Raises the floor (inside the seqlock: a plain load and store).
    fn set_floor(&self, floor: u64) {
        let r = self.ring;
        if floor > r.floor.load(Ordering::Relaxed) {
            r.floor.store(floor, Ordering::Relaxed);
        }
    }

    /// Moves `base` to `new_base` (<= every stored id), rewriting the offsets.
    fn rebase(&self, new_base: u64) {
        let ids = self.ids();
        self.ring.base.store(new_base, Ordering::Relaxed);
        for (i, id) in ids.into_iter().enumerate() {
            self.set(i, id);
        }
    }

    /// Makes room for one more entry when every slot is taken, below the capacity.
    fn room(&self, len: usize) {
        if len == self.ring.slots.load(Ordering::Relaxed) as usize {
            self.grow();
        }
    }

    /// Inserts `id` in order, growing the ring up to its capacity; at the capacity the
    /// oldest entry goes.
    pub(crate) fn insert(&self, id: u64) -> Inserted {
        let r = self.ring;
        let len = self.len();
        // The common case: a new id, newer than everything stored, within range.
        if len > 0
            && id > r.newest.load(Ordering::Relaxed)
            && id - r.base.load(Ordering::Relaxed) <= u64::from(u32::MAX)
        {
            r.newest.store(id, Ordering::Relaxed);
            if len == r.capacity as usize {
                // The oldest goes (raising the floor); the newest takes its slot.
                self.drop_oldest();
                self.set(len - 1, id);
                r.len.store(len as u32, Ordering::Relaxed);
            } else {
                self.room(len);
                self.set(len, id);
                r.len.store(len as u32 + 1, Ordering::Relaxed);
            }
            return Inserted::New;
        }
        // Next most common: a little older than the newest (a worker delivers posts in
        // chunks, round-robin, so a post's later chunks reach users after newer
        // posts): find its place from the newest end, in the tail's cache line.
        if len > 0
            && id < r.newest.load(Ordering::Relaxed)
            && id >= r.base.load(Ordering::Relaxed)
            && let Some(inserted) = self.insert_near_newest(id, len)
        {
            return inserted;
        }
        let inserted = self.insert_in_order(id, r.capacity as usize);
        let len = self.len();
        if len > 0 {
            r.newest.store(self.get(len - 1), Ordering::Relaxed);
        }
        inserted
    }

    /// Places `id` (older than the newest, not below the base) among the newest few
    /// entries; `None` when its place is further down (the general path then).
    fn insert_near_newest(&self, id: u64, len: usize) -> Option<Inserted> {
        const STEPS: usize = 8;
        let mut at = len;
        for _ in 0..STEPS {
            if at == 0 {
                return None; // older than every entry: the general path
            }
            let v = self.get(at - 1);
            if v == id {
                return Some(Inserted::Present);
            }
            if v < id {
                // get(at - 1) < id < get(at): above the oldest entry, hence above
                // the floor, and within the span of the stored ids.
                return Some(self.insert_at(at, id, len));
            }
            at -= 1;
        }
        None
    }

    /// Inserts `id` at position `at` (0 the oldest) of a ring holding `len`, shifting
    /// the newer entries up; at the capacity the oldest goes first.
    fn insert_at(&self, mut at: usize, id: u64, len: usize) -> Inserted {
        if len == self.ring.capacity as usize {
            self.drop_oldest();
            at -= 1;
        } else {
            self.room(len);
        }
        let len = self.len();
        for i in (at..len).rev() {
            let v = self.get(i);
            self.set(i + 1, v);
        }
        self.set(at, id);
        self.ring.len.store(len as u32 + 1, Ordering::Relaxed);
        Inserted::New
    }

    /// Everything but the common case: first entry, out of order, range changes.
    fn insert_in_order(&self, id: u64, capacity: usize) -> Inserted {
        let r = self.ring;
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
            self.set_floor(id + 1);
            return Inserted::TooOld;
        }
        // Keep every id representable: the span of a timeline fits 32 bits; drop the
        // oldest entries where a far newer id arrives, or refuse a far older one.
        let newest = self.get(len - 1);
        if id < oldest && newest - id > u64::from(u32::MAX) {
            self.set_floor(id + 1);
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
        self.insert_at(lo, id, len)
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
        let ring = Ring::new(4, 4);
        let w = ring.lock().unwrap();
        assert_eq!(w.insert(10), Inserted::New);
        assert_eq!(w.insert(30), Inserted::New);
        assert_eq!(w.insert(20), Inserted::New);
        assert_eq!(w.insert(20), Inserted::Present);
        assert_eq!(w.insert(5), Inserted::New);
        assert_eq!(w.insert(40), Inserted::New, "full: the oldest goes");
        assert_eq!(w.insert(1), Inserted::TooOld);
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
    fn chunks_double_up_to_the_capacity() {
        let ring = Ring::new(800, 1);
        assert_eq!(ring.slots(), 8);
        let w = ring.lock().unwrap();
        let mut seen = vec![w.ring.slots()];
        for id in 1..=1000u64 {
            assert_eq!(w.insert(id), Inserted::New);
            if *seen.last().unwrap() != w.ring.slots() {
                seen.push(w.ring.slots());
            }
        }
        drop(w);
        assert_eq!(seen, vec![8, 24, 56, 120, 248, 504, 800]);
        assert_eq!(
            Ring::new(800, 100)
                .chunks
                .iter()
                .filter(|c| !c.load(Ordering::Relaxed).is_null())
                .count(),
            1,
            "one array when made for what goes in"
        );
        assert_eq!(all(&ring), (201..=1000).rev().collect::<Vec<u64>>());
        assert_eq!(Ring::new(800, 100).slots(), 128, "sized for what goes in");
        assert_eq!(Ring::new(800, 800).slots(), 800);
        assert_eq!(Ring::new(5, 100).slots(), 5, "never past the capacity");
        assert_eq!(Ring::new(100_000, 100_000).slots(), 100_000);
    }

    #[test]
    fn growing_a_wrapped_ring_keeps_its_order() {
        let ring = Ring::new(64, 8);
        let w = ring.lock().unwrap();
        for id in 10..18u64 {
            w.insert(id);
        }
        w.raise_floor(13); // the head moves off slot 0
        for id in 18..30u64 {
            w.insert(id); // wraps around slot 0, then grows
        }
        w.insert(5); // below the floor
        w.insert(20); // present
        drop(w);
        assert_eq!(all(&ring), (13..30).rev().collect::<Vec<u64>>());
    }

    proptest::proptest! {
        #[test]
        fn behaves_as_a_bounded_sorted_set_with_a_floor(
            capacity in 1u32..40,
            first in 0u32..40,
            ops in proptest::collection::vec((0u64..300, 0u8..10), 0..200),
        ) {
            let ring = Ring::new(capacity, first);
            let mut model = std::collections::BTreeSet::new();
            let mut floor = 0u64;
            for (id, op) in ops {
                let w = ring.lock().unwrap();
                if op == 0 {
                    w.raise_floor(id);
                    floor = floor.max(id);
                    model.retain(|&x| x >= floor);
                    continue;
                }
                let want = if id < floor {
                    Inserted::TooOld
                } else if model.contains(&id) {
                    Inserted::Present
                } else if model.len() == capacity as usize && id < *model.first().unwrap() {
                    floor = floor.max(id + 1);
                    Inserted::TooOld
                } else {
                    model.insert(id);
                    if model.len() > capacity as usize {
                        let oldest = model.pop_first().unwrap();
                        floor = floor.max(oldest + 1);
                    }
                    Inserted::New
                };
                proptest::prop_assert_eq!(w.insert(id), want);
                drop(w);
                let mut out = Vec::new();
                let copied = ring.copy_below(None, usize::MAX, &mut out);
                proptest::prop_assert_eq!(out, model.iter().rev().copied().collect::<Vec<_>>());
                proptest::prop_assert_eq!(copied.floor, floor);
            }
        }
    }

    #[test]
    fn ids_far_apart_stay_exact() {
        let ring = Ring::new(8, 8);
        let w = ring.lock().unwrap();
        let big = 1u64 << 40;
        w.insert(big);
        w.insert(big - 1000);
        w.insert(big + 5);
        assert_eq!(w.insert(3), Inserted::TooOld, "too far below to represent");
        w.insert(big + (1 << 33));
        w.raise_floor(big + (1 << 33) + 1);
        assert_eq!(w.len(), 0);
        assert_eq!(w.insert(big + (1 << 33)), Inserted::TooOld);
        w.insert(big + (1 << 34));
        drop(w);
        assert_eq!(
            all(&ring),
            vec![big + (1 << 34)],
            "the far older ones were dropped"
        );
    }

    #[test]
    fn readers_see_whole_states_while_a_writer_inserts() {
        // Readers copy while the writer appends, places late ids, raises the floor
        // (moving the head), and so grows the ring chunk by chunk, laying wrapped
        // entries out again: every copy must still be a state the ring was in.
        for (capacity, first) in [(64, 64), (300, 8)] {
            let ring = Ring::new(capacity, first);
            let done = AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| {
                    for id in 1..20_000u64 {
                        let w = ring.lock().unwrap();
                        w.insert(id * 2);
                        if id % 3 == 0 {
                            w.insert(id * 2 - 1);
                        }
                        if id % 97 == 0 {
                            w.raise_floor(id * 2 - 20);
                        }
                    }
                    done.store(true, Ordering::Relaxed);
                });
                for _ in 0..2 {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        while !done.load(Ordering::Relaxed) {
                            out.clear();
                            let copied = ring.copy_below(None, usize::MAX, &mut out);
                            assert!(
                                out.windows(2).all(|w| w[0] > w[1]),
                                "strictly descending: {out:?}"
                            );
                            assert!(out.len() <= capacity as usize);
                            assert!(out.iter().all(|&id| id >= copied.floor));
                        }
                    });
                }
            });
            assert!(ring.slots() > first.min(capacity) || first >= capacity);
        }
    }
}
