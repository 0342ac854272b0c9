//! The candidates of a home timeline: the stored ring merged with the authors the
//! strategy pulls, then a full pull below the ring's floor.

use std::collections::VecDeque;
use std::sync::Arc;

use super::plan::ReadPlan;
use super::pull_merge::{PullMerge, ReadCost};
use crate::engine::facade::Shared;
use crate::timeline::State;

/// Candidates from the ring whose records a read prefetches at once (a default page).
const PREFETCH_RECORDS: usize = 20;

/// Candidates a read remembers for its repair: a page's worth.
const KEEP_MAX: usize = 32;

/// Ids a ring fetch takes at the first, second, ... fetch of a read.
const RING_CHUNKS: [usize; 3] = [4, 16, 64];

/// The candidates of a home timeline, newest first, below a bound: the stored ring
/// merged with what the strategy says to pull (both at or above the ring's floor),
/// then everything below the floor from a full pull. Duplicates (a notice both pushed
/// and pulled, around a strategy change) come out once.
pub(super) struct HomeCandidates<'s> {
    shared: &'s Shared,
    user: u32,
    /// The stored ring: fetch below this next; `None` once it reached its oldest.
    ring_below: Option<Option<u64>>,
    ring_buf: VecDeque<u64>,
    /// Candidates a page takes, about: a page and a quarter (the rules hide some).
    want: usize,
    /// Ring fetches so far (see `RING_CHUNKS`).
    ring_fetches: usize,
    /// Candidates yielded so far.
    yielded: usize,
    /// The ring's floor, once known: the highest any fetch reported (the ring may drop
    /// its oldest entries between fetches); `u64::MAX` once the ring was replaced.
    floor: u64,
    /// The user's activity word when the read began serving from the ring: each fetch
    /// checks the ring is still that one (see `activity.rs`).
    ring_word: State,
    page_below: Option<u64>,
    /// Authors the strategy pulls at or above the floor.
    pub(super) extra: Option<PullMerge<'s>>,
    /// The merge's next id, once taken from it (`None` inside: the merge is done):
    /// taken only when the ring's next id could be older, so a lazy source whose
    /// bound is below the ring's entries is not opened.
    extra_head: Option<Option<(u64, u32)>>,
    /// The switches behind the lazy sources (the plan's, sorted by author), and the ids the
    /// read took from those sources (see `Shared::keep_lazy`).
    pub(super) lazy: Arc<[(u32, u64)]>,
    pub(super) lazy_taken: Vec<(u32, u64)>,
    /// The ids the read took from the other sources of the merge (authors it pulls).
    pub(super) pulled_taken: Vec<(u32, u64)>,
    /// The first candidates yielded, up to a page (see `ReadRepair::push_from_now`).
    pub(super) first_yielded: Vec<u64>,
    /// Everything below the floor.
    below_floor: Option<PullMerge<'s>>,
    last: Option<u64>,
    scratch: Vec<u64>,
    cost: ReadCost,
}

impl<'s> HomeCandidates<'s> {
    /// `ring_word`: serve from the stored ring, ready under that activity word (see
    /// `ensure_ready`; `None`: pull everything); `plan`: the authors whose pairs the
    /// strategy pulls, whole or below their switch.
    pub(super) fn new(
        shared: &'s Shared,
        user: u32,
        below: Option<u64>,
        ring_word: Option<State>,
        plan: &ReadPlan,
        limit: usize,
    ) -> Self {
        let from_ring = ring_word.is_some();
        let mut this = HomeCandidates {
            shared,
            user,
            ring_below: from_ring.then_some(below),
            ring_buf: VecDeque::new(),
            want: limit + limit / 4 + 1,
            ring_fetches: 0,
            yielded: 0,
            floor: 0,
            ring_word: ring_word.unwrap_or(State::of(0)),
            page_below: below,
            extra: None,
            extra_head: None,
            lazy: Arc::clone(&plan.partial),
            lazy_taken: Vec::new(),
            pulled_taken: Vec::new(),
            first_yielded: Vec::new(),
            below_floor: None,
            last: None,
            scratch: Vec::new(),
            cost: ReadCost::default(),
        };
        if !from_ring {
            // No ring to serve from (pull, or a rebuild under way): pull it all.
            this.below_floor = Some(PullMerge::everything(shared, user, below).wanting(this.want));
            return this;
        }
        this.fill_ring();
        if !(plan.pulls.is_empty() && plan.partial.is_empty()) {
            let sources = plan.pulls.iter().map(|&a| (a, below)).collect();
            let lazy: Vec<(u32, u64)> = plan
                .partial
                .iter()
                .map(|&(a, from)| (a, below.map_or(from, |b| b.min(from))))
                .collect();
            this.extra =
                Some(PullMerge::with_lazy(shared, sources, &lazy, this.floor).wanting(this.want));
        }
        this
    }

