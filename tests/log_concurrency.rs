//! Guards the log under concurrent use: four appender threads, two readers and two
//! deleters on one log at once (group commit, then buffered). Every notice a reader
//! sees must carry exactly what its appender wrote (the content names the appender and
//! its sequence number, so a reader can tell) and must not change while the reader
//! holds it, even when it is deleted meanwhile; ids are handed out once each with no
//! gap; one id is never deleted twice; and at the end, and after a reopen, every
//! acknowledged notice that was not deleted is there and every deleted one is gone.

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::open_log;
use feedcore::{Durability, Error, LogConfig, NewNotice, NoticeId, NoticeLog, NoticeRef, UserId};
use rand::{RngExt, SeedableRng};

const APPENDERS: u32 = 4;
const READERS: u64 = 2;
const DELETERS: u64 = 2;

/// What appender `thread` writes as its `seq`-th notice.
fn content(thread: u32, seq: u32) -> NewNotice {
    NewNotice {
        author: UserId(thread),
        body: format!(
            "thread {thread} seq {seq} {}",
            "p".repeat((seq % 7 * 40) as usize)
        ),
        created_at_ms: u64::from(thread) << 32 | u64::from(seq),
        tags: vec![format!("t{thread}")],
        mentions: vec![UserId(seq % 50)],
        // Every tenth notice is remote, so uris are inserted and removed concurrently.
        uri: seq
            .is_multiple_of(10)
            .then(|| format!("https://t{thread}.example/{seq}")),
        ..Default::default()
    }
}

/// Checks a notice read by a reader against what its body says it is.
fn verify(notice: &NoticeRef<'_>) -> (u32, u32) {
    let mut words = notice.body().split(' ');
    let (Some("thread"), Some(t), Some("seq"), Some(s)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        panic!("{:?}: not a body an appender wrote", notice);
    };
    let (thread, seq): (u32, u32) = (t.parse().unwrap(), s.parse().unwrap());
    assert_eq!(
        notice.to_new_notice(),
        content(thread, seq),
        "{} reads as another notice than its appender wrote",
        notice.id()
    );
    (thread, seq)
}

