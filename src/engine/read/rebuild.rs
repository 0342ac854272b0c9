//! Making a stored timeline servable: rebuilding it from the authors' lists after a
//! quiet spell or a restart, and merging one author in after a follow.

use std::sync::atomic::Ordering;

use super::plan::ReadPlan;
use super::pull_merge::{NOT_AUTHOR, PullMerge, ReadCost, Source};
use crate::engine::facade::Shared;
use crate::ids::UserId;
use crate::timeline::State;

impl Shared {
    /// Makes sure `user`'s stored timeline may be served; rebuilds it when the user
    /// was quiet (or never read since open). Returns the activity word it found (or
    /// made) ready, which the read checks its ring fetches against; `None` when another
    /// reader is rebuilding it right now: serve this read from a pull instead.
    pub(super) fn ensure_ready(&self, user: u32, plan: &ReadPlan) -> Option<State> {
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

    /// Fills `user`'s ring with the newest `capacity` candidates the strategy pushes
    /// (and those of the user's groups and followed tags, which are always pushed),
    /// and sets its floor when older ones exist.
    pub(super) fn rebuild(&self, user: u32) {
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        let capacity = self.timelines.capacity() as usize;
        let ctx = self.strategy_ctx();
        let mut merge = PullMerge::everything(self, user, None);
        let mut kept = merge.by_ref().filter(|&(id, author)| {
            author == NOT_AUTHOR || self.strategy.push_to(&ctx, id, author, user)
        });
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
        self.merge_list(reader, Source::Author, author);
    }

    /// Merges the newest notices of a group's or a tag's list into `reader`'s stored
    /// timeline (after a join or a tag follow): all of them, as a delivery would.
    pub(crate) fn merge_stream(&self, reader: u32, source: Source, key: u32) {
        self.merge_list(reader, source, key);
    }

    fn merge_list(&self, reader: u32, source: Source, key: u32) {
        if !self.strategy.pushes() || !self.timelines.state(reader).fresh() {
            return; // nothing stored, or the next read rebuilds it, this list included
        }
        let capacity = self.timelines.capacity() as usize;
        let mut ids = Vec::with_capacity(capacity + 1);
        let lists = match source {
            Source::Author => &self.by_author,
            Source::Group => &self.by_group,
            Source::Tag => &self.by_tag,
        };
        lists.copy_below(key, None, capacity + 1, &mut ids);
        self.add_read_cost(ReadCost {
            author_ids: ids.len() as u64,
            ..ReadCost::default()
        });
        let more = ids.len() > capacity;
        ids.truncate(capacity);
        let oldest = ids.last().copied();
        let ctx = self.strategy_ctx();
        if source == Source::Author {
            ids.retain(|&id| self.strategy.push_to(&ctx, id, key, reader));
        }
        ids.reverse();
        let written = self.timelines.insert(reader, &ids);
        self.add_merged(written as u64);
        if more && let Some(oldest) = oldest {
            self.timelines.raise_floor(reader, oldest);
        }
    }
}
