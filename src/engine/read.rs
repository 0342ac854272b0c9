//! Reading streams: the home timeline (stored ring, then a pull merge below its floor),
//! the user stream, mentions; the visibility rules; rebuilds.
//!
//! A home timeline is, by definition, the reader's own notices and those of the
//! authors the reader follows now, under the rules (see `visible_home`), newest first.
//! The stored ring is a cache of the *candidates* (every notice pushed to the reader);
//! the rules are applied here, at read time, so that a follow, unfollow, block, mute or
//! delete takes effect at once.

use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::facade::Shared;
use crate::error::{Error, Result};
use crate::fanout::strategy::{PairRead, PlanKey, Repair};
use crate::ids::{NoticeId, UserId};
use crate::notice::Scope;
use crate::timeline::{Page, State, TimelinePage};

/// What a home read pulls beside the ring.
#[derive(Debug, Default)]
struct ReadPlan {
    /// Authors whose pairs are pulled.
    pulls: Arc<[u32]>,
    /// Push pairs that turned to push at a read (see `Repair::push_from_now`): the
    /// ring holds the author's notices from the given id on; older ones are pulled.
    /// Sorted by author, as the switches it is filtered from.
    partial: Arc<[(u32, u64)]>,
    /// The newest `since` of the push pairs: the ring is trusted only if it was rebuilt
    /// at or after it.
    trust_from: u64,
    /// Push pairs with their `since`, for repairing only the pairs that changed (empty
    /// in a plan from the cache, which is only used once nothing needs repairing).
    pushed: Vec<(u32, u64)>,
}

/// A reader's plan as last computed, and the key it was computed under: while the
/// key holds, the plan does (see `Signals::plan_key`), and a read skips the walk of
/// every followed author's class word: with it, a selective read of a reader who
/// follows 2000 authors cost as much as a pull.
pub(crate) struct CachedPlan {
    key: PlanKey,
    pulls: Arc<[u32]>,
    partial: Arc<[(u32, u64)]>,
    trust_from: u64,
}

/// Candidates from the ring whose records a read prefetches at once (a default page).
const PREFETCH_RECORDS: usize = 20;

/// A repeat is hidden when its original, or another repeat of it, is among this many
/// entries before it (Mastodon's reblog fall-off).
pub(crate) const REPEAT_WINDOW: usize = 40;

/// Checks a page request; returns the limit to use (capped at `page_limit_max`).
pub(crate) fn check_page(page: &Page, limit_max: usize) -> Result<usize> {
    if page.limit == 0 {
        return Err(Error::InvalidPage {
            reason: "limit is 0".into(),
        });
    }
    if let (Some(since), Some(max)) = (page.since_id, page.max_id)
        && since >= max
    {
        return Err(Error::InvalidPage {
            reason: format!("since_id {} is not below max_id {}", since.0, max.0),
        });
    }
    Ok(page.limit.min(limit_max))
}

/// The newest ids of one author's list in a range, fetched a chunk at a time.
struct Cursor {
    author: u32,
    /// Ids fetched, newest first, not yet taken.
    buf: VecDeque<u64>,
    /// Fetch below this next.
    below: Option<u64>,
    exhausted: bool,
    /// Chunks fetched so far (see `CHUNKS`).
    fetched: usize,
    /// Whether its list was read yet (a lazy source is read only once the merge
    /// reaches below its bound).
    opened: bool,
    /// At its first fetch: the ids its list held, and the newest one fetched.
    listed: Option<(usize, Option<u64>)>,
}

/// The ids a cursor fetches at its first, second, ... refill: its head, then the one
/// behind it (a merge needs each list's next id, and most lists give a page one or
/// two), then growing chunks for a list that gives many.
const CHUNKS: [usize; 6] = [1, 1, 4, 16, 64, 256];

/// Candidates a read remembers for its repair: a page's worth.
const KEEP_MAX: usize = 32;

/// Ids a ring fetch takes at the first, second, ... fetch of a read.
const RING_CHUNKS: [usize; 3] = [4, 16, 64];

/// Work a read did, for the cost accounting of strategies.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReadCost {
    /// Ids read from the authors' lists.
    pub(crate) author_ids: u64,
    /// Steps of the k-way merge.
    pub(crate) merge_steps: u64,
    /// Ids read from the stored timeline.
    pub(crate) ring_ids: u64,
    /// Authors' lists opened by pulls that had any id to read (an empty list costs
    /// nothing).
    pub(crate) lists_read: u64,
}

/// A k-way merge of authors' lists, newest first: each source below its own bound,
/// all at or above `floor`. The pull read of a home timeline; yields `(id, author)`.
pub(crate) struct PullMerge<'s> {
    shared: &'s Shared,
    cursors: Vec<Cursor>,
    heap: BinaryHeap<(u64, usize)>,
    floor: u64,
    scratch: Vec<u64>,
    cost: ReadCost,
    /// Ids the caller may still take (a page's worth): no list fetches more at once.
    wanted: usize,
    /// One pin for every list the merge reads.
    guard: crossbeam_epoch::Guard,
    /// The sources opened whole come first in `cursors`: this many.
    eager: usize,
}

