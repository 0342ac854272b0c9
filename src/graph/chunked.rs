//! A sorted, duplicate-free list of ids kept in shared chunks, for the overlay. The
//! chunks (at most [`CHUNK_MAX`] ids) sit in groups (at most [`GROUP_MAX`] chunks), so
//! cloning the list clones one `Arc` per group, and an insert or a remove copies one
//! chunk and one group's table of chunks, however long the list is. A short list (at
//! most [`SMALL_MAX`] ids) is one plain `Vec` instead, copied whole: cheaper than
//! chunks for the few ids most users' lists hold.

use std::sync::Arc;

/// The most ids one chunk holds; a full chunk that must take one more is split.
#[cfg(not(test))]
pub(crate) const CHUNK_MAX: usize = 2048;
/// Small in unit tests, so that they split and merge often.
#[cfg(test)]
pub(crate) const CHUNK_MAX: usize = 8;

/// A chunk shorter than this after a remove is merged with a neighbour that has room.
const CHUNK_MIN: usize = CHUNK_MAX / 4;

/// The most chunks one group holds; a group that grows past it is split in two.
#[cfg(not(test))]
pub(crate) const GROUP_MAX: usize = 64;
/// Small in unit tests, so that they split and merge often.
#[cfg(test)]
pub(crate) const GROUP_MAX: usize = 8;

/// A group with fewer chunks than this after a remove is merged with a neighbour that
/// has room.
const GROUP_MIN: usize = GROUP_MAX / 4;

/// The most ids a list holds in its plain `Vec` (`small`); one more moves them into a
/// chunk, and a chunked list that shrinks to half of it moves back.
#[cfg(not(test))]
pub(crate) const SMALL_MAX: usize = 128;
/// Small in unit tests, so that they move between the two forms often.
#[cfg(test)]
pub(crate) const SMALL_MAX: usize = 4;

const _: () = assert!(SMALL_MAX < CHUNK_MAX);

/// 1 to [`CHUNK_MAX`] ids, shared between versions of a list.
type Chunk = Arc<Vec<u32>>;

/// 1 to [`GROUP_MAX`] chunks, shared between versions of a list.
type Group = Arc<Vec<Chunk>>;

/// Ids sorted by a key given to each call (the same key for every call on one list),
/// without duplicates: up to [`SMALL_MAX`] of them in a plain `Vec`, more in chunks of
/// 1 to [`CHUNK_MAX`] ids, in groups of 1 to [`GROUP_MAX`] chunks. Chunks and groups
/// are shared between clones: a change copies the one chunk and the one group it
/// touches unless this list is their only owner.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChunkedList {
    /// The ids of a short list, sorted; empty while `long` is set.
    small: Vec<u32>,
    /// The ids of a long list, boxed so that the short lists most users have stay
    /// small.
    long: Option<Box<Long>>,
}

/// The ids of a long [`ChunkedList`].
#[derive(Clone, Debug)]
struct Long {
    /// At least one group; never an empty group nor an empty chunk; sorted within and
    /// across them.
    groups: Vec<Group>,
    /// Ids in all the chunks.
    len: usize,
}

/// A place in a [`ChunkedList`]: a group, a chunk in it and an offset into that,
/// each below its length, except for the end: `(groups, 0, 0)`. In a short list, the
/// offset into `small` (`(0, 0, off)`, the end `(0, 0, small.len())`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    group: usize,
    chunk: usize,
    off: usize,
}

/// The ids of a [`ChunkedList`] from `start` up to `end`, excluded: what a walk has
/// left to read of one list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: Pos,
    end: Pos,
}

