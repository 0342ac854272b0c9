//! Guards recovery's line between a torn tail and corruption: a last record cut short
//! at any byte, or garbage after it, is a torn tail that open cuts off (reported, every
//! earlier notice intact, appends go on and survive a reopen); a zero tail is clean;
//! a damaged record in a sealed segment, a damaged record with good records after it in
//! the last segment, or a missing segment is `Error::Corrupt` naming the file and the
//! record's offset, and is never repaired by truncation. `NoticeLog::check` and
//! `feedcore check` (exit 0 sound / 1 damaged) must say the same.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Record, assert_all_synthetic, copy_dir, feedcore_bin, records, segment_files};
use feedcore::sim::synthetic_notice;
use feedcore::{CheckReport, Durability, Error, LogConfig, NoticeId, NoticeLog};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        durability: Durability::Buffered,
        ..Default::default()
    }
}

/// A store directory (the log in `STORE/notices`, where `feedcore check STORE` looks)
/// holding synthetic notices `1..=count`, synced and closed.
fn store_with(count: u64) -> tempfile::TempDir {
    let store = common::scratch_dir();
    let log = common::open_log(&notices(store.path()), config()).unwrap();
    let batch: Vec<_> = (1..=count).map(|i| synthetic_notice(NoticeId(i))).collect();
    log.append_batch(&batch).unwrap();
    log.sync().unwrap();
    drop(log);
    store
}

fn notices(store: &Path) -> PathBuf {
    store.join("notices")
}

fn cli_check(store: &Path) -> (i32, String) {
    let out = Command::new(feedcore_bin())
        .arg("check")
        .arg(store)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().expect("check exits, no signal"), stdout)
}

fn last_record(file: &Path) -> Record {
    *records(file).last().expect("the segment holds records")
}

/// The report holds exactly one problem, recoverable, at `file` / `offset`.
fn assert_one_recoverable(report: &CheckReport, file: &Path, offset: u64) {
    assert!(report.is_sound(), "{:?}", report.problems);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert!(p.recoverable, "{p:?}");
    assert_eq!((p.file.as_path(), p.offset), (file, offset), "{p:?}");
}

/// Open refuses with `Corrupt` at `file` / `offset`, changes no byte of the log, and
/// `check` reports the same place as damage.
fn assert_corrupt_at(dir: &Path, file: &Path, offset: u64, what: &str) {
    let before: Vec<Vec<u8>> = segment_files(dir)
        .iter()
        .map(|f| fs::read(f).unwrap())
        .collect();
    match common::open_log(dir, config()) {
        Err(Error::Corrupt {
            file: f,
            offset: o,
            reason,
        }) => {
            assert_eq!(
                (f.as_path(), o),
                (file, offset),
                "{what}: reported at the wrong place ({reason})"
            );
        }
        Err(other) => panic!("{what}: expected Corrupt at {offset}, got {other:?}"),
        Ok(log) => panic!(
            "{what}: opened with {} notices and torn tail {:?} instead of refusing",
            log.len(),
            log.recovery().torn_tail
        ),
    }
    let after: Vec<Vec<u8>> = segment_files(dir)
        .iter()
        .map(|f| fs::read(f).unwrap())
        .collect();
    assert!(before == after, "{what}: a refused open changed the files");
    let report = NoticeLog::check(dir).unwrap();
    assert!(!report.is_sound(), "{what}: {:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| !p.recoverable && p.file == file && p.offset == offset),
        "{what}: check does not report damage at {offset}: {:?}",
        report.problems
    );
}

/// Which part of the last record a crash lost.
#[derive(Clone, Copy, Debug)]
enum Lost {
    /// Everything from the cut on (the write stopped there).
    From,
    /// Everything before the cut (pages written back out of order: the record's end
    /// reached the disk, its head did not).
    Before,
}

#[test]
fn the_last_record_cut_at_any_byte_is_a_torn_tail() {
    for lost in [Lost::From, Lost::Before] {
        cut_the_last_record(lost);
    }
}

