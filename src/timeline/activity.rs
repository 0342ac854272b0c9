//! Who reads, and whose stored timeline is complete.
//!
//! One word per user, in the user's timeline slot (see `timelines.rs`): `(last_read_ms << 2) | (ready << 1) | fresh`.
//! - `fresh`: fan-out delivers to this user. Set (with `ready` clear) by the reader that
//!   starts a rebuild; cleared by a fan-out worker that finds the user past the
//!   activity window (compare-exchange on the exact word it saw, so a read in between
//!   wins).
//! - `ready`: the stored timeline holds every candidate at or above its floor, so reads
//!   may serve from it. Set by the rebuilding reader once its merge is stored.
//!
//! SeqCst throughout: a worker that sees a user not fresh is ordered before the
//! rebuild that sets it, so the rebuild's merge sees the notice the worker skipped.

use std::sync::atomic::{AtomicU64, Ordering};

const FRESH: u64 = 1;
const READY: u64 = 2;

/// One user's word as a worker or reader saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct State {
    word: u64,
}

impl State {
    pub(crate) fn of(word: u64) -> State {
        State { word }
    }

    pub(crate) fn fresh(self) -> bool {
        self.word & FRESH != 0
    }

    pub(crate) fn ready(self) -> bool {
        self.word & READY != 0
    }

    pub(crate) fn last_read_ms(self) -> u64 {
        self.word >> 2
    }

    /// Whether the user read within `window_ms` of `now_ms`.
    pub(crate) fn active(self, now_ms: u64, window_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_read_ms()) <= window_ms
    }
}

impl super::Timelines {
    fn word(&self, user: u32) -> &AtomicU64 {
        &self.slots[user as usize].state
    }

    pub(crate) fn state(&self, user: u32) -> State {
        State::of(self.word(user).load(Ordering::SeqCst))
    }

    /// Records a read at `now_ms` of a ready timeline.
    pub(crate) fn touch(&self, user: u32, seen: State, now_ms: u64) {
        if seen.last_read_ms() != now_ms {
            // A lost race with a worker marking the user stale only means the next
            // read rebuilds.
            let _ = self.word(user).compare_exchange(
                seen.word,
                (now_ms << 2) | (seen.word & (FRESH | READY)),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    /// Starts a rebuild: fresh (deliveries on), not ready. False when the word moved
    /// since `seen` (another reader got there first).
    pub(crate) fn begin_rebuild(&self, user: u32, seen: State, now_ms: u64) -> bool {
        self.word(user)
            .compare_exchange(
                seen.word,
                (now_ms << 2) | FRESH,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// Ends a rebuild: reads may serve from the stored timeline.
    pub(crate) fn end_rebuild(&self, user: u32) {
        self.word(user).fetch_or(READY, Ordering::SeqCst);
    }

    /// Marks `user` stale (no deliveries, not ready) if the word is still `seen`.
    pub(crate) fn make_stale(&self, user: u32, seen: State) -> bool {
        self.word(user)
            .compare_exchange(
                seen.word,
                seen.word & !(FRESH | READY),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// Users whose stored timeline is ready.
    pub(crate) fn ready_count(&self) -> u64 {
        self.slots
            .iter()
            .filter(|s| s.state.load(Ordering::Relaxed) & READY != 0)
            .count() as u64
    }
}
