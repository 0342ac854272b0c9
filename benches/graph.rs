//! Benchmarks of the follow graph, each figure beside a baseline measured in the same
//! run:
//!
//! * `memory` (printed, not timed by criterion): resident bytes per follow after
//!   `bulk_load` of a Twitter-like graph of 1 M users (`TwitterGraph`, about 35 M
//!   follows), every page touched by walking every user's followers and following,
//!   against a `Vec<HashSet<u32>>` pair (followers and following) built from the same
//!   edges in the same process. Resident memory is read from `/proc/self/statm`
//!   before and after building each structure, after `malloc_trim`. Budget: feedcore
//!   at most 10 bytes per follow. The bulk-load time is printed too (budget: at most
//!   10 s for 1 M users and 35 M follows, the snapshot's `fsync` included).
//! * `graph_walk`: the followers of an author with 1 M followers, walked with
//!   `followers_in(u, p, partitions)` for every stored partition through
//!   `for_each_chunk`, summing the ids, against summing a plain `Vec<u32>` of the same
//!   ids (the memory-bandwidth baseline). Budget: at least 1 G ids/s. For information:
//!   the ascending `followers(u)` iterator (a merge of the partitions), and the chunk
//!   walk once a recent follow of the author sits in the overlay (the walk then merges
//!   instead of handing out the snapshot's slices).
//! * `graph_follow_unfollow`: `follow` then `unfollow` of random pairs among the 1 M
//!   users of the bulk-loaded Twitter-like graph (`Durability::Buffered`, so each op
//!   is one `pwrite` to the op log; background compaction is pushed out of the
//!   measurement), alone and with a thread walking the most followed author's
//!   followers all along, against the same inserts and removes in a
//!   `Mutex<Vec<HashSet<u32>>>` pair (whose walker holds the followers lock while it
//!   walks).
//!
//! Run with `cargo bench --bench graph`. The ratios are printed at the end, from
//! criterion's estimates of this run.

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput};

#[path = "support/figures.rs"]
mod figures;
use feedcore::sim::{TwitterGraph, summarize};
use feedcore::{Durability, FollowGraph, GraphConfig, UserId};
use figures::{Figures, time_ns};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Users of the Twitter-like graph.
const TWITTER_USERS: u32 = 1_000_000;
/// Followers of the author of `graph_walk`.
const WALK_FOLLOWERS: u32 = 1_000_000;
/// Distinct random pairs `graph_follow_unfollow` cycles through.
const PAIRS: usize = 1 << 16;

fn config() -> GraphConfig {
    GraphConfig {
        durability: Durability::Buffered,
        // The most the config allows: no compaction starts during the measurements.
        compact_after_changes: 100_000_000,
        ..Default::default()
    }
}

/// Resident bytes of this process, and the file-backed part of them.
fn resident_bytes() -> (u64, u64) {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let fields: Vec<u64> = statm
        .split_whitespace()
        .map(|f| f.parse().expect("statm holds numbers"))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    (fields[1] * page, fields[2] * page)
}

/// Returns freed heap memory to the kernel, so resident figures count live data only.
fn trim() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Sums every follower and following id of every user, by chunks: touches every page
/// of the snapshot.
fn walk_all(graph: &FollowGraph, users: u32) -> u64 {
    let mut sum = 0u64;
    let partitions = graph.partitions();
    for u in 0..users {
        graph
            .following(UserId(u))
            .for_each_chunk(|c| sum += c.iter().map(|&x| u64::from(x)).sum::<u64>());
        for p in 0..partitions {
            graph
                .followers_in(UserId(u), p, partitions)
                .for_each_chunk(|c| sum += c.iter().map(|&x| u64::from(x)).sum::<u64>());
        }
    }
    sum
}

/// Followers and following as hash sets, behind mutexes for the follow benchmark.
struct HashGraph {
    followers: Mutex<Vec<HashSet<u32>>>,
    following: Mutex<Vec<HashSet<u32>>>,
}

impl HashGraph {
    fn build(users: u32, edges: &[(UserId, UserId)]) -> HashGraph {
        let mut followers = vec![HashSet::new(); users as usize];
        let mut following = vec![HashSet::new(); users as usize];
        for &(a, b) in edges {
            following[a.0 as usize].insert(b.0);
            followers[b.0 as usize].insert(a.0);
        }
        HashGraph {
            followers: Mutex::new(followers),
            following: Mutex::new(following),
        }
    }

