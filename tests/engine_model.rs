//! Guards the Engine against its specification: proptest-generated sequences of
//! follows, unfollows, blocks, unblocks, mutes, unmutes, posts (mentions, every scope),
//! replies and repeats (also of deleted or missing notices, which must be refused with
//! nothing written), empty bodies, deletes, reads, quiet spells past the activity
//! window and reopens run against a plain model that keeps its own notices and
//! relation sets and computes every stream by scanning every notice with the rules.
//! Every read pages through the home timeline, the user stream and the mentions with a
//! random page size (timelines hold 1 to 4 entries, so deeper pages come from the pull
//! merge) and must equal the model, page by page within the paging contract. Posts
//! are local, or remote with a `published` time before the clock (placed by it: late
//! when older than what is stored), after it (clamped to the clock), or before 2006
//! (refused); every stream is ordered by (time, id).

mod engine_common;

use std::path::Path;
use std::time::Duration;

use engine_common::{Model, Notice, Relations, STREAMS, read_all_by};
use feedcore::{
    Clock, Config, Durability, Engine, Error, NewNotice, NoticeId, Page, SEGMENT_BYTES_MIN, Scope,
    UserId,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;

/// Users the operations are among (`users_max` is a little larger).
const USERS: u32 = 6;
const USERS_MAX: u32 = 8;
const FOLLOWING_MAX: u32 = 4;
const ACTIVE_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Follow,
    Unfollow,
    Block,
    Unblock,
    Mute,
    Unmute,
}

/// A notice an operation names: one of those posted so far (picked by `index`), or,
/// when `missing` or when nothing was posted yet, an id the log never handed out.
#[derive(Clone, Debug)]
struct Target {
    index: Index,
    missing: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Relation(Kind, u32, u32),
    Post {
        author: u32,
        mentions: Vec<u32>,
        scope: Scope,
        /// A remote notice published this many milliseconds before the clock
        /// (negative: after it); `i64::MIN`: in 1970, refused.
        published: Option<i64>,
    },
    Reply {
        author: u32,
        to: Target,
        mentions: Vec<u32>,
        scope: Scope,
    },
    /// A repeat of the target, or, with `of_original`, of the notice the target
    /// repeats when it is a repeat itself.
    Repeat {
        author: u32,
        of: Target,
        of_original: bool,
        mentions: Vec<u32>,
        scope: Scope,
    },
    /// A post with an empty body that is not a repeat: refused.
    EmptyBody {
        author: u32,
    },
    Delete(Target),
    /// Pages through the three streams of `user` after a flush; the first page has
    /// optional bounds picked among the notices posted so far.
    Read {
        user: u32,
        limit: usize,
        since: Option<Index>,
        max: Option<Index>,
    },
    /// The clock moves past the activity window: nobody has read lately.
    Quiet,
    /// The engine is dropped and opened again on the same directory.
    Reopen,
}

fn user() -> impl Strategy<Value = u32> {
    0..USERS
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        3 => Just(Scope::Public),
        2 => Just(Scope::Followers),
        2 => Just(Scope::Addressees),
    ]
}

/// Users mentioned: also the two who never act, whose mention streams the final check
/// reads.
fn mentions() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0..USERS_MAX, 0..3)
}

/// Two posts in five are remote: published up to five hours before the clock, a few
/// up to a minute after it, a few in 1970.
fn published() -> impl Strategy<Value = Option<i64>> {
    prop::option::weighted(
        0.4,
        prop_oneof![
            12 => 0..18_000_000i64,
            2 => -60_000..0i64,
            1 => Just(i64::MIN),
        ],
    )
}

