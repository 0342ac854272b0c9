//! Guards deletion on disk: a deleted notice's body, tags and uri are overwritten in the
//! segment file (checked by searching the raw bytes), never while a `NoticeRef` to it is
//! alive, at the latest by the next `sync` once no reference holds them, and a scrub
//! that a crash interrupted (tag byte written but payload not, or tombstone written but
//! tag not) is finished by the next open. A scrubbed tag with no tombstone behind it is
//! damage, not a delete.

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::{
    TAG_NOTICE, TAG_SCRUBBED, TAG_TOMBSTONE, dir_contains, find_notice_record, read_at, records,
    segment_files, write_at,
};
use feedcore::{Durability, Error, LogConfig, NewNotice, NoticeId, NoticeLog, Scope, UserId};

/// Scrubs wait for every epoch pin in the process; the tests of this file run one at a
/// time so that another test's reads cannot hold up (or excuse) a scrub.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const BODY: &str = "confidential body: the launch code is 0000";
const TAG: &str = "tagonlyinthesecret";
const URI: &str = "https://secret.example/notice/uri-only-in-the-secret";
const KEEP: &str = "an unrelated notice that stays";
const AFTER: &str = "a notice written after the secret one";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        durability: Durability::Always,
        ..Default::default()
    }
}

fn plain(body: &str) -> NewNotice {
    NewNotice {
        author: UserId(1),
        body: body.into(),
        created_at_ms: 1_700_000_000_000,
        ..Default::default()
    }
}

fn secret() -> NewNotice {
    NewNotice {
        author: UserId(2),
        body: BODY.into(),
        tags: vec![format!("#{}", TAG.to_uppercase())],
        uri: Some(URI.into()),
        mentions: vec![UserId(9)],
        scope: Scope::Followers,
        ..plain(BODY)
    }
}

/// A log with notices 1 (KEEP), 2 (the secret) and 3 (AFTER).
fn setup(dir: &Path) -> NoticeLog {
    let log = NoticeLog::open(dir, config()).unwrap();
    assert_eq!(log.append(&plain(KEEP)).unwrap(), NoticeId(1));
    assert_eq!(log.append(&secret()).unwrap(), NoticeId(2));
    assert_eq!(log.append(&plain(AFTER)).unwrap(), NoticeId(3));
    assert_secret_on_disk(dir, true);
    log
}

fn assert_secret_on_disk(dir: &Path, present: bool) {
    for needle in [BODY, TAG, URI] {
        assert_eq!(
            dir_contains(dir, needle.as_bytes()),
            present,
            "{needle:?} {} in the segment files",
            if present {
                "must be"
            } else {
                "must no longer be"
            }
        );
    }
}

/// The secret's record is scrubbed: tag 3, payload all zeros, and a tombstone for it.
fn assert_scrubbed_record(dir: &Path) {
    let (file, record) = find_notice_record(dir, NoticeId(2));
    assert_eq!(record.tag, TAG_SCRUBBED, "{record:?}");
    assert!(
        read_at(&file, record.payload(), record.len)
            .iter()
            .all(|&b| b == 0),
        "payload of {record:?} is zeroed"
    );
    let tombstones = segment_files(dir)
        .iter()
        .flat_map(|f| records(f))
        .filter(|r| r.tag == TAG_TOMBSTONE && r.id == 2)
        .count();
    assert_eq!(tombstones, 1, "one tombstone for notice 2");
}

fn assert_neighbours_intact(log: &NoticeLog) {
    assert_eq!(log.get(NoticeId(1)).unwrap().body(), KEEP);
    assert_eq!(log.get(NoticeId(3)).unwrap().body(), AFTER);
}

