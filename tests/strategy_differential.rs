//! Guards the strategies' contract: on any history of follows, unfollows, blocks,
//! mutes, posts, replies, repeats, deletes, group joins, leaves and posts, tag follows,
//! unfollows and tagged posts, reads, quiet spells and reopens, push, hybrid and
//! selective page exactly the same ids as pull (the reference) for every reader and
//! every page size, before and after reopen; lossy pages a subset of pull's. The group,
//! tag and public streams page the same under every strategy. Posts are local, or
//! remote with a `published` time minutes to hours before the clock (late when older
//! than what is stored, placed by their time); every stream pages in the order (by
//! time, then id).

use std::time::Duration;

use feedcore::{
    Clock, Config, Durability, Engine, GroupId, NewNotice, NoticeId, Page, Scope, Strategy, UserId,
};
use proptest::prelude::{Just, ProptestConfig, any, prop_oneof, proptest};
use proptest::strategy::Strategy as _;

const USERS: u32 = 7;
/// Groups created in every store at the start.
const GROUPS: u32 = 2;
/// Tags the history uses.
const TAGS: [&str; 2] = ["red", "blue"];

#[derive(Clone, Debug)]
enum Op {
    Follow(u32, u32),
    Unfollow(u32, u32),
    Block(u32, u32),
    Unblock(u32, u32),
    Mute(u32, u32),
    Post {
        author: u32,
        mention: Option<u32>,
        addressees: bool,
        /// A remote notice published this many minutes before the clock.
        published: Option<u32>,
    },
    Reply {
        author: u32,
        to: usize,
    },
    Repeat {
        author: u32,
        of: usize,
    },
    Delete(usize),
    Join(u32, u32),
    Leave(u32, u32),
    GroupPost {
        author: u32,
        group: u32,
        by_name: bool,
        followers_only: bool,
        published: Option<u32>,
    },
    FollowTag(u32, usize),
    UnfollowTag(u32, usize),
    TagPost {
        author: u32,
        tag: usize,
        group: Option<u32>,
        followers_only: bool,
        published: Option<u32>,
    },
    Read {
        user: u32,
        page: usize,
    },
    Advance {
        minutes: u32,
    },
    Quiet,
    Reopen,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    let u = 0..USERS;
    prop_oneof![
        6 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Follow(a, b)),
        1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Unfollow(a, b)),
        1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Block(a, b)),
        1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Unblock(a, b)),
        1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Mute(a, b)),
        8 => (u.clone(), proptest::option::of(u.clone()), any::<bool>(), published())
            .prop_map(|(author, mention, addressees, published)| Op::Post { author, mention, addressees, published }),
        2 => (u.clone(), any::<usize>()).prop_map(|(author, to)| Op::Reply { author, to }),
        2 => (u.clone(), any::<usize>()).prop_map(|(author, of)| Op::Repeat { author, of }),
        1 => any::<usize>().prop_map(Op::Delete),
        3 => (u.clone(), 0..GROUPS).prop_map(|(a, g)| Op::Join(a, g)),
        1 => (u.clone(), 0..GROUPS).prop_map(|(a, g)| Op::Leave(a, g)),
        4 => (u.clone(), 0..GROUPS, any::<bool>(), proptest::bool::weighted(0.2), published()).prop_map(
            |(author, group, by_name, followers_only, published)| Op::GroupPost {
                author,
                group,
                by_name,
                followers_only,
                published,
            }
        ),
        2 => (u.clone(), 0..TAGS.len()).prop_map(|(a, t)| Op::FollowTag(a, t)),
        1 => (u.clone(), 0..TAGS.len()).prop_map(|(a, t)| Op::UnfollowTag(a, t)),
        3 => (
            u.clone(),
            0..TAGS.len(),
            proptest::option::weighted(0.3, 0..GROUPS),
            proptest::bool::weighted(0.2),
            published()
        )
            .prop_map(|(author, tag, group, followers_only, published)| Op::TagPost {
                author,
                tag,
                group,
                followers_only,
                published,
            }),
        5 => (u.clone(), 1usize..6).prop_map(|(user, page)| Op::Read { user, page }),
        2 => (1u32..240).prop_map(|minutes| Op::Advance { minutes }),
        1 => Just(Op::Quiet),
        1 => Just(Op::Reopen),
    ]
}

/// A third of the posts are remote, published up to ten hours before the clock.
fn published() -> impl proptest::strategy::Strategy<Value = Option<u32>> {
    proptest::option::weighted(0.35, 0u32..600)
}

const STRATEGIES: [Strategy; 5] = [
    Strategy::Pull,
    Strategy::Push,
    Strategy::Hybrid { followers_min: 2 },
    Strategy::Selective {
        push_threshold: 1.0,
    },
    Strategy::Lossy {
        follows_reasonable: 2,
    },
];

