//! Guards the log's refusals: every notice that breaks a rule is an `Err` of the right
//! variant and leaves no trace (same `len`, nothing new after a reopen, none of its
//! bytes in the segment files); a batch with one bad notice writes none; unknown ids
//! are refused or read as `None`; a second owner of the directory, in this process or
//! another, gets `Locked`; an out-of-range configuration is `InvalidConfig` and creates
//! nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::{dir_contains, feedcore_bin, open_log};
use feedcore::{
    BODY_BYTES_MAX_DEFAULT, Durability, Error, LogConfig, MENTIONS_MAX, NewNotice, NoticeId,
    NoticeLog, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, TAG_BYTES_MAX, TAGS_MAX, URI_BYTES_MAX,
    UserId,
};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        durability: Durability::Always,
        ..Default::default()
    }
}

/// Every refused notice carries this in its body, so the segment files can be searched
/// for any byte of it.
const MARK: &str = "REFUSED-NOTICE-MARK";

fn good(body: &str) -> NewNotice {
    NewNotice {
        author: UserId(3),
        body: body.into(),
        created_at_ms: 1_700_000_000_000,
        ..Default::default()
    }
}

fn bad() -> NewNotice {
    good(&format!("{MARK} otherwise fine"))
}

/// A log with notices 1 ("one"), 2 (deleted), 3 ("three", with a uri).
fn setup(dir: &Path) -> NoticeLog {
    let log = open_log(dir, config()).unwrap();
    log.append(&good("one")).unwrap();
    log.append(&good("two")).unwrap();
    log.append(&NewNotice {
        uri: Some("https://remote.example/3".into()),
        ..good("three")
    })
    .unwrap();
    log.delete(NoticeId(2)).unwrap();
    log
}

/// The log is exactly as `setup` left it, in memory and on disk.
fn assert_untouched(log: &NoticeLog, what: &str) {
    assert_eq!(log.len(), 3, "{what}: len");
    assert!(log.get(NoticeId(4)).is_none(), "{what}: notice 4");
    let live: Vec<_> = log
        .iter_from(NoticeId(1))
        .map(|n| n.body().to_owned())
        .collect();
    assert_eq!(live, ["one", "three"], "{what}: live notices");
    for mark in [MARK.to_owned(), MARK.to_lowercase()] {
        assert!(
            !dir_contains(log.dir(), mark.as_bytes()),
            "{what}: bytes of a refused notice reached a segment file"
        );
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::InvalidNotice { reason }) => assert!(!reason.is_empty(), "{what}"),
        other => panic!("{what}: expected InvalidNotice, got {other:?}"),
    }
}