    fn walk_all(&self) -> u64 {
        let mut sum = 0u64;
        for sets in [&self.followers, &self.following] {
            for set in sets.lock().unwrap().iter() {
                sum += set.iter().map(|&x| u64::from(x)).sum::<u64>();
            }
        }
        sum
    }

    fn follow(&self, a: u32, b: u32) -> bool {
        let new = self.following.lock().unwrap()[a as usize].insert(b);
        if new {
            self.followers.lock().unwrap()[b as usize].insert(a);
        }
        new
    }

    fn unfollow(&self, a: u32, b: u32) -> bool {
        let gone = self.following.lock().unwrap()[a as usize].remove(&b);
        if gone {
            self.followers.lock().unwrap()[b as usize].remove(&a);
        }
        gone
    }

    fn walk_followers(&self, u: u32) -> u64 {
        self.followers.lock().unwrap()[u as usize]
            .iter()
            .map(|&x| u64::from(x))
            .sum()
    }
}

/// The Twitter-like graph, bulk-loaded, with its hash-set twin.
struct Twitter {
    _dir: tempfile::TempDir,
    graph: FollowGraph,
    hashes: HashGraph,
    follows: u64,
}

/// Figure `memory`: builds both structures, measuring resident bytes around each, and
/// prints the figures.
fn memory_and_bulk_load(fig: &mut Figures) -> Twitter {
    let params = TwitterGraph {
        users: TWITTER_USERS,
        ..Default::default()
    };
    let started = Instant::now();
    let edges = params.edges();
    let generated = started.elapsed();
    let summary = summarize(params.users, &edges);
    let follows = edges.len() as u64;
    println!(
        "graph/memory: TwitterGraph of {} users, {} follows (mean {:.1}, most followed {}), \
         generated in {:.1} s",
        params.users,
        follows,
        summary.follows_mean,
        summary.followers_max,
        generated.as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    trim();
    let (before, before_file) = resident_bytes();
    let started = Instant::now();
    let graph = FollowGraph::bulk_load(dir.path().join("graph"), config(), edges.iter().copied())
        .expect("bulk load");
    let loaded = started.elapsed();
    trim();
    let started = Instant::now();
    black_box(walk_all(&graph, params.users));
    let walked = started.elapsed();
    let (after, after_file) = resident_bytes();
    let feedcore_bytes = after - before;
    let stats = graph.stats();

    trim();
    let (before_hash, _) = resident_bytes();
    let started = Instant::now();
    let hashes = HashGraph::build(params.users, &edges);
    let hash_built = started.elapsed();
    trim();
    black_box(hashes.walk_all());
    let (after_hash, _) = resident_bytes();
    let hash_bytes = after_hash - before_hash;
    drop(edges);

    let per_follow = |bytes: u64| bytes as f64 / follows as f64;
    println!(
        "graph/bulk_load: {} users, {} follows in {:.2} s ({:.1} M follows/s; budget <= 10 s); \
         baseline: Vec<HashSet<u32>> pair built in {:.2} s ({:.2}x the bulk load's time)",
        params.users,
        follows,
        loaded.as_secs_f64(),
        follows as f64 / loaded.as_secs_f64() / 1e6,
        hash_built.as_secs_f64(),
        hash_built.as_secs_f64() / loaded.as_secs_f64()
    );
    println!(
        "graph/memory: feedcore {:.2} bytes/follow ({:.0} MiB resident, {:.0} MiB of it \
         the mapped snapshot; snapshot file {:.0} MiB, overlay {:.0} MiB); budget <= 10",
        per_follow(feedcore_bytes),
        mib(feedcore_bytes),
        mib(after_file.saturating_sub(before_file)),
        mib(stats.snapshot_bytes),
        mib(stats.overlay_bytes)
    );
    println!(
        "graph/memory: baseline Vec<HashSet<u32>> pair {:.2} bytes/follow ({:.0} MiB \
         resident); baseline / feedcore = {:.2}",
        per_follow(hash_bytes),
        mib(hash_bytes),
        hash_bytes as f64 / feedcore_bytes as f64
    );
    fig.add(
        &format!(
            "follow edge memory, {} users, {} follows, both directions",
            params.users, follows
        ),
        per_follow(feedcore_bytes),
        "resident bytes/follow",
        "Vec<HashSet<u32>> pair",
        per_follow(hash_bytes),
        "<= 10",
    );
    fig.add(
        &format!("bulk load, {} users, {} follows", params.users, follows),
        loaded.as_secs_f64(),
        "s",
        "building the Vec<HashSet<u32>> pair",
        hash_built.as_secs_f64(),
        "<= 10 s",
    );
    println!(
        "graph/memory: walking every user's followers and following took {:.2} s ({:.0} M ids/s)",
        walked.as_secs_f64(),
        2.0 * follows as f64 / walked.as_secs_f64() / 1e6
    );
    Twitter {
        _dir: dir,
        graph,
        hashes,
        follows,
    }
}

fn sum_chunk(c: &[u32]) -> u64 {
    c.iter().map(|&x| u64::from(x)).sum()
}

/// The sum of `author`'s followers' ids, walked partition by partition, a slice at a
/// time (the fan-out's walk).
fn walk_sum(graph: &FollowGraph, author: UserId) -> u64 {
    let partitions = graph.partitions();
    let mut sum = 0u64;
    for p in 0..partitions {
        graph
            .followers_in(author, p, partitions)
            .for_each_chunk(|c| sum += sum_chunk(c));
    }
    sum
}

/// Figure `graph_walk`.
fn walk_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let author = UserId(0);
    let graph = FollowGraph::bulk_load(
        dir.path().join("graph"),
        config(),
        (1..=WALK_FOLLOWERS).map(|a| (UserId(a), author)),
    )
    .expect("bulk load");
    let ids: Vec<u32> = graph.followers(author).map(|u| u.0).collect();
    assert_eq!(ids.len(), WALK_FOLLOWERS as usize);
    let want: u64 = sum_chunk(&ids);
    let walk = |graph: &FollowGraph| walk_sum(graph, author);
    assert_eq!(walk(&graph), want);

    let mut group = c.benchmark_group("graph_walk");
    group.throughput(Throughput::Elements(u64::from(WALK_FOLLOWERS)));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("feedcore_followers_in_chunks", |b| {
        b.iter(|| black_box(walk(black_box(&graph))))
    });
    group.bench_function("baseline_vec_sum", |b| {
        b.iter(|| black_box(sum_chunk(black_box(&ids))))
    });
    group.bench_function("feedcore_followers_iterator", |b| {
        b.iter(|| {
            black_box(
                graph
                    .followers(black_box(author))
                    .map(|u| u64::from(u.0))
                    .sum::<u64>(),
            )
        })
    });
    // One recent follow of the author: its overlay slot is no longer empty.
    let newcomer = UserId(WALK_FOLLOWERS + 1);
    assert!(graph.follow(newcomer, author).expect("a valid follow"));
    assert_eq!(walk(&graph), want + u64::from(newcomer.0));
    group.bench_function("feedcore_followers_in_chunks_after_a_follow", |b| {
        b.iter(|| black_box(walk(black_box(&graph))))
    });
    group.finish();
}

