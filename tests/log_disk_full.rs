//! Guards the log when the disk refuses space, without root: a file-size limit
//! (`ulimit -f`, SIGXFSZ ignored) makes preallocating the next segment fail with EFBIG.
//! `feedcore load` must then stop with an error naming the segment, and the store must
//! reopen with every acknowledged notice and check sound. In process, a batch that the
//! failure interrupts must not show up later, in part or whole. And a log path that is a
//! regular file is an error, not a panic.
//!
//! The trick that lets the first segment exist but not the next: the store is made
//! with 64 KiB segments, and reopened with a larger `segment_bytes` (only new segments
//! take it), under a limit between the two sizes.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::{assert_all_synthetic, feedcore_bin, open_log, segment_files};
use feedcore::sim::synthetic_notice;
use feedcore::{Durability, Error, LogConfig, NoticeId, NoticeLog};

/// The in-process test lowers this process's file-size limit; the others wait for it.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        durability: Durability::Always,
        ..Default::default()
    }
}

/// A log in `dir` with 64 KiB segments holding synthetic notices `1..=count`.
fn fill(dir: &Path, count: u64) {
    let log = open_log(dir, small()).unwrap();
    let batch: Vec<_> = (1..=count).map(|i| synthetic_notice(NoticeId(i))).collect();
    log.append_batch(&batch).unwrap();
    assert_eq!(log.stats().segments, 1, "the notices fit the first segment");
    drop(log);
}

#[test]
fn load_stops_with_a_clear_error_when_the_next_segment_cannot_be_created() {
    let _serial = serial();
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().join("notices");
    let before = 100;
    fill(&dir, before);

    // dash counts `ulimit -f` in 512-byte blocks: 2048 blocks are 1 MiB, above the
    // existing 64 KiB segment and below the 64 MiB one `load` creates next.
    let out = Command::new("sh")
        .args(["-c", r#"trap "" XFSZ; ulimit -f 2048; exec "$0" "$@""#])
        .arg(feedcore_bin())
        .arg("load")
        .arg(store.path())
        .args([
            "--notices",
            "1000",
            "--durability",
            "always",
            "--print-acks",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "load did not fail: {stdout}");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an error exit, not a signal: {stderr}"
    );
    assert!(
        stderr.contains("00000002.seg") && stderr.contains("File too large"),
        "the error names the segment and the cause: {stderr}"
    );
    let acks: Vec<u64> = stdout
        .lines()
        .map(|l| l.strip_prefix("ack ").expect("only acks").parse().unwrap())
        .collect();
    assert!(
        !acks.is_empty(),
        "the first segment still had room: {stderr}"
    );
    let expected: Vec<u64> = (before + 1..=before + acks.len() as u64).collect();
    assert_eq!(acks, expected);
    let last = *acks.last().unwrap();

    assert_eq!(segment_files(&dir).len(), 1, "no second segment");
    assert!(
        !dir.join("00000002.seg.tmp").exists(),
        "the half-made segment is removed"
    );
    let report = NoticeLog::check(&dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let log = open_log(&dir, small()).unwrap();
    assert_eq!(log.recovery().torn_tail, None);
    assert_eq!(log.len(), last, "every acknowledged notice, and no other");
    assert_all_synthetic(&log);
    // With room again, the log goes on into a new segment.
    let more: Vec<_> = (last + 1..=last + 200)
        .map(|i| synthetic_notice(NoticeId(i)))
        .collect();
    log.append_batch(&more).unwrap();
    assert!(log.stats().segments >= 2);
    drop(log);
    let log = open_log(&dir, small()).unwrap();
    assert_eq!(log.len(), last + 200);
    assert_all_synthetic(&log);
}

/// Restores the file-size limit (and SIGXFSZ) when dropped, also on a failed assert.
struct FileSizeLimit {
    old: libc::rlimit,
}

impl FileSizeLimit {
    fn set(bytes: u64) -> FileSizeLimit {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscalls on this process with valid pointers to locals.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut old), 0);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let new = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: old.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &new), 0);
        }
        FileSizeLimit { old }
    }
}

impl Drop for FileSizeLimit {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe {
            libc::setrlimit(libc::RLIMIT_FSIZE, &self.old);
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
        }
    }
}