impl<'s> PullMerge<'s> {
    /// Merges `sources` (author, exclusive upper bound) down to `floor` (inclusive).
    pub(crate) fn new(shared: &'s Shared, sources: Vec<(u32, Option<u64>)>, floor: u64) -> Self {
        Self::with_lazy(shared, sources, &[], floor)
    }

    /// As `new`, with `lazy` sources too (author, exclusive upper bound): each list is
    /// read only once the merge has emitted everything at or above its bound (a read
    /// whose page ends above it never reads it).
    pub(crate) fn with_lazy(
        shared: &'s Shared,
        sources: Vec<(u32, Option<u64>)>,
        lazy: &[(u32, u64)],
        floor: u64,
    ) -> Self {
        let cursor = |author, below, opened| Cursor {
            author,
            buf: VecDeque::new(),
            below,
            exhausted: false,
            fetched: 0,
            opened,
            listed: None,
        };
        let eager = sources.len();
        let mut merge = PullMerge {
            shared,
            cursors: sources
                .into_iter()
                .map(|(author, below)| cursor(author, below, true))
                .chain(
                    lazy.iter()
                        .map(|&(author, below)| cursor(author, Some(below), false)),
                )
                .collect(),
            heap: BinaryHeap::new(),
            floor,
            scratch: Vec::new(),
            cost: ReadCost::default(),
            wanted: usize::MAX,
            guard: crossbeam_epoch::pin(),
            eager,
        };
        let started = std::time::Instant::now();
        // Thousands of lists, each a few cache misses: prefetch ahead so they overlap.
        let lists = &shared.by_author;
        for i in 0..eager {
            if let Some(c) = merge.cursors.get(i + 16) {
                lists.prefetch_slot(c.author);
            }
            if let Some(c) = merge.cursors.get(i + 8) {
                lists.prefetch_list(&merge.guard, c.author);
            }
            merge.open(i);
        }
        if eager >= 8 {
            // The cost of a pull, per author: opening its list and taking its head.
            shared.note_pull_ns(started.elapsed().as_nanos() as f64 / eager as f64);
        }
        // A lazy source stands in the heap at the newest id it could hold; reaching it
        // opens the list.
        for i in eager..merge.cursors.len() {
            if let Some(bound) = merge.cursors[i].below
                && bound > merge.floor
            {
                merge.heap.push((bound - 1, i));
            }
        }
        merge
    }

    /// All of `reader`'s candidates: the reader's own list and every followed author's.
    pub(crate) fn everything(shared: &'s Shared, reader: u32, below: Option<u64>) -> Self {
        let authors =
            std::iter::once(reader).chain(shared.graph.following(UserId(reader)).map(|u| u.0));
        PullMerge::new(shared, authors.map(|a| (a, below)).collect(), 0)
    }

    /// At least the next id the merge yields (a lazy source counts at its bound).
    fn peek_bound(&self) -> Option<u64> {
        self.heap.peek().map(|&(id, _)| id)
    }

    /// Reads cursor `i`'s first chunk and puts its head in the heap.
    fn open(&mut self, i: usize) {
        self.cursors[i].opened = true;
        self.refill(i);
        if !self.scratch.is_empty() {
            self.cost.lists_read += 1;
        }
        if let Some(&id) = self.cursors[i].buf.front() {
            self.heap.push((id, i));
        }
    }

    fn refill(&mut self, i: usize) {
        let c = &mut self.cursors[i];
        if c.exhausted || !c.buf.is_empty() {
            return;
        }
        self.scratch.clear();
        let listed = self.shared.by_author.copy_below_pinned(
            &self.guard,
            c.author,
            c.below,
            CHUNKS[c.fetched.min(CHUNKS.len() - 1)].min(self.wanted.max(1)),
            &mut self.scratch,
        );
        self.cost.author_ids += self.scratch.len() as u64;
        c.exhausted = listed.reached_oldest;
        if c.fetched == 0 {
            c.listed = Some((listed.len, self.scratch.first().copied()));
        }
        c.fetched += 1;
        if let Some(&last) = self.scratch.last() {
            c.below = Some(last);
        }
        for &id in &self.scratch {
            if id < self.floor {
                c.exhausted = true;
                break;
            }
            c.buf.push_back(id);
        }
    }

    pub(crate) fn cost(&self) -> ReadCost {
        self.cost
    }

    /// The sources opened whole (not lazy), below no bound: each author, with the ids
    /// its list held at the first fetch and the newest of them (see
    /// `ReadRepair::push_from_now`).
    fn heads(&self) -> impl Iterator<Item = (u32, usize, Option<u64>)> + '_ {
        self.cursors
            .iter()
            .take(self.eager)
            .filter_map(|c| c.listed.map(|(len, head)| (c.author, len, head)))
    }

    /// The caller takes about `ids` more ids (a page): no list fetches more at once.
    pub(crate) fn wanting(mut self, ids: usize) -> Self {
        self.wanted = ids;
        self
    }
}