impl Span {
    /// Whether no id is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

impl PartialEq for ChunkedList {
    /// The same ids, however they are chunked.
    fn eq(&self, other: &ChunkedList) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ChunkedList {}

/// The last id of a chunk (chunks are never empty).
fn last(chunk: &[u32]) -> u32 {
    *chunk.last().expect("chunks are never empty")
}

/// The last id of a group (groups are never empty).
fn group_last(group: &[Chunk]) -> u32 {
    last(group.last().expect("groups are never empty"))
}

/// Inserts `id` at `at` of `chunk`, in place when nothing else shares the chunk, else
/// into a copy.
fn insert_at(chunk: &mut Chunk, at: usize, id: u32) {
    if let Some(own) = Arc::get_mut(chunk) {
        own.insert(at, id);
        return;
    }
    let mut copy = Vec::with_capacity(chunk.len() + 1);
    copy.extend_from_slice(&chunk[..at]);
    copy.push(id);
    copy.extend_from_slice(&chunk[at..]);
    *chunk = Arc::new(copy);
}

/// Removes the id at `at` of `chunk`, in place when nothing else shares the chunk,
/// else from a copy.
fn remove_at(chunk: &mut Chunk, at: usize) {
    if let Some(own) = Arc::get_mut(chunk) {
        own.remove(at);
        return;
    }
    let mut copy = Vec::with_capacity(chunk.len() - 1);
    copy.extend_from_slice(&chunk[..at]);
    copy.extend_from_slice(&chunk[at + 1..]);
    *chunk = Arc::new(copy);
}

/// The chunk of `chunks` that holds `k`'s place: the first whose last key is at least
/// `k` (`chunks.len()` if none is).
fn chunk_of<K: Ord>(chunks: &[Chunk], k: &K, key: &impl Fn(u32) -> K) -> usize {
    chunks.partition_point(|c| key(last(c)) < *k)
}

/// Whether the sorted, non-empty `chunks` hold the id of key `k`.
fn holds<K: Ord>(chunks: &[Chunk], k: &K, key: &impl Fn(u32) -> K) -> bool {
    let c = chunk_of(chunks, k, key);
    c < chunks.len() && chunks[c].binary_search_by_key(k, |&x| key(x)).is_ok()
}

/// Inserts `id` of key `k`, which they lack, into the sorted, non-empty `chunks`.
fn insert_into<K: Ord>(chunks: &mut Vec<Chunk>, id: u32, k: &K, key: &impl Fn(u32) -> K) {
    let mut c = chunk_of(chunks, k, key);
    let mut at = if c == chunks.len() {
        // Past every id: the end of the last chunk.
        c -= 1;
        chunks[c].len()
    } else {
        chunks[c].partition_point(|&x| key(x) < *k)
    };
    // Between two chunks: the end of the earlier one if it has room, so that ascending
    // inserts into one gap fill a chunk instead of making one each.
    if at == 0 && c > 0 && chunks[c - 1].len() < CHUNK_MAX {
        c -= 1;
        at = chunks[c].len();
    }
    let n = chunks[c].len();
    if n < CHUNK_MAX {
        insert_at(&mut chunks[c], at, id);
    } else if at == n {
        chunks.insert(c + 1, Arc::new(vec![id]));
    } else if at == 0 {
        chunks.insert(c, Arc::new(vec![id]));
    } else {
        // A full chunk split in two halves, `id` in its half.
        let full = &chunks[c];
        let mid = n / 2;
        let mut left = Vec::with_capacity(mid + 1);
        let mut right = Vec::with_capacity(n - mid + 1);
        left.extend_from_slice(&full[..mid]);
        right.extend_from_slice(&full[mid..]);
        if at <= mid {
            left.insert(at, id);
        } else {
            right.insert(at - mid, id);
        }
        chunks[c] = Arc::new(left);
        chunks.insert(c + 1, Arc::new(right));
    }
}

/// Removes the id of key `k`, which they hold, from the sorted `chunks`; drops the
/// chunk if it empties, merges it with a neighbour if it gets small.
fn remove_from<K: Ord>(chunks: &mut Vec<Chunk>, k: &K, key: &impl Fn(u32) -> K) {
    let c = chunk_of(chunks, k, key);
    let at = chunks[c].partition_point(|&x| key(x) < *k);
    if chunks[c].len() == 1 {
        chunks.remove(c);
        return;
    }
    remove_at(&mut chunks[c], at);
    if chunks[c].len() >= CHUNK_MIN {
        return;
    }
    let fits = |chunks: &[Chunk], a: usize| chunks[a].len() + chunks[a + 1].len() <= CHUNK_MAX;
    let first = if c + 1 < chunks.len() && fits(chunks, c) {
        c
    } else if c > 0 && fits(chunks, c - 1) {
        c - 1
    } else {
        return;
    };
    let second = chunks.remove(first + 1);
    let mut merged = Vec::with_capacity(chunks[first].len() + second.len());
    merged.extend_from_slice(&chunks[first]);
    merged.extend_from_slice(&second);
    chunks[first] = Arc::new(merged);
}

impl ChunkedList {
    /// How many ids the list holds.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.long.as_ref().map_or(self.small.len(), |l| l.len)
    }

