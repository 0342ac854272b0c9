//! Walking a user's neighbours: the snapshot's slice merged with the overlay's added
//! and removed ids, without a lock and without a copy.

use std::ops::Range;
use std::sync::Arc;

use super::chunked::{ChunkedList, Span};
use super::extras::Extras;
use super::version::Version;
use crate::ids::UserId;

/// Appends up to `max` ids of `walk` to `buf`, one at a time; returns how many.
fn fill_from(walk: impl Iterator<Item = UserId>, buf: &mut Vec<u32>, max: usize) -> usize {
    let before = buf.len();
    buf.extend(walk.take(max).map(|id| id.0));
    buf.len() - before
}

/// Calls `f` with the ids of `walk` gathered into slices of up to 1024.
fn in_chunks(walk: impl Iterator<Item = UserId>, mut f: impl FnMut(&[u32])) {
    let mut buf = Vec::with_capacity(1024);
    for id in walk {
        buf.push(id.0);
        if buf.len() == buf.capacity() {
            f(&buf);
            buf.clear();
        }
    }
    if !buf.is_empty() {
        f(&buf);
    }
}

/// Which list of the snapshot and the overlay a walk reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Following (`out_targets`, `out_add`, `out_del`).
    Out,
    /// Followers (`in_sources`, `in_add`, `in_del`).
    In,
}

/// One user's following, or followers of one partition, in ascending id order. It
/// holds the graph version it started on, so it sees one consistent set however long
/// it runs, while follows and unfollows go on.
pub struct Neighbors {
    /// Only ids `x` with `x % filter.0 == filter.1` (for partition counts other than
    /// the stored one).
    filter: Option<(u32, u32)>,
    version: Arc<Version>,
    extras: Option<Arc<Extras>>,
    side: Side,
    base: Range<usize>,
    /// What is left to walk of the overlay's added ids.
    add: Span,
    /// What is left to walk of the overlay's removed ids.
    del: Span,
    /// The first id of `add`, if any (kept beside it: the merge looks at it per id).
    add_head: Option<u32>,
    /// The first id of `del`, if any.
    del_head: Option<u32>,
}

impl Neighbors {
    pub(crate) fn new(
        version: Arc<Version>,
        extras: Option<Arc<Extras>>,
        side: Side,
        base: Range<usize>,
        add: Span,
        del: Span,
    ) -> Neighbors {
        let (add_head, del_head) =
            lists(&extras, side).map_or((None, None), |(a, d)| (a.head(&add), d.head(&del)));
        Neighbors {
            filter: None,
            version,
            extras,
            side,
            base,
            add,
            del,
            add_head,
            del_head,
        }
    }

    /// Keeps only ids that are `remainder` modulo `modulus`.
    pub(crate) fn filtered(mut self, modulus: u32, remainder: u32) -> Neighbors {
        self.filter = Some((modulus, remainder));
        self
    }

    fn base_slice(&self) -> &[u32] {
        let csr = &self.version.csr;
        match self.side {
            Side::Out => &csr.out_targets()[self.base.clone()],
            Side::In => &csr.in_sources()[self.base.clone()],
        }
    }

    /// Whether the walk has overlay ids left to merge (else it is the snapshot's slice).
    fn overlay_left(&self) -> bool {
        self.add_head.is_some() || self.del_head.is_some()
    }

    /// Steps past the head of `add` (out of line: the merge loop stays small).
    #[inline(never)]
    fn step_add(&mut self) {
        let (add, _) = lists(&self.extras, self.side).expect("an added id is in the overlay");
        add.advance(&mut self.add);
        self.add_head = add.head(&self.add);
    }

    /// Steps past the head of `del` (out of line, like `step_add`).
    #[inline(never)]
    fn step_del(&mut self) {
        let (_, del) = lists(&self.extras, self.side).expect("a removed id is in the overlay");
        del.advance(&mut self.del);
        self.del_head = del.head(&self.del);
    }

    /// Appends up to `max` ids to `buf` (a copy of the snapshot's slice on the fast
    /// path); returns how many.
    pub(crate) fn fill(&mut self, buf: &mut Vec<u32>, max: usize) -> usize {
        if !self.overlay_left() && self.filter.is_none() {
            let base = self.base_slice();
            let n = base.len().min(max);
            buf.extend_from_slice(&base[..n]);
            self.base.start += n;
            return n;
        }
        fill_from(self, buf, max)
    }