struct Lab {
    dirs: Vec<tempfile::TempDir>,
    engines: Vec<Engine>,
    clock: Clock,
    capacity: u32,
}

fn config(strategy: Strategy, clock: &Clock, capacity: u32) -> Config {
    Config {
        users_max: USERS,
        timeline_capacity: capacity,
        durability: Durability::Buffered,
        workers: 2,
        fanout_chunk: 2,
        clock: clock.clone(),
        strategy,
        ..Default::default()
    }
}

impl Lab {
    fn new(capacity: u32) -> Lab {
        // After 2006-03-21: remote notices give `published` times from then on.
        let clock = Clock::manual(1_700_000_000_000);
        let dirs: Vec<_> = STRATEGIES
            .iter()
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let engines: Vec<Engine> = STRATEGIES
            .iter()
            .zip(&dirs)
            .map(|(s, d)| Engine::open(d.path(), config(*s, &clock, capacity)).unwrap())
            .collect();
        for e in &engines {
            for g in 0..GROUPS {
                assert_eq!(
                    e.create_group(UserId(0), format!("g{g}")).unwrap(),
                    GroupId(g)
                );
            }
        }
        Lab {
            dirs,
            engines,
            clock,
            capacity,
        }
    }

    fn reopen(&mut self) {
        self.engines.clear();
        self.engines = STRATEGIES
            .iter()
            .zip(&self.dirs)
            .map(|(s, d)| Engine::open(d.path(), config(*s, &self.clock, self.capacity)).unwrap())
            .collect();
    }

    /// Applies `f` to every engine; all must agree on the outcome (Ok value or error).
    fn all<T: PartialEq + std::fmt::Debug>(
        &self,
        f: impl Fn(&Engine) -> feedcore::Result<T>,
    ) -> Option<T> {
        let outcomes: Vec<_> = self.engines.iter().map(|e| f(e).ok()).collect();
        for o in &outcomes[1..] {
            assert_eq!(
                o, &outcomes[0],
                "engines disagree on an operation's outcome"
            );
        }
        outcomes.into_iter().next().flatten()
    }

    fn pages(e: &Engine, user: u32, size: usize) -> Vec<u64> {
        e.flush().unwrap();
        let mut all = Vec::new();
        let mut page = Some(Page::latest(size));
        while let Some(p) = page {
            let got = e.home_timeline(UserId(user), p).unwrap();
            assert!(got.ids.len() <= size);
            all.extend(got.ids.iter().map(|i| i.0));
            page = got.next;
        }
        all
    }

    /// Every page of the group, tag and public streams as `user` sees them.
    fn streams(e: &Engine, user: u32, size: usize) -> Vec<Vec<u64>> {
        let read = |f: &dyn Fn(Page) -> feedcore::Result<feedcore::TimelinePage>| {
            let mut all = Vec::new();
            let mut page = Some(Page::latest(size));
            while let Some(p) = page {
                let got = f(p).unwrap();
                all.extend(got.ids.iter().map(|i| i.0));
                page = got.next;
            }
            all
        };
        let r = UserId(user);
        let mut out = Vec::new();
        for g in 0..GROUPS {
            out.push(read(&|p| e.group_timeline(r, GroupId(g), p)));
        }
        for t in TAGS {
            out.push(read(&|p| match e.tag_timeline(r, t, p) {
                Err(feedcore::Error::UnknownTag { .. }) => Ok(Default::default()),
                other => other,
            }));
        }
        out.push(read(&|p| e.public_timeline(r, p)));
        out
    }

    fn check_reader(&self, user: u32, size: usize) {
        let streams = Lab::streams(&self.engines[0], user, size);
        for s in &streams {
            assert_ordered(&self.engines[0], s, "a stream");
        }
        for e in &self.engines[1..] {
            assert_eq!(Lab::streams(e, user, size), streams, "streams differ");
        }
        let reference = Lab::pages(&self.engines[0], user, size);
        assert_ordered(&self.engines[0], &reference, "pull's home timeline");
        for (strategy, e) in STRATEGIES.iter().zip(&self.engines).skip(1) {
            let got = Lab::pages(e, user, size);
            match strategy {
                Strategy::Lossy { .. } => {
                    assert!(
                        got.iter().all(|id| reference.contains(id)),
                        "lossy paged {got:?}, not a subset of pull's {reference:?}"
                    );
                }
                _ => assert_eq!(
                    got,
                    reference,
                    "{} differs from pull for reader {user}",
                    strategy.name()
                ),
            }
        }
    }
}

/// Asserts that `ids` come newest first in the order: by time, then id.
fn assert_ordered(e: &Engine, ids: &[u64], what: &str) {
    let pos: Vec<(u64, u64)> = ids
        .iter()
        .map(|&id| (e.notice(NoticeId(id)).unwrap().published_ms(), id))
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] > w[1]),
        "{what} not in the order: {pos:?}"
    );
}