fn target() -> impl Strategy<Value = Target> {
    (any::<Index>(), prop::bool::weighted(0.08))
        .prop_map(|(index, missing)| Target { index, missing })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        8 => Just(Kind::Follow),
        2 => Just(Kind::Unfollow),
        1 => Just(Kind::Block),
        1 => Just(Kind::Unblock),
        1 => Just(Kind::Mute),
        1 => Just(Kind::Unmute),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (kind(), user(), user()).prop_map(|(k, a, b)| Op::Relation(k, a, b)),
        20 => (user(), mentions(), scope(), published())
            .prop_map(|(author, mentions, scope, published)| Op::Post { author, mentions, scope, published }),
        8 => (user(), target(), mentions(), scope())
            .prop_map(|(author, to, mentions, scope)| Op::Reply { author, to, mentions, scope }),
        10 => (user(), target(), any::<bool>(), mentions(), scope()).prop_map(
            |(author, of, of_original, mentions, scope)| Op::Repeat { author, of, of_original, mentions, scope }
        ),
        1 => user().prop_map(|author| Op::EmptyBody { author }),
        5 => target().prop_map(Op::Delete),
        16 => (
            user(),
            1..=5usize,
            prop::option::weighted(0.15, any::<Index>()),
            prop::option::weighted(0.15, any::<Index>()),
        )
            .prop_map(|(user, limit, since, max)| Op::Read { user, limit, since, max }),
        2 => Just(Op::Quiet),
        2 => Just(Op::Reopen),
    ]
}

fn config(clock: &Clock, timeline_capacity: u32) -> Config {
    Config {
        users_max: USERS_MAX,
        following_max: FOLLOWING_MAX,
        timeline_capacity,
        active_window: ACTIVE_WINDOW,
        durability: Durability::Buffered,
        segment_bytes: SEGMENT_BYTES_MIN,
        workers: 2,
        fanout_chunk: 2,
        clock: clock.clone(),
        ..Default::default()
    }
}

/// The model's side: notices, relations, and how many ids the log handed out.
struct State {
    model: Model,
    appended: u64,
    /// The highest time of the notices posted so far.
    high: u64,
}

/// Why the model refuses a relation change.
#[derive(Debug, PartialEq, Eq)]
struct Refused;

impl State {
    fn relation(&mut self, kind: Kind, a: u32, b: u32) -> Result<bool, Refused> {
        if a == b {
            return Err(Refused);
        }
        let r: &mut Relations = &mut self.model.relations;
        Ok(match kind {
            Kind::Follow => {
                if r.blocked_either(a, b) {
                    return Err(Refused);
                }
                if r.follows(a, b) {
                    false
                } else if r.follows.iter().filter(|&&(f, _)| f == a).count()
                    >= FOLLOWING_MAX as usize
                {
                    return Err(Refused);
                } else {
                    r.follows.insert((a, b))
                }
            }
            Kind::Unfollow => r.follows.remove(&(a, b)),
            Kind::Block => {
                let new = r.blocks.insert((a, b));
                if new {
                    r.follows.remove(&(a, b));
                    r.follows.remove(&(b, a));
                }
                new
            }
            Kind::Unblock => r.blocks.remove(&(a, b)),
            Kind::Mute => r.mutes.insert((a, b)),
            Kind::Unmute => r.mutes.remove(&(a, b)),
        })
    }

    /// The id a target names.
    fn target(&self, t: &Target) -> u64 {
        if t.missing || self.appended == 0 {
            self.appended + 1 + t.index.index(3) as u64
        } else {
            1 + t.index.index(self.appended as usize) as u64
        }
    }

    fn bound(&self, i: &Index) -> Option<NoticeId> {
        (self.appended > 0).then(|| NoticeId(1 + i.index(self.appended as usize) as u64))
    }

    /// What a reopen knows of the times: a deleted notice's time is gone from the
    /// log, so it counts as in order at the highest time below it, and raises
    /// nothing; the notices after it are late or not against the times left.
    fn reopened(&mut self) {
        self.high = 0;
        for n in self.model.notices.values_mut() {
            if n.deleted {
                n.key = self.high;
                n.late = false;
            } else {
                n.late = n.key < self.high;
                self.high = self.high.max(n.key);
            }
        }
    }

    /// Records a notice the engine accepted as `id`; `published` is its clamped
    /// time, for a remote notice that gave one. A local post (time 0 here) is raised
    /// to the highest time stored.
    fn add(&mut self, id: u64, mut notice: Notice, published: Option<u64>) {
        notice.key = published.unwrap_or(self.high);
        notice.late = notice.key < self.high;
        self.high = self.high.max(notice.key);
        assert_eq!(
            id,
            self.appended + 1,
            "ids are handed out one after another"
        );
        self.appended = id;
        notice.id = id;
        let mut seen = Vec::new();
        notice.mentions.retain(|m| {
            let first = !seen.contains(m);
            seen.push(*m);
            first
        });
        self.model.notices.insert(id, notice);
    }
}

