//! Federation through the `Engine`: remote accounts, the delivery outbox (one delivery
//! per server, ack, fail with backoff, the 7-day rule, deletes), remote notices, and
//! bad input of each kind (typed errors, nothing lost). Reopens check what is durable.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use feedcore::{
    Clock, Config, Delivery, DeliveryKind, Engine, Error, NewNotice, NoticeId, OutboxReport, Page,
    UserId,
};

const LOCAL: u32 = 50;
const T0: u64 = 1_700_000_000_000;

fn config(clock: &Clock) -> Config {
    Config {
        users_max: LOCAL,
        remote_users_max: 64,
        clock: clock.clone(),
        ..Default::default()
    }
}

fn open(dir: &Path, clock: &Clock) -> Engine {
    Engine::open(dir, config(clock)).unwrap()
}

fn post(e: &Engine, author: u32, body: &str) -> NoticeId {
    e.post(NewNotice {
        author: UserId(author),
        body: body.into(),
        ..Default::default()
    })
    .unwrap()
}

/// Registers the remote account `https://HOST/PATH` on `host`.
fn remote(e: &Engine, host: &str, path: &str) -> UserId {
    e.register_remote(host, &format!("https://{host}/{path}"))
        .unwrap()
}

/// Every due delivery, as (notice, server, kind, followers).
fn drain(e: &Engine) -> Vec<Delivery> {
    let mut out = Vec::new();
    loop {
        let batch = e.deliveries(7);
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

fn keys(ds: &[Delivery]) -> BTreeSet<(u64, String, DeliveryKind)> {
    ds.iter()
        .map(|d| (d.notice.0, d.server.clone(), d.kind))
        .collect()
}

#[test]
fn remote_accounts_get_ids_past_the_local_ones_and_keep_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let (a, b, c);
    {
        let e = open(dir.path(), &clock);
        a = remote(&e, "a.example", "users/ann");
        b = e
            .register_remote("B.Example", "https://b.example/users/bob")
            .unwrap();
        c = remote(&e, "a.example", "users/cy");
        assert_eq!(
            [a, b, c],
            [UserId(LOCAL), UserId(LOCAL + 1), UserId(LOCAL + 2)]
        );
        assert_eq!(remote(&e, "a.example", "users/ann"), a);
        assert!(e.is_remote(a) && !e.is_remote(UserId(3)) && !e.is_remote(UserId(LOCAL + 3)));
        assert_eq!(e.remote_server(b), Some("b.example"));
        assert_eq!(e.remote_server(UserId(3)), None);
        // Remote accounts follow local users and the reverse.
        assert!(e.follow(a, UserId(1)).unwrap());
        assert!(e.follow(UserId(2), b).unwrap());
        assert!(e.graph().is_following(a, UserId(1)));
    }
    let e = open(dir.path(), &clock);
    assert_eq!(remote(&e, "a.example", "users/cy"), c);
    assert_eq!(e.remote_server(a), Some("a.example"));
    assert!(e.graph().is_following(a, UserId(1)) && e.graph().is_following(UserId(2), b));
    // A remote account has no home timeline.
    assert!(matches!(
        e.home_timeline(a, Page::latest(10)),
        Err(Error::UnknownUser { .. })
    ));
}

#[test]
fn one_delivery_per_server_with_the_followers_there() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let e = open(dir.path(), &clock);
    let a1 = remote(&e, "a.example", "u/1");
    let a2 = remote(&e, "a.example", "u/2");
    let b1 = remote(&e, "b.example", "u/1");
    let _idle = remote(&e, "c.example", "u/1");
    for f in [a1, a2, b1] {
        e.follow(f, UserId(1)).unwrap();
    }
    e.follow(UserId(3), UserId(1)).unwrap();
    let n = post(&e, 1, "hello fediverse");
    let quiet = post(&e, 2, "nobody remote follows me");
    let ds = drain(&e);
    assert_eq!(ds.len(), 2, "{ds:?}");
    for d in &ds {
        assert_eq!((d.notice, d.kind, d.attempt), (n, DeliveryKind::Create, 1));
        let want = if d.server == "a.example" {
            vec![a1, a2]
        } else {
            vec![b1]
        };
        assert_eq!(d.followers, want);
    }
    assert_ne!(ds[0].token, ds[1].token);
    assert!(ds.iter().all(|d| d.notice != quiet));
    let stats = e.stats().outbox;
    assert_eq!((stats.pending, stats.in_flight), (0, 2));
    for d in &ds {
        e.ack(d).unwrap();
    }
    assert_eq!(e.stats().outbox.in_flight, 0);
    assert!(drain(&e).is_empty());
    // The local follower got it the usual way.
    e.flush().unwrap();
    assert_eq!(
        e.home_timeline(UserId(3), Page::latest(5)).unwrap().ids,
        [n]
    );
}