fn cut_the_last_record(lost: Lost) {
    let count = 5;
    let pristine = store_with(count);
    let seg = segment_files(&notices(pristine.path()))[0].clone();
    let bytes = fs::read(&seg).unwrap();
    let last = last_record(&seg);
    assert_eq!(last.id, count);
    let (start, end) = (last.offset as usize, last.end() as usize);
    let mut torn_cuts = 0;
    for cut in start..=end {
        let store = common::scratch_dir();
        let dir = notices(store.path());
        copy_dir(&notices(pristine.path()), &dir);
        let file = dir.join(seg.file_name().unwrap());
        let (zeroed, kept_bytes) = match lost {
            Lost::From => (cut..end, start..cut),
            Lost::Before => (start..cut, cut..end),
        };
        common::write_at(&file, zeroed.start as u64, &vec![0; zeroed.len()]);
        let changed = bytes[zeroed].iter().any(|&b| b != 0);
        // Nothing of the record left: the log simply ends before it.
        let vanished = bytes[kept_bytes].iter().all(|&b| b == 0);
        let torn = changed && !vanished;
        let what = format!("{lost:?} byte {cut} of the record at {start}..{end}");

        let report = NoticeLog::check(&dir).unwrap();
        if torn {
            torn_cuts += 1;
            assert_one_recoverable(&report, &file, last.offset);
        } else {
            assert!(report.problems.is_empty(), "{what}: {:?}", report.problems);
        }
        if cut == start + 7 {
            let (code, out) = cli_check(store.path());
            assert_eq!(code, 0, "a torn tail is sound for `feedcore check`: {out}");
        }

        let log = common::open_log(&dir, config()).unwrap();
        let kept = if changed { count - 1 } else { count };
        assert_eq!(log.len(), kept, "{what}");
        assert_all_synthetic(&log);
        match &log.recovery().torn_tail {
            Some(p) if torn => {
                assert_eq!((p.file.as_path(), p.offset), (file.as_path(), last.offset));
                assert!(p.recoverable);
            }
            None if !torn => {}
            other => panic!("{what} (torn: {torn}): recovery reports {other:?}"),
        }
        // The next notice goes where the cut one was and survives a reopen.
        let id = log.append(&synthetic_notice(NoticeId(kept + 1))).unwrap();
        assert_eq!(id, NoticeId(kept + 1));
        drop(log);
        let log = common::open_log(&dir, config()).unwrap();
        assert_eq!(log.len(), kept + 1, "{what}");
        assert_eq!(log.recovery().torn_tail, None, "{what}");
        assert_all_synthetic(&log);
        drop(log);
        let report = NoticeLog::check(&dir).unwrap();
        assert!(report.problems.is_empty(), "{what}: {:?}", report.problems);
    }
    assert!(
        torn_cuts > (end - start) / 2,
        "{lost:?}: most cut points tear the record"
    );
}

#[test]
fn garbage_after_the_last_record_is_cut_off() {
    for (gap, garbage) in [(0u64, 16usize), (32, 100), (4000, 3)] {
        let store = store_with(5);
        let dir = notices(store.path());
        let file = segment_files(&dir)[0].clone();
        let end = last_record(&file).end();
        common::write_at(&file, end + gap, &vec![0xab; garbage]);

        let report = NoticeLog::check(&dir).unwrap();
        assert_one_recoverable(&report, &file, end);
        let (code, out) = cli_check(store.path());
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("recoverable"), "{out}");

        let log = common::open_log(&dir, config()).unwrap();
        let torn = log
            .recovery()
            .torn_tail
            .clone()
            .expect("the garbage is reported");
        assert_eq!((torn.file.as_path(), torn.offset), (file.as_path(), end));
        assert_eq!(log.len(), 5);
        assert_all_synthetic(&log);
        assert!(
            common::read_at(&file, end, 4096).iter().all(|&b| b == 0),
            "the garbage is zeroed"
        );
        assert_eq!(
            log.append(&synthetic_notice(NoticeId(6))).unwrap(),
            NoticeId(6)
        );
        drop(log);
        let log = common::open_log(&dir, config()).unwrap();
        assert_eq!(log.recovery().torn_tail, None);
        assert_eq!(log.len(), 6);
        assert_all_synthetic(&log);
    }
}

