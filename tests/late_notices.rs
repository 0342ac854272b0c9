//! Guards the order of every stream by publication time: remote notices whose
//! `published` time is older than notices already stored are placed by their time, not
//! at the head, in the home, tag, public and user timelines, under every strategy; paging
//! with `since_id` / `max_id` returns every entry once, in the order, with small pages
//! and with timelines smaller than the history; the order survives a reopen; a
//! `published` in the future is clamped to the clock and one before 2006 is refused.

use std::path::Path;

use feedcore::{
    Clock, Config, Engine, Error, NewNotice, NoticeId, PUBLISHED_MS_MIN, Page, Scope, Strategy,
    TimelinePage, UserId,
};

const T0: u64 = 1_700_000_000_000;
const READER: UserId = UserId(0);
const LOCAL: UserId = UserId(1);
const REMOTE: UserId = UserId(2);

fn strategies() -> [Strategy; 4] {
    [
        Strategy::Push,
        Strategy::Pull,
        Strategy::Hybrid { followers_min: 1 },
        Strategy::Selective {
            push_threshold: 1.0,
        },
    ]
}

fn open(dir: &Path, strategy: Strategy, clock: &Clock) -> Engine {
    let config = Config {
        users_max: 8,
        timeline_capacity: 4,
        strategy,
        clock: clock.clone(),
        ..Default::default()
    };
    Engine::open(dir, config).unwrap()
}

/// Every page of a stream, following `next` from `Page::latest(limit)`.
fn page_all(read: impl Fn(Page) -> TimelinePage, limit: usize) -> Vec<NoticeId> {
    let (mut page, mut all) = (Some(Page::latest(limit)), Vec::new());
    while let Some(p) = page {
        let got = read(p);
        assert!(got.ids.len() <= limit);
        all.extend(&got.ids);
        page = got.next;
    }
    all
}

/// Posts local notices at T0 + 10 s * i, then remote ones published in between.
/// Returns every notice with its publication time.
fn populate(engine: &Engine, clock: &Clock) -> Vec<(u64, NoticeId)> {
    let mut all = Vec::new();
    for i in 0..12u64 {
        let t = T0 + 10_000 * i;
        clock.set_ms(t);
        let id = engine
            .post(NewNotice {
                author: LOCAL,
                body: format!("local {i} #x"),
                tags: vec!["x".into()],
                created_at_ms: t,
                ..Default::default()
            })
            .unwrap();
        all.push((t, id));
    }
    clock.set_ms(T0 + 200_000);
    // Backfill, newest first, as a remote server's outbox pages it.
    for i in (0..12u64).rev() {
        let t = T0 + 10_000 * i + 5_000;
        let id = engine
            .post(NewNotice {
                author: REMOTE,
                body: format!("remote {i} #x"),
                tags: vec!["x".into()],
                created_at_ms: T0 + 200_000,
                published: Some(t),
                uri: Some(format!("https://remote.example/notice/{i}")),
                ..Default::default()
            })
            .unwrap();
        all.push((t, id));
    }
    // A remote notice at the same time as a local one: placed after it (by id).
    let id = engine
        .post(NewNotice {
            author: REMOTE,
            body: "same time".into(),
            published: Some(T0 + 30_000),
            uri: Some("https://remote.example/notice/same".into()),
            ..Default::default()
        })
        .unwrap();
    all.push((T0 + 30_000, id));
    // A local post after the backfill: the head.
    clock.set_ms(T0 + 210_000);
    let id = engine
        .post(NewNotice {
            author: LOCAL,
            body: "after #x".into(),
            tags: vec!["x".into()],
            created_at_ms: T0 + 210_000,
            ..Default::default()
        })
        .unwrap();
    all.push((T0 + 210_000, id));
    engine.flush().unwrap();
    all
}

fn expected(all: &[(u64, NoticeId)], keep: impl Fn(NoticeId) -> bool) -> Vec<NoticeId> {
    let mut v: Vec<(u64, NoticeId)> = all.iter().copied().filter(|&(_, id)| keep(id)).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.into_iter().map(|(_, id)| id).collect()
}

