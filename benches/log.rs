//! Micro benchmarks of the notice log, each next to a baseline measured in the same run
//! and reported in the same criterion group:
//!
//! * `append_buffered`: one `append` per 280-byte notice with `Durability::Buffered`,
//!   against `File::write_all` of the same record bytes, one call per record, to a plain
//!   file in the same directory.
//! * `group_commit`: 4 threads appending with `Durability::GroupCommit`, against one
//!   thread doing `write_all` + `fdatasync` per record.
//! * `get_random`: `get` of a random id on a warm log of 100k notices, reading the body,
//!   against indexing a `Vec<String>` of the same bodies.
//! * `recovery`: `NoticeLog::open` of a log of `FEEDCORE_BENCH_RECOVERY_MB` MiB of
//!   records (default 1024), against `std::fs::read` of the same segment files.
//!
//! Run with `cargo bench --bench log`; a figure that leaves the project is the ratio to
//! its baseline, with the machine it ran on.

use std::fs::{self, File};
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group};

#[path = "support/figures.rs"]
mod figures;
use feedcore::sim::synthetic_notice;
use feedcore::{Durability, LogConfig, NewNotice, NoticeId, NoticeLog};
use figures::{Figures, time_ns};

/// Notices per measured iteration of `append_buffered` (one `append` call each).
const APPEND_BATCH: usize = 1024;
/// A log (and the baseline file) is replaced once this many record bytes went in, so
/// the measured appends never roll a segment: rolls `fdatasync` the sealed segment,
/// which would make this a disk benchmark.
const APPEND_RESET_BYTES: u64 = 32 << 20;
/// Writer threads of `group_commit`.
const WRITERS: usize = 4;
/// Notices each writer appends per measured iteration of `group_commit`.
const NOTICES_PER_WRITER: usize = 16;
/// Notices in the log of `get_random`.
const GET_NOTICES: u64 = 100_000;

fn notices(first: u64, count: usize) -> Vec<NewNotice> {
    (first..first + count as u64)
        .map(|id| synthetic_notice(NoticeId(id)))
        .collect()
}

/// The record sizes (header, payload and padding) of a segment, in order, read from its
/// record headers: `[len: u32 LE][crc32c: u32][version: u8][tag: u8][id: u48][payload]
/// [zero pad to 16]` from byte 64 on (see `docs/design.md`).
fn record_sizes(segment: &Path) -> Vec<usize> {
    let bytes = fs::read(segment).expect("the segment was just written");
    let mut sizes = Vec::new();
    let mut pos = 64;
    while pos + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            break;
        }
        let total = 16 + len.div_ceil(16) * 16;
        sizes.push(total);
        pos += total;
    }
    sizes
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("the log directory exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

fn buffered() -> LogConfig {
    LogConfig {
        durability: Durability::Buffered,
        ..Default::default()
    }
}

/// The exact record bytes the log writes for `batch`, one `Vec` per record.
fn records_of(batch: &[NewNotice]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = NoticeLog::open(dir.path(), buffered()).expect("a fresh log opens");
    for notice in batch {
        log.append(notice).expect("synthetic notices are valid");
    }
    drop(log);
    let segment = &segment_files(dir.path())[0];
    let bytes = fs::read(segment).expect("the segment was just written");
    let mut pos = 64;
    record_sizes(segment)
        .into_iter()
        .map(|size| {
            let record = bytes[pos..pos + size].to_vec();
            pos += size;
            record
        })
        .collect()
}

fn append_buffered(c: &mut Criterion) {
    let batch = notices(1, APPEND_BATCH);
    let records = records_of(&batch);
    assert_eq!(records.len(), batch.len(), "one record per notice");
    let batch_bytes: u64 = records.iter().map(|r| r.len() as u64).sum();
    let dir = tempfile::tempdir().expect("a temporary directory");

    let mut group = c.benchmark_group("append_buffered");
    APPEND_BATCH_BYTES.get_or_init(|| batch_bytes);
    group.throughput(Throughput::ElementsAndBytes {
        elements: APPEND_BATCH as u64,
        bytes: batch_bytes,
    });
    group.bench_function("write_all_baseline", |b| {
        let path = dir.path().join("plain.bin");
        let mut file = File::create(&path).expect("creating the plain file");
        let mut written = 0u64;
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                if written >= APPEND_RESET_BYTES {
                    file = File::create(&path).expect("recreating the plain file");
                    written = 0;
                }
                let start = Instant::now();
                for record in &records {
                    file.write_all(black_box(record)).expect("writing a record");
                }
                elapsed += start.elapsed();
                written += batch_bytes;
            }
            elapsed
        });
    });
    group.bench_function("log_append", |b| {
        let path = dir.path().join("log");
        let mut log = None;
        let mut written = 0u64;
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                if log.is_none() || written >= APPEND_RESET_BYTES {
                    drop(log.take());
                    let _ = fs::remove_dir_all(&path);
                    log = Some(NoticeLog::open(&path, buffered()).expect("a fresh log opens"));
                    written = 0;
                }
                let log = log.as_ref().expect("opened above");
                let start = Instant::now();
                for notice in &batch {
                    black_box(log.append(black_box(notice)).expect("a valid notice"));
                }
                elapsed += start.elapsed();
                written += batch_bytes;
            }
            elapsed
        });
    });
    group.finish();
}

