//! Helpers shared by the engine's integration tests: the specification of the three
//! streams (home timeline, user stream, mentions) written out as a plain scan over
//! every notice, relation sets to evaluate it against, a model built from a live
//! engine's log and graph, and a reader that pages through a stream checking the
//! paging contract on every page. Not a test itself; each test file uses what it needs.
//!
//! Streams are ordered by (time, id), newest first: a notice's time is its
//! `published_ms`; a *late* notice (time below an earlier notice's) neither falls off
//! by rule 7 nor counts in its window.
//!
//! The scan is deliberately naive (every notice, newest first, every rule spelled
//! out) and shares no code with `src/engine/read.rs`, so that the two can disagree.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use feedcore::{Engine, NoticeId, Page, Scope, TimelinePage, UserId};

/// The repeat fall-off window of the specification (rule 7).
pub const REPEAT_WINDOW: usize = 40;

/// What the rules need to know about one notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub id: u64,
    pub author: u32,
    /// Without duplicates.
    pub mentions: Vec<u32>,
    pub scope: Scope,
    pub reply_to: Option<u64>,
    /// The author of `reply_to` when this notice was posted (kept when it is deleted).
    pub reply_to_author: Option<u32>,
    pub repeat_of: Option<u64>,
    pub deleted: bool,
    /// The time it is placed by (`NoticeRef::published_ms`).
    pub key: u64,
    /// Its time is below that of a notice stored before it.
    pub late: bool,
}

/// Relations as plain sets of directed pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relations {
    /// `(follower, followee)`.
    pub follows: BTreeSet<(u32, u32)>,
    /// `(blocker, blocked)`.
    pub blocks: BTreeSet<(u32, u32)>,
    /// `(muter, muted)`.
    pub mutes: BTreeSet<(u32, u32)>,
}

impl Relations {
    pub fn follows(&self, a: u32, b: u32) -> bool {
        self.follows.contains(&(a, b))
    }

    pub fn mutes(&self, a: u32, b: u32) -> bool {
        self.mutes.contains(&(a, b))
    }

    /// A block between `a` and `b`, in either direction.
    pub fn blocked_either(&self, a: u32, b: u32) -> bool {
        self.blocks.contains(&(a, b)) || self.blocks.contains(&(b, a))
    }

    /// The graph's relations among users `0..users`, as they stand now. A block read
    /// this way is recorded in both directions (the graph answers "either way").
    pub fn from_engine(engine: &Engine, users: u32) -> Relations {
        let graph = engine.graph();
        let mut r = Relations::default();
        for a in 0..users {
            for b in 0..users {
                let (ua, ub) = (UserId(a), UserId(b));
                if graph.is_following(ua, ub) {
                    r.follows.insert((a, b));
                }
                if graph.is_muted(ua, ub) {
                    r.mutes.insert((a, b));
                }
                if graph.is_blocked(ua, ub) {
                    r.blocks.insert((a, b));
                }
            }
        }
        r
    }
}

/// Every notice (deleted ones flagged) and the relations: enough to compute every
/// stream of every user.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub notices: BTreeMap<u64, Notice>,
    pub relations: Relations,
}

impl Model {
    /// The model of a live engine: every live notice of its log (a missing id counts as
    /// deleted) and the graph's relations among users `0..users`.
    pub fn from_engine(engine: &Engine, users: u32) -> Model {
        let mut notices = BTreeMap::new();
        let mut high = 0;
        for n in engine.log().iter_from(NoticeId(1)) {
            let key = n.published_ms();
            let late = key < high;
            high = high.max(key);
            let mut mentions: Vec<u32> = Vec::new();
            for m in n.mentions() {
                if !mentions.contains(&m.0) {
                    mentions.push(m.0);
                }
            }
            notices.insert(
                n.id().0,
                Notice {
                    id: n.id().0,
                    author: n.author().0,
                    mentions,
                    scope: n.scope(),
                    reply_to: n.reply_to().map(|i| i.0),
                    reply_to_author: n.reply_to_author().map(|u| u.0),
                    repeat_of: n.repeat_of().map(|i| i.0),
                    deleted: false,
                    key,
                    late,
                },
            );
        }
        Model {
            notices,
            relations: Relations::from_engine(engine, users),
        }
    }

