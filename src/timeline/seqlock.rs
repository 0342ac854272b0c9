//! The seqlock word shared by home-timeline rings and per-user id lists.
//!
//! Even: stable; odd: a writer is inside. Writers enter by a compare-exchange from even
//! to odd (so writers exclude each other), store with relaxed atomics, and leave by
//! storing the next even value with Release. Readers load the word (Acquire), copy with
//! relaxed loads, fence (Acquire) and load the word again: a change, or an odd word,
//! means the copy may be torn and is retried. Readers never write and never block a
//! writer; a writer holds the word for a few hundred nanoseconds at most.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering, fence};

/// Enters as the writer of a structure guarded by `seq`, unless it was `retired` (then
/// `None`: the caller retries on its replacement). Returns the odd value entered with.
pub(crate) fn enter(seq: &AtomicU32, retired: &AtomicBool) -> Option<u32> {
    loop {
        let s = seq.load(Ordering::Relaxed);
        if s.is_multiple_of(2)
            && seq
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            // Entered: the word is odd and overlapping readers will retry. The fence
            // keeps the writes that follow from moving before the odd word is visible.
            fence(Ordering::Release);
            if retired.load(Ordering::Relaxed) {
                seq.store(s + 2, Ordering::Release);
                return None;
            }
            return Some(s + 1);
        }
        std::hint::spin_loop();
    }
}

/// Leaves the write entered with `entered`: every store made inside happens-before a
/// reader's Acquire load that sees the new value.
pub(crate) fn leave(seq: &AtomicU32, entered: u32) {
    seq.store(entered + 1, Ordering::Release);
}

/// Runs `copy` until it ran with no writer inside; returns its result. `copy` must only
/// read (relaxed atomics) and must tolerate torn values (clamp indices).
pub(crate) fn read<T>(seq: &AtomicU32, mut copy: impl FnMut() -> T) -> T {
    loop {
        let before = seq.load(Ordering::Acquire);
        if before % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let result = copy();
        fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) == before {
            return result;
        }
    }
}