    /// Whether the list holds no id.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The groups of a long list (none for a short one).
    #[inline]
    fn groups(&self) -> &[Group] {
        self.long.as_deref().map_or(&[], |l| &l.groups)
    }

    /// The ids in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.small.iter().copied().chain(
            self.groups()
                .iter()
                .flat_map(|g| g.iter())
                .flat_map(|c| c.iter().copied()),
        )
    }

    /// The last id in order, if any.
    pub(crate) fn last(&self) -> Option<u32> {
        match self.groups().last() {
            Some(g) => Some(group_last(g)),
            None => self.small.last().copied(),
        }
    }

    /// Whether the list holds `id`, in a list sorted by `key`.
    #[inline]
    pub(crate) fn contains_by<K: Ord>(&self, id: u32, key: impl Fn(u32) -> K) -> bool {
        let k = key(id);
        let Some(long) = self.long.as_deref() else {
            return self.small.binary_search_by_key(&k, |&x| key(x)).is_ok();
        };
        let g = long.group_of(&k, &key);
        g < long.groups.len() && holds(&long.groups[g], &k, &key)
    }

    /// Whether the list holds `id`, in a list sorted by id.
    #[inline]
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.contains_by(id, |x| x)
    }

    /// Inserts `id` into a list sorted by `key`; false if it was there already.
    pub(crate) fn insert_by<K: Ord>(&mut self, id: u32, key: impl Fn(u32) -> K) -> bool {
        let k = key(id);
        let Some(long) = self.long.as_deref_mut() else {
            let Err(at) = self.small.binary_search_by_key(&k, |&x| key(x)) else {
                return false;
            };
            if self.small.len() < SMALL_MAX {
                self.small.insert(at, id);
            } else {
                // Too many for the plain `Vec`: they become the first chunk.
                let mut chunk = Vec::with_capacity(self.small.len() + 1);
                chunk.extend_from_slice(&self.small[..at]);
                chunk.push(id);
                chunk.extend_from_slice(&self.small[at..]);
                self.small = Vec::new();
                self.long = Some(Box::new(Long {
                    len: chunk.len(),
                    groups: vec![Arc::new(vec![Arc::new(chunk)])],
                }));
            }
            return true;
        };
        long.insert_by(id, &k, &key)
    }

    /// Removes `id` from a list sorted by `key`; false if it was not there.
    pub(crate) fn remove_by<K: Ord>(&mut self, id: u32, key: impl Fn(u32) -> K) -> bool {
        let k = key(id);
        let Some(long) = self.long.as_deref_mut() else {
            let Ok(at) = self.small.binary_search_by_key(&k, |&x| key(x)) else {
                return false;
            };
            self.small.remove(at);
            return true;
        };
        if !long.remove_by(&k, &key) {
            return false;
        }
        if long.len <= SMALL_MAX / 2 {
            // Few enough for the plain `Vec` again.
            self.small = self.iter().collect();
            self.long = None;
        }
        true
    }

    /// Inserts `id` into a list sorted by id; false if it was there already.
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        self.insert_by(id, |x| x)
    }

    /// Removes `id` from a list sorted by id; false if it was not there.
    pub(crate) fn remove(&mut self, id: u32) -> bool {
        self.remove_by(id, |x| x)
    }

    /// The end position.
    fn end(&self) -> Pos {
        if self.groups().is_empty() {
            return Pos {
                group: 0,
                chunk: 0,
                off: self.small.len(),
            };
        }
        Pos {
            group: self.groups().len(),
            chunk: 0,
            off: 0,
        }
    }

    /// The first position whose id fails `pred`, for a `pred` that holds for a prefix
    /// of the list (the end if it holds for all).
    fn position(&self, pred: impl Fn(u32) -> bool) -> Pos {
        if self.groups().is_empty() {
            return Pos {
                group: 0,
                chunk: 0,
                off: self.small.partition_point(|&x| pred(x)),
            };
        }
        let group = self.groups().partition_point(|g| pred(group_last(g)));
        let Some(chunks) = self.groups().get(group) else {
            return self.end();
        };
        // The group's last id fails `pred`, so some chunk's does, and in that chunk the
        // offset is below its length.
        let chunk = chunks.partition_point(|c| pred(last(c)));
        Pos {
            group,
            chunk,
            off: chunks[chunk].partition_point(|&x| pred(x)),
        }
    }

    /// The whole list.
    pub(crate) fn span_all(&self) -> Span {
        Span {
            start: Pos::default(),
            end: self.end(),
        }
    }

    /// The ids after those that satisfy `before` and up to those that satisfy
    /// `through`, for predicates that each hold for a prefix of the list (`through`
    /// for a longer one).
    pub(crate) fn span_between(
        &self,
        before: impl Fn(u32) -> bool,
        through: impl Fn(u32) -> bool,
    ) -> Span {
        let start = self.position(before);
        let end = self.position(through).max(start);
        Span { start, end }
    }

    /// The first id left in `span`, a span of this list.
    pub(crate) fn head(&self, span: &Span) -> Option<u32> {
        if span.is_empty() {
            return None;
        }
        let p = span.start;
        if self.groups().is_empty() {
            return Some(self.small[p.off]);
        }
        Some(self.groups()[p.group][p.chunk][p.off])
    }

    /// Steps `span`, a non-empty span of this list, past its first id.
    pub(crate) fn advance(&self, span: &mut Span) {
        let p = &mut span.start;
        if self.groups().is_empty() {
            p.off += 1;
            return;
        }
        let chunks = &self.groups()[p.group];
        p.off += 1;
        if p.off == chunks[p.chunk].len() {
            p.off = 0;
            p.chunk += 1;
            if p.chunk == chunks.len() {
                p.chunk = 0;
                p.group += 1;
            }
        }
    }

    /// Bytes the list holds on the heap: the plain `Vec`, the tables of groups and
    /// chunks and every chunk (each counted whole, though other versions of the list may share it).
    pub(crate) fn heap_bytes(&self) -> usize {
        // An `Arc` allocation: two counts and the `Vec` header.
        let header = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Vec<u32>>();
        let ptr = std::mem::size_of::<Chunk>();
        let long = self.long.as_deref().map_or(0, |l| {
            std::mem::size_of::<Long>()
                + l.groups.capacity() * ptr
                + l.groups
                    .iter()
                    .map(|g| {
                        header
                            + g.capacity() * ptr
                            + g.iter().map(|c| header + c.capacity() * 4).sum::<usize>()
                    })
                    .sum::<usize>()
        });
        self.small.capacity() * 4 + long
    }

    /// The chunks' lengths, group by group, for tests of the chunking.
    #[cfg(test)]
    pub(crate) fn chunk_lens(&self) -> Vec<Vec<usize>> {
        self.groups()
            .iter()
            .map(|g| g.iter().map(|c| c.len()).collect())
            .collect()
    }
}

