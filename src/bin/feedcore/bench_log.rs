//! `feedcore bench-log`: the notice log alone (load, reopen, random reads), each figure
//! next to a baseline run in the same process. (It was `feedcore sim` until the strategy
//! laboratory took that name.)

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use feedcore::sim::synthetic_notice;
use feedcore::{Durability, LogConfig, NoticeId, NoticeLog};
use indicatif::ProgressBar;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

#[derive(Args)]
pub(crate) struct BenchLogArgs {
    /// Notices to append.
    #[arg(long, default_value_t = 2_000_000)]
    notices: u64,
    /// Random reads, spread over the reader threads.
    #[arg(long, default_value_t = 20_000_000)]
    reads: u64,
    /// Reader threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Keep the store in this directory instead of a temporary one (it must not exist
    /// yet or be empty).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed of the read pattern.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs `reads_per_thread` calls of `read` on each of `args.threads` threads (each with
/// its own generator seeded from `args.seed`), ticking `progress`; returns the sum of
/// what `read` returned and the wall time.
fn random_reads(
    args: &BenchLogArgs,
    reads_per_thread: u64,
    progress: Option<&ProgressBar>,
    read: impl Fn(&mut SmallRng) -> u64 + Sync,
) -> (u64, Duration) {
    let start = Instant::now();
    let sum = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let read = &read;
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(args.seed + t as u64);
                    let mut sum = 0u64;
                    for i in 0..reads_per_thread {
                        sum += read(&mut rng);
                        if i % 65536 == 0
                            && let Some(progress) = progress
                        {
                            progress.inc(65536.min(reads_per_thread - i));
                        }
                    }
                    sum
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("reader threads do not panic"))
            .sum()
    });
    (sum, start.elapsed())
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

pub(crate) fn run(args: &BenchLogArgs) -> feedcore::Result<ExitCode> {
    if args.notices == 0 || args.threads == 0 {
        eprintln!("feedcore bench-log: --notices and --threads must be at least 1");
        return Ok(ExitCode::from(2));
    }
    let temp;
    let store: &Path = match &args.dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().map_err(|e| feedcore::Error::Io {
                context: "creating a temporary directory".into(),
                source: e,
            })?;
            temp.path()
        }
    };
    let log_dir = crate::notices_dir(store);
    println!(
        "feedcore bench-log: {} notices of {} bytes, {} random reads on {} threads, store {}",
        args.notices,
        feedcore::sim::SYNTHETIC_BODY_BYTES,
        args.reads,
        args.threads,
        store.display()
    );

    // 1. Append, OS-buffered, one notice per call.
    let config = LogConfig {
        durability: Durability::Buffered,
        ..Default::default()
    };
    let log = NoticeLog::open(&log_dir, config.clone())?;
    let progress = crate::progress::bar(args.notices, "append", 10, 40);
    let start = Instant::now();
    for i in 0..args.notices {
        let id = NoticeId(log.len() + 1);
        log.append(&synthetic_notice(id))?;
        if i % 4096 == 0 {
            progress.set_position(i);
        }
    }
    let append_time = start.elapsed();
    progress.finish_and_clear();
    log.sync()?;
    let check = NoticeLog::check(&log_dir)?;
    let record_bytes = check.record_bytes;
    let record_mean = (record_bytes / args.notices).max(1) as usize;

    // Baseline: the same number of bytes, in the same number of `write_all` calls, to a
    // plain file on the same filesystem.
    let plain = store.join("plain-write-baseline");
    let start = Instant::now();
    {
        let mut file = File::create(&plain).map_err(|e| feedcore::Error::Io {
            context: format!("creating {}", plain.display()),
            source: e,
        })?;
        let chunk = vec![0x5au8; record_mean];
        for _ in 0..args.notices {
            file.write_all(black_box(&chunk))
                .map_err(|e| feedcore::Error::Io {
                    context: format!("writing {}", plain.display()),
                    source: e,
                })?;
        }
    }
    let plain_time = start.elapsed();
    let _ = std::fs::remove_file(&plain);

    // 2. Random reads with bodies, against a Vec<String> of the same bodies in memory.
    let reads_per_thread = args.reads / args.threads as u64;
    let progress = crate::progress::bar(reads_per_thread * args.threads as u64, "read", 10, 40);
    let (touched, read_time) = random_reads(args, reads_per_thread, Some(&progress), |rng| {
        let id = NoticeId(rng.random_range(1..=args.notices));
        let notice = log.get(id).expect("every appended notice is readable");
        notice.body().len() as u64 + u64::from(notice.author().0 & 1)
    });
    progress.finish_and_clear();
    black_box(touched);

    let bodies: Vec<String> = (1..=args.notices)
        .map(|id| synthetic_notice(NoticeId(id)).body)
        .collect();
    let (baseline_touched, vec_time) = random_reads(args, reads_per_thread, None, |rng| {
        let i = rng.random_range(0..bodies.len());
        black_box(&bodies[i]).len() as u64
    });
    black_box(baseline_touched);
    drop(bodies);

    // 3. Reopen: the recovery scan verifies every record.
    drop(log);
    let start = Instant::now();
    let log = NoticeLog::open(&log_dir, config)?;
    let reopen_time = start.elapsed();
    assert_eq!(log.len(), args.notices, "reopen finds every notice");

    let reads = reads_per_thread * args.threads as u64;
    let mb = record_bytes as f64 / 1e6;
    println!();
    println!(
        "{:<34} {:>16} {:>20} {:>8}",
        "figure", "feedcore", "baseline", "ratio"
    );
    println!(
        "{:<34} {:>13.0} /s {:>17.0} /s {:>8.2}",
        "append, buffered (notices)",
        rate(args.notices, append_time),
        rate(args.notices, plain_time),
        plain_time.as_secs_f64() / append_time.as_secs_f64()
    );
    println!(
        "{:<34} {:>11.1} MB/s {:>15.1} MB/s {:>8.2}",
        "append, buffered (bytes)",
        mb / append_time.as_secs_f64(),
        mb / plain_time.as_secs_f64(),
        plain_time.as_secs_f64() / append_time.as_secs_f64()
    );
    println!(
        "{:<34} {:>13.0} /s {:>17.0} /s {:>8.2}",
        "random get with body",
        rate(reads, read_time),
        rate(reads, vec_time),
        vec_time.as_secs_f64() / read_time.as_secs_f64()
    );
    println!(
        "{:<34} {:>11.1} ns {:>17.1} ns {:>8}",
        "  per get, per thread",
        read_time.as_nanos() as f64 * args.threads as f64 / reads as f64,
        vec_time.as_nanos() as f64 * args.threads as f64 / reads as f64,
        ""
    );
    println!(
        "{:<34} {:>11.2} GB/s {:>20} {:>8}",
        "reopen (recovery scan)",
        record_bytes as f64 / 1e9 / reopen_time.as_secs_f64(),
        format!("{:.0} ms", reopen_time.as_secs_f64() * 1e3),
        ""
    );
    println!();
    println!(
        "baselines: append against write_all of the same bytes in as many calls to a plain file;"
    );
    println!(
        "get against indexing a Vec<String> of the same bodies in memory; ratio = baseline time / feedcore time"
    );
    Ok(ExitCode::SUCCESS)
}
