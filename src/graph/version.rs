//! A version of the graph: a snapshot and its overlay, and the ops applied to it.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::chunked::{ChunkedList, Span};
use super::csr::Csr;
use super::extras::{Extras, in_key};
use super::neighbors::{Neighbors, Side};
use super::oplog::{Op, OpKind};

/// A snapshot and the overlay of changes since it: what a reader sees. Replaced whole by
/// a compaction; readers that started on the old one finish on it.
pub(crate) struct Version {
    pub(crate) csr: Csr,
    /// One slot per user id below `users_max`: that user's changes since `csr`.
    pub(crate) extras: Box<[ArcSwapOption<Extras>]>,
}

impl Version {
    pub(super) fn new(csr: Csr, users_max: u32) -> Version {
        Version {
            csr,
            extras: (0..users_max).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    pub(super) fn has_following(&self, a: u32, b: u32) -> bool {
        let e = self.extras[a as usize].load();
        match e.as_deref() {
            Some(e) if e.out_add.contains(b) => true,
            Some(e) if e.out_del.contains(b) => false,
            _ => self.csr.has_edge(a, b),
        }
    }
}

pub(super) fn is_blocked_in(version: &Version, a: u32, b: u32) -> bool {
    let blocks = |x: u32, y: u32| {
        version.extras[x as usize]
            .load()
            .as_deref()
            .is_some_and(|e| e.blocks.contains(y))
    };
    blocks(a, b) || blocks(b, a)
}

/// The walk of `u`'s followers in stored partition `partition` of `version`, with `e`,
/// the overlay slot of `u` as the caller loaded it.
pub(super) fn stored_partition(
    version: &Arc<Version>,
    e: &Option<Arc<Extras>>,
    u: u32,
    partition: u32,
) -> Neighbors {
    let stored = version.csr.partitions;
    let part = |list: &ChunkedList| {
        list.span_between(
            |x| in_key(x, stored).0 < partition,
            |x| in_key(x, stored).0 <= partition,
        )
    };
    let (add, del) = e
        .as_deref()
        .map_or((Span::default(), Span::default()), |e| {
            (part(&e.in_add), part(&e.in_del))
        });
    let base = version.csr.in_partition_range(u, partition);
    Neighbors::new(Arc::clone(version), e.clone(), Side::In, base, add, del)
}

pub(super) fn following_count_in(version: &Version, u: u32) -> u64 {
    let base = version.csr.out_range(u).len() as u64;
    let e = version.extras[u as usize].load();
    e.as_deref().map_or(base, |e| {
        base + e.out_add.len() as u64 - e.out_del.len() as u64
    })
}

/// Replaces `u`'s overlay slot with a modified copy. Only the writer (or a single
/// thread building a version nobody reads yet) calls this.
fn modify(version: &Version, dirty: &mut Vec<u32>, u: u32, f: impl FnOnce(&mut Extras)) {
    let slot = &version.extras[u as usize];
    let current = slot.load_full();
    if current.is_none() {
        dirty.push(u);
    }
    let mut next = current.as_deref().cloned().unwrap_or_default();
    f(&mut next);
    slot.store(Some(Arc::new(next)));
}

fn set_edge(version: &Version, dirty: &mut Vec<u32>, a: u32, b: u32, present: bool) {
    let in_snapshot = version.csr.has_edge(a, b);
    if version.has_following(a, b) == present {
        return;
    }
    let partitions = version.csr.partitions;
    modify(version, dirty, a, |e| {
        e.set_following(b, present, in_snapshot)
    });
    modify(version, dirty, b, |e| {
        e.set_follower(a, present, in_snapshot, partitions)
    });
}

/// Applies one op to a version's overlay. Ops are idempotent: applying one again, or on
/// a base that already has its effect, changes nothing.
pub(super) fn apply(version: &Version, dirty: &mut Vec<u32>, op: Op) {
    let (a, b) = (op.a, op.b);
    match op.kind {
        OpKind::Follow => set_edge(version, dirty, a, b, true),
        OpKind::Unfollow => set_edge(version, dirty, a, b, false),
        OpKind::Block => {
            set_edge(version, dirty, a, b, false);
            set_edge(version, dirty, b, a, false);
            modify(version, dirty, a, |e| {
                e.blocks.insert(b);
            });
        }
        OpKind::Unblock => modify(version, dirty, a, |e| {
            e.blocks.remove(b);
        }),
        OpKind::Mute => modify(version, dirty, a, |e| {
            e.mutes.insert(b);
        }),
        OpKind::Unmute => modify(version, dirty, a, |e| {
            e.mutes.remove(b);
        }),
    }
}

/// Loads a snapshot's blocks and mutes into a fresh version's overlay.
pub(super) fn load_relations(version: &Version, dirty: &mut Vec<u32>, users_seen: &mut u32) {
    load_pairs(version, dirty, users_seen, version.csr.blocks(), |e| {
        &mut e.blocks
    });
    load_pairs(version, dirty, users_seen, version.csr.mutes(), |e| {
        &mut e.mutes
    });
}

/// Loads `(a, b)` pairs into the list `list` picks of each `a`'s overlay, one copy of
/// the slot per run of pairs with the same `a`.
fn load_pairs(
    version: &Version,
    dirty: &mut Vec<u32>,
    users_seen: &mut u32,
    pairs: &[[u32; 2]],
    list: fn(&mut Extras) -> &mut ChunkedList,
) {
    for run in pairs.chunk_by(|x, y| x[0] == y[0]) {
        let a = run[0][0];
        modify(version, dirty, a, |e| {
            let l = list(e);
            for &[_, b] in run {
                l.insert(b);
            }
        });
        for &[a, b] in run {
            *users_seen = (*users_seen).max(a.max(b) + 1);
        }
    }
}