impl Long {
    /// The group that holds `k`'s place: the first whose last key is at least `k`
    /// (`groups.len()` if none is).
    fn group_of<K: Ord>(&self, k: &K, key: &impl Fn(u32) -> K) -> usize {
        self.groups.partition_point(|g| key(group_last(g)) < *k)
    }

    /// Inserts `id` of key `k`; false if it was there already.
    fn insert_by<K: Ord>(&mut self, id: u32, k: &K, key: &impl Fn(u32) -> K) -> bool {
        // Past every id: the last group.
        let g = self.group_of(k, key).min(self.groups.len() - 1);
        if holds(&self.groups[g], k, key) {
            return false;
        }
        let chunks = Arc::make_mut(&mut self.groups[g]);
        insert_into(chunks, id, k, key);
        if chunks.len() > GROUP_MAX {
            let right = chunks.split_off(chunks.len() / 2);
            self.groups.insert(g + 1, Arc::new(right));
        }
        self.len += 1;
        true
    }

    /// Removes the id of key `k`; false if it was not there. Leaves no group if it
    /// removes the last id.
    fn remove_by<K: Ord>(&mut self, k: &K, key: &impl Fn(u32) -> K) -> bool {
        let g = self.group_of(k, key);
        if g == self.groups.len() || !holds(&self.groups[g], k, key) {
            return false;
        }
        let chunks = Arc::make_mut(&mut self.groups[g]);
        remove_from(chunks, k, key);
        let left = chunks.len();
        if left == 0 {
            self.groups.remove(g);
        } else if left < GROUP_MIN {
            self.merge_small_group(g);
        }
        self.len -= 1;
        true
    }