/// Notices that break one rule each, with what they break.
fn bad_notices() -> Vec<(&'static str, NewNotice)> {
    vec![
        (
            "body one byte over the limit",
            NewNotice {
                body: format!(
                    "{MARK}{}",
                    "x".repeat(BODY_BYTES_MAX_DEFAULT + 1 - MARK.len())
                ),
                ..bad()
            },
        ),
        (
            "empty body, not a repeat",
            NewNotice {
                body: String::new(),
                tags: vec![MARK.to_lowercase()],
                ..bad()
            },
        ),
        (
            "65 mentions",
            NewNotice {
                mentions: (0..=MENTIONS_MAX as u32).map(UserId).collect(),
                ..bad()
            },
        ),
        (
            "33 tags",
            NewNotice {
                tags: (0..=TAGS_MAX).map(|i| format!("tag{i}")).collect(),
                ..bad()
            },
        ),
        (
            "empty tag",
            NewNotice {
                tags: vec!["ok".into(), String::new()],
                ..bad()
            },
        ),
        (
            "tag that is only '#'",
            NewNotice {
                tags: vec!["#".into()],
                ..bad()
            },
        ),
        (
            "tag with a space",
            NewNotice {
                tags: vec!["two words".into()],
                ..bad()
            },
        ),
        (
            "tag with a newline",
            NewNotice {
                tags: vec!["line\nbreak".into()],
                ..bad()
            },
        ),
        (
            "tag of 141 bytes",
            NewNotice {
                tags: vec!["t".repeat(TAG_BYTES_MAX + 1)],
                ..bad()
            },
        ),
        (
            "uri of 1025 bytes",
            NewNotice {
                uri: Some("u".repeat(URI_BYTES_MAX + 1)),
                ..bad()
            },
        ),
        (
            "empty uri",
            NewNotice {
                uri: Some(String::new()),
                ..bad()
            },
        ),
        (
            "reply to a missing notice",
            NewNotice {
                reply_to: Some(NoticeId(4)),
                ..bad()
            },
        ),
        (
            "reply to notice 0",
            NewNotice {
                reply_to: Some(NoticeId(0)),
                ..bad()
            },
        ),
        (
            "reply to a far-away id",
            NewNotice {
                reply_to: Some(NoticeId(u64::MAX)),
                ..bad()
            },
        ),
        (
            "reply to a deleted notice",
            NewNotice {
                reply_to: Some(NoticeId(2)),
                ..bad()
            },
        ),
        (
            "repeat of a missing notice",
            NewNotice {
                repeat_of: Some(NoticeId(4)),
                ..bad()
            },
        ),
        (
            "repeat of a deleted notice",
            NewNotice {
                repeat_of: Some(NoticeId(2)),
                ..bad()
            },
        ),
        (
            "empty repeat of a deleted notice",
            NewNotice {
                body: String::new(),
                repeat_of: Some(NoticeId(2)),
                tags: vec![MARK.to_lowercase()],
                ..bad()
            },
        ),
        (
            "repeat of notice 0",
            NewNotice {
                repeat_of: Some(NoticeId(0)),
                ..bad()
            },
        ),
    ]
}

#[test]
fn each_bad_notice_is_refused_and_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());
    for (what, notice) in bad_notices() {
        assert_invalid(log.append(&notice), what);
        assert_untouched(&log, what);
        assert_invalid(log.append_batch(std::slice::from_ref(&notice)), what);
        assert_untouched(&log, what);
    }
    drop(log);
    let log = open_log(dir.path(), config()).unwrap();
    assert_untouched(&log, "after a reopen");
    assert_eq!(log.recovery().torn_tail, None);
    // The log still takes good notices after all the refusals, with the next id.
    assert_eq!(log.append(&good("four")).unwrap(), NoticeId(4));
}

/// The limits themselves are allowed: the refusals above are one step past them.
#[test]
fn notices_right_at_the_limits_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());
    let at_limits = [
        good(&"x".repeat(BODY_BYTES_MAX_DEFAULT)),
        NewNotice {
            mentions: (0..MENTIONS_MAX as u32)
                .chain([0, 1, 2]) // duplicates are dropped before counting
                .map(UserId)
                .collect(),
            tags: (0..TAGS_MAX).map(|i| format!("#Tag{i}")).collect(),
            uri: Some("u".repeat(URI_BYTES_MAX)),
            ..good("at every limit")
        },
        NewNotice {
            tags: vec![format!("#{}", "T".repeat(TAG_BYTES_MAX))],
            ..good("longest tag")
        },
        NewNotice {
            body: String::new(),
            repeat_of: Some(NoticeId(3)),
            reply_to: Some(NoticeId(1)),
            ..good("")
        },
    ];
    for (i, notice) in at_limits.iter().enumerate() {
        let id = log.append(notice).unwrap();
        assert_eq!(id, NoticeId(4 + i as u64));
    }
    let n = log.get(NoticeId(5)).unwrap();
    assert_eq!(n.mentions().len(), MENTIONS_MAX);
    assert_eq!(n.tags().len(), TAGS_MAX);
    assert_eq!(n.tags().next(), Some("tag0"));
    assert_eq!(
        log.get(NoticeId(6)).unwrap().tags().next().unwrap().len(),
        TAG_BYTES_MAX
    );
    assert_eq!(log.get(NoticeId(7)).unwrap().repeat_of(), Some(NoticeId(3)));
}

