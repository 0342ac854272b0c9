//! Reading streams: the home timeline (stored ring, then a pull merge below its floor),
//! the user stream, mentions; the visibility rules; rebuilds.
//!
//! A home timeline is, by definition, the reader's own notices and those of the
//! authors the reader follows now, under the rules (see `visible_home`), newest first.
//! The stored ring is a cache of the *candidates* (every notice pushed to the reader);
//! the rules are applied here, at read time, so that a follow, unfollow, block, mute or
//! delete takes effect at once.

use std::collections::{BinaryHeap, VecDeque};

use super::engine::Shared;
use crate::error::{Error, Result};
use crate::ids::{NoticeId, UserId};
use crate::notice::Scope;
use crate::timeline::{Page, TimelinePage};

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

/// The newest ids of one author's list below a bound, fetched a chunk at a time.
struct Cursor {
    author: u32,
    /// Ids fetched, newest first, not yet taken.
    buf: VecDeque<u64>,
    /// Fetch below this next.
    below: Option<u64>,
    exhausted: bool,
    chunk: usize,
}

/// A k-way merge of the per-author lists of the reader and the authors the reader
/// follows: the pull read of a home timeline, newest first.
pub(crate) struct PullMerge<'s> {
    shared: &'s Shared,
    cursors: Vec<Cursor>,
    heap: BinaryHeap<(u64, usize)>,
    scratch: Vec<u64>,
}

impl<'s> PullMerge<'s> {
    pub(crate) fn new(shared: &'s Shared, reader: u32, below: Option<u64>) -> PullMerge<'s> {
        let authors =
            std::iter::once(reader).chain(shared.graph.following(UserId(reader)).map(|u| u.0));
        let mut merge = PullMerge {
            shared,
            cursors: authors
                .map(|author| Cursor {
                    author,
                    buf: VecDeque::new(),
                    below,
                    exhausted: false,
                    chunk: 4,
                })
                .collect(),
            heap: BinaryHeap::new(),
            scratch: Vec::new(),
        };
        for i in 0..merge.cursors.len() {
            merge.refill(i);
            if let Some(&id) = merge.cursors[i].buf.front() {
                merge.heap.push((id, i));
            }
        }
        merge
    }

    fn refill(&mut self, i: usize) {
        let c = &mut self.cursors[i];
        if c.exhausted || !c.buf.is_empty() {
            return;
        }
        self.scratch.clear();
        let reached_oldest =
            self.shared
                .by_author
                .copy_below(c.author, c.below, c.chunk, &mut self.scratch);
        c.exhausted = reached_oldest;
        c.chunk = (c.chunk * 2).min(256);
        if let Some(&last) = self.scratch.last() {
            c.below = Some(last);
        }
        c.buf.extend(self.scratch.iter().copied());
    }
}

impl Iterator for PullMerge<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let (id, i) = self.heap.pop()?;
        let taken = self.cursors[i].buf.pop_front();
        debug_assert_eq!(taken, Some(id), "the heap holds each cursor's head");
        self.refill(i);
        if let Some(&next) = self.cursors[i].buf.front() {
            self.heap.push((next, i));
        }
        Some(id)
    }
}

/// Where a home read takes its candidates from.
enum Stage<'s> {
    /// The stored ring, below `below`.
    Stored,
    /// A pull merge (below the ring's floor, or the whole read when the ring is being
    /// rebuilt by another reader).
    Pull(Box<PullMerge<'s>>),
    Done,
}

/// The candidates of a home timeline, newest first, below a bound.
struct HomeCandidates<'s> {
    shared: &'s Shared,
    user: u32,
    below: Option<u64>,
    buf: VecDeque<u64>,
    scratch: Vec<u64>,
    stage: Stage<'s>,
}

impl<'s> HomeCandidates<'s> {
    fn new(shared: &'s Shared, user: u32, below: Option<u64>, from_ring: bool) -> Self {
        let stage = if from_ring {
            Stage::Stored
        } else {
            Stage::Pull(Box::new(PullMerge::new(shared, user, below)))
        };
        HomeCandidates {
            shared,
            user,
            below,
            buf: VecDeque::new(),
            scratch: Vec::new(),
            stage,
        }
    }
}