#[test]
fn acked_deliveries_never_come_back_and_unacked_ones_always_do() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let mut servers = Vec::new();
    let (n1, n2, acked);
    {
        let e = open(dir.path(), &clock);
        for s in 0..5 {
            let host = format!("s{s}.example");
            let u = remote(&e, &host, "u");
            e.follow(u, UserId(1)).unwrap();
            servers.push(host);
        }
        n1 = post(&e, 1, "one");
        n2 = post(&e, 1, "two");
        let ds = e.deliveries(6);
        assert_eq!(ds.len(), 6);
        for d in &ds[..4] {
            e.ack(d).unwrap();
        }
        acked = keys(&ds[..4]);
        // ds[4] and ds[5] are in flight when the engine goes.
    }
    let e = open(dir.path(), &clock);
    let left = drain(&e);
    assert_eq!(left.len(), 6, "10 recorded, 4 acked: {left:?}");
    let mut all = BTreeSet::new();
    for n in [n1, n2] {
        for s in &servers {
            all.insert((n.0, s.clone(), DeliveryKind::Create));
        }
    }
    let left_keys = keys(&left);
    assert_eq!(left_keys.len(), 6);
    assert!(left_keys.is_subset(&all));
    assert!(left_keys.is_disjoint(&acked));
    for d in &left {
        e.ack(d).unwrap();
    }
    drop(e);
    let e = open(dir.path(), &clock);
    assert!(drain(&e).is_empty());
}

#[test]
fn ack_all_acks_a_batch_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let unacked;
    {
        let e = open(dir.path(), &clock);
        for s in 0..4 {
            let host = format!("s{s}.example");
            let u = remote(&e, &host, "u");
            e.follow(u, UserId(1)).unwrap();
        }
        post(&e, 1, "one");
        post(&e, 1, "two");
        let ds = e.deliveries(8);
        assert_eq!(ds.len(), 8);
        // One of the batch twice: an error, and none of it acked.
        let twice = [ds[0].clone(), ds[1].clone(), ds[0].clone()];
        assert!(matches!(
            e.ack_all(&twice),
            Err(Error::UnknownDelivery { .. })
        ));
        // One acked already: an error, the others still in flight.
        e.ack(&ds[2]).unwrap();
        assert!(matches!(
            e.ack_all(&ds[..4]),
            Err(Error::UnknownDelivery { notice, .. }) if notice == ds[2].notice
        ));
        assert_eq!(e.stats().outbox.in_flight, 7);
        e.ack_all(&[]).unwrap();
        e.ack_all(&ds[3..6]).unwrap();
        e.ack_all(&ds[..2]).unwrap();
        assert_eq!(e.stats().outbox.in_flight, 2);
        assert!(e.ack_all(&ds[4..5]).is_err(), "acked twice");
        // ds[6] and ds[7] are in flight when the engine goes.
        unacked = keys(&ds[6..]);
    }
    let e = open(dir.path(), &clock);
    let left = drain(&e);
    assert_eq!(left.len(), 2, "8 recorded, 6 acked: {left:?}");
    assert_eq!(keys(&left), unacked);
    e.ack_all(&left).unwrap();
    drop(e);
    let e = open(dir.path(), &clock);
    assert!(drain(&e).is_empty());
}

/// A batch acked to a server that was failing marks it back (once, however many of the
/// batch went there), durably: a failure a week later starts a new failing spell
/// instead of making the server unavailable.
#[test]
fn ack_all_to_a_failing_server_marks_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    {
        let e = open(dir.path(), &clock);
        let z = remote(&e, "flaky.example", "u");
        e.follow(z, UserId(1)).unwrap();
        post(&e, 1, "one");
        let first = e.deliveries(1).remove(0);
        e.fail(&first, Some(Duration::ZERO)).unwrap();
        post(&e, 1, "two");
        let batch = drain(&e);
        assert_eq!(batch.len(), 2);
        assert!(batch.iter().all(|d| d.server == "flaky.example"));
        e.ack_all(&batch).unwrap();
    }
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    let e = open(dir.path(), &clock);
    post(&e, 1, "three");
    let d = e.deliveries(1).remove(0);
    e.fail(&d, Some(Duration::ZERO)).unwrap();
    assert!(
        !e.server_unavailable("flaky.example"),
        "the ack marked it back before the week"
    );
    assert_eq!(drain(&e).len(), 1, "still delivered to");
}