fn hammer(durability: Durability, per_appender: u32) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        durability,
        ..Default::default()
    };
    let log = open_log(dir.path(), config.clone()).unwrap();
    let done = AtomicBool::new(false);
    let deleted: Mutex<Vec<NoticeId>> = Mutex::new(Vec::new());
    let seed = rand::random::<u64>();
    eprintln!("{durability:?}: seed {seed}");

    let acked: Vec<Vec<NoticeId>> = std::thread::scope(|s| {
        let log = &log;
        let done = &done;
        let deleted = &deleted;
        let mut appenders = Vec::new();
        for thread in 0..APPENDERS {
            appenders.push(s.spawn(move || {
                let mut ids = Vec::with_capacity(per_appender as usize);
                let mut seq = 0;
                while seq < per_appender {
                    // Mostly single appends, now and then a batch.
                    let n = if seq % 13 == 0 {
                        5.min(per_appender - seq)
                    } else {
                        1
                    };
                    let batch: Vec<_> = (seq..seq + n).map(|q| content(thread, q)).collect();
                    let got = log.append_batch(&batch).expect("append");
                    assert_eq!(got.len(), n as usize);
                    for pair in got.windows(2) {
                        assert_eq!(pair[1].0, pair[0].0 + 1, "a batch takes consecutive ids");
                    }
                    ids.extend(got);
                    seq += n;
                }
                ids
            }));
        }
        let mut readers = Vec::new();
        for r in 0..READERS {
            readers.push(s.spawn(move || {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ r);
                let mut seen = 0u64;
                while !done.load(Ordering::Acquire) {
                    let len = log.len();
                    if len == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    let id = NoticeId(rng.random_range(1..=len));
                    if let Some(notice) = log.get(id) {
                        assert_eq!(notice.id(), id);
                        let before = verify(&notice);
                        // Hold it a while: a delete of it now must not scrub under us.
                        std::thread::yield_now();
                        assert_eq!(verify(&notice), before, "{id} changed while held");
                        seen += 1;
                    }
                    if rng.random_range(0..50) == 0 {
                        let from = NoticeId(rng.random_range(1..=len));
                        let mut last = 0;
                        for notice in log.iter_from(from).take(20) {
                            assert!(notice.id().0 > last && notice.id() >= from);
                            last = notice.id().0;
                            verify(&notice);
                        }
                    }
                }
                seen
            }));
        }
        let mut deleters = Vec::new();
        for d in 0..DELETERS {
            deleters.push(s.spawn(move || {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ (100 + d));
                let mut mine = Vec::new();
                while !done.load(Ordering::Acquire) {
                    let len = log.len();
                    if len == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    let id = NoticeId(rng.random_range(1..=len));
                    match log.delete(id) {
                        Ok(()) => {
                            assert!(log.get(id).is_none(), "{id} readable after its delete");
                            mine.push(id);
                        }
                        Err(Error::UnknownNotice { .. }) => {}
                        Err(e) => panic!("delete({id}): {e}"),
                    }
                    std::thread::sleep(Duration::from_micros(300));
                }
                deleted.lock().unwrap().extend(mine);
            }));
        }
        let acked: Vec<Vec<NoticeId>> = appenders.into_iter().map(|a| a.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        for r in readers {
            let seen = r.join().unwrap();
            assert!(seen > 0, "a reader never saw a notice");
            eprintln!("{durability:?}: a reader checked {seen} notices");
        }
        for d in deleters {
            d.join().unwrap();
        }
        acked
    });

    let deleted = deleted.into_inner().unwrap();
    let deleted_set: HashSet<NoticeId> = deleted.iter().copied().collect();
    assert_eq!(deleted_set.len(), deleted.len(), "an id was deleted twice");
    assert!(!deleted.is_empty(), "the deleters deleted nothing");
    eprintln!(
        "{durability:?}: {} deleted, {} segments",
        deleted.len(),
        log.stats().segments
    );
    let total = u64::from(APPENDERS * per_appender);

    let check = |log: &NoticeLog, when: &str| {
        assert_eq!(log.len(), total, "{when}: len");
        assert_eq!(log.stats().deleted, deleted.len() as u64, "{when}: deleted");
        let mut all = HashSet::new();
        for (thread, ids) in acked.iter().enumerate() {
            for pair in ids.windows(2) {
                assert!(pair[0] < pair[1], "{when}: one thread's ids grow");
            }
            for (seq, &id) in ids.iter().enumerate() {
                assert!(all.insert(id), "{when}: {id} handed out twice");
                let expected = content(thread as u32, seq as u32);
                match log.get(id) {
                    Some(n) if !deleted_set.contains(&id) => {
                        assert_eq!(n.to_new_notice(), expected, "{when}: {id}");
                    }
                    None if deleted_set.contains(&id) => {}
                    got => panic!(
                        "{when}: {id} (deleted: {}) reads {got:?}",
                        deleted_set.contains(&id)
                    ),
                }
                if let Some(uri) = &expected.uri {
                    let found = log.find_uri(uri);
                    let want = (!deleted_set.contains(&id)).then_some(id);
                    assert_eq!(found, want, "{when}: uri of {id}");
                }
            }
        }
        let every: HashSet<NoticeId> = (1..=total).map(NoticeId).collect();
        assert_eq!(all, every, "{when}: ids are 1..=total with no gap");
    };
    check(&log, "at the end");
    drop(log);
    let log = open_log(dir.path(), config).unwrap();
    assert_eq!(log.recovery().deleted, deleted.len() as u64);
    assert_eq!(log.recovery().torn_tail, None);
    check(&log, "after a reopen");
    drop(log);
    let report = NoticeLog::check(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn concurrent_appends_reads_and_deletes_with_group_commit() {
    hammer(Durability::default(), 2000);
}

#[test]
fn concurrent_appends_reads_and_deletes_buffered() {
    hammer(Durability::Buffered, 20000);
}

/// `find_uri` beside appends of remote notices: a reader that saw notice `id`
/// published finds its uri at once (the uri is in the map before the id is published),
/// and a uri not yet appended is not found.
#[test]
fn find_uri_sees_every_published_remote_notice() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 256 * 1024,
        durability: Durability::Buffered,
        ..Default::default()
    };
    let log = open_log(dir.path(), config).unwrap();
    const NOTICES: u64 = 20_000;
    let uri = |i: u64| format!("https://remote.example/notice/{i}");
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=NOTICES {
                let id = log
                    .append(&NewNotice {
                        author: UserId(1),
                        body: format!("remote {i}"),
                        uri: Some(uri(i)),
                        ..Default::default()
                    })
                    .unwrap();
                assert_eq!(id, NoticeId(i));
            }
            done.store(true, Ordering::Release);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
                let mut lookups = 0u64;
                while !done.load(Ordering::Acquire) || lookups < 1_000 {
                    let published = log.len();
                    if published > 0 {
                        let i = rng.random_range(1..=published);
                        assert_eq!(log.find_uri(&uri(i)), Some(NoticeId(i)));
                    }
                    assert_eq!(log.find_uri(&uri(NOTICES + 1)), None);
                    lookups += 1;
                }
            });
        }
    });
    assert_eq!(log.len(), NOTICES);
}