/// A batch whose first notices fit the current segment and whose next one needs a new
/// segment that cannot be created: the append fails, and none of the batch may appear
/// afterwards, not after the next successful append and not after a reopen.
#[test]
fn a_batch_cut_short_by_a_full_disk_does_not_appear_later() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let before = 140;
    fill(dir.path(), before);
    let big = LogConfig {
        segment_bytes: 1 << 20,
        ..small()
    };
    let log = open_log(dir.path(), big.clone()).unwrap();
    let batch: Vec<_> = (before + 1..=before + 16)
        .map(|i| synthetic_notice(NoticeId(i)))
        .collect();
    let failed = {
        let _limit = FileSizeLimit::set(512 * 1024);
        log.append_batch(&batch)
    };
    match &failed {
        Err(Error::Io { source, context }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{context}");
            assert!(context.contains("00000002.seg"), "{context}");
        }
        other => panic!("expected an I/O error from the segment creation, got {other:?}"),
    }
    assert_eq!(
        log.len(),
        before,
        "nothing of the failed batch is published"
    );
    assert!(log.get(NoticeId(before + 1)).is_none());

    // Room again: the caller retries its first notice.
    let retry = synthetic_notice(NoticeId(before + 1));
    match log.append(&retry) {
        Ok(id) => {
            assert_eq!(
                id,
                NoticeId(before + 1),
                "the retried notice must get the next id: the failed batch left {} \
                 notices behind that are now visible",
                id.0 - before - 1
            );
            assert_eq!(log.len(), before + 1);
        }
        // Refusing further writes until a reopen is an acceptable answer too.
        Err(Error::Poisoned { .. }) => {}
        Err(e) => panic!("retry failed: {e}"),
    }
    for notice in log.iter_from(NoticeId(before + 1)) {
        assert_eq!(
            notice.body(),
            retry.body,
            "{} is a notice of the failed batch",
            notice.id()
        );
    }
    drop(log);
    let log = open_log(dir.path(), big).unwrap();
    assert!(
        log.len() <= before + 1,
        "after a reopen the log has {} notices; the failed batch's are back",
        log.len()
    );
    assert_all_synthetic(&log);
    drop(log);
    let report = NoticeLog::check(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// A batch larger than a segment cannot avoid a roll half-way; when that roll fails,
/// the written part must not be published by a later append: the log refuses writes
/// until it is reopened (and then holds a prefix of the batch, as after a crash).
#[test]
fn a_batch_larger_than_a_segment_cut_short_poisons_the_log() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let before = 100;
    fill(dir.path(), before);
    let medium = LogConfig {
        segment_bytes: 128 * 1024,
        ..small()
    };
    let log = open_log(dir.path(), medium.clone()).unwrap();
    // 400 notices of about 430 bytes: more than a 128 KiB segment holds.
    let batch: Vec<_> = (before + 1..=before + 400)
        .map(|i| synthetic_notice(NoticeId(i)))
        .collect();
    let failed = {
        // Room for the 64 KiB first segment, none for a 128 KiB second one.
        let _limit = FileSizeLimit::set(96 * 1024);
        log.append_batch(&batch)
    };
    assert!(
        matches!(&failed, Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EFBIG)),
        "{failed:?}"
    );
    assert_eq!(
        log.len(),
        before,
        "nothing of the failed batch is published"
    );
    match log.append(&synthetic_notice(NoticeId(before + 1))) {
        Err(Error::Poisoned { .. }) => {}
        other => panic!("expected Poisoned after a half-written batch, got {other:?}"),
    }
    assert_eq!(log.len(), before);
    drop(log);
    let log = open_log(dir.path(), medium).unwrap();
    assert!(log.len() >= before && log.len() < before + 400);
    assert_all_synthetic(&log);
    drop(log);
    let report = NoticeLog::check(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn a_regular_file_as_the_log_directory_is_an_error() {
    let _serial = serial();
    let base = tempfile::tempdir().unwrap();
    let file = base.path().join("not-a-dir");
    std::fs::write(&file, b"plain bytes").unwrap();
    for path in [file.clone(), file.join("below")] {
        match NoticeLog::open(&path, small()) {
            Err(Error::Io { context, .. }) => {
                assert!(context.contains("not-a-dir"), "{context}")
            }
            Err(e) => panic!("{path:?}: expected an I/O error, got {e:?}"),
            Ok(_) => panic!("{path:?}: opened a log in a regular file"),
        }
        assert!(NoticeLog::check(&path).is_err(), "{path:?}: check");
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"plain bytes",
        "file untouched"
    );
    // The CLI refuses it with an error exit (1 or 2), not a panic (101).
    std::fs::create_dir(base.path().join("store")).unwrap();
    std::fs::write(base.path().join("store/notices"), b"x").unwrap();
    for args in [vec!["check"], vec!["load", "--notices", "1"]] {
        let out = Command::new(feedcore_bin())
            .args(&args[..1])
            .arg(base.path().join("store"))
            .args(&args[1..])
            .output()
            .unwrap();
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?}: {:?} {output}",
            out.status
        );
        assert!(!output.contains("panicked"), "{args:?}: {output}");
    }
}