/// The servers a post goes to follow the relations as they change (unfollows, blocks
/// either way), and the same after a reopen.
#[test]
fn deliveries_follow_unfollows_and_blocks_of_remote_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let servers = |e: &Engine| -> BTreeSet<String> {
        post(e, 1, "x");
        drain(e).into_iter().map(|d| d.server).collect()
    };
    let set =
        |hosts: &[&str]| -> BTreeSet<String> { hosts.iter().map(|h| h.to_string()).collect() };
    let (a1, a2, b, c);
    {
        let e = open(dir.path(), &clock);
        a1 = remote(&e, "a.example", "1");
        a2 = remote(&e, "a.example", "2");
        b = remote(&e, "b.example", "1");
        c = remote(&e, "c.example", "1");
        for u in [a1, a2, b, c] {
            e.follow(u, UserId(1)).unwrap();
        }
        assert_eq!(servers(&e), set(&["a.example", "b.example", "c.example"]));
        e.unfollow(a1, UserId(1)).unwrap();
        assert_eq!(
            servers(&e),
            set(&["a.example", "b.example", "c.example"]),
            "a2 is still there"
        );
        e.unfollow(a2, UserId(1)).unwrap();
        e.unfollow(a2, UserId(1)).unwrap();
        e.block(UserId(1), b).unwrap();
        assert_eq!(servers(&e), set(&["c.example"]));
    }
    let e = open(dir.path(), &clock);
    assert_eq!(servers(&e), set(&["c.example"]), "the same after a reopen");
    e.block(c, UserId(1)).unwrap();
    assert!(servers(&e).is_empty());
    e.unblock(c, UserId(1)).unwrap();
    e.follow(a1, UserId(1)).unwrap();
    assert_eq!(servers(&e), set(&["a.example"]));
}

#[test]
fn failures_back_off_and_a_week_of_them_makes_a_server_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let e = open(dir.path(), &clock);
    let a = remote(&e, "down.example", "u");
    let b = remote(&e, "up.example", "u");
    e.follow(a, UserId(1)).unwrap();
    e.follow(b, UserId(1)).unwrap();
    let n = post(&e, 1, "x");
    let ds = drain(&e);
    let down = ds
        .iter()
        .find(|d| d.server == "down.example")
        .unwrap()
        .clone();
    e.ack(ds.iter().find(|d| d.server == "up.example").unwrap())
        .unwrap();
    // Explicit retry_after.
    e.fail(&down, Some(Duration::from_secs(30))).unwrap();
    assert!(drain(&e).is_empty(), "not due yet");
    assert_eq!(e.stats().outbox.failed, 1);
    clock.advance(Duration::from_secs(30));
    let again = drain(&e);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].notice, again[0].attempt), (n, 2));
    assert!(
        matches!(e.ack(&down), Err(Error::UnknownDelivery { .. })),
        "old token"
    );
    // Default backoff: grows, jittered to at least half the full wait.
    let mut d = again[0].clone();
    let mut waits = Vec::new();
    for _ in 0..6 {
        e.fail(&d, None).unwrap();
        let mut waited = Duration::ZERO;
        let next = loop {
            clock.advance(Duration::from_secs(1));
            waited += Duration::from_secs(1);
            let got = e.deliveries(1);
            if let Some(g) = got.into_iter().next() {
                break g;
            }
        };
        waits.push(waited.as_secs());
        d = next;
    }
    for (i, w) in waits.iter().enumerate() {
        let full = 10u64 << (i + 1);
        assert!(
            *w >= full / 2 && *w <= full + 1,
            "wait {i}: {w} s of {full}"
        );
    }
    // A week of failures: the server goes unavailable, its deliveries are dropped.
    let m = post(&e, 1, "y");
    for x in drain(&e) {
        if x.server == "up.example" {
            e.ack(&x).unwrap();
        } else {
            e.fail(&x, Some(Duration::from_secs(24 * 3600))).unwrap();
        }
    }
    clock.advance(Duration::from_secs(7 * 24 * 3600));
    e.fail(&d, None).unwrap();
    assert!(e.server_unavailable("down.example"));
    let stats = e.stats().outbox;
    assert_eq!(stats.unavailable_servers, 1);
    assert_eq!(
        stats.dropped, 2,
        "the failed one and the pending one of {m}"
    );
    post(&e, 1, "z");
    let ds = drain(&e);
    assert!(ds.iter().all(|x| x.server == "up.example"));
    assert_eq!(e.stats().outbox.dropped, 3);
    for x in &ds {
        e.ack(x).unwrap();
    }
    drop(e);
    // Unavailability is durable, and lifted by server_recovered.
    let e = open(dir.path(), &clock);
    assert!(e.server_unavailable("down.example"));
    assert!(drain(&e).is_empty());
    e.server_recovered("down.example").unwrap();
    assert!(!e.server_unavailable("down.example"));
    let k = post(&e, 1, "back");
    let ds = drain(&e);
    assert_eq!(ds.len(), 2);
    assert!(ds.iter().all(|x| x.notice == k));
    assert!(matches!(
        e.server_recovered("never.example"),
        Err(Error::UnknownServer { .. })
    ));
}

