//! Restart of a large store: why home timelines are rebuilt, not persisted.
//!
//! Builds a store (a Twitter-like graph of FEEDCORE_BENCH_USERS users, default
//! 1,000,000, and FEEDCORE_BENCH_NOTICES notices, default 2,000,000), then measures:
//! 1. `Engine::open` (log recovery scan, per-author lists, graph map and replay);
//! 2. the rebuild of every user's home timeline by a first read (2 threads);
//! 3. the baseline a persisted design could not beat: writing the same timeline bytes
//!    (4 bytes an entry) to a checkpoint file with fsync, and reading them back, in the
//!    same run: the I/O floor of "persist and reload", before any replay of the log tail.
//!
//! Run: `cargo bench --bench restart`.

use std::io::{Read, Write};
use std::time::Instant;

#[path = "support/figures.rs"]
mod figures;
use figures::Figures;

use feedcore::sim::TwitterGraph;
use feedcore::{Config, Durability, Engine, FollowGraph, GraphConfig, NewNotice, Page, UserId};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let users = env("FEEDCORE_BENCH_USERS", 1_000_000) as u32;
    let notices = env("FEEDCORE_BENCH_NOTICES", 2_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config {
        users_max: users,
        durability: Durability::Buffered,
        following_max: u32::MAX / 2,
        ..Default::default()
    };
    let edges = TwitterGraph {
        users,
        ..Default::default()
    }
    .edges();
    let follows = edges.len();
    let graph = GraphConfig {
        users_max: users,
        partitions: config.workers,
        ..Default::default()
    };
    drop(FollowGraph::bulk_load(dir.path().join("graph"), graph, edges).expect("bulk load"));
    {
        let engine = Engine::open(dir.path(), config.clone()).expect("open");
        for i in 0..notices {
            let author = (i.wrapping_mul(2_654_435_761) % u64::from(users)) as u32;
            engine
                .post(NewNotice {
                    author: UserId(author),
                    body: format!("notice {i}: {}", "x".repeat(240)),
                    ..Default::default()
                })
                .expect("post");
        }
        engine.flush().expect("flush");
        engine.sync().expect("sync");
    }
    println!("store: {users} users, {follows} follows, {notices} notices");

    let t = Instant::now();
    let engine = Engine::open(dir.path(), config).expect("reopen");
    let open = t.elapsed();
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in 0..2u32 {
            let engine = &engine;
            s.spawn(move || {
                for u in (part..users).step_by(2) {
                    engine
                        .home_timeline(UserId(u), Page::latest(20))
                        .expect("read");
                }
            });
        }
    });
    let rebuild = t.elapsed();
    let stats = engine.stats();
    println!(
        "rebuild design: open {:.2} s, then every timeline rebuilt by its first read in {:.2} s ({} timelines, {} entries, {:.1} us each)",
        open.as_secs_f64(),
        rebuild.as_secs_f64(),
        stats.timelines,
        stats.timeline_entries,
        rebuild.as_secs_f64() * 1e6 / f64::from(users) * 2.0
    );

    // The persisted design's floor: the same entries as a checkpoint file.
    let bytes = vec![0x5au8; (stats.timeline_entries * 4) as usize];
    let path = dir.path().join("checkpoint-baseline");
    let t = Instant::now();
    {
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&bytes).expect("write");
        f.sync_all().expect("fsync");
    }
    let write = t.elapsed();
    let t = Instant::now();
    let mut back = Vec::with_capacity(bytes.len());
    std::fs::File::open(&path)
        .expect("open")
        .read_to_end(&mut back)
        .expect("read");
    let read = t.elapsed();
    assert_eq!(back.len(), bytes.len());
    println!(
        "persisted design's floor: checkpoint of {} MB written with fsync in {:.2} s, read back (page cache) in {:.3} s",
        bytes.len() / 1_000_000,
        write.as_secs_f64(),
        read.as_secs_f64()
    );
    println!(
        "restart to first page for every user: rebuild {:.2} s (open + rebuilds) against persisted >= {:.2} s (open + reload) plus a checkpoint write of {:.2} s at every checkpoint",
        (open + rebuild).as_secs_f64(),
        (open + read).as_secs_f64(),
        write.as_secs_f64()
    );
    let mut fig = Figures::new("restart", "cargo bench --bench restart");
    let store = format!("{users} users, {notices} notices");
    fig.add(
        &format!("restart, {store}: open, then every timeline rebuilt by its first read"),
        (open + rebuild).as_secs_f64(),
        "s",
        "persisted design's floor: open, then the checkpoint read back from the page cache",
        (open + read).as_secs_f64(),
        "",
    );
    fig.add(
        &format!("restart, {store}: open alone"),
        open.as_secs_f64(),
        "s",
        "writing the same checkpoint with fsync, at every checkpoint",
        write.as_secs_f64(),
        "",
    );
    fig.write();
}
