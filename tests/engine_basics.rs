//! Guards the Engine's contract end to end: posting and fan-out into home timelines,
//! the user and mention streams, paging, and each visibility rule (own notices,
//! follow brings earlier notices, unfollow takes them out, delete, block, mute,
//! replies, repeats, scope, going quiet), also after reopen.

use std::time::Duration;

use feedcore::{Clock, Config, Engine, Error, NewNotice, NoticeId, Page, Scope, UserId};

const DAY_MS: u64 = 24 * 3600 * 1000;

fn config(clock: &Clock) -> Config {
    Config {
        users_max: 100,
        timeline_capacity: 8,
        clock: clock.clone(),
        durability: feedcore::Durability::Buffered,
        ..Default::default()
    }
}

fn post(e: &Engine, author: u32, body: &str) -> NoticeId {
    e.post(NewNotice {
        author: UserId(author),
        body: body.into(),
        ..Default::default()
    })
    .unwrap()
}

fn home(e: &Engine, user: u32) -> Vec<u64> {
    e.flush().unwrap();
    let mut all = Vec::new();
    let mut page = Some(Page::latest(3));
    while let Some(p) = page {
        let got = e.home_timeline(UserId(user), p).unwrap();
        all.extend(got.ids.iter().map(|i| i.0));
        page = got.next;
    }
    all
}

#[test]
fn the_rules_of_the_home_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(1000 * DAY_MS);
    let e = Engine::open(dir.path(), config(&clock)).unwrap();
    let u = UserId;
    // Reader 1 reads once so it is active, then follows 2.
    assert!(home(&e, 1).is_empty());
    let early = post(&e, 2, "before the follow");
    e.follow(u(1), u(2)).unwrap();
    let own = post(&e, 1, "my own");
    let a = post(&e, 2, "after the follow");
    assert_eq!(home(&e, 1), vec![a.0, own.0, early.0]);

    // More than the capacity (8): paging continues below the stored ring.
    let many: Vec<u64> = (0..12).map(|i| post(&e, 2, &format!("n{i}")).0).collect();
    let expected: Vec<u64> = many
        .iter()
        .rev()
        .copied()
        .chain([a.0, own.0, early.0])
        .collect();
    assert_eq!(home(&e, 1), expected);

    // Delete, mute, unfollow.
    e.delete(NoticeId(many[11])).unwrap();
    assert_eq!(home(&e, 1)[0], many[10]);
    e.mute(u(1), u(2)).unwrap();
    assert_eq!(home(&e, 1), vec![own.0]);
    e.unmute(u(1), u(2)).unwrap();
    e.unfollow(u(1), u(2)).unwrap();
    assert_eq!(home(&e, 1), vec![own.0]);
    e.follow(u(1), u(2)).unwrap();
    assert_eq!(home(&e, 1).len(), 14, "12 + early + a + own, one deleted");

    // Replies: 2 answers 3, whom 1 does not follow.
    let by3 = post(&e, 3, "by three");
    let reply = e
        .post(NewNotice {
            author: u(2),
            body: "re".into(),
            reply_to: Some(by3),
            ..Default::default()
        })
        .unwrap();
    assert!(!home(&e, 1).contains(&reply.0));
    e.follow(u(1), u(3)).unwrap();
    assert!(home(&e, 1).contains(&reply.0));

    // Addressees scope: only mentioned followers.
    let secret = e
        .post(NewNotice {
            author: u(2),
            body: "for four".into(),
            scope: Scope::Addressees,
            mentions: vec![u(4)],
            ..Default::default()
        })
        .unwrap();
    assert!(!home(&e, 1).contains(&secret.0));
    assert_eq!(e.mentions(u(4), Page::latest(5)).unwrap().ids, vec![secret]);

    // Repeats: shown unless the original is among the 40 entries before.
    let repeat = e
        .post(NewNotice {
            author: u(3),
            repeat_of: Some(a),
            ..Default::default()
        })
        .unwrap();
    assert!(!home(&e, 1).contains(&repeat.0), "the original is close by");
    let by5 = post(&e, 5, "five");
    let repeat5 = e
        .post(NewNotice {
            author: u(3),
            repeat_of: Some(by5),
            ..Default::default()
        })
        .unwrap();
    assert!(home(&e, 1).contains(&repeat5.0), "1 does not follow 5");

    // Block ends the follow and hides both ways.
    e.block(u(3), u(1)).unwrap();
    assert!(!home(&e, 1).contains(&repeat5.0));
    assert!(!e.graph().is_following(u(1), u(3)));

    // Going quiet: no deliveries, rebuilt at the next read, nothing lost.
    let before = home(&e, 1);
    clock.advance(Duration::from_millis(8 * DAY_MS));
    let late = post(&e, 2, "while 1 was away");
    e.flush().unwrap();
    let after = home(&e, 1);
    assert_eq!(after[0], late.0);
    assert_eq!(&after[1..], &before[..]);
    let rebuilds = e.stats().rebuilds;
    assert!(rebuilds >= 2, "{rebuilds}");

    // Reopen: the same timeline, rebuilt from the log and the graph.
    drop(e);
    let e = Engine::open(dir.path(), config(&clock)).unwrap();
    assert_eq!(home(&e, 1), after);
    assert_eq!(
        e.user_timeline(u(2), u(2), Page::latest(2)).unwrap().ids,
        vec![late, secret]
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(0);
    let e = Engine::open(dir.path(), config(&clock)).unwrap();
    let u = UserId;
    assert!(matches!(
        e.home_timeline(u(100), Page::latest(5)),
        Err(Error::UnknownUser { .. })
    ));
    assert!(matches!(
        e.home_timeline(u(1), Page::latest(0)),
        Err(Error::InvalidPage { .. })
    ));
    let inverted = Page {
        since_id: Some(NoticeId(5)),
        max_id: Some(NoticeId(5)),
        limit: 5,
    };
    assert!(matches!(
        e.home_timeline(u(1), inverted),
        Err(Error::InvalidPage { .. })
    ));
    assert!(matches!(
        e.post(NewNotice {
            author: u(100),
            body: "x".into(),
            ..Default::default()
        }),
        Err(Error::UnknownUser { .. })
    ));
    let id = post(&e, 1, "x");
    e.delete(id).unwrap();
    assert!(matches!(
        e.post(NewNotice {
            author: u(2),
            body: "re".into(),
            reply_to: Some(id),
            ..Default::default()
        }),
        Err(Error::InvalidNotice { .. })
    ));
    assert_eq!(e.stats().notices, 1, "nothing half-written");
    assert!(matches!(
        Engine::open(dir.path(), config(&clock)),
        Err(Error::Locked { .. })
    ));
    let big = e.home_timeline(u(1), Page::latest(10_000)).unwrap();
    assert!(big.ids.is_empty());
}

#[test]
fn an_engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Engine>();
}