#[test]
fn deleting_a_notice_enqueues_deletes_and_drops_pending_creates() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let e = open(dir.path(), &clock);
    let a = remote(&e, "a.example", "u");
    let b = remote(&e, "b.example", "u");
    e.follow(a, UserId(1)).unwrap();
    e.follow(b, UserId(1)).unwrap();
    let n = post(&e, 1, "regret");
    let first = e.deliveries(1);
    assert_eq!(first.len(), 1);
    e.ack(&first[0]).unwrap();
    // The other server's create is still pending: it never leaves; both servers get
    // the delete, with the author's followers there.
    e.delete(n).unwrap();
    let ds = drain(&e);
    assert_eq!(ds.len(), 2, "{ds:?}");
    assert!(
        ds.iter()
            .all(|d| d.notice == n && d.kind == DeliveryKind::Delete)
    );
    assert_eq!(ds[0].server, first[0].server);
    assert_eq!(ds[0].followers, first[0].followers);
    assert_eq!(ds[1].followers, [b]);
    e.ack(&ds[1]).unwrap();
    drop(e);
    // Unacked, a delete comes back after a reopen, with its followers.
    let e = open(dir.path(), &clock);
    let ds2 = drain(&e);
    assert_eq!(keys(&ds2), keys(&ds[..1]));
    assert_eq!(ds2[0].followers, [a]);
    e.ack(&ds2[0]).unwrap();
    assert!(drain(&e).is_empty());
}

#[test]
fn remote_notices_are_stored_once_per_uri_and_reach_local_followers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let e = open(dir.path(), &clock);
    let r = remote(&e, "a.example", "u");
    let r2 = remote(&e, "b.example", "u");
    e.follow(UserId(4), r).unwrap();
    e.follow(r2, UserId(4)).unwrap();
    let uri = "https://a.example/notes/1";
    let remote = |body: &str| NewNotice {
        author: r,
        body: body.into(),
        uri: Some(uri.into()),
        ..Default::default()
    };
    let id = e.post_remote(remote("from afar")).unwrap();
    assert_eq!(e.post_remote(remote("from afar")).unwrap(), id);
    assert!(matches!(
        e.post_remote(remote("edited")),
        Err(Error::UriConflict { existing }) if existing == id
    ));
    assert_eq!(e.notice(id).unwrap().body(), "from afar");
    e.flush().unwrap();
    assert_eq!(
        e.home_timeline(UserId(4), Page::latest(5)).unwrap().ids,
        [id]
    );
    // Remote notices are never delivered to remote servers.
    assert!(drain(&e).is_empty());
    // Bad input.
    assert!(matches!(
        e.post_remote(NewNotice {
            uri: None,
            ..remote("x")
        }),
        Err(Error::InvalidRemote { .. })
    ));
    assert!(matches!(
        e.post_remote(NewNotice {
            uri: Some("not a uri".into()),
            ..remote("x")
        }),
        Err(Error::InvalidRemote { .. })
    ));
    for author in [UserId(4), UserId(LOCAL + 9)] {
        assert!(matches!(
            e.post_remote(NewNotice {
                author,
                uri: Some("https://a.example/n/2".into()),
                ..remote("x")
            }),
            Err(Error::UnknownUser { .. })
        ));
    }
    assert_eq!(e.log().len(), 1, "nothing else written");
}