fn check_streams(engine: &Engine, all: &[(u64, NoticeId)]) {
    let every = expected(all, |_| true);
    let tagged = expected(all, |id| engine.notice(id).unwrap().tags().count() > 0);
    let remote = expected(all, |id| engine.notice(id).unwrap().author() == REMOTE);
    for limit in [1, 3, 7, 200] {
        let home = page_all(|p| engine.home_timeline(READER, p).unwrap(), limit);
        assert_eq!(home, every, "home, pages of {limit}");
        let public = page_all(|p| engine.public_timeline(READER, p).unwrap(), limit);
        assert_eq!(public, every, "public, pages of {limit}");
        let tag = page_all(|p| engine.tag_timeline(READER, "x", p).unwrap(), limit);
        assert_eq!(tag, tagged, "tag, pages of {limit}");
        let user = page_all(|p| engine.user_timeline(READER, REMOTE, p).unwrap(), limit);
        assert_eq!(user, remote, "user stream, pages of {limit}");
    }
    // since_id and max_id are places in the order, whatever the ids.
    for (i, &since) in every.iter().enumerate() {
        let newer = engine
            .home_timeline(
                READER,
                Page {
                    since_id: Some(since),
                    max_id: None,
                    limit: 200,
                },
            )
            .unwrap();
        assert_eq!(newer.ids, every[..i], "home since {since}");
        for &max in &every[..i] {
            let between = engine
                .public_timeline(
                    READER,
                    Page {
                        since_id: Some(since),
                        max_id: Some(max),
                        limit: 200,
                    },
                )
                .unwrap();
            let from = every.iter().position(|&x| x == max).unwrap() + 1;
            assert_eq!(
                between.ids,
                every[from..i],
                "public between {since} and {max}"
            );
        }
        let backwards = engine.home_timeline(
            READER,
            Page {
                since_id: Some(every[0]),
                max_id: Some(since),
                limit: 10,
            },
        );
        if i > 0 {
            assert!(matches!(backwards, Err(Error::InvalidPage { .. })));
        }
    }
    for &(t, id) in all {
        assert_eq!(engine.notice(id).unwrap().published_ms(), t);
    }
}

#[test]
fn late_notices_are_placed_by_time_under_every_strategy_and_after_reopen() {
    for strategy in strategies() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(T0);
        let engine = open(dir.path(), strategy, &clock);
        engine.follow(READER, LOCAL).unwrap();
        engine.follow(READER, REMOTE).unwrap();
        // Read once so the reader's timeline is live and deliveries fill it.
        engine.home_timeline(READER, Page::latest(5)).unwrap();
        let all = populate(&engine, &clock);
        check_streams(&engine, &all);
        drop(engine);
        let engine = open(dir.path(), strategy, &clock);
        check_streams(&engine, &all);
    }
}

#[test]
fn published_times_are_clamped_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let engine = open(dir.path(), Strategy::Push, &clock);
    engine.follow(READER, REMOTE).unwrap();
    let remote = |published: u64, uri: &str| NewNotice {
        author: REMOTE,
        body: "hi".into(),
        published: Some(published),
        uri: Some(uri.into()),
        scope: Scope::Public,
        ..Default::default()
    };
    for absurd in [0, 1, PUBLISHED_MS_MIN - 1] {
        let got = engine.post(remote(absurd, "https://r.example/absurd"));
        assert!(matches!(got, Err(Error::InvalidNotice { .. })), "{got:?}");
    }
    assert_eq!(engine.log().len(), 0, "nothing written");
    let future = engine
        .post(remote(
            T0 + 365 * 24 * 3_600_000,
            "https://r.example/future",
        ))
        .unwrap();
    assert_eq!(engine.notice(future).unwrap().published_ms(), T0);
    clock.set_ms(T0 + 1000);
    let local = engine
        .post(NewNotice {
            author: READER,
            body: "mine".into(),
            created_at_ms: T0 + 1000,
            ..Default::default()
        })
        .unwrap();
    let oldest = engine
        .post(remote(PUBLISHED_MS_MIN, "https://r.example/oldest"))
        .unwrap();
    engine.flush().unwrap();
    let home = engine.home_timeline(READER, Page::latest(10)).unwrap();
    assert_eq!(home.ids, [local, future, oldest]);
    // A local post whose own time lies below what is stored is raised to it: the head.
    let early = engine
        .post(NewNotice {
            author: READER,
            body: "clock behind".into(),
            created_at_ms: T0 - 1,
            ..Default::default()
        })
        .unwrap();
    engine.flush().unwrap();
    assert_eq!(engine.notice(early).unwrap().published_ms(), T0 + 1000);
    let home = engine.home_timeline(READER, Page::latest(10)).unwrap();
    assert_eq!(home.ids, [early, local, future, oldest]);
    drop(home);
    drop(engine);
    let engine = open(dir.path(), Strategy::Push, &clock);
    let home = engine.home_timeline(READER, Page::latest(10)).unwrap();
    assert_eq!(home.ids, [early, local, future, oldest], "after reopen");
}