/// Random pairs among the Twitter users that do not follow each other yet.
fn random_pairs(graph: &FollowGraph) -> Vec<(u32, u32)> {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut pairs = Vec::with_capacity(PAIRS);
    while pairs.len() < PAIRS {
        let a = rng.random_range(0..TWITTER_USERS);
        let b = rng.random_range(0..TWITTER_USERS);
        if a != b && !graph.is_following(UserId(a), UserId(b)) {
            pairs.push((a, b));
        }
    }
    pairs
}

/// Figure `graph_follow_unfollow`. Returns walker rates (walks per second) for the
/// two runs with a walker: feedcore's and the baseline's.
fn follow_benches(c: &mut Criterion, twitter: &Twitter) -> (f64, f64) {
    let graph = &twitter.graph;
    let hashes = &twitter.hashes;
    let pairs = random_pairs(graph);
    let top = (0..TWITTER_USERS)
        .max_by_key(|&u| graph.follower_count(UserId(u)))
        .expect("users");
    let top_followers = graph.follower_count(UserId(top));
    println!("graph_follow_unfollow: the walker walks user {top}'s {top_followers} followers");

    let mut group = c.benchmark_group("graph_follow_unfollow");
    // A follow and an unfollow per iteration.
    group.throughput(Throughput::Elements(2));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let feedcore_ops = |b: &mut criterion::Bencher| {
        let mut i = 0;
        b.iter(|| {
            let (x, y) = pairs[i % PAIRS];
            i += 1;
            let (x, y) = (UserId(x), UserId(y));
            black_box(graph.follow(x, y).expect("a valid follow"));
            black_box(graph.unfollow(x, y).expect("a valid unfollow"));
        })
    };
    let baseline_ops = |b: &mut criterion::Bencher| {
        let mut i = 0;
        b.iter(|| {
            let (x, y) = pairs[i % PAIRS];
            i += 1;
            black_box(hashes.follow(x, y));
            black_box(hashes.unfollow(x, y));
        })
    };
    group.bench_function("feedcore", feedcore_ops);
    group.bench_function("baseline_mutex_hashset", baseline_ops);

    let walker_rate = |walk: &(dyn Fn() -> u64 + Sync), run: &mut dyn FnMut()| -> f64 {
        let stop = AtomicBool::new(false);
        let walks = AtomicU64::new(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    black_box(walk());
                    walks.fetch_add(1, Ordering::Relaxed);
                }
            });
            run();
            stop.store(true, Ordering::Relaxed);
        });
        walks.into_inner() as f64 / started.elapsed().as_secs_f64()
    };
    let top_user = UserId(top);
    let feedcore_walk = || walk_sum(graph, top_user);
    let feedcore_walks = walker_rate(&feedcore_walk, &mut || {
        group.bench_function("feedcore_with_walker", feedcore_ops);
    });
    let baseline_walk = || hashes.walk_followers(top);
    let baseline_walks = walker_rate(&baseline_walk, &mut || {
        group.bench_function("baseline_mutex_hashset_with_walker", baseline_ops);
    });
    group.finish();
    println!(
        "graph_follow_unfollow: walker meanwhile: feedcore {feedcore_walks:.0} walks/s \
         ({:.0} M ids/s), baseline {baseline_walks:.0} walks/s ({:.0} M ids/s)",
        feedcore_walks * top_followers as f64 / 1e6,
        baseline_walks * top_followers as f64 / 1e6
    );
    (feedcore_walks, baseline_walks)
}