    /// The place of `id` in the order: (time, id); an id never handed out is above
    /// every notice (0 below every one).
    pub fn pos(&self, id: u64) -> (u64, u64) {
        match self.notices.get(&id) {
            Some(n) => (n.key, id),
            None if id == 0 => (0, 0),
            None => (u64::MAX, id),
        }
    }

    /// Every notice, newest first in the order.
    fn ordered(&self) -> Vec<&Notice> {
        let mut v: Vec<&Notice> = self.notices.values().collect();
        v.sort_unstable_by_key(|n| std::cmp::Reverse((n.key, n.id)));
        v
    }

    /// The notice `id` when it exists and is not deleted.
    pub fn live(&self, id: u64) -> Option<&Notice> {
        self.notices.get(&id).filter(|n| !n.deleted)
    }

    /// Rule 1: not deleted, and a repeat only while its original is not deleted.
    fn alive_with_original(&self, n: &Notice) -> bool {
        !n.deleted && n.repeat_of.is_none_or(|o| self.live(o).is_some())
    }

    /// Rules 1 to 6 for reader `r`.
    fn passes_home_rules(&self, r: u32, n: &Notice) -> bool {
        if !self.alive_with_original(n) {
            return false;
        }
        if n.author == r {
            return true;
        }
        let rel = &self.relations;
        if !rel.follows(r, n.author) || rel.mutes(r, n.author) || rel.blocked_either(r, n.author) {
            return false;
        }
        let mentioned = n.mentions.contains(&r);
        if n.scope == Scope::Addressees && !mentioned {
            return false;
        }
        if n.reply_to.is_some() {
            let x = n
                .reply_to_author
                .expect("a reply records the author of its parent");
            if !(x == r || mentioned || rel.follows(r, x)) {
                return false;
            }
        }
        if let Some(o) = n.repeat_of {
            let x = self
                .live(o)
                .expect("rule 1 passed: the original is live")
                .author;
            if x != r && (rel.mutes(r, x) || rel.blocked_either(r, x)) {
                return false;
            }
        }
        true
    }

    /// The whole home timeline of `r`, newest first.
    pub fn home(&self, r: u32) -> Vec<u64> {
        let v: Vec<&Notice> = self
            .ordered()
            .into_iter()
            .filter(|n| self.passes_home_rules(r, n))
            .collect();
        // Rule 7: a repeat falls off when its original, or another repeat of it, is
        // among the REPEAT_WINDOW entries of V just after (older than) it; among the
        // notices in order only.
        let in_order: Vec<&Notice> = v.iter().copied().filter(|n| !n.late).collect();
        let hidden: BTreeSet<u64> = (0..in_order.len())
            .filter(|&i| match in_order[i].repeat_of {
                None => false,
                Some(o) => in_order[i + 1..(i + 1 + REPEAT_WINDOW).min(in_order.len())]
                    .iter()
                    .any(|w| w.id == o || w.repeat_of == Some(o)),
            })
            .map(|i| in_order[i].id)
            .collect();
        v.iter()
            .map(|n| n.id)
            .filter(|id| !hidden.contains(id))
            .collect()
    }

    /// The whole user stream of `a`, newest first.
    pub fn user_timeline(&self, a: u32) -> Vec<u64> {
        self.ordered()
            .into_iter()
            .filter(|n| n.author == a && self.alive_with_original(n))
            .map(|n| n.id)
            .collect()
    }

    /// The whole mention stream of `u`, newest first.
    pub fn mentions(&self, u: u32) -> Vec<u64> {
        let rel = &self.relations;
        self.ordered()
            .into_iter()
            .filter(|n| !n.deleted && n.mentions.contains(&u))
            .filter(|n| {
                n.author == u || !(rel.blocked_either(u, n.author) || rel.mutes(u, n.author))
            })
            .map(|n| n.id)
            .collect()
    }

    pub fn stream(&self, stream: Stream, user: u32) -> Vec<u64> {
        match stream {
            Stream::Home => self.home(user),
            Stream::User => self.user_timeline(user),
            Stream::Mentions => self.mentions(user),
        }
    }
}