    /// Calls `f` with the ids in ascending order, a slice at a time: the snapshot's
    /// slice itself when no recent change touches it (the fast path of fan-out).
    pub fn for_each_chunk(self, mut f: impl FnMut(&[u32])) {
        if !self.overlay_left() && self.filter.is_none() {
            let base = self.base_slice();
            if !base.is_empty() {
                f(base);
            }
            return;
        }
        in_chunks(self, f);
    }
}

impl Iterator for Neighbors {
    type Item = UserId;

    fn next(&mut self) -> Option<UserId> {
        loop {
            let id = self.next_unfiltered()?;
            match self.filter {
                Some((m, r)) if id.0 % m != r => continue,
                _ => return Some(id),
            }
        }
    }
}

impl Neighbors {
    #[inline]
    fn next_unfiltered(&mut self) -> Option<UserId> {
        loop {
            let base_next = self.base_slice().first().copied();
            // Take the smaller head of base and add; a base id equal to the head of
            // del is skipped (removed since the snapshot). Base and add never share an
            // id: add only holds ids the snapshot lacks.
            let id = match (base_next, self.add_head) {
                (None, None) => return None,
                (Some(b), Some(a)) if a < b => {
                    self.step_add();
                    return Some(UserId(a));
                }
                (Some(b), _) => {
                    self.base.start += 1;
                    b
                }
                (None, Some(a)) => {
                    self.step_add();
                    return Some(UserId(a));
                }
            };
            // Removed ids are a subset of the base, in the same order.
            while self.del_head.is_some_and(|d| d < id) {
                self.step_del();
            }
            if self.del_head == Some(id) {
                self.step_del();
                continue;
            }
            return Some(UserId(id));
        }
    }
}

/// The overlay's added and removed lists of `side`, if there is an overlay.
fn lists(extras: &Option<Arc<Extras>>, side: Side) -> Option<(&ChunkedList, &ChunkedList)> {
    extras.as_deref().map(|e| match side {
        Side::Out => (&e.out_add, &e.out_del),
        Side::In => (&e.in_add, &e.in_del),
    })
}

/// A user's followers (all of them, or one partition's) in ascending id order: a merge
/// of the stored partitions' walks, one walk when a single stored partition is asked for.
pub struct Followers {
    /// Each walk with its next id, once looked at.
    parts: Vec<(Neighbors, Option<UserId>)>,
    started: bool,
}

impl Followers {
    pub(crate) fn new(parts: Vec<Neighbors>) -> Followers {
        Followers {
            parts: parts.into_iter().map(|n| (n, None)).collect(),
            started: false,
        }
    }

    /// Appends up to `max` ids to `buf`, ascending across calls; returns how many.
    pub(crate) fn fill(&mut self, buf: &mut Vec<u32>, max: usize) -> usize {
        if !self.started && self.parts.len() == 1 {
            return self.parts[0].0.fill(buf, max);
        }
        fill_from(self, buf, max)
    }

    /// Calls `f` with the ids a slice at a time, ascending: the snapshot's own slice
    /// when one stored partition is walked and no recent change touches it (the fast
    /// path of fan-out).
    pub fn for_each_chunk(mut self, f: impl FnMut(&[u32])) {
        if !self.started && self.parts.len() == 1 {
            let (walk, _) = self.parts.pop().expect("one part");
            return walk.for_each_chunk(f);
        }
        in_chunks(self, f);
    }
}

impl Iterator for Followers {
    type Item = UserId;

    fn next(&mut self) -> Option<UserId> {
        if !self.started {
            self.started = true;
            for (walk, head) in &mut self.parts {
                *head = walk.next();
            }
        }
        let (i, id) = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(i, (_, head))| head.map(|id| (i, id)))
            .min_by_key(|&(_, id)| id)?;
        let (walk, head) = &mut self.parts[i];
        *head = walk.next();
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::log::Durability;
    use crate::{FollowGraph, GraphConfig, UserId};

    /// The ids of `walk`, through `fill` in pieces of 7.
    fn filled(mut walk: super::Followers) -> Vec<u32> {
        let mut buf = Vec::new();
        while walk.fill(&mut buf, 7) > 0 {}
        buf
    }