#[test]
fn bad_input_is_a_typed_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let e = open(dir.path(), &clock);
    let long_host = format!("{}.example", "a".repeat(250));
    let long_uri = format!("https://a.example/{}", "u".repeat(1100));
    for (server, uri) in [
        ("", "https://a.example/u"),
        ("a b.example", "https://a.example/u"),
        ("a.example\n", "https://a.example/u"),
        (long_host.as_str(), "https://a.example/u"),
        ("a.example", ""),
        ("a.example", "a.example/u"),
        ("a.example", "ftp://a.example/u"),
        ("a.example", "https://a.example/u\u{0}"),
        ("a.example", long_uri.as_str()),
    ] {
        assert!(
            matches!(
                e.register_remote(server, uri),
                Err(Error::InvalidRemote { .. })
            ),
            "{server:?} {uri:?}"
        );
    }
    let a = remote(&e, "a.example", "u");
    assert!(matches!(
        e.register_remote("b.example", "https://a.example/u"),
        Err(Error::RemoteConflict { .. })
    ));
    assert_eq!(e.remote_server(a), Some("a.example"));
    // Unknown remote users, and relations between two remote accounts.
    let ghost = UserId(LOCAL + 5);
    assert!(matches!(
        e.follow(ghost, UserId(1)),
        Err(Error::UnknownUser { .. })
    ));
    assert!(matches!(
        e.follow(UserId(1), ghost),
        Err(Error::UnknownUser { .. })
    ));
    let b = remote(&e, "b.example", "u");
    assert!(matches!(e.follow(a, b), Err(Error::InvalidRelation { .. })));
    assert!(matches!(
        e.post(NewNotice {
            author: a,
            body: "x".into(),
            ..Default::default()
        }),
        Err(Error::UnknownUser { .. })
    ));
    assert!(matches!(
        e.post(NewNotice {
            author: UserId(1),
            body: "x".into(),
            mentions: vec![ghost],
            ..Default::default()
        }),
        Err(Error::UnknownUser { .. })
    ));
    // Acks and failures of deliveries not in flight.
    e.follow(a, UserId(1)).unwrap();
    post(&e, 1, "m");
    let d = e.deliveries(1).remove(0);
    let mut forged = d.clone();
    forged.token += 100;
    assert!(matches!(e.ack(&forged), Err(Error::UnknownDelivery { .. })));
    assert!(matches!(
        e.fail(&forged, None),
        Err(Error::UnknownDelivery { .. })
    ));
    let mut elsewhere = d.clone();
    elsewhere.server = "nowhere.example".into();
    assert!(matches!(
        e.ack(&elsewhere),
        Err(Error::UnknownDelivery { .. })
    ));
    e.ack(&d).unwrap();
    assert!(matches!(e.ack(&d), Err(Error::UnknownDelivery { .. })));
    assert!(matches!(
        e.fail(&d, None),
        Err(Error::UnknownDelivery { .. })
    ));
    assert!(matches!(
        e.server_recovered("bad host"),
        Err(Error::InvalidRemote { .. })
    ));
}

#[test]
fn remote_ids_stop_at_remote_users_max() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let e = Engine::open(
        dir.path(),
        Config {
            remote_users_max: 2,
            ..config(&clock)
        },
    )
    .unwrap();
    remote(&e, "a.example", "1");
    remote(&e, "a.example", "2");
    assert!(matches!(
        e.register_remote("a.example", "https://a.example/3"),
        Err(Error::TooMany { .. })
    ));
}

fn outbox_file(dir: &Path) -> std::path::PathBuf {
    dir.join("outbox").join("outbox.log")
}

#[test]
fn a_torn_outbox_tail_is_cut_and_damage_before_the_end_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    {
        let e = open(dir.path(), &clock);
        let a = remote(&e, "a.example", "u");
        e.follow(a, UserId(1)).unwrap();
        post(&e, 1, "one");
        post(&e, 1, "two");
    }
    let path = outbox_file(dir.path());
    let whole = std::fs::read(&path).unwrap();
    // A torn tail: half a record appended.
    let mut torn = whole.clone();
    torn.extend_from_slice(&whole[..24]);
    std::fs::write(&path, &torn).unwrap();
    let report = OutboxReport::check(dir.path()).unwrap().unwrap();
    assert!(report.is_sound() && report.problems.len() == 1);
    assert_eq!(report.stats.pending, 2);
    {
        let e = open(dir.path(), &clock);
        assert_eq!(drain(&e).len(), 2, "nothing lost");
    }
    assert!(std::fs::metadata(&path).unwrap().len() >= whole.len() as u64);
    assert!(
        OutboxReport::check(dir.path())
            .unwrap()
            .unwrap()
            .problems
            .is_empty()
    );
    // A flipped byte in the first record, valid records after it: corruption.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Engine::open(dir.path(), config(&clock)),
        Err(Error::Corrupt { offset: 0, .. })
    ));
    assert!(!OutboxReport::check(dir.path()).unwrap().unwrap().is_sound());
    // Undo the damage: everything is still there.
    bytes[20] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let e = open(dir.path(), &clock);
    assert_eq!(drain(&e).len(), 2);
}

