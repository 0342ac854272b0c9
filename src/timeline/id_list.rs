//! Per-user, unbounded, ascending lists of notice ids: each author's notices (the user
//! stream, and the source of pull reads and rebuilds) and each user's mentions.
//!
//! A list is a growable array of `AtomicU64` behind a seqlock, like a home timeline's
//! ring (see `ring.rs`): writers take the seqlock word from even to odd, readers copy
//! and check the word did not move. Appends are almost always at the end (ids are
//! handed out in order); a notice whose append lost a race with a newer one is placed
//! in order. Lists grow by replacement, reclaimed through the epoch like rings.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_epoch::{self as epoch, Atomic, Owned};

struct List {
    /// The seqlock word: even stable, odd while the writer is inside.
    seq: AtomicU32,
    /// Entries stored (written inside the seqlock).
    len: AtomicU32,
    /// Set when replaced by a larger list (written inside the seqlock).
    retired: std::sync::atomic::AtomicBool,
    ids: Box<[AtomicU64]>,
}

impl List {
    fn with_capacity(capacity: usize) -> List {
        List {
            seq: AtomicU32::new(0),
            len: AtomicU32::new(0),
            retired: std::sync::atomic::AtomicBool::new(false),
            ids: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Enters as the writer; `None` when retired. See `seqlock`.
    fn lock(&self) -> Option<u32> {
        super::seqlock::enter(&self.seq, &self.retired)
    }

    fn unlock(&self, entered: u32) {
        super::seqlock::leave(&self.seq, entered);
    }

    fn get(&self, i: usize) -> u64 {
        self.ids[i].load(Ordering::Relaxed)
    }

    /// First position whose id is not below `id`, among the first `len`.
    fn position(&self, len: usize, id: u64) -> usize {
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid) < id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// What [`IdLists::copy_below_pinned`] saw.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listed {
    /// The copy reached the list's oldest id.
    pub(crate) reached_oldest: bool,
    /// Ids the list held (a list only grows: the same length later means the same ids).
    pub(crate) len: usize,
}

/// One list per user.
pub(crate) struct IdLists {
    slots: Box<[Atomic<List>]>,
}

impl IdLists {
    pub(crate) fn new(users: u32) -> IdLists {
        IdLists {
            slots: (0..users).map(|_| Atomic::null()).collect(),
        }
    }

    /// Adds `id` to `user`'s list, in order; a second add of the same id does nothing.
    pub(crate) fn add(&self, user: u32, id: u64) {
        let slot = &self.slots[user as usize];
        let guard = epoch::pin();
        loop {
            let shared = slot.load(Ordering::Acquire, &guard);
            // SAFETY: loaded under `guard`; lists are destroyed only after unlinking.
            let Some(list) = (unsafe { shared.as_ref() }) else {
                let _ = slot.compare_exchange(
                    shared,
                    Owned::new(List::with_capacity(4)),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                    &guard,
                );
                continue;
            };
            let Some(leave) = list.lock() else { continue };
            let len = list.len.load(Ordering::Relaxed) as usize;
            let at = list.position(len, id);
            if at < len && list.get(at) == id {
                list.unlock(leave);
                return;
            }
            if len < list.ids.len() {
                for i in (at..len).rev() {
                    list.ids[i + 1].store(list.get(i), Ordering::Relaxed);
                }
                list.ids[at].store(id, Ordering::Relaxed);
                list.len.store(len as u32 + 1, Ordering::Relaxed);
                list.unlock(leave);
                return;
            }
            let larger = List::with_capacity(list.ids.len() * 2);
            for i in 0..len {
                larger.ids[i].store(list.get(i), Ordering::Relaxed);
            }
            larger.len.store(len as u32, Ordering::Relaxed);
            list.retired.store(true, Ordering::Relaxed);
            slot.store(Owned::new(larger), Ordering::Release);
            list.unlock(leave);
            // SAFETY: unlinked and retired above.
            unsafe { guard.defer_destroy(shared) };
        }
    }

    /// Copies up to `max` ids of `user`'s list strictly below `below` (all when
    /// `None`), newest first, into `out`; returns whether it reached the oldest.
    pub(crate) fn copy_below(
        &self,
        user: u32,
        below: Option<u64>,
        max: usize,
        out: &mut Vec<u64>,
    ) -> bool {
        self.copy_below_pinned(&epoch::pin(), user, below, max, out)
            .reached_oldest
    }

    /// [`IdLists::copy_below`] under the caller's pin (a pull merge pins once for
    /// thousands of lists); also says how many ids the list held when copied.
    pub(crate) fn copy_below_pinned(
        &self,
        guard: &epoch::Guard,
        user: u32,
        below: Option<u64>,
        max: usize,
        out: &mut Vec<u64>,
    ) -> Listed {
        let shared = self.slots[user as usize].load(Ordering::Acquire, guard);
        // SAFETY: loaded under `guard`.
        let Some(list) = (unsafe { shared.as_ref() }) else {
            return Listed {
                reached_oldest: true,
                len: 0,
            };
        };
        let start = out.len();
        super::seqlock::read(&list.seq, || {
            out.truncate(start);
            let len = (list.len.load(Ordering::Relaxed) as usize).min(list.ids.len());
            let end = below.map_or(len, |b| list.position(len, b));
            let take = end.min(max);
            for i in (end - take..end).rev() {
                out.push(list.get(i));
            }
            Listed {
                reached_oldest: take == end,
                len,
            }
        })
    }

    /// Prefetch hints for walking many lists: `slot` brings in the user's slot;
    /// `list` (a few users later, once the slot is in) the list's header and newest
    /// ids. Hints only: no effect on results, whatever races.
    pub(crate) fn prefetch_slot(&self, user: u32) {
        crate::timeline::prefetch(&self.slots[user as usize]);
    }

    pub(crate) fn prefetch_list(&self, guard: &epoch::Guard, user: u32) {
        let shared = self.slots[user as usize].load(Ordering::Relaxed, guard);
        // SAFETY: loaded under `guard`; lists are destroyed only after unlinking.
        if let Some(list) = unsafe { shared.as_ref() } {
            crate::timeline::prefetch(list);
            let len = list.len.load(Ordering::Relaxed) as usize;
            crate::timeline::prefetch(list.ids.as_ptr().wrapping_add(len.saturating_sub(1)));
        }
    }

    /// Ids in `user`'s list.
    pub(crate) fn len(&self, user: u32) -> usize {
        let guard = epoch::pin();
        let shared = self.slots[user as usize].load(Ordering::Acquire, &guard);
        // SAFETY: loaded under `guard`.
        unsafe { shared.as_ref() }.map_or(0, |l| l.len.load(Ordering::Acquire) as usize)
    }
}

impl Drop for IdLists {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody else holds a list.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stay_ordered_and_unique() {
        let lists = IdLists::new(3);
        for id in [5, 1, 9, 7, 7, 3, 11, 13, 2] {
            lists.add(1, id);
        }
        let mut out = Vec::new();
        assert!(lists.copy_below(1, None, 100, &mut out));
        assert_eq!(out, vec![13, 11, 9, 7, 5, 3, 2, 1]);
        out.clear();
        assert!(!lists.copy_below(1, Some(9), 2, &mut out));
        assert_eq!(out, vec![7, 5]);
        out.clear();
        assert!(lists.copy_below(0, None, 10, &mut out));
        assert!(out.is_empty());
        assert_eq!(lists.len(1), 8);
    }

    #[test]
    fn concurrent_adds_and_reads() {
        let lists = IdLists::new(1);
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let lists = &lists;
                s.spawn(move || {
                    for i in 0..5000u64 {
                        lists.add(0, i * 2 + t);
                    }
                });
            }
            s.spawn(|| {
                let mut out = Vec::new();
                for _ in 0..5000 {
                    out.clear();
                    lists.copy_below(0, None, 50, &mut out);
                    assert!(out.windows(2).all(|w| w[0] > w[1]));
                }
            });
        });
        assert_eq!(lists.len(0), 10_000);
    }
}
