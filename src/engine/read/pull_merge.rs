//! The pull read: a k-way merge of authors' lists (and of the lists of the reader's
//! groups and followed tags), newest first, fetched a chunk at a time, with lazy
//! sources read only once the merge reaches their bound. A notice in two lists (an
//! author's and a group's) comes out once, as the author's.

use std::collections::{BinaryHeap, VecDeque};

use crate::engine::facade::Shared;
use crate::ids::UserId;

/// Which lists a merge source reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// An author's notices (`by_author`).
    Author,
    /// A group's notices (`by_group`).
    Group,
    /// A tag's notices (`by_tag`).
    Tag,
}

/// What the merge yields as the author of an id that came from a group's or a tag's
/// list only.
pub(crate) const NOT_AUTHOR: u32 = u32::MAX;

/// The newest ids of one list in a range, fetched a chunk at a time.
struct Cursor {
    /// The author, group or tag (by `source`).
    author: u32,
    source: Source,
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

/// A k-way merge of lists, newest first: each source below its own bound, all at or
/// above `floor`. The pull read of a home timeline; yields `(id, author)`, each id
/// once (`NOT_AUTHOR` for an id found only in group or tag lists).
pub(crate) struct PullMerge<'s> {
    shared: &'s Shared,
    cursors: Vec<Cursor>,
    /// (id, whether from an author's list, cursor): an author's copy of an id pops
    /// before a group's or tag's.
    heap: BinaryHeap<(u64, bool, usize)>,
    /// The last id yielded: later copies are skipped.
    last: Option<u64>,
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
            source: Source::Author,
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
            last: None,
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
                merge.heap.push((bound - 1, true, i));
            }
        }
        merge
    }

    /// All of `reader`'s candidates: the reader's own list, every followed author's,
    /// every joined group's and every followed tag's.
    pub(crate) fn everything(shared: &'s Shared, reader: u32, below: Option<u64>) -> Self {
        let authors =
            std::iter::once(reader).chain(shared.graph.following(UserId(reader)).map(|u| u.0));
        let mut merge = PullMerge::new(shared, authors.map(|a| (a, below)).collect(), 0);
        let r = UserId(reader);
        let groups = shared
            .relations
            .members
            .following(r)
            .map(|g| (Source::Group, g.0));
        let tags = shared
            .relations
            .tags
            .following(r)
            .map(|t| (Source::Tag, t.0));
        for (source, key) in groups.chain(tags) {
            merge.add_stream(source, key, below);
        }
        merge
    }

    /// Adds the list of group or tag `key` as a source below `below`, opened now.
    pub(crate) fn add_stream(&mut self, source: Source, key: u32, below: Option<u64>) {
        debug_assert!(source != Source::Author, "authors are given to `new`");
        self.cursors.push(Cursor {
            author: key,
            source,
            buf: VecDeque::new(),
            below,
            exhausted: false,
            fetched: 0,
            opened: true,
            listed: None,
        });
        self.open(self.cursors.len() - 1);
    }

    /// At least the next id the merge yields (a lazy source counts at its bound).
    pub(super) fn peek_bound(&self) -> Option<u64> {
        self.heap.peek().map(|&(id, _, _)| id)
    }

    /// Reads cursor `i`'s first chunk and puts its head in the heap.
    fn open(&mut self, i: usize) {
        self.cursors[i].opened = true;
        self.refill(i);
        if !self.scratch.is_empty() {
            self.cost.lists_read += 1;
        }
        if let Some(&id) = self.cursors[i].buf.front() {
            self.push_head(id, i);
        }
    }

    fn push_head(&mut self, id: u64, i: usize) {
        let author = self.cursors[i].source == Source::Author;
        self.heap.push((id, author, i));
    }

    fn refill(&mut self, i: usize) {
        let c = &mut self.cursors[i];
        if c.exhausted || !c.buf.is_empty() {
            return;
        }
        self.scratch.clear();
        let lists = match c.source {
            Source::Author => &self.shared.by_author,
            Source::Group => &self.shared.by_group,
            Source::Tag => &self.shared.by_tag,
        };
        let listed = lists.copy_below_pinned(
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
    pub(super) fn heads(&self) -> impl Iterator<Item = (u32, usize, Option<u64>)> + '_ {
        self.cursors
            .iter()
            .take(self.eager)
            .filter(|c| c.source == Source::Author)
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
        loop {
            let (id, i) = loop {
                let (id, _, i) = self.heap.pop()?;
                if self.cursors[i].opened {
                    break (id, i);
                }
                // A lazy source's stand-in: everything newer was emitted; read it now.
                self.open(i);
            };
            self.cost.merge_steps += 1;
            let taken = self.cursors[i].buf.pop_front();
            debug_assert_eq!(taken, Some(id), "the heap holds each cursor's head");
            self.refill(i);
            if let Some(&next) = self.cursors[i].buf.front() {
                self.push_head(next, i);
            }
            // A second copy (the same notice in a group's or tag's list).
            if self.last == Some(id) {
                continue;
            }
            self.last = Some(id);
            self.wanted = self.wanted.saturating_sub(1);
            let c = &self.cursors[i];
            let author = if c.source == Source::Author {
                c.author
            } else {
                NOT_AUTHOR
            };
            return Some((id, author));
        }
    }
}
