//! Who reads, and whose stored timeline is complete.
//!
//! One word per user, in the user's timeline slot (see `timelines.rs`):
//! `(last_read_ms << 22) | (rebuilds << 2) | (ready << 1) | fresh` (42 bits of
//! milliseconds reach the year 2109).
//! - `fresh`: fan-out delivers to this user. Set (with `ready` clear) by the reader that
//!   starts a rebuild; cleared by a fan-out worker that finds the user past the
//!   activity window (compare-exchange on the exact word it saw, so a read in between
//!   wins), holding the ring's writer lock, so the ring it frees is the one it made
//!   stale (see `Timelines::make_stale_and_free`).
//! - `ready`: the stored timeline holds every candidate at or above its floor, so reads
//!   may serve from it. Set by the rebuilding reader once its merge is stored, by a
//!   compare-exchange from the word its `begin_rebuild` wrote (a rebuild superseded
//!   meanwhile, or a user made stale meanwhile, is not marked ready).
//! - `rebuilds`: counts rebuilds begun (20 bits, wrapping). A read that serves from the
//!   stored timeline in several fetches checks after each that the word is still fresh
//!   and ready with the count it started with: otherwise the ring it copied from may
//!   have been freed and replaced by one still being rebuilt (see `HomeCandidates` in
//!   `engine/read/candidates.rs`). A ring is freed only by a rebuild (after
//!   `begin_rebuild` bumped the count) or by a worker that made the word stale under
//!   the ring's lock, and a word becomes ready again only through the `end_rebuild` of
//!   the rebuild whose `begin_rebuild` wrote it; so an equal count, fresh and ready,
//!   means the same ring.
//!
//! SeqCst throughout: a worker that sees a user not fresh is ordered before the
//! rebuild that sets it, so the rebuild's merge sees the notice the worker skipped.

use std::sync::atomic::{AtomicU64, Ordering};

const FRESH: u64 = 1;
const READY: u64 = 2;
/// Where the rebuild count starts, and its mask (after the shift).
const REBUILDS_SHIFT: u32 = 2;
const REBUILDS_MASK: u64 = (1 << 20) - 1;
/// Where the last read's time starts.
const TIME_SHIFT: u32 = 22;
/// The bits a touch keeps.
const KEPT: u64 = (1 << TIME_SHIFT) - 1;

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
        self.word >> TIME_SHIFT
    }

    /// Rebuilds begun, modulo 2^20.
    pub(crate) fn rebuilds(self) -> u64 {
        (self.word >> REBUILDS_SHIFT) & REBUILDS_MASK
    }

    /// Whether a read that found the stored timeline `self` (ready) may still trust
    /// what it copies from it, the word being `now`.
    pub(crate) fn same_ring(self, now: State) -> bool {
        now.fresh() && now.ready() && now.rebuilds() == self.rebuilds()
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
                (now_ms << TIME_SHIFT) | (seen.word & KEPT),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    /// Starts a rebuild: fresh (deliveries on), not ready. Returns the word written,
    /// for `end_rebuild`; `None` when the word moved since `seen` (another reader got
    /// there first).
    pub(crate) fn begin_rebuild(&self, user: u32, seen: State, now_ms: u64) -> Option<State> {
        let begun = (now_ms << TIME_SHIFT)
            | (((seen.rebuilds() + 1) & REBUILDS_MASK) << REBUILDS_SHIFT)
            | FRESH;
        self.word(user)
            .compare_exchange(seen.word, begun, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| State::of(begun))
    }

    /// Ends the rebuild that `begin_rebuild` began with `begun`: reads may serve from
    /// the stored timeline. Returns the word written; `None` when the word moved
    /// meanwhile (another rebuild began, or a worker made the user stale), and the
    /// timeline stays not ready.
    pub(crate) fn end_rebuild(&self, user: u32, begun: State) -> Option<State> {
        let ready = begun.word | READY;
        self.word(user)
            .compare_exchange(begun.word, ready, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| State::of(ready))
    }

    /// Marks `user` stale (no deliveries, not ready) if the word is still `seen`.
    /// Freeing the ring too goes through `Timelines::make_stale_and_free`.
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