#[test]
fn a_configured_body_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(
        dir.path(),
        LogConfig {
            body_bytes_max: 100,
            ..config()
        },
    )
    .unwrap();
    assert_eq!(log.append(&good(&"b".repeat(100))).unwrap(), NoticeId(1));
    assert_invalid(
        log.append(&good(&format!("{MARK}{}", "b".repeat(101 - MARK.len())))),
        "101 bytes over a limit of 100",
    );
    assert_eq!(log.len(), 1);
    assert!(!dir_contains(dir.path(), MARK.as_bytes()));
}

#[test]
fn a_batch_with_one_bad_notice_writes_none() {
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());
    let first_ok = NewNotice {
        uri: Some(format!("https://remote.example/{MARK}")),
        ..bad()
    };
    for (what, notice) in bad_notices() {
        for position in [0, 1, 2] {
            let mut batch = vec![first_ok.clone(), bad(), bad()];
            batch[position] = notice.clone();
            let what = format!("{what} at position {position} of a batch");
            assert_invalid(log.append_batch(&batch), &what);
            assert_untouched(&log, &what);
            assert_eq!(
                log.find_uri(&format!("https://remote.example/{MARK}")),
                None
            );
        }
    }
    // A uri twice in one batch.
    let twice = vec![first_ok.clone(), bad(), first_ok.clone()];
    assert_invalid(log.append_batch(&twice), "uri twice in a batch");
    assert_untouched(&log, "uri twice in a batch");
    // A uri already stored, last in the batch.
    let stored = vec![
        bad(),
        NewNotice {
            uri: Some("https://remote.example/3".into()),
            ..bad()
        },
    ];
    match log.append_batch(&stored) {
        Err(Error::DuplicateUri { existing }) => assert_eq!(existing, NoticeId(3)),
        other => panic!("expected DuplicateUri, got {other:?}"),
    }
    assert_untouched(&log, "a stored uri in a batch");
    // An empty batch is no write at all.
    assert_eq!(log.append_batch(&[]).unwrap(), Vec::<NoticeId>::new());
    assert_untouched(&log, "an empty batch");
    drop(log);
    let log = open_log(dir.path(), config()).unwrap();
    assert_untouched(&log, "after a reopen");
    assert_eq!(log.find_uri("https://remote.example/3"), Some(NoticeId(3)));
}

#[test]
fn a_duplicate_uri_names_the_stored_notice() {
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());
    let again = NewNotice {
        uri: Some("https://remote.example/3".into()),
        ..bad()
    };
    match log.append(&again) {
        Err(Error::DuplicateUri { existing }) => assert_eq!(existing, NoticeId(3)),
        other => panic!("expected DuplicateUri, got {other:?}"),
    }
    assert_untouched(&log, "duplicate uri");
    drop(log);
    let log = open_log(dir.path(), config()).unwrap();
    // The uri index is rebuilt at open: still a duplicate.
    assert!(matches!(
        log.append(&again),
        Err(Error::DuplicateUri { existing }) if existing == NoticeId(3)
    ));
    assert_untouched(&log, "duplicate uri after a reopen");
}

#[test]
fn unknown_ids_are_refused_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());
    for id in [0, 2, 4, 5, 1 << 48, u64::MAX] {
        let id = NoticeId(id);
        assert!(log.get(id).is_none(), "get({id})");
        match log.delete(id) {
            Err(Error::UnknownNotice { id: refused }) => assert_eq!(refused, id),
            other => panic!("delete({id}): expected UnknownNotice, got {other:?}"),
        }
        let live_from = [1, 3].iter().filter(|&&live| live >= id.0.max(1)).count();
        assert_eq!(log.iter_from(id).count(), live_from, "iter_from({id})");
    }
    assert_eq!(log.stats().deleted, 1);
    drop(log);
    let log = open_log(dir.path(), config()).unwrap();
    assert_eq!(log.recovery().deleted, 1);
    assert_eq!(log.len(), 3);
}