/// The fields that make a notice remote and published `minutes` before the clock.
fn remote(clock: &Clock, serial: &mut u64, minutes: Option<u32>) -> NewNotice {
    let Some(minutes) = minutes else {
        return NewNotice::default();
    };
    *serial += 1;
    NewNotice {
        published: Some(clock.now_ms() - u64::from(minutes) * 60_000),
        uri: Some(format!("https://remote.example/{serial}")),
        ..Default::default()
    }
}

fn run(capacity: u32, ops: Vec<Op>) {
    let mut lab = Lab::new(capacity);
    let mut notices: Vec<NoticeId> = Vec::new();
    let mut serial = 0u64;
    for op in ops {
        match op {
            Op::Follow(a, b) => {
                lab.all(|e| e.follow(UserId(a), UserId(b)));
            }
            Op::Unfollow(a, b) => {
                lab.all(|e| e.unfollow(UserId(a), UserId(b)));
            }
            Op::Block(a, b) => {
                lab.all(|e| e.block(UserId(a), UserId(b)));
            }
            Op::Unblock(a, b) => {
                lab.all(|e| e.unblock(UserId(a), UserId(b)));
            }
            Op::Mute(a, b) => {
                lab.all(|e| e.mute(UserId(a), UserId(b)));
            }
            Op::Post {
                author,
                mention,
                addressees,
                published,
            } => {
                let n = NewNotice {
                    author: UserId(author),
                    body: "post".into(),
                    mentions: mention.map(UserId).into_iter().collect(),
                    scope: if addressees {
                        Scope::Addressees
                    } else {
                        Scope::Public
                    },
                    ..remote(&lab.clock, &mut serial, published)
                };
                if let Some(id) = lab.all(|e| e.post(n.clone())) {
                    notices.push(id);
                }
            }
            Op::Reply { author, to } if !notices.is_empty() => {
                let n = NewNotice {
                    author: UserId(author),
                    body: "reply".into(),
                    reply_to: Some(notices[to % notices.len()]),
                    ..Default::default()
                };
                if let Some(id) = lab.all(|e| e.post(n.clone())) {
                    notices.push(id);
                }
            }
            Op::Repeat { author, of } if !notices.is_empty() => {
                let n = NewNotice {
                    author: UserId(author),
                    repeat_of: Some(notices[of % notices.len()]),
                    ..Default::default()
                };
                if let Some(id) = lab.all(|e| e.post(n.clone())) {
                    notices.push(id);
                }
            }
            Op::Delete(i) if !notices.is_empty() => {
                let id = notices[i % notices.len()];
                lab.all(|e| e.delete(id));
            }
            Op::Join(a, g) => {
                lab.all(|e| e.join_group(UserId(a), GroupId(g)));
            }
            Op::Leave(a, g) => {
                lab.all(|e| e.leave_group(UserId(a), GroupId(g)));
            }
            Op::GroupPost {
                author,
                group,
                by_name,
                followers_only,
                published,
            } => {
                let n = NewNotice {
                    author: UserId(author),
                    body: if by_name {
                        format!("to !g{group}")
                    } else {
                        "to a group".into()
                    },
                    group: (!by_name).then_some(GroupId(group)),
                    scope: if followers_only {
                        Scope::Followers
                    } else {
                        Scope::Public
                    },
                    ..remote(&lab.clock, &mut serial, published)
                };
                if let Some(id) = lab.all(|e| e.post(n.clone())) {
                    notices.push(id);
                }
            }
            Op::FollowTag(a, t) => {
                lab.all(|e| e.follow_tag(UserId(a), TAGS[t]));
            }
            Op::UnfollowTag(a, t) => {
                lab.all(|e| e.unfollow_tag(UserId(a), TAGS[t]));
            }
            Op::TagPost {
                author,
                tag,
                group,
                followers_only,
                published,
            } => {
                let n = NewNotice {
                    author: UserId(author),
                    body: "tagged".into(),
                    tags: vec![format!("#{}", TAGS[tag].to_uppercase())],
                    groups: group.map(GroupId).into_iter().collect(),
                    scope: if followers_only {
                        Scope::Followers
                    } else {
                        Scope::Public
                    },
                    ..remote(&lab.clock, &mut serial, published)
                };
                if let Some(id) = lab.all(|e| e.post(n.clone())) {
                    notices.push(id);
                }
            }
            Op::Read { user, page } => lab.check_reader(user, page),
            Op::Advance { minutes } => lab
                .clock
                .advance(Duration::from_secs(u64::from(minutes) * 60)),
            Op::Quiet => lab.clock.advance(Duration::from_secs(8 * 24 * 3600)),
            Op::Reopen => {
                for e in &lab.engines {
                    e.flush().unwrap();
                }
                lab.reopen();
            }
            _ => {}
        }
    }
    for user in 0..USERS {
        lab.check_reader(user, 2);
    }
    lab.reopen();
    for user in 0..USERS {
        lab.check_reader(user, 4);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Small timelines (most reads continue below the floor) and roomy ones (reads
    /// trust the stored timeline and the strategy's pull bounds).
    #[test]
    fn every_strategy_pages_what_pull_pages(
        capacity in proptest::sample::select(vec![3u32, 64]),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(capacity, ops);
    }
}

/// Lossy keeps about min(1, K / F) of the deliveries to a reader following F authors.
#[test]
fn lossy_keeps_the_stated_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(1_000_000_000_000);
    let users = 41u32;
    let config = Config {
        users_max: users,
        timeline_capacity: 4000,
        durability: Durability::Buffered,
        clock: clock.clone(),
        strategy: Strategy::Lossy {
            follows_reasonable: 10,
        },
        ..Default::default()
    };
    let e = Engine::open(dir.path(), config).unwrap();
    // Reader 0 follows 40 authors: keeps each delivery with probability 10 / 40.
    for a in 1..users {
        e.follow(UserId(0), UserId(a)).unwrap();
    }
    e.home_timeline(UserId(0), Page::latest(1)).unwrap();
    let posts = 4000u64;
    for i in 0..posts {
        e.post(NewNotice {
            author: UserId(1 + (i % u64::from(users - 1)) as u32),
            body: "x".into(),
            ..Default::default()
        })
        .unwrap();
    }
    e.flush().unwrap();
    let page = e.home_timeline(UserId(0), Page::latest(200)).unwrap();
    let mut kept = page.ids.len() as u64;
    let mut next = page.next;
    while let Some(p) = next {
        let page = e.home_timeline(UserId(0), p).unwrap();
        kept += page.ids.len() as u64;
        next = page.next;
    }
    let fraction = kept as f64 / posts as f64;
    // Binomial(4000, 0.25): sd 0.0068; 5 sd either side.
    assert!((fraction - 0.25).abs() < 0.035, "kept {fraction}");
}

/// A history that once made selective lose notices decided before a reopen.
#[test]
fn selective_after_reopen_regression() {
    use Op::*;
    run(
        64,
        vec![
            Follow(1, 6),
            Post {
                author: 2,
                mention: None,
                addressees: false,
                published: None,
            },
            Repeat { author: 6, of: 0 },
            Repeat {
                author: 0,
                of: 5252974877828126808,
            },
            Post {
                author: 0,
                mention: Some(2),
                addressees: true,
                published: None,
            },
            Post {
                author: 4,
                mention: None,
                addressees: true,
                published: None,
            },
            Reply {
                author: 3,
                to: 12415883501046170606,
            },
            Repeat {
                author: 6,
                of: 16102266386587977905,
            },
            Post {
                author: 0,
                mention: Some(4),
                addressees: true,
                published: None,
            },
            Reopen,
            Post {
                author: 5,
                mention: None,
                addressees: true,
                published: None,
            },
            Post {
                author: 2,
                mention: Some(1),
                addressees: false,
                published: None,
            },
            Reply {
                author: 6,
                to: 2895033791443326585,
            },
            Follow(1, 3),
            Reply {
                author: 6,
                to: 18226327486478957396,
            },
            Repeat {
                author: 6,
                of: 16799181752725021442,
            },
            Post {
                author: 6,
                mention: Some(5),
                addressees: false,
                published: None,
            },
        ],
    );
}

/// Remote notices published before local ones already stored, with timelines smaller
/// than the history: every strategy pages them by time, as pull does.
#[test]
fn late_remote_notices_history() {
    use Op::*;
    let post = |author, published| Post {
        author,
        mention: None,
        addressees: false,
        published,
    };
    let tag_post = |author, tag, published| TagPost {
        author,
        tag,
        group: None,
        followers_only: false,
        published,
    };
    let group_post = |author, group, published| GroupPost {
        author,
        group,
        by_name: false,
        followers_only: false,
        published,
    };
    let mut ops = vec![
        Follow(0, 1),
        Follow(0, 2),
        Join(0, 1),
        FollowTag(0, 0),
        Read { user: 0, page: 2 },
    ];
    for i in 0..6 {
        ops.push(post(1, None));
        ops.push(Advance { minutes: 10 });
        ops.push(tag_post(3, 0, None));
        ops.push(post(2, Some(5 + 25 * i)));
        ops.push(tag_post(4, 0, Some(40 * i)));
        ops.push(group_post(5, 1, Some(7 * i)));
        ops.push(Read {
            user: 0,
            page: 1 + i as usize,
        });
    }
    ops.push(Reopen);
    ops.push(post(1, Some(1000)));
    run(3, ops.clone());
    run(64, ops);
}