    /// Merges the small group `g` into a neighbour when both fit in one group.
    fn merge_small_group(&mut self, g: usize) {
        let groups = &self.groups;
        let fits = |a: usize| groups[a].len() + groups[a + 1].len() <= GROUP_MAX;
        let first = if g + 1 < groups.len() && fits(g) {
            g
        } else if g > 0 && fits(g - 1) {
            g - 1
        } else {
            return;
        };
        let second = self.groups.remove(first + 1);
        Arc::make_mut(&mut self.groups[first]).extend(second.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// The follower-list key with 3 partitions.
    fn key(x: u32) -> (u32, u32) {
        (x % 3, x)
    }

    /// Checks `list` against `model` (keys of the ids it should hold): the ids in
    /// order, the shape of the chunks and groups, and the span of each partition.
    fn check(list: &ChunkedList, model: &BTreeSet<(u32, u32)>) {
        let want: Vec<u32> = model.iter().map(|&(_, x)| x).collect();
        let got: Vec<u32> = list.iter().collect();
        assert_eq!(got, want);
        assert_eq!(list.len(), want.len());
        assert_eq!(list.is_empty(), want.is_empty());
        assert_eq!(list.last(), want.last().copied());
        for group in list.chunk_lens() {
            assert!(
                (1..=GROUP_MAX).contains(&group.len()),
                "a group of {group:?}"
            );
            for len in group {
                assert!((1..=CHUNK_MAX).contains(&len), "a chunk of {len}");
            }
        }
        assert!(list.heap_bytes() >= 4 * list.len());
        assert!(list.small.is_empty() || list.long.is_none());
        assert!(list.small.len() <= SMALL_MAX);
        if let Some(long) = &list.long {
            assert!(list.len() > SMALL_MAX / 2);
            assert!(!long.groups.is_empty());
        }
        // Each partition's span walks exactly that partition's ids.
        for p in 0..3 {
            let mut span = list.span_between(|x| key(x).0 < p, |x| key(x).0 <= p);
            let mut walked = Vec::new();
            while let Some(x) = list.head(&span) {
                walked.push(x);
                list.advance(&mut span);
            }
            assert!(span.is_empty());
            let want_p: Vec<u32> = want.iter().copied().filter(|x| x % 3 == p).collect();
            assert_eq!(walked, want_p, "partition {p}");
        }
        let mut all = list.span_all();
        let mut walked = Vec::new();
        while let Some(x) = list.head(&all) {
            walked.push(x);
            list.advance(&mut all);
        }
        assert_eq!(walked, want);
    }

    #[derive(Clone, Debug)]
    enum Step {
        Insert(u32),
        Remove(u32),
        /// Inserts `n` ids from `from` up, ascending (fills and splits chunks).
        Run(u32, u32),
        /// Inserts `n` ids from `from` down, descending.
        RunDown(u32, u32),
        /// Removes `n` ids from `from` up (empties and merges chunks and groups).
        Clear(u32, u32),
        /// Keeps a clone, as a reader would, and checks at the end that it is left as
        /// it was.
        Keep,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..3_000u32).prop_map(Step::Insert),
            3 => (0..3_000u32).prop_map(Step::Remove),
            1 => (0..3_000u32, 0..600u32).prop_map(|(a, n)| Step::Run(a, n)),
            1 => (0..3_000u32, 0..600u32).prop_map(|(a, n)| Step::RunDown(a, n)),
            1 => (0..3_000u32, 0..1_500u32).prop_map(|(a, n)| Step::Clear(a, n)),
            1 => Just(Step::Keep),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn matches_a_btreeset(steps in prop::collection::vec(step(), 1..60)) {
            let mut list = ChunkedList::default();
            let mut model = BTreeSet::new();
            let mut kept: Vec<(ChunkedList, BTreeSet<(u32, u32)>)> = Vec::new();
            for s in steps {
                match s {
                    Step::Insert(x) => {
                        prop_assert_eq!(list.insert_by(x, key), model.insert(key(x)));
                    }
                    Step::Remove(x) => {
                        prop_assert_eq!(list.remove_by(x, key), model.remove(&key(x)));
                    }
                    Step::Run(a, n) => {
                        for x in a..a + n {
                            prop_assert_eq!(list.insert_by(x, key), model.insert(key(x)));
                        }
                    }
                    Step::RunDown(a, n) => {
                        for x in (a.saturating_sub(n)..a).rev() {
                            prop_assert_eq!(list.insert_by(x, key), model.insert(key(x)));
                        }
                    }
                    Step::Clear(a, n) => {
                        for x in a..a + n {
                            prop_assert_eq!(list.remove_by(x, key), model.remove(&key(x)));
                        }
                    }
                    Step::Keep => kept.push((list.clone(), model.clone())),
                }
                for x in [0, 1, 2, 1_499, 2_999, 3_000] {
                    prop_assert_eq!(list.contains_by(x, key), model.contains(&key(x)));
                }
                check(&list, &model);
            }
            for (old, old_model) in &kept {
                check(old, old_model);
            }
        }
    }

    #[test]
    fn full_chunks_split_and_empty_chunks_go() {
        let max = CHUNK_MAX as u32;
        let mut list = ChunkedList::default();
        // Even ids first, then an odd one between them: a split in the middle.
        for x in (0..2 * max).step_by(2) {
            assert!(list.insert(x));
        }
        assert_eq!(list.chunk_lens(), vec![vec![CHUNK_MAX]]);
        let kept = list.clone();
        assert!(list.insert(1));
        assert_eq!(
            list.chunk_lens(),
            vec![vec![CHUNK_MAX / 2 + 1, CHUNK_MAX / 2]]
        );
        // The clone shares no change.
        assert_eq!(kept.chunk_lens(), vec![vec![CHUNK_MAX]]);
        assert!(!kept.contains(1));
        assert!(list.contains(1));
        assert!(!list.insert(1));
        // Past the end of a full last chunk: a new chunk.
        let mut tail = kept.clone();
        assert!(tail.insert(u32::MAX));
        assert_eq!(tail.chunk_lens(), vec![vec![CHUNK_MAX, 1]]);
        // Ascending inserts before it fill that chunk instead of making one each.
        let mut gap = tail.clone();
        for x in 2 * max..2 * max + 3 {
            assert!(gap.insert(x));
        }
        assert_eq!(gap.chunk_lens(), vec![vec![CHUNK_MAX, 4]]);
        // Emptying the small chunk drops it.
        for x in 2 * max..2 * max + 3 {
            assert!(gap.remove(x));
        }
        assert!(gap.remove(u32::MAX));
        assert!(!gap.remove(u32::MAX));
        assert_eq!(gap.chunk_lens(), vec![vec![CHUNK_MAX]]);
        // Removing from both halves of a split merges them back once they fit.
        let mut shrink = list.clone();
        for x in (0..max).step_by(2) {
            assert!(shrink.remove(x));
        }
        assert_eq!(shrink.len(), CHUNK_MAX / 2 + 1);
        assert_eq!(shrink.chunk_lens(), vec![vec![CHUNK_MAX / 2 + 1]]);
        assert_eq!(list.len(), CHUNK_MAX + 1);
        // Removing every id leaves no chunk and no group.
        for x in shrink.iter().collect::<Vec<_>>() {
            assert!(shrink.remove(x));
        }
        assert!(shrink.is_empty());
        assert!(shrink.chunk_lens().is_empty());
        assert_eq!(shrink.span_all(), Span::default());
    }

    #[test]
    fn full_groups_split_and_small_groups_merge() {
        let mut list = ChunkedList::default();
        let ids = (CHUNK_MAX * GROUP_MAX) as u32;
        // Ascending inserts fill chunk after chunk: one full group.
        for x in 0..ids {
            assert!(list.insert(x));
        }
        assert_eq!(list.chunk_lens(), vec![vec![CHUNK_MAX; GROUP_MAX]]);
        // One more chunk: the group splits in two halves.
        let kept = list.clone();
        assert!(list.insert(ids));
        let lens = list.chunk_lens();
        assert_eq!(lens.len(), 2);
        assert_eq!(lens[0], vec![CHUNK_MAX; GROUP_MAX / 2]);
        assert_eq!(lens[1].len(), GROUP_MAX / 2 + 1);
        assert_eq!(kept.chunk_lens().len(), 1);
        // Emptying most of the first group merges what is left into the second.
        for x in 0..(CHUNK_MAX * (GROUP_MAX / 2 - GROUP_MIN + 1)) as u32 {
            assert!(list.remove(x));
        }
        let lens = list.chunk_lens();
        assert_eq!(lens.len(), 1, "{lens:?}");
        assert_eq!(list.iter().count(), list.len());
        let model: BTreeSet<(u32, u32)> = list.iter().map(key).collect();
        assert_eq!(model.len(), list.len());
    }
}