fn group_commit(c: &mut Criterion) {
    let per_iter = WRITERS * NOTICES_PER_WRITER;
    let batch = notices(1, per_iter);
    let records = records_of(&batch);
    let dir = tempfile::tempdir().expect("a temporary directory");

    let mut group = c.benchmark_group("group_commit");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(per_iter as u64));
    group.bench_function("write_fdatasync_1_thread_baseline", |b| {
        let mut file = File::create(dir.path().join("plain.bin")).expect("creating the file");
        b.iter(|| {
            for record in &records {
                file.write_all(record).expect("writing a record");
                file.sync_data().expect("fdatasync");
            }
        });
    });
    for (name, max_delay) in [
        ("log_4_threads_delay_200us_default", None),
        ("log_4_threads_delay_1ms", Some(Duration::from_millis(1))),
    ] {
        let durability = match max_delay {
            None => LogConfig::default().durability,
            Some(max_delay) => Durability::GroupCommit { max_delay },
        };
        assert!(matches!(durability, Durability::GroupCommit { .. }));
        let log = NoticeLog::open(
            dir.path().join(name),
            LogConfig {
                durability,
                ..Default::default()
            },
        )
        .expect("a fresh log opens");
        group.bench_function(name, |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    for chunk in batch.chunks(NOTICES_PER_WRITER) {
                        let log = &log;
                        s.spawn(move || {
                            for notice in chunk {
                                log.append(notice).expect("a valid notice");
                            }
                        });
                    }
                });
            });
        });
    }
    group.finish();
}

/// splitmix64, for random ids without depending on an RNG crate's API.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What a reader does with a body: touch every byte.
fn digest(body: &str) -> u32 {
    body.bytes()
        .fold(0u32, |acc, b| acc.wrapping_add(u32::from(b)))
}

fn get_random(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = NoticeLog::open(dir.path(), buffered()).expect("a fresh log opens");
    let mut bodies: Vec<String> = Vec::with_capacity(GET_NOTICES as usize);
    for first in (1..=GET_NOTICES).step_by(10_000) {
        let batch = notices(first, 10_000);
        log.append_batch(&batch).expect("valid notices");
        bodies.extend(batch.into_iter().map(|n| n.body));
    }
    // Warm: every record read once, so no page fault lands in the measurement.
    let mut sum = 0u32;
    for notice in log.iter_from(NoticeId(1)) {
        sum = sum.wrapping_add(digest(notice.body()));
    }
    black_box(sum);
    let ids: Vec<u64> = (0..1u64 << 16).map(|i| mix(i) % GET_NOTICES + 1).collect();

    let mut group = c.benchmark_group("get_random");
    group.throughput(Throughput::Elements(1));
    group.bench_function("vec_string_baseline", |b| {
        let mut i = 0;
        b.iter(|| {
            let id = ids[i & (ids.len() - 1)];
            i += 1;
            digest(&bodies[(black_box(id) - 1) as usize])
        });
    });
    group.bench_function("log_get", |b| {
        let mut i = 0;
        b.iter(|| {
            let id = ids[i & (ids.len() - 1)];
            i += 1;
            let notice = log.get(NoticeId(black_box(id))).expect("a live notice");
            digest(notice.body())
        });
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let mib: u64 = std::env::var("FEEDCORE_BENCH_RECOVERY_MB")
        .ok()
        .map(|v| {
            v.parse()
                .expect("FEEDCORE_BENCH_RECOVERY_MB is a number of MiB")
        })
        .unwrap_or(1024);
    let target_bytes = mib << 20;
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let log = NoticeLog::open(dir.path(), buffered()).expect("a fresh log opens");
        let mut next = 1u64;
        let mut bytes_per_notice = 0;
        while next == 1 || (next - 1) * bytes_per_notice < target_bytes {
            let batch = notices(next, 10_000);
            log.append_batch(&batch).expect("valid notices");
            next += batch.len() as u64;
            if bytes_per_notice == 0 {
                log.sync().expect("sync");
                let report = NoticeLog::check(dir.path()).expect("check");
                bytes_per_notice = report.record_bytes / (next - 1);
            }
        }
        log.sync().expect("sync");
    }
    let report = NoticeLog::check(dir.path()).expect("check");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let files = segment_files(dir.path());
    // Warm the page cache.
    for file in &files {
        black_box(fs::read(file).expect("reading a segment").len());
    }
    eprintln!(
        "recovery: {} notices, {} record bytes in {} segments",
        report.stats.notices,
        report.record_bytes,
        files.len()
    );

    let mut group = c.benchmark_group("recovery");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    RECOVERY_BYTES.get_or_init(|| report.record_bytes);
    group.throughput(Throughput::Bytes(report.record_bytes));
    group.bench_function("fs_read_baseline", |b| {
        b.iter(|| {
            for file in &files {
                black_box(fs::read(file).expect("reading a segment").len());
            }
        });
    });
    group.bench_function("log_open", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = NoticeLog::open(dir.path(), buffered()).expect("the log reopens");
                elapsed += start.elapsed();
                assert_eq!(log.len(), report.stats.notices);
                drop(log);
            }
            elapsed
        });
    });
    group.finish();
}