#[test]
fn a_zero_tail_is_clean() {
    let store = store_with(5);
    let dir = notices(store.path());
    let file = segment_files(&dir)[0].clone();
    let end = last_record(&file).end();
    let size = fs::metadata(&file).unwrap().len();
    common::write_at(&file, end, &vec![0; (size - end) as usize]);
    let report = NoticeLog::check(&dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.stats.notices, 5);
    assert_eq!(cli_check(store.path()).0, 0);
    let log = common::open_log(&dir, config()).unwrap();
    assert_eq!(log.recovery().torn_tail, None);
    assert_eq!(log.len(), 5);
    assert_all_synthetic(&log);
}

/// Flips one bit in every header and payload byte of `record`, one at a time, and
/// expects `Corrupt` at the record's offset each time.
fn flip_every_byte(store: &Path, file: &Path, record: Record) {
    let dir = notices(store);
    for at in record.offset..record.payload() + record.len {
        let mask = 1u8 << (at % 8);
        common::xor_byte(file, at, mask);
        assert_corrupt_at(
            &dir,
            file,
            record.offset,
            &format!("bit {mask:#x} of byte {at} in {}", file.display()),
        );
        if at == record.offset + 20 {
            let (code, out) = cli_check(store);
            assert_eq!(code, 1, "{out}");
            assert!(out.contains("DAMAGE"), "{out}");
        }
        common::xor_byte(file, at, mask);
    }
    // Restored: the log opens whole again.
    let log = common::open_log(&dir, config()).unwrap();
    assert_eq!(log.recovery().torn_tail, None);
    assert_all_synthetic(&log);
}

#[test]
fn a_damaged_record_in_a_sealed_segment_is_corruption_at_that_record() {
    let store = store_with(400);
    let dir = notices(store.path());
    let files = segment_files(&dir);
    assert!(files.len() >= 3, "{files:?}");
    let in_first = records(&files[0]);
    flip_every_byte(store.path(), &files[0], in_first[in_first.len() / 2]);
    // The last record of a sealed segment has no record after it in its file, and is
    // still not a torn tail: only the last segment can have one.
    let last = *in_first.last().unwrap();
    common::xor_byte(&files[0], last.payload() + 3, 0x40);
    assert_corrupt_at(&dir, &files[0], last.offset, "last record of segment 1");
}

#[test]
fn a_damaged_record_before_good_ones_in_the_last_segment_is_corruption() {
    let store = store_with(400);
    let dir = notices(store.path());
    let files = segment_files(&dir);
    let last_file = files.last().unwrap();
    let in_last = records(last_file);
    assert!(in_last.len() >= 4, "{in_last:?}");
    flip_every_byte(store.path(), last_file, in_last[in_last.len() / 2]);
    // The first record of the segment too.
    flip_every_byte(store.path(), last_file, in_last[0]);
}

/// A power loss with several unsynced records in flight can keep a later one and lose
/// an earlier one. None of them was acknowledged as durable: the segment's synced mark
/// says where the last sync began, so open cuts them all off instead of refusing.
#[test]
fn records_written_after_the_last_sync_are_cut_though_a_later_one_survived() {
    let synced = 5;
    let store = store_with(synced);
    let dir = notices(store.path());
    let file = segment_files(&dir)[0].clone();
    // The segment header as the last sync that reached the disk left it.
    let header = common::read_at(&file, 0, 64);
    let log = common::open_log(&dir, config()).unwrap();
    // Buffered: these appends return unsynced.
    let batch: Vec<_> = (synced + 1..=synced + 3)
        .map(|i| synthetic_notice(NoticeId(i)))
        .collect();
    log.append_batch(&batch).unwrap();
    drop(log);
    // Closing synced them; the power loss came before that sync.
    common::write_at(&file, 0, &header);
    let all = records(&file);
    assert_eq!(all.len() as u64, synced + 3);
    // The first unsynced record never reached the disk; the two after it did.
    let lost = all[synced as usize];
    common::write_at(
        &file,
        lost.offset,
        &vec![0; (lost.end() - lost.offset) as usize],
    );

    let report = NoticeLog::check(&dir).unwrap();
    assert_one_recoverable(&report, &file, lost.offset);
    let (code, out) = cli_check(store.path());
    assert_eq!(code, 0, "{out}");

    let log = common::open_log(&dir, config()).unwrap();
    assert_eq!(
        log.len(),
        synced,
        "every synced notice, nothing after the lost one"
    );
    assert_all_synthetic(&log);
    let torn = log
        .recovery()
        .torn_tail
        .clone()
        .expect("the cut is reported");
    assert_eq!(
        (torn.file.as_path(), torn.offset),
        (file.as_path(), lost.offset)
    );
    assert!(
        common::read_at(&file, lost.offset, 4096)
            .iter()
            .all(|&b| b == 0),
        "the surviving unsynced records are zeroed with the lost one"
    );
    // Appends go on from the cut, and a sync moves the mark past them.
    let id = log.append(&synthetic_notice(NoticeId(synced + 1))).unwrap();
    assert_eq!(id, NoticeId(synced + 1));
    log.sync().unwrap();
    drop(log);
    let log = common::open_log(&dir, config()).unwrap();
    assert_eq!(log.len(), synced + 1);
    assert_eq!(log.recovery().torn_tail, None);
    drop(log);

    // The same loss before the synced mark is corruption: those records were synced.
    let store = store_with(synced + 3);
    let dir = notices(store.path());
    let file = segment_files(&dir)[0].clone();
    let lost = records(&file)[synced as usize];
    common::write_at(
        &file,
        lost.offset,
        &vec![0; (lost.end() - lost.offset) as usize],
    );
    assert_corrupt_at(&dir, &file, lost.offset, "a synced record lost");
}