fn notice(author: u32, mentions: &[u32], scope: Scope) -> Notice {
    Notice {
        id: 0,
        author,
        mentions: mentions.to_vec(),
        scope,
        reply_to: None,
        reply_to_author: None,
        repeat_of: None,
        deleted: false,
        key: 0,
        late: false,
    }
}

fn new_notice(author: u32, body: &str, mentions: &[u32], scope: Scope) -> NewNotice {
    NewNotice {
        author: UserId(author),
        body: body.into(),
        mentions: mentions.iter().map(|&m| UserId(m)).collect(),
        scope,
        ..Default::default()
    }
}

fn relation(engine: &Engine, kind: Kind, a: u32, b: u32) -> feedcore::Result<bool> {
    let (a, b) = (UserId(a), UserId(b));
    match kind {
        Kind::Follow => engine.follow(a, b),
        Kind::Unfollow => engine.unfollow(a, b),
        Kind::Block => engine.block(a, b),
        Kind::Unblock => engine.unblock(a, b),
        Kind::Mute => engine.mute(a, b),
        Kind::Unmute => engine.unmute(a, b),
    }
}

/// Posts `n` to the engine and the model: both accept it, or the engine refuses it as
/// an invalid notice with nothing written (`refused`).
fn post(
    engine: &Engine,
    state: &mut State,
    step: usize,
    n: NewNotice,
    model: Notice,
    refused: bool,
    now_ms: u64,
) -> Result<(), TestCaseError> {
    let before = engine.log().len();
    match engine.post(n.clone()) {
        Ok(id) => {
            prop_assert!(!refused, "step {step}: {n:?} was accepted as {id:?}");
            state.add(id.0, model, n.published.map(|p| p.min(now_ms)));
        }
        Err(Error::InvalidNotice { .. }) => {
            prop_assert!(refused, "step {step}: {n:?} was refused");
            prop_assert_eq!(engine.log().len(), before, "step {}: nothing written", step);
        }
        Err(e) => prop_assert!(false, "step {step}: {n:?}: {e}"),
    }
    Ok(())
}

/// Compares the three streams of `user` with the model, paging from `first`.
fn compare(
    engine: &Engine,
    model: &Model,
    user: u32,
    first: Page,
    when: &str,
) -> Result<(), TestCaseError> {
    engine.flush().unwrap();
    for stream in STREAMS {
        let got = read_all_by(engine, stream, user, first, &|id| model.pos(id.0));
        let expected: Vec<u64> = model
            .stream(stream, user)
            .into_iter()
            .filter(|&id| {
                first
                    .since_id
                    .is_none_or(|s| model.pos(id) > model.pos(s.0))
            })
            .filter(|&id| first.max_id.is_none_or(|m| model.pos(id) < model.pos(m.0)))
            .collect();
        prop_assert_eq!(
            &got,
            &expected,
            "{}: {:?} of user {} paged from {:?}",
            when,
            stream,
            user,
            first
        );
    }
    Ok(())
}