    /// Ids the next ring fetch takes: growing chunks (a page may take few entries
    /// from the ring, when pulled authors fill it), none larger than the rest of the
    /// page wants.
    fn ring_chunk(&self) -> usize {
        let left = self.want.saturating_sub(self.yielded).max(1);
        RING_CHUNKS[self.ring_fetches.min(RING_CHUNKS.len() - 1)].min(left)
    }

    /// Fetches the next chunk of the ring; at its oldest, records the floor.
    fn fill_ring(&mut self) {
        let Some(below) = self.ring_below else { return };
        self.scratch.clear();
        let copied = self.shared.timelines.copy_below(
            self.user,
            below,
            self.ring_chunk(),
            &mut self.scratch,
        );
        self.ring_fetches += 1;
        self.cost.ring_ids += self.scratch.len() as u64;
        if !self
            .ring_word
            .same_ring(self.shared.timelines.state(self.user))
        {
            // The ring was freed (and maybe rebuilt) since the read began: this copy
            // may come from a ring still being filled, and earlier entries may be gone.
            // Drop it and pull everything below what was yielded.
            self.ring_buf.clear();
            self.ring_below = None;
            self.floor = u64::MAX;
            return;
        }
        // The rules read each candidate's record: start the first page's worth of
        // them coming in together.
        let ahead = self.scratch.len().min(PREFETCH_RECORDS);
        self.shared.log.prefetch(&self.scratch[..ahead]);
        self.floor = self.floor.max(copied.floor);
        self.ring_buf.extend(self.scratch.iter().copied());
        self.ring_below = if copied.reached_oldest {
            None
        } else {
            Some(self.scratch.last().copied().or(below))
        };
    }

    fn next_above_floor(&mut self) -> Option<u64> {
        if self.ring_buf.is_empty() {
            self.fill_ring();
        }
        let ring = self.ring_buf.front().copied();
        let extra = match self.extra_head {
            Some(head) => head,
            None => {
                // Nothing the merge holds can beat the ring's next id: take the ring's
                // (a duplicate the merge yields later is skipped by `next`).
                let bound = self.extra.as_ref().and_then(PullMerge::peek_bound);
                if let Some(r) = ring
                    && bound.is_none_or(|b| b <= r)
                {
                    self.ring_buf.pop_front();
                    return Some(r);
                }
                let head = self.extra.as_mut().and_then(|m| m.next());
                self.extra_head = Some(head);
                head
            }
        };
        match (ring, extra) {
            (None, None) => None,
            (Some(r), extra) if extra.is_none_or(|(e, _)| r >= e) => {
                self.ring_buf.pop_front();
                if let Some((e, author)) = extra
                    && e == r
                {
                    self.extra_head = None;
                    self.took(author, e);
                }
                Some(r)
            }
            (_, extra) => {
                let (e, author) = extra?;
                if e < self.floor {
                    // A later fetch raised the floor past it: the ring dropped pushed
                    // ids between this one and the floor, so the full pull below the
                    // floor must come first; it yields this id too.
                    return None;
                }
                self.extra_head = None;
                self.took(author, e);
                Some(e)
            }
        }
    }

    /// Notes an id taken from the merge: the ring can keep it, from a lazy source
    /// (see `Shared::keep_lazy`) or from a pulled author whose pair turns to push at
    /// this read (see `ReadRepair::push_from_now`).
    fn took(&mut self, author: u32, id: u64) {
        if self.lazy.binary_search_by_key(&author, |&(a, _)| a).is_ok() {
            self.lazy_taken.push((author, id));
        } else {
            self.pulled_taken.push((author, id));
        }
    }

    pub(super) fn cost(&self) -> ReadCost {
        let mut cost = self.cost;
        for merge in [&self.extra, &self.below_floor].into_iter().flatten() {
            let c = merge.cost();
            cost.author_ids += c.author_ids;
            cost.merge_steps += c.merge_steps;
            cost.lists_read += c.lists_read;
        }
        cost
    }
}

impl Iterator for HomeCandidates<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            let id = match &mut self.below_floor {
                Some(merge) => merge.next().map(|(id, _)| id),
                None => match self.next_above_floor() {
                    Some(id) => Some(id),
                    None if self.floor > 0 => {
                        // The ring holds every pushed candidate at or above its floor;
                        // below it, pull everything.
                        let bound = self
                            .last
                            .or(self.page_below)
                            .map_or(self.floor, |b| b.min(self.floor));
                        self.below_floor = Some(
                            PullMerge::everything(self.shared, self.user, Some(bound))
                                .wanting(self.want.saturating_sub(self.yielded)),
                        );
                        continue;
                    }
                    None => None,
                },
            }?;
            // Sources are merged newest first; skip a second copy of an id.
            if self.last.is_some_and(|last| id >= last) {
                continue;
            }
            self.last = Some(id);
            self.yielded += 1;
            // Only a read with pulled authors can keep any (no allocation otherwise).
            if self.extra.is_some() && self.first_yielded.len() < KEEP_MAX {
                self.first_yielded.push(id);
            }
            return Some(id);
        }
    }
}