#[test]
fn delete_zeroes_body_tags_and_uri_in_the_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());
    assert_eq!(log.find_uri(URI), Some(NoticeId(2)));
    log.delete(NoticeId(2)).unwrap();
    // No reference was alive: the scrub is done when delete returns, no sync needed.
    assert_secret_on_disk(dir.path(), false);
    assert_scrubbed_record(dir.path());
    assert!(log.get(NoticeId(2)).is_none());
    assert_eq!(log.find_uri(URI), None);
    assert_neighbours_intact(&log);
    assert!(dir_contains(dir.path(), KEEP.as_bytes()));
    assert!(dir_contains(dir.path(), AFTER.as_bytes()));
    drop(log);

    let log = NoticeLog::open(dir.path(), config()).unwrap();
    assert!(log.get(NoticeId(2)).is_none());
    assert_eq!(log.find_uri(URI), None);
    assert_eq!(log.recovery().deleted, 1);
    assert_eq!(log.recovery().scrubs_finished, 0);
    assert_neighbours_intact(&log);
    drop(log);
    let report = NoticeLog::check(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.stats.deleted, 1);
}

/// A reference to another notice pins the epoch too, so the scrub may wait for it (the
/// documented contract: the bytes go once no reference taken before the delete is
/// alive); the delete itself must not wait, and `sync` after the reference is gone
/// must finish the scrub.
#[test]
fn a_reference_to_another_notice_does_not_block_the_delete() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());

    // Held in this thread.
    let keep = log.get(NoticeId(1)).unwrap();
    log.delete(NoticeId(2)).unwrap();
    assert!(log.get(NoticeId(2)).is_none());
    assert_eq!(keep.body(), KEEP, "the other reference reads its notice");
    drop(keep);
    log.sync().unwrap();
    assert_secret_on_disk(dir.path(), false);
    assert_scrubbed_record(dir.path());

    // Held by another thread, released before the sync.
    let other = NewNotice {
        body: format!("{BODY} (second)"),
        uri: None,
        ..secret()
    };
    let id = log.append(&other).unwrap();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let log = &log;
        let reader = s.spawn(move || {
            let keep = log.get(NoticeId(1)).unwrap();
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            assert_eq!(keep.body(), KEEP);
        });
        held_rx.recv().unwrap();
        log.delete(id).unwrap();
        assert!(log.get(id).is_none());
        release_tx.send(()).unwrap();
        reader.join().unwrap();
    });
    log.sync().unwrap();
    assert!(
        !dir_contains(dir.path(), other.body.as_bytes()),
        "the scrub ran at the sync after the other thread's reference was dropped"
    );
    assert_neighbours_intact(&log);
}

#[test]
fn a_held_reference_to_the_deleted_notice_keeps_its_bytes_until_dropped() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());
    let held = log.get(NoticeId(2)).unwrap();
    log.delete(NoticeId(2)).unwrap();
    assert!(log.get(NoticeId(2)).is_none());
    assert_eq!(log.find_uri(URI), None);
    assert!(matches!(
        log.delete(NoticeId(2)),
        Err(Error::UnknownNotice { id }) if id == NoticeId(2)
    ));
    // The held reference still reads the notice as it was: the scrub waits for it.
    assert_eq!(held.body(), BODY);
    assert_eq!(held.tags().collect::<Vec<_>>(), vec![TAG]);
    assert_eq!(held.uri(), Some(URI));
    assert_eq!(held.author(), UserId(2));
    assert_secret_on_disk(dir.path(), true);
    // A sync while the reference lives must not scrub under it either.
    log.sync().unwrap();
    assert_eq!(held.body(), BODY);
    assert_secret_on_disk(dir.path(), true);

    drop(held);
    log.sync().unwrap();
    assert_secret_on_disk(dir.path(), false);
    assert_scrubbed_record(dir.path());
    assert_neighbours_intact(&log);
    drop(log);

    let log = NoticeLog::open(dir.path(), config()).unwrap();
    assert!(log.get(NoticeId(2)).is_none());
    assert_eq!(log.recovery().deleted, 1);
    assert_eq!(log.recovery().scrubs_finished, 0);
    assert_neighbours_intact(&log);
}

/// A scrub still pending when the log is dropped (no `sync` after the reference went)
/// is run by the drop.
#[test]
fn dropping_the_log_finishes_pending_scrubs() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = setup(dir.path());
    let held = log.get(NoticeId(2)).unwrap();
    log.delete(NoticeId(2)).unwrap();
    assert_eq!(held.body(), BODY);
    drop(held);
    drop(log);
    assert_secret_on_disk(dir.path(), false);
    assert_scrubbed_record(dir.path());
    let log = NoticeLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.recovery().scrubs_finished, 0);
    assert_eq!(log.recovery().deleted, 1);
}