    fn check(g: &FollowGraph, followers: &BTreeSet<u32>, following: &BTreeSet<u32>) {
        let u = UserId(0);
        let want: Vec<u32> = followers.iter().copied().collect();
        let got: Vec<u32> = g.followers(u).map(|x| x.0).collect();
        assert_eq!(got, want);
        assert_eq!(filled(g.followers(u)), want);
        assert_eq!(g.follower_count(u), want.len() as u64);
        // The stored partitions (3) and another count (2, by filtering).
        for partitions in [3, 2] {
            for p in 0..partitions {
                let want_p: Vec<u32> = want
                    .iter()
                    .copied()
                    .filter(|x| x % partitions == p)
                    .collect();
                let got: Vec<u32> = g.followers_in(u, p, partitions).map(|x| x.0).collect();
                assert_eq!(got, want_p, "partition {p} of {partitions}");
                let mut chunks = Vec::new();
                g.followers_in(u, p, partitions)
                    .for_each_chunk(|c| chunks.extend_from_slice(c));
                assert_eq!(chunks, want_p, "chunks of partition {p} of {partitions}");
                assert_eq!(filled(g.followers_in(u, p, partitions)), want_p);
            }
        }
        let want: Vec<u32> = following.iter().copied().collect();
        let got: Vec<u32> = g.following(u).map(|x| x.0).collect();
        assert_eq!(got, want);
        let mut buf = Vec::new();
        let mut walk = g.following(u);
        while walk.fill(&mut buf, 5) > 0 {}
        assert_eq!(buf, want);
        assert_eq!(g.following_count(u), want.len() as u64);
        for x in 0..2_000 {
            assert_eq!(g.is_following(u, UserId(x)), following.contains(&x), "{x}");
            assert_eq!(g.is_following(UserId(x), u), followers.contains(&x), "{x}");
        }
    }

    /// Walks that cross many overlay chunks and groups (small in unit tests), merged
    /// with the snapshot, while held walks keep the version they started on.
    #[test]
    fn walks_cross_overlay_chunks() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = GraphConfig {
            users_max: 2_000,
            partitions: 3,
            durability: Durability::Buffered,
            compact_after_changes: 100_000_000,
            ..Default::default()
        };
        let mut followers: BTreeSet<u32> = (1..1_000).step_by(2).collect();
        let mut following: BTreeSet<u32> = (1..600).step_by(3).collect();
        let edges = followers
            .iter()
            .map(|&a| (UserId(a), UserId(0)))
            .chain(following.iter().map(|&b| (UserId(0), UserId(b))))
            .collect::<Vec<_>>();
        let g = FollowGraph::bulk_load(dir.path().join("g"), config, edges).expect("bulk load");
        check(&g, &followers, &following);
        let held = g.followers(UserId(0));
        let held_want: Vec<u32> = followers.iter().copied().collect();
        for a in (2..1_500).step_by(2) {
            assert!(g.follow(UserId(a), UserId(0)).expect("follow"));
            followers.insert(a);
        }
        for a in (1..1_500).filter(|a| a % 7 == 0 || a % 11 == 3) {
            assert_eq!(
                g.unfollow(UserId(a), UserId(0)).expect("unfollow"),
                followers.remove(&a)
            );
        }
        for b in (600..1_900).step_by(2) {
            assert!(g.follow(UserId(0), UserId(b)).expect("follow"));
            following.insert(b);
        }
        for b in (1..1_900).filter(|b| b % 5 == 1) {
            assert_eq!(
                g.unfollow(UserId(0), UserId(b)).expect("unfollow"),
                following.remove(&b)
            );
        }
        check(&g, &followers, &following);
        let held_again = g.followers(UserId(0));
        let again_want: Vec<u32> = followers.iter().copied().collect();
        for a in (1_000..1_999).step_by(3) {
            g.follow(UserId(a), UserId(0)).expect("follow");
            followers.insert(a);
        }
        assert_eq!(held.map(|x| x.0).collect::<Vec<_>>(), held_want);
        assert_eq!(held_again.map(|x| x.0).collect::<Vec<_>>(), again_want);
        check(&g, &followers, &following);
        g.compact().expect("compact");
        check(&g, &followers, &following);
        for a in (3..999).step_by(4) {
            let was = followers.contains(&a);
            assert_eq!(g.unfollow(UserId(a), UserId(0)).expect("unfollow"), was);
            followers.remove(&a);
        }
        check(&g, &followers, &following);
    }
}