criterion_group!(benches, append_buffered, group_commit, get_random, recovery);
/// Record bytes of one `append_buffered` batch, and of the `recovery` log.
static APPEND_BATCH_BYTES: OnceLock<u64> = OnceLock::new();
static RECOVERY_BYTES: OnceLock<u64> = OnceLock::new();

/// The headline figures of this run, from criterion's estimates, beside their
/// baselines; written for `scripts/figures.py`.
fn record(since: SystemTime) {
    let mut fig = Figures::new("log", "cargo bench --bench log");
    let t = |group: &str, function: &str| time_ns(group, function, since);
    if let (Some(log), Some(base)) = (
        t("append_buffered", "log_append"),
        t("append_buffered", "write_all_baseline"),
    ) {
        let per_s = |ns: f64| APPEND_BATCH as f64 / ns * 1e9 / 1e3;
        fig.add(
            "buffered append, 280-byte bodies",
            per_s(log),
            "k notices/s",
            "write_all of the same record bytes, one call each",
            per_s(base),
            ">= 0.5 of the baseline",
        );
        if let Some(&bytes) = APPEND_BATCH_BYTES.get() {
            let mib_s = |ns: f64| bytes as f64 / ns * 1e9 / f64::from(1 << 20);
            fig.add_alone("buffered append bandwidth", mib_s(log), "MiB/s", "");
        }
    }
    if let (Some(log), Some(base)) = (
        t("group_commit", "log_4_threads_delay_200us_default"),
        t("group_commit", "write_fdatasync_1_thread_baseline"),
    ) {
        let per_s = |ns: f64| (WRITERS * NOTICES_PER_WRITER) as f64 / ns * 1e9 / 1e3;
        fig.add(
            "group commit, 4 writer threads, default 200 us delay",
            per_s(log),
            "k notices/s",
            "one thread, write_all + fdatasync per notice",
            per_s(base),
            ">= 0.5 of the baseline",
        );
    }
    if let (Some(log), Some(base)) = (
        t("get_random", "log_get"),
        t("get_random", "vec_string_baseline"),
    ) {
        fig.add(
            &format!("random get with body, {GET_NOTICES} notices"),
            log,
            "ns",
            "indexing a Vec<String> of the same bodies",
            base,
            "<= 100 ns",
        );
    }
    if let (Some(log), Some(base), Some(&bytes)) = (
        t("recovery", "log_open"),
        t("recovery", "fs_read_baseline"),
        RECOVERY_BYTES.get(),
    ) {
        let gb_s = |ns: f64| bytes as f64 / ns;
        fig.add(
            &format!(
                "recovery scan (open, every record verified), {:.2} GB",
                bytes as f64 / 1e9
            ),
            gb_s(log),
            "GB/s",
            "fs::read of the segment files",
            gb_s(base),
            "",
        );
    }
    fig.write();
}

fn main() {
    let since = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    record(since);
}