/// Deletes the secret (fully scrubbed), then puts bytes back as a crash would have
/// left them; returns the segment file and the record.
fn deleted_then_restored(dir: &Path, whole_record: bool) -> (std::path::PathBuf, common::Record) {
    let log = setup(dir);
    log.sync().unwrap();
    let (file, record) = find_notice_record(dir, NoticeId(2));
    assert_eq!(record.tag, TAG_NOTICE);
    let original = read_at(&file, record.offset, record.end() - record.offset);
    log.delete(NoticeId(2)).unwrap();
    drop(log);
    assert_secret_on_disk(dir, false);
    if whole_record {
        // Tombstone written, crash before the tag byte: the record is whole, tag 1.
        write_at(&file, record.offset, &original);
        assert_eq!(
            read_at(&file, record.offset + common::TAG_OFFSET, 1),
            [TAG_NOTICE]
        );
    } else {
        // Tag byte written, crash before the zeros: tag 3 over the original payload.
        write_at(&file, record.payload(), &original[16..]);
        assert_eq!(
            read_at(&file, record.offset + common::TAG_OFFSET, 1),
            [TAG_SCRUBBED]
        );
    }
    assert_secret_on_disk(dir, true);
    (file, record)
}

fn assert_reopen_finishes_the_scrub(dir: &Path, file: &Path, record: common::Record) {
    let report = NoticeLog::check(dir).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert!(problem.recoverable, "{problem:?}");
    assert_eq!(problem.file, file);
    assert_eq!(problem.offset, record.offset);
    assert!(
        dir_contains(dir, BODY.as_bytes()),
        "check changes nothing on disk"
    );

    let log = NoticeLog::open(dir, config()).unwrap();
    assert_eq!(log.recovery().scrubs_finished, 1);
    assert_eq!(log.recovery().deleted, 1);
    assert_eq!(log.recovery().torn_tail, None);
    assert!(log.get(NoticeId(2)).is_none());
    assert_eq!(log.find_uri(URI), None);
    assert_neighbours_intact(&log);
    // Finished at open, before any other call.
    assert_secret_on_disk(dir, false);
    assert_scrubbed_record(dir);
    drop(log);

    let report = NoticeLog::check(dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let log = NoticeLog::open(dir, config()).unwrap();
    assert_eq!(log.recovery().scrubs_finished, 0, "nothing left to finish");
}

#[test]
fn reopen_finishes_a_scrub_interrupted_after_the_tag_byte() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (file, record) = deleted_then_restored(dir.path(), false);
    assert_reopen_finishes_the_scrub(dir.path(), &file, record);
}

#[test]
fn reopen_scrubs_a_tombstoned_notice_whose_scrub_never_started() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (file, record) = deleted_then_restored(dir.path(), true);
    assert_reopen_finishes_the_scrub(dir.path(), &file, record);
}

/// A tag byte flipped to "scrubbed" with no tombstone must not delete a notice
/// silently, whether or not its payload is zero.
#[test]
fn a_scrubbed_tag_without_a_tombstone_is_damage() {
    let _serial = serial();
    for zero_payload in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        drop(setup(dir.path()));
        let (file, record) = find_notice_record(dir.path(), NoticeId(2));
        write_at(&file, record.offset + common::TAG_OFFSET, &[TAG_SCRUBBED]);
        if zero_payload {
            write_at(&file, record.payload(), &vec![0; record.len as usize]);
        }
        match NoticeLog::open(dir.path(), config()) {
            Err(Error::Corrupt {
                file: f, offset, ..
            }) => {
                assert_eq!(f, file);
                assert_eq!(offset, record.offset);
            }
            other => panic!(
                "zero payload {zero_payload}: expected Corrupt at {}, got {:?}",
                record.offset,
                other.map(|l| l.len())
            ),
        }
        let report = NoticeLog::check(dir.path()).unwrap();
        assert!(!report.is_sound(), "{:?}", report.problems);
        assert!(
            report
                .problems
                .iter()
                .any(|p| !p.recoverable && p.file == file && p.offset == record.offset),
            "{:?}",
            report.problems
        );
    }
}
