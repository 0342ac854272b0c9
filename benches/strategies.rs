//! The strategies side by side, each figure beside its baseline from the same run:
//!
//! 1. Home-page read latency (page of 20 with bodies) for readers following 10, 200
//!    and 2000 authors, per strategy; baseline: a naive merge of the same authors'
//!    id lists held as `Vec<Vec<u64>>` in memory (no log, no rules).
//! 2. Write cost per post against the author's follower count (10, 1,000, 10,000), per
//!    strategy: wall time until delivered, and timeline writes.
//! 3. A mixed workload (posts and reads at read:write ratios 1 and 10) per strategy:
//!    total wall time and cost units; selective against the cheaper of push and pull.
//!
//! A whole-workload harness with its own clocks, like `fanout.rs`. Run:
//! `cargo bench --bench strategies`.

use std::collections::BinaryHeap;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

#[path = "support/figures.rs"]
mod figures;
use figures::Figures;

use feedcore::{
    Config, Durability, Engine, FollowGraph, GraphConfig, NewNotice, Page, Strategy, UserId,
};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const USERS: u32 = 20_000;
const AUTHORS: u32 = 10_000;

const STRATEGIES: [Strategy; 5] = [
    Strategy::Push,
    Strategy::Pull,
    Strategy::Hybrid {
        followers_min: 1000,
    },
    Strategy::Selective {
        push_threshold: 1.0,
    },
    Strategy::Lossy {
        follows_reasonable: 500,
    },
];

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64
}

/// Readers 10_000.. follow 10, 200 or 2000 random authors; authors 1..=3 have 10,
/// 1,000 and 10,000 followers among the readers' range and the rest of the users.
/// "p50 / p99" in microseconds of latencies in nanoseconds.
fn p50_p99(lat: &mut [u64]) -> String {
    lat.sort_unstable();
    format!(
        "{:>7.1} / {:>7.1}",
        percentile(lat, 0.5) / 1e3,
        percentile(lat, 0.99) / 1e3
    )
}

/// A row of the read-latency table: a name and one cell per group of readers.
fn latency_row(name: &str, cells: &[String]) {
    println!(
        "{:<10} {:>18} {:>18} {:>18}",
        name, cells[0], cells[1], cells[2]
    );
}