fn run(ops: Vec<Op>, timeline_capacity: u32, final_limit: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(1_700_000_000_000);
    let open = |dir: &Path| Engine::open(dir, config(&clock, timeline_capacity)).unwrap();
    let mut engine = open(dir.path());
    let mut state = State {
        model: Model::default(),
        appended: 0,
        high: 0,
    };
    for (step, op) in ops.iter().enumerate() {
        match op {
            &Op::Relation(kind, a, b) => {
                let expected = state.relation(kind, a, b);
                let got = relation(&engine, kind, a, b);
                match (&got, &expected) {
                    (Ok(g), Ok(e)) => prop_assert_eq!(g, e, "step {}: {:?}", step, op),
                    (Err(Error::InvalidRelation { .. }), Err(Refused)) => {}
                    _ => prop_assert!(
                        false,
                        "step {step}: {op:?}: got {got:?}, model {expected:?}"
                    ),
                }
            }
            Op::Post {
                author,
                mentions,
                scope,
                published,
            } => {
                let now = clock.now_ms();
                let n = NewNotice {
                    published: published.map(|ago| {
                        if ago == i64::MIN {
                            0
                        } else {
                            now.saturating_add_signed(-ago)
                        }
                    }),
                    uri: published.map(|_| format!("https://remote.example/{step}")),
                    ..new_notice(*author, &format!("post {step}"), mentions, *scope)
                };
                post(
                    &engine,
                    &mut state,
                    step,
                    n,
                    notice(*author, mentions, *scope),
                    *published == Some(i64::MIN),
                    now,
                )?;
            }
            Op::Reply {
                author,
                to,
                mentions,
                scope,
            } => {
                let parent = state.target(to);
                let parent_author = state.model.live(parent).map(|p| p.author);
                let n = NewNotice {
                    reply_to: Some(NoticeId(parent)),
                    ..new_notice(*author, &format!("reply {step}"), mentions, *scope)
                };
                let m = Notice {
                    reply_to: Some(parent),
                    reply_to_author: parent_author,
                    ..notice(*author, mentions, *scope)
                };
                post(
                    &engine,
                    &mut state,
                    step,
                    n,
                    m,
                    parent_author.is_none(),
                    clock.now_ms(),
                )?;
            }
            Op::Repeat {
                author,
                of,
                of_original,
                mentions,
                scope,
            } => {
                let mut original = state.target(of);
                if *of_original
                    && let Some(o) = state.model.notices.get(&original).and_then(|n| n.repeat_of)
                {
                    original = o;
                }
                let refused = state.model.live(original).is_none();
                let n = NewNotice {
                    repeat_of: Some(NoticeId(original)),
                    ..new_notice(*author, "", mentions, *scope)
                };
                let m = Notice {
                    repeat_of: Some(original),
                    ..notice(*author, mentions, *scope)
                };
                post(&engine, &mut state, step, n, m, refused, clock.now_ms())?;
            }
            Op::EmptyBody { author } => {
                let n = new_notice(*author, "", &[], Scope::Public);
                post(
                    &engine,
                    &mut state,
                    step,
                    n,
                    notice(*author, &[], Scope::Public),
                    true,
                    clock.now_ms(),
                )?;
            }
            Op::Delete(t) => {
                let id = state.target(t);
                let got = engine.delete(NoticeId(id));
                match state.model.notices.get_mut(&id).filter(|n| !n.deleted) {
                    Some(n) => {
                        prop_assert!(got.is_ok(), "step {step}: delete {id}: {got:?}");
                        n.deleted = true;
                    }
                    None => prop_assert!(
                        matches!(got, Err(Error::UnknownNotice { .. })),
                        "step {step}: delete of missing or deleted {id}: {got:?}"
                    ),
                }
            }
            Op::Read {
                user,
                limit,
                since,
                max,
            } => {
                let mut since_id = since.as_ref().and_then(|i| state.bound(i));
                let max_id = max.as_ref().and_then(|i| state.bound(i));
                if let (Some(s), Some(m)) = (since_id, max_id)
                    && state.model.pos(s.0) >= state.model.pos(m.0)
                {
                    since_id = None;
                }
                let first = Page {
                    since_id,
                    max_id,
                    limit: *limit,
                };
                compare(&engine, &state.model, *user, first, &format!("step {step}"))?;
            }
            Op::Quiet => clock.advance(ACTIVE_WINDOW + Duration::from_secs(1)),
            Op::Reopen => {
                drop(engine);
                engine = open(dir.path());
                state.reopened();
            }
        }
    }
    // Everything, for everyone, at the end.
    for user in 0..USERS_MAX {
        compare(
            &engine,
            &state.model,
            user,
            Page::latest(final_limit),
            "at the end",
        )?;
    }
    let stats = engine.stats();
    prop_assert_eq!(stats.pending_posts, 0);
    prop_assert_eq!(
        stats.notices - stats.deleted,
        state.model.notices.values().filter(|n| !n.deleted).count() as u64
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES overrides, for a longer hunt.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(96),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_agrees_with_the_specification(
        ops in prop::collection::vec(op(), 1..60),
        timeline_capacity in 1..=4u32,
        final_limit in 1..=5usize,
    ) {
        run(ops, timeline_capacity, final_limit)?;
    }
}
