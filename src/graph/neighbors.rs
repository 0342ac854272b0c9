//! Walking a user's neighbours: the snapshot's slice merged with the overlay's added
//! and removed ids, without a lock and without a copy.

use std::ops::Range;
use std::sync::Arc;

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
    add: Range<usize>,
    del: Range<usize>,
}

impl Neighbors {
    pub(crate) fn new(
        version: Arc<Version>,
        extras: Option<Arc<Extras>>,
        side: Side,
        base: Range<usize>,
        add: Range<usize>,
        del: Range<usize>,
    ) -> Neighbors {
        Neighbors {
            filter: None,
            version,
            extras,
            side,
            base,
            add,
            del,
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

    fn add_del(&self) -> (&[u32], &[u32]) {
        match (&self.extras, self.side) {
            (Some(e), Side::Out) => (&e.out_add[self.add.clone()], &e.out_del[self.del.clone()]),
            (Some(e), Side::In) => (&e.in_add[self.add.clone()], &e.in_del[self.del.clone()]),
            (None, _) => (&[], &[]),
        }
    }

    /// Appends up to `max` ids to `buf` (a copy of the snapshot's slice on the fast
    /// path); returns how many.
    pub(crate) fn fill(&mut self, buf: &mut Vec<u32>, max: usize) -> usize {
        let (add, del) = self.add_del();
        if add.is_empty() && del.is_empty() && self.filter.is_none() {
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
        let (add, del) = self.add_del();
        if add.is_empty() && del.is_empty() && self.filter.is_none() {
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
    fn next_unfiltered(&mut self) -> Option<UserId> {
        loop {
            let base_next = self.base_slice().first().copied();
            let (add, del) = self.add_del();
            let add_next = add.first().copied();
            let del_next = del.first().copied();
            // Take the smaller head of base and add; a base id equal to the head of
            // del is skipped (removed since the snapshot). Base and add never share an
            // id: add only holds ids the snapshot lacks.
            let id = match (base_next, add_next) {
                (None, None) => return None,
                (Some(b), Some(a)) if a < b => {
                    self.add.start += 1;
                    return Some(UserId(a));
                }
                (Some(b), _) => {
                    self.base.start += 1;
                    b
                }
                (None, Some(a)) => {
                    self.add.start += 1;
                    return Some(UserId(a));
                }
            };
            // Removed ids are a subset of the base, in the same order.
            let mut del_head = del_next;
            while del_head.is_some_and(|d| d < id) {
                self.del.start += 1;
                del_head = self.add_del().1.first().copied();
            }
            if del_head == Some(id) {
                self.del.start += 1;
                continue;
            }
            return Some(UserId(id));
        }
    }
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