fn edges() -> (Vec<(UserId, UserId)>, Vec<Vec<u32>>) {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut edges = Vec::new();
    let mut following: Vec<Vec<u32>> = Vec::new();
    for (group, follows) in [10u32, 200, 2000].into_iter().enumerate() {
        for r in 0..100u32 {
            let reader = AUTHORS + group as u32 * 100 + r;
            let mut list: Vec<u32> = (0..follows)
                .map(|_| rng.random_range(10..AUTHORS))
                .collect();
            list.sort_unstable();
            list.dedup();
            edges.extend(list.iter().map(|&a| (UserId(reader), UserId(a))));
            following.push(list);
        }
    }
    for (author, followers) in [(1u32, 10u32), (2, 1000), (3, 10_000)] {
        for f in 0..followers {
            let follower = AUTHORS + 300 + f % (USERS - AUTHORS - 300);
            let follower = if followers > USERS - AUTHORS - 300 {
                (AUTHORS + 300 + f) % USERS
            } else {
                follower
            };
            if follower != author {
                edges.push((UserId(follower), UserId(author)));
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    (edges, following)
}

fn open(dir: &Path, strategy: Strategy, edges: &[(UserId, UserId)]) -> Engine {
    let config = Config {
        users_max: USERS,
        durability: Durability::Buffered,
        following_max: 10_000,
        strategy,
        ..Default::default()
    };
    let graph = GraphConfig {
        users_max: USERS,
        partitions: config.workers,
        following_max: 10_000,
        ..Default::default()
    };
    drop(
        FollowGraph::bulk_load(dir.join("graph"), graph, edges.iter().copied()).expect("bulk load"),
    );
    Engine::open(dir, config).expect("open")
}

fn notice(author: u32, i: u64) -> NewNotice {
    NewNotice {
        author: UserId(author),
        body: format!("{i}: {}", "b".repeat(240)),
        ..Default::default()
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut fig = Figures::new("strategies", "cargo bench --bench strategies");
    let (edges, following) = edges();
    println!("graph: {USERS} users, {} follows", edges.len());

    // Shared history: every author posts 20 notices, in rounds.
    let history: Vec<u32> = (0..20).flat_map(|_| 10..AUTHORS).collect();
    // Baseline lists for the naive merge.
    let mut by_author: Vec<Vec<u64>> = vec![Vec::new(); AUTHORS as usize];
    for (i, &a) in history.iter().enumerate() {
        by_author[a as usize].push(i as u64 + 1);
    }

    println!(
        "\n== 1. home page of 20 with bodies: latency in us (p50 / p99), 100 readers x 20 reads per group"
    );
    latency_row(
        "strategy",
        &["follows 10", "follows 200", "follows 2000"].map(String::from),
    );
    let mut p99_2000 = Vec::new();
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = open(dir.path(), strategy, &edges);
        // Readers read once first (activates them; builds their timelines).
        for reader in AUTHORS..AUTHORS + 300 {
            engine
                .home_timeline(UserId(reader), Page::latest(20))
                .expect("read");
        }
        for (i, &a) in history.iter().enumerate() {
            engine.post(notice(a, i as u64)).expect("post");
        }
        engine.flush().expect("flush");
        let mut row = Vec::new();
        for group in 0..3u32 {
            let mut lat = Vec::new();
            for _ in 0..20 {
                for r in 0..100 {
                    let reader = UserId(AUTHORS + group * 100 + r);
                    let t = Instant::now();
                    let page = engine
                        .home_timeline(reader, Page::latest(20))
                        .expect("read");
                    let bytes: usize = page
                        .ids
                        .iter()
                        .filter_map(|id| engine.notice(*id))
                        .map(|n| n.body().len())
                        .sum();
                    black_box(bytes);
                    lat.push(t.elapsed().as_nanos() as u64);
                }
            }
            row.push(p50_p99(&mut lat));
            if group == 2 {
                p99_2000.push((strategy.name(), percentile(&lat, 0.99) / 1e3));
            }
        }
        latency_row(strategy.name(), &row);
    }
    // Baseline: a naive merge of in-memory Vec<Vec<u64>>, ids only.
    let mut row = Vec::new();
    for group in 0..3usize {
        let mut lat = Vec::new();
        for _ in 0..20 {
            for r in 0..100 {
                let list = &following[group * 100 + r];
                let t = Instant::now();
                let mut heap: BinaryHeap<(u64, usize, usize)> = list
                    .iter()
                    .enumerate()
                    .filter_map(|(k, &a)| {
                        by_author[a as usize]
                            .last()
                            .map(|&id| (id, k, by_author[a as usize].len() - 1))
                    })
                    .collect();
                let mut page = Vec::with_capacity(20);
                while page.len() < 20 {
                    let Some((id, k, at)) = heap.pop() else { break };
                    page.push(id);
                    if at > 0 {
                        heap.push((by_author[list[k] as usize][at - 1], k, at - 1));
                    }
                }
                black_box(page);
                lat.push(t.elapsed().as_nanos() as u64);
            }
        }
        row.push(p50_p99(&mut lat));
        if group == 2 {
            for &(name, p99) in &p99_2000 {
                fig.add(
                    &format!(
                        "home page of 20 with bodies, reader following 2000 authors, {name}, p99"
                    ),
                    p99,
                    "us",
                    "naive k-way merge of Vec<Vec<u64>>, no bodies, no rules, p99",
                    percentile(&lat, 0.99) / 1e3,
                    if name == "pull" { "<= 2 ms" } else { "" },
                );
            }
        }
    }
    latency_row("naive", &row);
    println!("(naive: k-way merge of the same authors' ids in Vec<Vec<u64>>, no bodies, no rules)");

    println!(
        "\n== 2. write cost per post, by the author's follower count: us until delivered / timeline writes"
    );
    println!(
        "{:<10} {:>22} {:>22} {:>22}",
        "strategy", "10 followers", "1,000 followers", "10,000 followers"
    );
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = open(dir.path(), strategy, &edges);
        for u in AUTHORS..USERS {
            engine
                .home_timeline(UserId(u), Page::latest(1))
                .expect("read");
        }
        let mut row = Vec::new();
        for author in [1u32, 2, 3] {
            let writes = engine.stats().cost_timeline_writes;
            let t = Instant::now();
            for i in 0..50 {
                engine.post(notice(author, i)).expect("post");
                engine.flush().expect("flush");
            }
            let per_post = t.elapsed().as_nanos() as f64 / 50.0 / 1e3;
            let writes = (engine.stats().cost_timeline_writes - writes) as f64 / 50.0;
            row.push(format!("{per_post:>9.1} / {writes:>9.0}"));
        }
        println!(
            "{:<10} {:>22} {:>22} {:>22}",
            strategy.name(),
            row[0],
            row[1],
            row[2]
        );
    }

    println!("\n== 3. mixed workload: 20,000 posts by random authors, reads by the 300 readers");
    println!(
        "{:<10} {:>10} {:>14} {:>16} {:>16} {:>9} {:>12}",
        "strategy",
        "reads:posts",
        "wall ms",
        "writes+reads ids",
        "bytes touched",
        "rebuilds",
        "index reads"
    );
    for ratio in [1u64, 10] {
        let mut totals = Vec::new();
        for strategy in STRATEGIES {
            let dir = tempfile::tempdir().expect("temp dir");
            let engine = open(dir.path(), strategy, &edges);
            let mut rng = SmallRng::seed_from_u64(11);
            for reader in AUTHORS..AUTHORS + 300 {
                engine
                    .home_timeline(UserId(reader), Page::latest(20))
                    .expect("read");
            }
            let before = engine.stats();
            let t = Instant::now();
            for i in 0..20_000u64 {
                engine
                    .post(notice(rng.random_range(10..AUTHORS), i))
                    .expect("post");
                for _ in 0..ratio {
                    let reader = UserId(AUTHORS + rng.random_range(0..300));
                    black_box(
                        engine
                            .home_timeline(reader, Page::latest(20))
                            .expect("read"),
                    );
                }
            }
            engine.flush().expect("flush");
            let wall = t.elapsed().as_secs_f64() * 1e3;
            let s = engine.stats();
            let units = (s.cost_timeline_writes - before.cost_timeline_writes)
                + (s.cost_author_index_reads - before.cost_author_index_reads)
                + (s.cost_ring_reads - before.cost_ring_reads);
            let bytes = s.cost_bytes_touched - before.cost_bytes_touched;
            println!(
                "{:<10} {:>10} {:>14.0} {:>16} {:>16} {:>9} {:>12}",
                strategy.name(),
                ratio,
                wall,
                units,
                bytes,
                s.rebuilds - before.rebuilds,
                s.cost_author_index_reads - before.cost_author_index_reads
            );
            totals.push((strategy.name(), wall, bytes));
        }
        let cheaper = totals[0].1.min(totals[1].1);
        let selective = totals
            .iter()
            .find(|t| t.0 == "selective")
            .expect("selective ran")
            .1;
        println!(
            "read:write {ratio}: selective wall / min(push, pull) = {:.2}",
            selective / cheaper
        );
        let bytes_of = |name: &str| {
            totals
                .iter()
                .find(|t| t.0 == name)
                .map_or(0.0, |t| t.2 as f64)
        };
        let cheaper_bytes = bytes_of("push").min(bytes_of("pull"));
        fig.add(
            &format!("mixed workload, 20 k posts, {ratio} reads a post: selective, bytes touched"),
            bytes_of("selective") / 1e6,
            "MB",
            "the cheaper of push and pull, same workload",
            cheaper_bytes / 1e6,
            "selective <= the cheaper",
        );
        fig.add(
            &format!("mixed workload, 20 k posts, {ratio} reads a post: selective, wall time"),
            selective,
            "ms",
            "the faster of push and pull, same workload",
            cheaper,
            "",
        );
    }
    fig.write();
}