/// A log written before the synced mark (segment format 1: 28 reserved bytes under a
/// checksum of bytes 0..60) opens, takes appends and syncs, and stays format 1 and
/// readable: the mark is never written into it.
#[test]
fn a_format_1_log_stays_readable_after_appends_and_syncs() {
    let store = store_with(5);
    let dir = notices(store.path());
    let file = segment_files(&dir)[0].clone();
    let mut header = common::read_at(&file, 0, 64);
    header[8..12].copy_from_slice(&1u32.to_le_bytes());
    header[32..60].fill(0);
    let crc = crc32c::crc32c(&header[0..60]);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    common::write_at(&file, 0, &header);
    for round in 0..2u64 {
        let log = common::open_log(
            &dir,
            LogConfig {
                durability: Durability::Always,
                ..config()
            },
        )
        .unwrap();
        assert_eq!(log.len(), 5 + round, "round {round}");
        log.append(&synthetic_notice(NoticeId(6 + round))).unwrap();
        log.sync().unwrap();
        drop(log);
        assert_eq!(
            common::read_at(&file, 0, 64),
            header,
            "round {round}: the format 1 header is untouched"
        );
    }
    let report = NoticeLog::check(&dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let log = common::open_log(&dir, config()).unwrap();
    assert_eq!(log.len(), 7);
    assert_all_synthetic(&log);
}

#[test]
fn a_missing_segment_is_corruption() {
    for missing in [1, 2] {
        let store = store_with(400);
        let dir = notices(store.path());
        let files = segment_files(&dir);
        assert_eq!(files.len(), 3, "{files:?}");
        fs::remove_file(&files[missing - 1]).unwrap();
        let next = &files[missing];
        match common::open_log(&dir, config()) {
            Err(Error::Corrupt { file, reason, .. }) => {
                assert_eq!(&file, next, "{reason}");
                assert!(reason.contains("missing"), "{reason}");
            }
            Err(e) => panic!("segment {missing} missing: expected Corrupt, got {e:?}"),
            Ok(log) => panic!(
                "segment {missing} missing: opened with {} notices",
                log.len()
            ),
        }
        assert_eq!(
            segment_files(&dir).len(),
            2,
            "a refused open removes nothing"
        );
        assert_corrupt_at(&dir, next, 0, "missing segment");
        let (code, out) = cli_check(store.path());
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("DAMAGE"), "{out}");
    }
}

#[test]
fn bad_bytes_after_the_end_of_a_sealed_segment_are_corruption() {
    let store = store_with(400);
    let dir = notices(store.path());
    let first = segment_files(&dir)[0].clone();
    let end = last_record(&first).end();
    let size = fs::metadata(&first).unwrap().len();
    assert!(size - end >= 32, "room after the last record of segment 1");
    common::write_at(&first, end + 16, &[0xcd; 8]);
    assert_corrupt_at(
        &dir,
        &first,
        end,
        "garbage after a sealed segment's records",
    );
    assert_eq!(cli_check(store.path()).0, 1);
}