fn print_ratios(since: SystemTime, follows: u64, fig: &mut Figures) {
    let rate = |group: &str, function: &str, elements: f64| {
        time_ns(group, function, since).map(|ns| elements / ns * 1e9)
    };
    let walk = |f: &str| rate("graph_walk", f, f64::from(WALK_FOLLOWERS));
    let ops = |f: &str| rate("graph_follow_unfollow", f, 2.0);
    println!("\nsummary (this run, {follows} follows in the Twitter-like graph):");
    let mut line = |what: &str, unit: &str, got: Option<f64>, base: Option<f64>, note: &str| {
        if let (Some(g), Some(b)) = (got, base) {
            let budget = note
                .trim()
                .trim_start_matches("(budget ")
                .trim_end_matches(')');
            let baseline = if unit == "ids" {
                "summing a Vec<u32> of the same ids"
            } else {
                "a Mutex around a Vec<HashSet<u32>> pair"
            };
            let (scale, prefix) = if unit == "ids" {
                (1e9, "G ")
            } else {
                (1e3, "k ")
            };
            fig.add(
                what,
                g / scale,
                &format!("{prefix}{unit}/s"),
                baseline,
                b / scale,
                budget,
            );
        }
        let (scale, prefix) = if unit == "ids" {
            (1e9, "G")
        } else {
            (1e3, "k")
        };
        match (got, base) {
            (Some(g), Some(b)) => println!(
                "  {what}: {:.3} {prefix}{unit}/s, baseline {:.3} {prefix}{unit}/s, \
                 feedcore / baseline = {:.3}{note}",
                g / scale,
                b / scale,
                g / b
            ),
            (Some(g), None) => println!("  {what}: {:.3} {prefix}{unit}/s{note}", g / scale),
            _ => {}
        }
    };
    let base = walk("baseline_vec_sum");
    line(
        "follower walk, followers_in chunks",
        "ids",
        walk("feedcore_followers_in_chunks"),
        base,
        " (budget >= 1 G ids/s)",
    );
    line(
        "follower walk, followers() iterator",
        "ids",
        walk("feedcore_followers_iterator"),
        base,
        "",
    );
    line(
        "follower walk, chunks after one recent follow",
        "ids",
        walk("feedcore_followers_in_chunks_after_a_follow"),
        base,
        "",
    );
    line(
        "follow+unfollow ops",
        "ops",
        ops("feedcore"),
        ops("baseline_mutex_hashset"),
        "",
    );
    line(
        "follow+unfollow ops with a walker",
        "ops",
        ops("feedcore_with_walker"),
        ops("baseline_mutex_hashset_with_walker"),
        "",
    );
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default().configure_from_args();
    let mut fig = Figures::new("graph", "cargo bench --bench graph");
    let twitter = memory_and_bulk_load(&mut fig);
    walk_benches(&mut c);
    follow_benches(&mut c, &twitter);
    c.final_summary();
    print_ratios(since, twitter.follows, &mut fig);
    fig.write();
}
