//! What a read leaves behind for the next one: ids it pulled kept in the ring, and the
//! switches of pairs its strategy turned to push.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::candidates::HomeCandidates;
use crate::engine::facade::{Shared, Switches};
use crate::fanout::strategy::Repair;

impl Shared {
    /// Keeps what a newest page took from lazy sources (`taken`, from sources with
    /// the switches `lazy`): the ids go into the ring and each author's switch moves
    /// down to the oldest id taken (the merge took every id of the author listed from
    /// the switch down to it; one listed late was decided under the new word, so its
    /// worker pushes it), so later reads find them in the ring. A switch that moved
    /// since the read planned is left alone.
    pub(super) fn keep_lazy(&self, user: u32, lazy: &[(u32, u64)], taken: &mut [(u32, u64)]) {
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
        let moved: Switches = current
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
}

/// The entries of `author` in `sorted` (sorted by author, then id: oldest first).
fn of_author(sorted: &[(u32, u64)], author: u32) -> &[(u32, u64)] {
    let start = sorted.partition_point(|&(a, _)| a < author);
    let end = start + sorted[start..].partition_point(|&(a, _)| a == author);
    &sorted[start..end]
}

/// The repairs a read offers its strategy (see `FanoutStrategy::on_read`).
pub(super) struct ReadRepair<'s, 'c> {
    pub(super) shared: &'s Shared,
    pub(super) user: u32,
    pub(super) page: Option<&'c HomeCandidates<'s>>,
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
