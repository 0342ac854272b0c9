//! Reading the graph: relations, neighbours, counts, stats. Lock-free: each read loads
//! the current version and its overlay slots.

use std::sync::atomic::Ordering;

use arc_swap::ArcSwapOption;

use super::chunked::Span;
use super::extras::Extras;
use super::follow_graph::FollowGraph;
use super::neighbors::{Followers, Neighbors, Side};
use super::version::{following_count_in, is_blocked_in, stored_partition};
use crate::ids::UserId;

impl FollowGraph {
    /// Whether `a` follows `b`.
    pub fn is_following(&self, a: UserId, b: UserId) -> bool {
        if !self.in_range(a) || !self.in_range(b) {
            return false;
        }
        self.inner.version.load().has_following(a.0, b.0)
    }

    /// Whether `a` blocks `b` or `b` blocks `a`.
    pub fn is_blocked(&self, a: UserId, b: UserId) -> bool {
        if !self.in_range(a) || !self.in_range(b) {
            return false;
        }
        is_blocked_in(&self.inner.version.load(), a.0, b.0)
    }

    /// Whether `a` mutes `b`.
    pub fn is_muted(&self, a: UserId, b: UserId) -> bool {
        if !self.in_range(a) || !self.in_range(b) {
            return false;
        }
        let version = self.inner.version.load();
        let e = version.extras[a.0 as usize].load();
        e.as_deref().is_some_and(|e| e.mutes.contains(b.0))
    }

    pub(super) fn in_range(&self, u: UserId) -> bool {
        u.0 < self.inner.config.users_max
    }

    /// The users `u` follows, ascending.
    pub fn following(&self, u: UserId) -> Neighbors {
        let version = self.inner.version.load_full();
        if !self.in_range(u) {
            return Neighbors::new(
                version,
                None,
                Side::Out,
                0..0,
                Span::default(),
                Span::default(),
            );
        }
        let e = version.extras[u.0 as usize].load_full();
        let (add, del) = e
            .as_deref()
            .map_or((Span::default(), Span::default()), |e| {
                (e.out_add.span_all(), e.out_del.span_all())
            });
        let base = version.csr.out_range(u.0);
        Neighbors::new(version, e, Side::Out, base, add, del)
    }

    /// The followers of `u` whose id is `partition` modulo `partitions`, ascending.
    /// When `partitions` is the graph's own ([`FollowGraph::partitions`]), this walks
    /// one contiguous slice of the snapshot (see [`Followers::for_each_chunk`]); any
    /// other count works too, by filtering.
    pub fn followers_in(&self, u: UserId, partition: u32, partitions: u32) -> Followers {
        let version = self.inner.version.load_full();
        let stored = version.csr.partitions;
        if !self.in_range(u) || partition >= partitions {
            return Followers::new(Vec::new());
        }
        // One load of the overlay slot for all the stored partitions merged here: a
        // load per partition could mix two overlay versions into a set of followers
        // that never existed.
        let e = version.extras[u.0 as usize].load_full();
        if partitions == stored {
            return Followers::new(vec![stored_partition(&version, &e, u.0, partition)]);
        }
        Followers::new(
            (0..stored)
                .map(|p| stored_partition(&version, &e, u.0, p).filtered(partitions, partition))
                .collect(),
        )
    }

    /// The partitions the follower lists are grouped by right now (the snapshot's; it
    /// becomes `GraphConfig::partitions` at the next compaction).
    pub fn partitions(&self) -> u32 {
        self.inner.version.load().csr.partitions
    }

    /// The followers of `u`, ascending.
    pub fn followers(&self, u: UserId) -> Followers {
        let version = self.inner.version.load_full();
        if !self.in_range(u) {
            return Followers::new(Vec::new());
        }
        // One load of the overlay slot for every partition (see `followers_in`).
        let e = version.extras[u.0 as usize].load_full();
        Followers::new(
            (0..version.csr.partitions)
                .map(|p| stored_partition(&version, &e, u.0, p))
                .collect(),
        )
    }

    /// How many users follow `u`.
    pub fn follower_count(&self, u: UserId) -> u64 {
        if !self.in_range(u) {
            return 0;
        }
        let version = self.inner.version.load();
        let base = version.csr.in_range(u.0).len() as u64;
        let e = version.extras[u.0 as usize].load();
        e.as_deref().map_or(base, |e| {
            base + e.in_add.len() as u64 - e.in_del.len() as u64
        })
    }

    /// How many users `u` follows.
    pub fn following_count(&self, u: UserId) -> u64 {
        if !self.in_range(u) {
            return 0;
        }
        following_count_in(&self.inner.version.load(), u.0)
    }

    /// 1 + the highest user id that appears in any relation (0 for an empty graph).
    pub fn user_count(&self) -> u32 {
        self.inner.users_seen.load(Ordering::Relaxed)
    }

    /// Counts of the graph's contents and memory.
    pub fn stats(&self) -> GraphStats {
        // The version after the lock: a compaction installs a new version and its
        // `dirty` list together, under the writer lock.
        let w = self.inner.writer.lock();
        let version = self.inner.version.load_full();
        let mut overlay_bytes =
            (version.extras.len() * std::mem::size_of::<ArcSwapOption<Extras>>()) as u64;
        let mut follows = version.csr.out_targets().len() as u64;
        let (mut blocks, mut mutes) = (0u64, 0u64);
        for &u in &w.dirty {
            if let Some(e) = version.extras[u as usize].load().as_deref() {
                overlay_bytes += e.heap_bytes() as u64;
                follows = follows + e.out_add.len() as u64 - e.out_del.len() as u64;
                blocks += e.blocks.len() as u64;
                mutes += e.mutes.len() as u64;
            }
        }
        GraphStats {
            users: self.user_count(),
            follows,
            blocks,
            mutes,
            ops_since_snapshot: w.since_snapshot,
            snapshot_bytes: version.csr.file_bytes(),
            overlay_bytes,
        }
    }
}

/// Counts of a graph's contents and memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphStats {
    /// 1 + the highest user id in any relation.
    pub users: u32,
    /// Follow edges.
    pub follows: u64,
    /// Blocks.
    pub blocks: u64,
    /// Mutes.
    pub mutes: u64,
    /// Changes in the op log since the snapshot.
    pub ops_since_snapshot: u64,
    /// Bytes of the mapped snapshot file.
    pub snapshot_bytes: u64,
    /// Bytes of the overlay: a slot per user plus the recent changes.
    pub overlay_bytes: u64,
}