#[test]
fn a_second_open_in_this_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());
    match NoticeLog::open(dir.path(), config()) {
        Err(Error::Locked { dir: d, lock_file }) => {
            assert_eq!(d, dir.path());
            assert!(lock_file.starts_with(dir.path()), "{lock_file:?}");
        }
        other => panic!("expected Locked, got {:?}", other.map(|l| l.len())),
    }
    // `check` takes no lock: it only reads, and may run beside the owner.
    let report = NoticeLog::check(dir.path()).unwrap();
    assert_eq!(report.stats.notices, 3);
    assert_untouched(&log, "after the refused open");
    drop(log);
    open_log(dir.path(), config()).expect("the lock is released with the log");
}

#[test]
fn a_second_open_from_another_process_is_locked() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().join("notices");
    let log = setup(&dir);
    let out = Command::new(feedcore_bin())
        .args(["load", store.path().to_str().unwrap(), "--notices", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "load ran beside the owner: {stderr}");
    assert!(stderr.contains("already open"), "{stderr}");
    assert_untouched(&log, "after the refused load");
    drop(log);
    // Once the owner is gone the other process gets in.
    let out = Command::new(feedcore_bin())
        .args(["load", store.path().to_str().unwrap(), "--notices", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(open_log(&dir, config()).unwrap().len(), 8);
}

#[test]
fn an_out_of_range_config_is_refused_before_anything_is_created() {
    let base = tempfile::tempdir().unwrap();
    let cases = [
        ("segment_bytes 0", 0, BODY_BYTES_MAX_DEFAULT),
        (
            "segment_bytes one page short",
            SEGMENT_BYTES_MIN - 4096,
            BODY_BYTES_MAX_DEFAULT,
        ),
        (
            "segment_bytes one byte short",
            SEGMENT_BYTES_MIN - 1,
            BODY_BYTES_MAX_DEFAULT,
        ),
        (
            "segment_bytes not a multiple of 4096",
            SEGMENT_BYTES_MIN + 2048,
            BODY_BYTES_MAX_DEFAULT,
        ),
        (
            "segment_bytes over the maximum",
            SEGMENT_BYTES_MAX + 4096,
            BODY_BYTES_MAX_DEFAULT,
        ),
        ("segment_bytes u64::MAX", u64::MAX, BODY_BYTES_MAX_DEFAULT),
        ("body_bytes_max 0", SEGMENT_BYTES_MIN, 0),
        (
            "body_bytes_max over a quarter segment",
            SEGMENT_BYTES_MIN,
            SEGMENT_BYTES_MIN as usize / 4 + 1,
        ),
    ];
    for (i, (what, segment_bytes, body_bytes_max)) in cases.into_iter().enumerate() {
        let dir = base.path().join(format!("log{i}"));
        let config = LogConfig {
            segment_bytes,
            body_bytes_max,
            ..config()
        };
        match NoticeLog::open(&dir, config) {
            Err(Error::InvalidConfig { reason }) => assert!(!reason.is_empty()),
            Err(e) => panic!("{what}: expected InvalidConfig, got {e:?}"),
            Ok(_) => panic!("{what}: accepted"),
        }
        assert!(!dir.exists(), "{what}: the directory was created");
    }
    // The edges themselves are fine.
    for (i, segment_bytes) in [SEGMENT_BYTES_MIN, SEGMENT_BYTES_MIN + 4096]
        .into_iter()
        .enumerate()
    {
        let dir = base.path().join(format!("ok{i}"));
        let log = open_log(
            &dir,
            LogConfig {
                segment_bytes,
                body_bytes_max: segment_bytes as usize / 4,
                ..config()
            },
        )
        .unwrap();
        assert_eq!(log.stats().segment_bytes_total, segment_bytes);
    }
}