impl Iterator for PullMerge<'_> {
    type Item = (u64, u32);

    fn next(&mut self) -> Option<(u64, u32)> {
        let (id, i) = loop {
            let (id, i) = self.heap.pop()?;
            if self.cursors[i].opened {
                break (id, i);
            }
            // A lazy source's stand-in: everything newer was emitted; read it now.
            self.open(i);
        };
        self.cost.merge_steps += 1;
        self.wanted = self.wanted.saturating_sub(1);
        let taken = self.cursors[i].buf.pop_front();
        debug_assert_eq!(taken, Some(id), "the heap holds each cursor's head");
        self.refill(i);
        if let Some(&next) = self.cursors[i].buf.front() {
            self.heap.push((next, i));
        }
        Some((id, self.cursors[i].author))
    }
}

/// The candidates of a home timeline, newest first, below a bound: the stored ring
/// merged with what the strategy says to pull (both at or above the ring's floor),
/// then everything below the floor from a full pull. Duplicates (a notice both pushed
/// and pulled, around a strategy change) come out once.
struct HomeCandidates<'s> {
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
    extra: Option<PullMerge<'s>>,
    /// The merge's next id, once taken from it (`None` inside: the merge is done):
    /// taken only when the ring's next id could be older, so a lazy source whose
    /// bound is below the ring's entries is not opened.
    extra_head: Option<Option<(u64, u32)>>,
    /// The switches behind the lazy sources (the plan's, sorted by author), and the ids the
    /// read took from those sources (see `Shared::keep_lazy`).
    lazy: Arc<[(u32, u64)]>,
    lazy_taken: Vec<(u32, u64)>,
    /// The ids the read took from the other sources of the merge (authors it pulls).
    pulled_taken: Vec<(u32, u64)>,
    /// The first candidates yielded, up to a page (see `ReadRepair::push_from_now`).
    first_yielded: Vec<u64>,
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
    fn new(
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

    fn cost(&self) -> ReadCost {
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

impl Shared {
    /// Whether `reader` sees notice `id` in the home timeline, by the rules; when it
    /// does, the id of the notice it repeats (for the fall-off rule).
    fn visible_home(&self, reader: u32, id: u64) -> Option<Option<u64>> {
        let n = self.log.get(NoticeId(id))?;
        let repeat_of = n.repeat_of().map(|o| o.0);
        // A repeat of a deleted notice goes with it.
        if let Some(o) = repeat_of
            && self.log.get(NoticeId(o)).is_none()
        {
            return None;
        }
        let author = n.author().0;
        if author == reader {
            return Some(repeat_of);
        }
        let (r, a) = (UserId(reader), UserId(author));
        if !self.graph.is_following(r, a)
            || self.graph.is_muted(r, a)
            || self.graph.is_blocked(r, a)
        {
            return None;
        }
        let mentioned = n.mentions().any(|m| m.0 == reader);
        if n.scope() == Scope::Addressees && !mentioned {
            return None;
        }
        if let Some(x) = n.reply_to_author()
            && !(x == r || mentioned || self.graph.is_following(r, x))
        {
            return None;
        }
        if let Some(x) = n.repeat_of_author()
            && x != r
            && (self.graph.is_muted(r, x) || self.graph.is_blocked(r, x))
        {
            return None;
        }
        Some(repeat_of)
    }

    /// Makes sure `user`'s stored timeline may be served; rebuilds it when the user
    /// was quiet (or never read since open). Returns the activity word it found (or
    /// made) ready, which the read checks its ring fetches against; `None` when another
    /// reader is rebuilding it right now: serve this read from a pull instead.
    fn ensure_ready(&self, user: u32, plan: &ReadPlan) -> Option<State> {
        if !self.strategy.pushes() {
            return None;
        }
        let now = self.config.clock.now_ms();
        let window = self.config.active_window.as_millis() as u64;
        loop {
            let seen = self.timelines.state(user);
            if seen.fresh() && seen.active(now, window) {
                if !seen.ready() {
                    return None;
                }
                let repaired = self.signals.repaired(user);
                if plan.trust_from <= repaired {
                    self.timelines.touch(user, seen, now);
                    return Some(seen);
                }
                // Push pairs changed their rule after the last repair: the ring may lack
                // their notices decided under the old rule. A few pairs: merge those
                // authors again (as a follow does; idempotent, so a concurrent repair
                // is harmless); many: rebuild, below.
                let changed: Vec<u32> = plan
                    .pushed
                    .iter()
                    .filter(|&&(_, since)| since > repaired)
                    .map(|&(a, _)| a)
                    .collect();
                if self.merges_beat_a_rebuild(user, &changed) {
                    for author in changed {
                        self.merge_author(user, author);
                    }
                    self.signals.set_repaired(user, plan.trust_from);
                    self.timelines.touch(user, seen, now);
                    return Some(seen);
                }
            }
            // Deliveries start (fresh) before the merge reads the authors' lists, so
            // nothing posted meanwhile is missed: whatever the ring loses to the
            // clearing below, the merge has.
            let Some(begun) = self.timelines.begin_rebuild(user, seen, now) else {
                continue;
            };
            // Switches recorded before the rebuild reads the lists are redundant after
            // it (it pushes every listed notice of every push pair): drop them, unless
            // a switch was recorded meanwhile.
            let switches = self.switches.get(user as usize).map(|c| c.load_full());
            self.timelines.free(user);
            self.rebuild(user);
            self.signals.set_repaired(user, plan.trust_from);
            // Not ready when superseded meanwhile (that rebuild ends it) or made stale.
            let ended = self.timelines.end_rebuild(user, begun);
            if let Some(snapshot @ Some(_)) = switches {
                self.switches[user as usize].compare_and_swap(&snapshot, None);
                // A cached plan still holds the switches as lazy sources.
                self.signals.invalidate_plan(user);
            }
            return ended;
        }
    }

    /// Whether merging `authors` again into `user`'s ring reads fewer ids than a
    /// rebuild would (a merge of every followed author, stopped at the capacity):
    /// each merge reads up to a capacity of the author's newest ids.
    fn merges_beat_a_rebuild(&self, user: u32, authors: &[u32]) -> bool {
        let capacity = self.timelines.capacity() as usize;
        let rebuild = capacity + self.graph.following_count(UserId(user)) as usize;
        let mut merges = 0;
        authors.iter().all(|&a| {
            merges += self.by_author.len(a).min(capacity + 1);
            merges <= rebuild
        })
    }

    /// Which followed authors this read pulls, and since when the ring must have been
    /// rebuilt to be trusted for the others.
    fn plan(&self, user: u32) -> ReadPlan {
        let mut plan = ReadPlan::default();
        let Some(key) = self.signals.plan_key(user) else {
            return plan; // the strategy plans nothing
        };
        if let Some(cached) = &*self.plans[user as usize].load()
            && cached.key == key
            && cached.trust_from <= self.signals.repaired(user)
        {
            plan.pulls = Arc::clone(&cached.pulls);
            plan.partial = Arc::clone(&cached.partial);
            plan.trust_from = cached.trust_from;
            return plan;
        }
        let ctx = self.strategy_ctx();
        let authors = std::iter::once(user).chain(self.graph.following(UserId(user)).map(|u| u.0));
        let mut pulls = Vec::new();
        let mut settled = true;
        for author in authors {
            match self.strategy.pair(&ctx, author, user) {
                PairRead::Pull => pulls.push(author),
                PairRead::PullForNow => {
                    pulls.push(author);
                    settled = false;
                }
                PairRead::Push { since } => {
                    plan.trust_from = plan.trust_from.max(since);
                    plan.pushed.push((author, since));
                }
            }
        }
        plan.pulls = pulls.into();
        // After the words: a switch is recorded before its word says push.
        if let Some(switches) = &*self.switches[user as usize].load() {
            let mut pushed: Vec<u32> = plan.pushed.iter().map(|&(a, _)| a).collect();
            pushed.sort_unstable();
            plan.partial = switches
                .iter()
                .filter(|(a, _)| pushed.binary_search(a).is_ok())
                .copied()
                .collect();
        }
        // A plan that pulled pairs only while a change was under way is not kept: the
        // change may end without invalidating it (its pairs' decision did not flip),
        // and the reader would pull them for good.
        if settled {
            // Two readers of one user may race here; the loser's plan, if older,
            // carries an older key and is recomputed at the next read.
            self.plans[user as usize].store(Some(Arc::new(CachedPlan {
                key,
                pulls: Arc::clone(&plan.pulls),
                partial: Arc::clone(&plan.partial),
                trust_from: plan.trust_from,
            })));
        }
        plan
    }

    /// Fills `user`'s ring with the newest `capacity` candidates the strategy pushes,
    /// and sets its floor when older ones exist.
    fn rebuild(&self, user: u32) {
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        let capacity = self.timelines.capacity() as usize;
        let ctx = self.strategy_ctx();
        let mut merge = PullMerge::everything(self, user, None);
        let mut kept = merge
            .by_ref()
            .filter(|&(id, author)| self.strategy.push_to(&ctx, id, author, user));
        let mut ids: Vec<u64> = kept.by_ref().take(capacity).map(|(id, _)| id).collect();
        let more = kept.next().is_some();
        ids.reverse();
        let following = self.graph.following_count(UserId(user));
        self.timelines
            .insert_sized(user, &ids, following.min(capacity as u64) as usize);
        if more {
            self.timelines.raise_floor(user, ids[0]);
        }
        self.add_read_cost(merge.cost());
        self.add_merged(ids.len() as u64);
    }

    /// Merges `author`'s newest notices into `reader`'s stored timeline (after a new
    /// follow), keeping the ring's invariant: every pushed candidate at or above the
    /// floor.
    pub(crate) fn merge_author(&self, reader: u32, author: u32) {
        if !self.strategy.pushes() || !self.timelines.state(reader).fresh() {
            return; // nothing stored, or the next read rebuilds it, this author included
        }
        let capacity = self.timelines.capacity() as usize;
        let mut ids = Vec::with_capacity(capacity + 1);
        self.by_author
            .copy_below(author, None, capacity + 1, &mut ids);
        self.add_read_cost(ReadCost {
            author_ids: ids.len() as u64,
            ..ReadCost::default()
        });
        let more = ids.len() > capacity;
        ids.truncate(capacity);
        let oldest = ids.last().copied();
        let ctx = self.strategy_ctx();
        ids.retain(|&id| self.strategy.push_to(&ctx, id, author, reader));
        ids.reverse();
        let written = self.timelines.insert(reader, &ids);
        self.add_merged(written as u64);
        if more && let Some(oldest) = oldest {
            self.timelines.raise_floor(reader, oldest);
        }
    }

    /// A page of `user`'s home timeline.
    pub(crate) fn home_page(&self, user: u32, page: &Page, limit: usize) -> TimelinePage {
        let plan = self.plan(user);
        let ring_word = self.ensure_ready(user, &plan);
        let mut candidates = HomeCandidates::new(
            self,
            user,
            page.max_id.map(|m| m.0),
            ring_word,
            &plan,
            limit,
        );
        let mut next_visible = || {
            candidates
                .by_ref()
                .find_map(|id| self.visible_home(user, id).map(|repeat_of| (id, repeat_of)))
        };
        // Visible entries not emitted yet, newest first: the look-ahead of the
        // fall-off rule.
        let mut ahead: VecDeque<(u64, Option<u64>)> = VecDeque::new();
        let mut ids = Vec::with_capacity(limit);
        while let Some((id, repeat_of)) = ahead.pop_front().or_else(&mut next_visible) {
            if page.since_id.is_some_and(|s| id <= s.0) {
                break;
            }
            if let Some(original) = repeat_of {
                let hidden = if self.strategy.samples() {
                    // The stored timeline is a sample: the fall-off looks at the
                    // complete sequence, so pages stay a subset of pull's.
                    self.falls_off_in_full(user, id, original)
                } else {
                    while ahead.len() < REPEAT_WINDOW {
                        match next_visible() {
                            Some(entry) => ahead.push_back(entry),
                            None => break,
                        }
                    }
                    ahead
                        .iter()
                        .any(|&(i, r)| i == original || r == Some(original))
                };
                if hidden {
                    continue;
                }
            }
            ids.push(NoticeId(id));
            if ids.len() == limit {
                break;
            }
        }
        if page.max_id.is_none() && !candidates.lazy_taken.is_empty() {
            self.keep_lazy(user, &candidates.lazy, &mut candidates.lazy_taken);
        }
        self.add_page_cost(candidates.cost());
        let ctx = self.strategy_ctx();
        let mut repair = ReadRepair {
            shared: self,
            user,
            // What a newest page pulled from whole lists (a page below a bound saw
            // only part of them).
            page: page.max_id.is_none().then_some(&candidates),
        };
        self.strategy
            .on_read(&ctx, user, self.config.clock.now_ms(), &mut repair);
        finish(ids, page, limit)
    }

    /// Keeps what a newest page took from lazy sources (`taken`, from sources with
    /// the switches `lazy`): the ids go into the ring and each author's switch moves
    /// down to the oldest id taken (the merge took every id of the author listed from
    /// the switch down to it; one listed late was decided under the new word, so its
    /// worker pushes it), so later reads find them in the ring. A switch that moved
    /// since the read planned is left alone.
    fn keep_lazy(&self, user: u32, lazy: &[(u32, u64)], taken: &mut [(u32, u64)]) {
        let cell = &self.switches[user as usize];
        let snapshot = cell.load_full();
        let Some(current) = snapshot.as_deref() else {
            // A rebuild dropped the switches after this read planned with them.
            self.signals.invalidate_plan(user);
            return;
        };
        self.keep_in_ring(user, taken.iter().map(|&(_, id)| id).collect());
        taken.sort_unstable();
        let lowest = |author: u32| of_author(taken, author).first().map(|&(_, id)| id);
        let planned = |author: u32| {
            lazy.binary_search_by_key(&author, |&(a, _)| a)
                .ok()
                .map(|i| lazy[i].1)
        };
        let moved: super::facade::Switches = current
            .iter()
            .map(|&(a, from)| match lowest(a) {
                Some(id) if planned(a) == Some(from) => (a, id.min(from)),
                _ => (a, from),
            })
            .collect();
        let prev = cell.compare_and_swap(&snapshot, Some(Arc::new(moved)));
        if match (&*prev, &snapshot) {
            (Some(p), Some(s)) => Arc::ptr_eq(p, s),
            _ => false,
        } {
            self.signals.invalidate_plan(user);
        }
    }

    /// Inserts ids a read pulled into `user`'s ring, counted as timeline writes.
    fn keep_in_ring(&self, user: u32, mut ids: Vec<u64>) {
        if ids.is_empty() {
            return;
        }
        ids.sort_unstable();
        let written = self.timelines.insert(user, &ids);
        self.add_merged(written as u64);
    }

    /// The fall-off rule against the complete candidate sequence below `id` (for
    /// strategies whose stored timeline is a sample).
    fn falls_off_in_full(&self, user: u32, id: u64, original: u64) -> bool {
        let mut merge = PullMerge::everything(self, user, Some(id));
        let hidden = merge
            .by_ref()
            .filter_map(|(i, _)| self.visible_home(user, i).map(|r| (i, r)))
            .take(REPEAT_WINDOW)
            .any(|(i, r)| i == original || r == Some(original));
        self.add_read_cost(merge.cost());
        hidden
    }

    /// A page of `author`'s own notices.
    pub(crate) fn user_page(&self, author: u32, page: &Page, limit: usize) -> TimelinePage {
        self.list_page(&self.by_author, author, page, limit, |n| {
            n.repeat_of().is_none_or(|o| self.log.get(o).is_some())
        })
    }

    /// A page of the notices that mention `user`.
    pub(crate) fn mentions_page(&self, user: u32, page: &Page, limit: usize) -> TimelinePage {
        let u = UserId(user);
        self.list_page(&self.mentions, user, page, limit, |n| {
            let a = n.author();
            a == u || !(self.graph.is_blocked(u, a) || self.graph.is_muted(u, a))
        })
    }

    fn list_page(
        &self,
        lists: &crate::timeline::IdLists,
        user: u32,
        page: &Page,
        limit: usize,
        keep: impl Fn(&crate::NoticeRef<'_>) -> bool,
    ) -> TimelinePage {
        let mut ids = Vec::with_capacity(limit);
        let mut below = page.max_id.map(|m| m.0);
        let mut chunk = Vec::with_capacity(64);
        'outer: loop {
            chunk.clear();
            let reached_oldest = lists.copy_below(user, below, 64, &mut chunk);
            for &id in &chunk {
                below = Some(id);
                if page.since_id.is_some_and(|s| id <= s.0) {
                    break 'outer;
                }
                if self.log.get(NoticeId(id)).is_some_and(|n| keep(&n)) {
                    ids.push(NoticeId(id));
                    if ids.len() == limit {
                        break 'outer;
                    }
                }
            }
            if reached_oldest {
                break;
            }
        }
        finish(ids, page, limit)
    }
}

/// The entries of `author` in `sorted` (sorted by author, then id: oldest first).
fn of_author(sorted: &[(u32, u64)], author: u32) -> &[(u32, u64)] {
    let start = sorted.partition_point(|&(a, _)| a < author);
    let end = start + sorted[start..].partition_point(|&(a, _)| a == author);
    &sorted[start..end]
}

/// The repairs a read offers its strategy (see `FanoutStrategy::on_read`).
struct ReadRepair<'s, 'c> {
    shared: &'s Shared,
    user: u32,
    page: Option<&'c HomeCandidates<'s>>,
}

impl Repair for ReadRepair<'_, '_> {
    fn push_from_now(&mut self, authors: &[u32], keep: usize) {
        if authors.is_empty() {
            return;
        }
        // Pairs with the fence in `post`, between adding a notice to its author's list
        // and handing it to the workers; the strategy stored the reader's word (under
        // way) before this with a SeqCst operation. So for every notice, either its
        // post's fence came first, and the load of the log's length below counts it
        // (it was appended, then listed, before that fence), or its worker sees the
        // new word and decides it under the new rule.
        std::sync::atomic::fence(Ordering::SeqCst);
        let from = self.shared.log.len() + 1;
        let cell = &self.shared.switches[self.user as usize];
        let mut turned = authors.to_vec();
        turned.sort_unstable();
        let mut switches: Vec<(u32, u64)> = cell
            .load()
            .as_deref()
            .map(|s| {
                s.iter()
                    .filter(|(a, _)| turned.binary_search(a).is_err())
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        // Every turned pair pushes from the log's next id on; reads pull the older
        // notices, and keep what they pulled (`keep_lazy`). No id is read here; an
        // author whose list is empty (its length, loaded after the fence) has every
        // notice decided under the new word, and needs no switch.
        //
        // Unless this page pulled the author's list and it has not grown since (the
        // length, loaded after the fence, is the one the page's copy saw; a list only
        // grows): then every notice of the author is either in that copy or decided
        // under the new word (by the argument above). The merge took the copy's ids
        // newest first, so the ids the page took from it are all of the author's from
        // the oldest taken up: they go into the ring, and the switch goes down to the
        // oldest taken (or just above the copy's head, when the page took none). The
        // next read finds them in the ring instead of pulling them again.
        let heads: Vec<(u32, usize, Option<u64>)> = self
            .page
            .and_then(|c| c.extra.as_ref())
            .map(|m| {
                let mut heads: Vec<_> = m.heads().collect();
                heads.sort_unstable();
                heads
            })
            .unwrap_or_default();
        // The page's `keep`-th candidate: what the next page shows again.
        let keep_from = match keep {
            0 => u64::MAX,
            k => self
                .page
                .and_then(|c| c.first_yielded.get(k - 1).or(c.first_yielded.last()))
                .copied()
                .unwrap_or(u64::MAX),
        };
        let mut taken: Vec<(u32, u64)> = self
            .page
            .into_iter()
            .flat_map(|c| &c.pulled_taken)
            .filter(|&&(_, id)| id >= keep_from)
            .copied()
            .collect();
        taken.sort_unstable();
        let mut kept: Vec<u64> = Vec::new();
        for &author in &turned {
            let listed = self.shared.by_author.len(author);
            if listed == 0 {
                continue;
            }
            let seen = heads
                .binary_search_by_key(&author, |&(a, _, _)| a)
                .ok()
                .map(|i| heads[i])
                .filter(|&(_, len, _)| len == listed);
            let switch = match seen {
                Some((_, _, head)) => {
                    let ids = of_author(&taken, author);
                    kept.extend(ids.iter().map(|&(_, id)| id));
                    match ids.first() {
                        Some(&(_, oldest)) => oldest,
                        None => head.map_or(from, |h| h + 1),
                    }
                }
                None => from,
            };
            switches.push((author, switch));
        }
        self.shared.keep_in_ring(self.user, kept);
        switches.sort_unstable();
        // Only the reader's own climbing read writes here, one at a time (its word is
        // under way meanwhile).
        cell.store(Some(Arc::new(switches.into_boxed_slice())));
    }
}

/// A full page points at the next older one; a short page is the last.
fn finish(ids: Vec<NoticeId>, page: &Page, limit: usize) -> TimelinePage {
    let next = (ids.len() == limit).then(|| Page {
        since_id: page.since_id,
        max_id: ids.last().copied(),
        limit,
    });
    TimelinePage { ids, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Durability, Engine, NewNotice, Strategy};

    const READER: u32 = 1;
    /// Pushed: one follower.
    const SMALL: u32 = 2;
    /// Pulled: two followers, `Hybrid`'s threshold.
    const BIG: u32 = 3;

    /// An engine with 8-entry rings, `READER` following `SMALL` and `BIG`, `SMALL`'s
    /// notices 1..=6, `BIG`'s 7, `SMALL`'s 8..=13 posted, and `READER`'s ring built by a
    /// read: it holds 13 down to 6, its floor above 5.
    fn engine_with_a_full_ring(dir: &std::path::Path) -> Engine {
        let e = Engine::open(
            dir,
            Config {
                users_max: 8,
                timeline_capacity: 8,
                durability: Durability::Buffered,
                strategy: Strategy::Hybrid { followers_min: 2 },
                ..Default::default()
            },
        )
        .unwrap();
        for (a, b) in [(READER, SMALL), (READER, BIG), (4, BIG)] {
            e.follow(UserId(a), UserId(b)).unwrap();
        }
        for author in [SMALL; 6].into_iter().chain([BIG]).chain([SMALL; 6]) {
            post(&e, author);
        }
        e.flush().unwrap();
        e.home_timeline(UserId(READER), Page::latest(1)).unwrap();
        e
    }

    fn post(e: &Engine, author: u32) -> u64 {
        e.post(NewNotice {
            author: UserId(author),
            body: "n".into(),
            ..Default::default()
        })
        .unwrap()
        .0
    }

    /// A page of 3 of `READER`'s candidates (the first ring fetch takes 4 ids), with
    /// `meanwhile` run after its first two.
    fn candidates_around(e: &Engine, meanwhile: impl FnOnce()) -> Vec<u64> {
        let shared = e.shared();
        let plan = shared.plan(READER);
        assert_eq!(&*plan.pulls, &[BIG], "the big author is pulled");
        let ring_word = shared.ensure_ready(READER, &plan);
        assert!(ring_word.is_some());
        let mut candidates = HomeCandidates::new(shared, READER, None, ring_word, &plan, 3);
        let mut ids: Vec<u64> = candidates.by_ref().take(2).collect();
        meanwhile();
        ids.extend(candidates);
        ids
    }

    #[test]
    fn a_read_yields_the_pushed_ids_the_ring_dropped_between_two_fetches() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_a_full_ring(dir.path());
        let ids = candidates_around(&e, || {
            // Sixteen newer notices push every entry the read has not fetched yet out.
            for _ in 0..16 {
                post(&e, SMALL);
            }
            e.flush().unwrap();
        });
        // Everything below the first fetch's newest, as a pull shows it; the big
        // author's 7 (merged from its list, below the raised floor) comes after 8.
        assert_eq!(ids, (1..=13).rev().collect::<Vec<u64>>());
    }

    /// A newest page of `READER`'s whole feed, which pulls `BIG`'s list (notice 7, the
    /// page's 7th candidate), then its repair turning `BIG` to push with `keep`, after
    /// `meanwhile`: `BIG`'s switch, and whether the ring holds 7.
    fn repair_after_a_page(e: &Engine, keep: usize, meanwhile: impl FnOnce()) -> (u64, bool) {
        let shared = e.shared();
        let plan = shared.plan(READER);
        let ring_word = shared.ensure_ready(READER, &plan);
        let mut candidates = HomeCandidates::new(shared, READER, None, ring_word, &plan, 20);
        assert_eq!(candidates.by_ref().count(), 13);
        meanwhile();
        ReadRepair {
            shared,
            user: READER,
            page: Some(&candidates),
        }
        .push_from_now(&[BIG], keep);
        let switches = shared.switches[READER as usize].load_full().unwrap();
        assert_eq!(switches.len(), 1);
        assert_eq!(switches[0].0, BIG);
        let mut ring = Vec::new();
        shared.timelines.copy_below(READER, None, 100, &mut ring);
        (switches[0].1, ring.contains(&7))
    }

    #[test]
    fn a_switch_keeps_what_the_page_pulled_and_the_next_page_shows_again() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_a_full_ring(dir.path());
        assert_eq!(repair_after_a_page(&e, 20, || ()), (7, true));
    }

    #[test]
    fn a_switch_keeps_nothing_past_the_candidates_the_next_page_shows_again() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_a_full_ring(dir.path());
        // The first 3 candidates are 13, 12, 11: 7 is not among them. The switch sits
        // just above the list's newest id, so no read opens it before reaching 7.
        assert_eq!(repair_after_a_page(&e, 3, || ()), (8, false));
    }

    #[test]
    fn a_switch_after_the_list_grew_since_the_page_copied_it_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_a_full_ring(dir.path());
        // Notice 14, listed after the page's copy and decided under the old word: the
        // page never saw it, so the switch stays above it (the log's next id) and
        // reads pull it.
        let got = repair_after_a_page(&e, 20, || {
            post(&e, BIG);
        });
        assert_eq!(got, (15, false));
    }

    #[test]
    fn a_worker_frees_only_the_ring_of_the_word_it_made_stale() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_a_full_ring(dir.path());
        let timelines = &e.shared().timelines;
        let page = |e: &Engine| e.home_timeline(UserId(READER), Page::latest(20)).unwrap();
        // A worker saw the word; another made the user stale and freed its ring, and
        // a read rebuilt it.
        let seen = timelines.state(READER);
        assert!(timelines.make_stale_and_free(READER, seen));
        assert!(!timelines.state(READER).fresh());
        assert_eq!(page(&e).ids.len(), 13);
        // The first worker acts on the word it saw: it must not free the rebuilt ring
        // (the word says ready: a read would serve an empty ring).
        assert!(!timelines.make_stale_and_free(READER, seen));
        assert_eq!(page(&e).ids.len(), 13);
        let mut ring = Vec::new();
        timelines.copy_below(READER, None, 100, &mut ring);
        assert_eq!(ring.len(), 8, "the rebuilt ring is still there");
    }

    #[test]
    fn a_superseded_rebuild_does_not_mark_the_timeline_ready() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_a_full_ring(dir.path());
        let shared = e.shared();
        let timelines = &shared.timelines;
        let now = shared.config.clock.now_ms();
        // One read begins a rebuild and stalls; a second (finding the first past the
        // activity window, or with a clock that jumped) begins its own and frees the
        // ring; the first ends.
        let first = timelines.begin_rebuild(READER, timelines.state(READER), now);
        let second = timelines.begin_rebuild(READER, timelines.state(READER), now);
        timelines.free(READER);
        assert_eq!(timelines.end_rebuild(READER, first.unwrap()), None);
        assert!(
            !timelines.state(READER).ready(),
            "the second is still merging"
        );
        // Reads pull meanwhile.
        let page = e.home_timeline(UserId(READER), Page::latest(20)).unwrap();
        assert_eq!(page.ids.len(), 13);
        assert!(timelines.end_rebuild(READER, second.unwrap()).is_some());
    }

    #[test]
    fn a_read_whose_ring_is_freed_between_two_fetches_pulls_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine_with_a_full_ring(dir.path());
        let ids = candidates_around(&e, || {
            // What a worker does to a reader gone quiet.
            let timelines = &e.shared().timelines;
            assert!(timelines.make_stale_and_free(READER, timelines.state(READER)));
        });
        assert_eq!(ids, (1..=13).rev().collect::<Vec<u64>>());
    }
}