impl Iterator for HomeCandidates<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            if let Some(id) = self.buf.pop_front() {
                return Some(id);
            }
            match &mut self.stage {
                Stage::Stored => {
                    self.scratch.clear();
                    let copied = self.shared.timelines.copy_below(
                        self.user,
                        self.below,
                        64,
                        &mut self.scratch,
                    );
                    if let Some(&last) = self.scratch.last() {
                        self.below = Some(last);
                    }
                    self.buf.extend(self.scratch.iter().copied());
                    if copied.reached_oldest {
                        self.stage = if copied.floor > 0 {
                            // The ring holds every candidate at or above its floor; the
                            // rest comes from the authors' lists.
                            let below = self.below.map_or(copied.floor, |b| b.min(copied.floor));
                            Stage::Pull(Box::new(PullMerge::new(
                                self.shared,
                                self.user,
                                Some(below),
                            )))
                        } else {
                            Stage::Done
                        };
                    }
                }
                Stage::Pull(merge) => return merge.next(),
                Stage::Done => return None,
            }
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
    /// was quiet (or never read since open). False when another reader is rebuilding
    /// it right now: serve this read from a pull instead.
    fn ensure_ready(&self, user: u32) -> bool {
        let now = self.config.clock.now_ms();
        let window = self.config.active_window.as_millis() as u64;
        loop {
            let seen = self.timelines.state(user);
            if seen.fresh() && seen.active(now, window) {
                if !seen.ready() {
                    return false;
                }
                self.timelines.touch(user, seen, now);
                return true;
            }
            // Deliveries start (fresh) before the merge reads the authors' lists, so
            // nothing posted meanwhile is missed: whatever the ring loses to the
            // clearing below, the merge has.
            if !self.timelines.begin_rebuild(user, seen, now) {
                continue;
            }
            self.timelines.free(user);
            self.rebuild(user);
            self.timelines.end_rebuild(user);
            return true;
        }
    }

    fn rebuild(&self, user: u32) {
        self.rebuilds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let capacity = self.timelines.capacity() as usize;
        let mut merge = PullMerge::new(self, user, None);
        let mut ids: Vec<u64> = merge.by_ref().take(capacity).collect();
        let more = merge.next().is_some();
        ids.reverse();
        self.timelines.insert(user, &ids);
        if more {
            self.timelines.raise_floor(user, ids[0]);
        }
    }

    /// Merges `author`'s newest notices into `reader`'s stored timeline (after a new
    /// follow), keeping the ring's invariant: every candidate at or above the floor.
    pub(crate) fn merge_author(&self, reader: u32, author: u32) {
        if !self.timelines.state(reader).fresh() {
            return; // the next read rebuilds it, this author included
        }
        let capacity = self.timelines.capacity() as usize;
        let mut ids = Vec::with_capacity(capacity + 1);
        self.by_author
            .copy_below(author, None, capacity + 1, &mut ids);
        let more = ids.len() > capacity;
        ids.truncate(capacity);
        ids.reverse();
        self.timelines.insert(reader, &ids);
        if more {
            self.timelines.raise_floor(reader, ids[0]);
        }
    }

    /// A page of `user`'s home timeline.
    pub(crate) fn home_page(&self, user: u32, page: &Page, limit: usize) -> TimelinePage {
        let from_ring = self.ensure_ready(user);
        let mut candidates = HomeCandidates::new(self, user, page.max_id.map(|m| m.0), from_ring);
        let mut next_visible = || {
            candidates
                .by_ref()
                .find_map(|id| self.visible_home(user, id).map(|repeat_of| (id, repeat_of)))
        };
        // Visible entries not emitted yet, newest first: the look-ahead of the
        // fall-off rule.
        let mut ahead: VecDeque<(u64, Option<u64>)> = VecDeque::new();
        let mut ids = Vec::with_capacity(limit);
        loop {
            let Some((id, repeat_of)) = ahead.pop_front().or_else(&mut next_visible) else {
                break;
            };
            if page.since_id.is_some_and(|s| id <= s.0) {
                break;
            }
            if let Some(original) = repeat_of {
                while ahead.len() < REPEAT_WINDOW {
                    match next_visible() {
                        Some(entry) => ahead.push_back(entry),
                        None => break,
                    }
                }
                if ahead
                    .iter()
                    .any(|&(i, r)| i == original || r == Some(original))
                {
                    continue;
                }
            }
            ids.push(NoticeId(id));
            if ids.len() == limit {
                break;
            }
        }
        finish(ids, page, limit)
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

/// A full page points at the next older one; a short page is the last.
fn finish(ids: Vec<NoticeId>, page: &Page, limit: usize) -> TimelinePage {
    let next = (ids.len() == limit).then(|| Page {
        since_id: page.since_id,
        max_id: ids.last().copied(),
        limit,
    });
    TimelinePage { ids, next }
}