/// The three streams a user has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Home,
    User,
    Mentions,
}

pub const STREAMS: [Stream; 3] = [Stream::Home, Stream::User, Stream::Mentions];

/// One page of `stream`.
pub fn page(engine: &Engine, stream: Stream, user: u32, page: Page) -> TimelinePage {
    let u = UserId(user);
    match stream {
        Stream::Home => engine.home_timeline(u, page),
        Stream::User => engine.user_timeline(u, u, page),
        Stream::Mentions => engine.mentions(u, page),
    }
    .unwrap_or_else(|e| panic!("{stream:?} of user {user}, {page:?}: {e}"))
}

/// The place of `id` in the order as `engine` has it: (time, id). For engines whose
/// cursors are live notices (or ids never handed out).
pub fn engine_pos(engine: &Engine) -> impl Fn(NoticeId) -> (u64, u64) + '_ {
    move |id| match engine.notice(id) {
        Some(n) => (n.published_ms(), id.0),
        None if id.0 == 0 => (0, 0),
        None if id.0 > engine.log().len() => (u64::MAX, id.0),
        // A deleted notice: its time is gone from the log's records; in a history
        // without late notices, the time of the live notice below it places it right.
        None => (
            (1..id.0)
                .rev()
                .find_map(|i| engine.notice(NoticeId(i)).map(|n| n.published_ms()))
                .unwrap_or(0),
            id.0,
        ),
    }
}

/// Checks one page against the paging contract: at most `limit` ids, strictly
/// descending in the order (`pos`), inside the bounds, `next` set exactly when the
/// page is full and then pointing below its last id with the same `since_id` and
/// limit.
pub fn check_page(
    asked: &Page,
    got: &TimelinePage,
    pos: &dyn Fn(NoticeId) -> (u64, u64),
) -> Result<(), String> {
    if got.ids.len() > asked.limit {
        return Err(format!(
            "{} ids for limit {}: {:?}",
            got.ids.len(),
            asked.limit,
            got.ids
        ));
    }
    if !got.ids.windows(2).all(|w| pos(w[0]) > pos(w[1])) {
        return Err(format!("not strictly descending: {:?}", got.ids));
    }
    if let (Some(max), Some(first)) = (asked.max_id, got.ids.first())
        && pos(*first) >= pos(max)
    {
        return Err(format!("{first:?} is not below max_id {max:?}"));
    }
    if let (Some(since), Some(last)) = (asked.since_id, got.ids.last())
        && pos(*last) <= pos(since)
    {
        return Err(format!("{last:?} is not above since_id {since:?}"));
    }
    let expected_next = (got.ids.len() == asked.limit).then(|| Page {
        since_id: asked.since_id,
        max_id: got.ids.last().copied(),
        limit: asked.limit,
    });
    if got.next != expected_next {
        return Err(format!(
            "next is {:?}, expected {expected_next:?} (page of {} ids, limit {})",
            got.next,
            got.ids.len(),
            asked.limit
        ));
    }
    Ok(())
}

/// Reads a whole stream by following `next` from `first`, checking every page;
/// returns the ids, newest first.
pub fn read_all(engine: &Engine, stream: Stream, user: u32, first: Page) -> Vec<u64> {
    read_all_by(engine, stream, user, first, &engine_pos(engine))
}

/// [`read_all`] with the order's places given by `pos`.
pub fn read_all_by(
    engine: &Engine,
    stream: Stream,
    user: u32,
    first: Page,
    pos: &dyn Fn(NoticeId) -> (u64, u64),
) -> Vec<u64> {
    let mut all: Vec<u64> = Vec::new();
    let mut next = Some(first);
    let mut pages = 0usize;
    while let Some(asked) = next {
        pages += 1;
        assert!(
            pages < 1_000_000,
            "{stream:?} of user {user}: paging does not end"
        );
        let got = page(engine, stream, user, asked);
        if let Err(e) = check_page(&asked, &got, pos) {
            panic!("{stream:?} of user {user}, page {pages} ({asked:?}): {e}");
        }
        all.extend(got.ids.iter().map(|i| i.0));
        next = got.next;
    }
    all
}