#[test]
fn a_lost_enqueue_is_recovered_from_the_log_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let n;
    {
        let e = open(dir.path(), &clock);
        let a = remote(&e, "a.example", "u");
        e.follow(a, UserId(1)).unwrap();
        post(&e, 1, "zero");
        let len_before = std::fs::metadata(outbox_file(dir.path())).unwrap().len();
        n = post(&e, 1, "one");
        // As if the process died between the log's append and the outbox's: the
        // enqueue cut off, and the mark written at close with it.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(outbox_file(dir.path()))
            .unwrap();
        drop(e);
        file.set_len(len_before).unwrap();
    }
    let e = open(dir.path(), &clock);
    let ds = drain(&e);
    assert_eq!(ds.len(), 2);
    assert!(ds.iter().any(|d| d.notice == n));
}

#[test]
fn the_outbox_file_is_rewritten_at_open_when_most_of_it_is_history() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let cfg = Config {
        durability: feedcore::Durability::Buffered,
        ..config(&clock)
    };
    let kept;
    {
        let e = Engine::open(dir.path(), cfg.clone()).unwrap();
        let a = remote(&e, "a.example", "u");
        let b = remote(&e, "b.example", "u");
        e.follow(a, UserId(1)).unwrap();
        for i in 0..12_000 {
            post(&e, 1, &format!("n{i}"));
            for d in e.deliveries(4) {
                e.ack(&d).unwrap();
            }
        }
        e.follow(b, UserId(1)).unwrap();
        kept = post(&e, 1, "kept");
        let d = e.deliveries(8);
        assert_eq!(d.len(), 2);
        e.fail(&d[0], Some(Duration::from_secs(60))).unwrap();
    }
    let path = outbox_file(dir.path());
    let before = std::fs::metadata(&path).unwrap().len();
    assert!(before > 1 << 20, "{before} bytes");
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(after < 4096, "{before} bytes rewritten to {after}");
    let ds = drain(&e);
    assert_eq!(ds.len(), 1, "the failed one is not due yet");
    clock.advance(Duration::from_secs(60));
    let ds2 = drain(&e);
    assert_eq!(ds2.len(), 1);
    assert_eq!((ds2[0].notice, ds2[0].attempt), (kept, 2));
    assert!(ds.iter().all(|d| d.notice == kept));
}

#[test]
fn feedcore_stats_and_check_show_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    {
        let e = open(dir.path(), &clock);
        for s in ["a.example", "b.example", "c.example"] {
            let u = e.register_remote(s, &format!("https://{s}/u")).unwrap();
            e.follow(u, UserId(1)).unwrap();
        }
        post(&e, 1, "x");
        let ds = e.deliveries(3);
        e.ack(&ds[0]).unwrap();
        e.fail(&ds[1], Some(Duration::from_secs(60))).unwrap();
        // ds[2] is in flight at close: pending in the file.
        let live = e.stats().outbox;
        assert_eq!(
            (live.pending, live.in_flight, live.failed, live.acked),
            (1, 1, 1, 1)
        );
    }
    let bin = env!("CARGO_BIN_EXE_feedcore");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let path = dir.path().to_str().unwrap();
    let stats = run(&["stats", path]);
    assert!(
        stats.contains("outbox:   2 pending, 0 in flight, 1 failed (waiting for a retry), 0 unavailable servers"),
        "{stats}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&["stats", "--json", path])).unwrap();
    assert_eq!(json["outbox"]["pending"], 2);
    assert_eq!(json["outbox"]["failed"], 1);
    let check = run(&["check", path]);
    assert!(check.contains("remote: 3 servers, 3 accounts"), "{check}");
    assert!(
        check.contains("2 deliveries pending (1 after a failure)"),
        "{check}"
    );
    assert!(check.contains("sound"), "{check}");
}
