//! Push fan-out, whole scenarios, each figure beside a baseline run in the same process:
//!
//! A. Deliveries per second on a Twitter-like graph of 1 M users (authors chosen with
//!    probability proportional to their follower count), against the same recipient
//!    sequence written as random appends into plain per-user arrays of the same memory
//!    (the machine's limit) and into a `Mutex<HashMap<u32, VecDeque<u64>>>`; the latency
//!    of a home page of 20 with bodies while the fan-out runs.
//! B. Resident bytes per timeline entry with full timelines (50 k users x 800 entries),
//!    against `VecDeque<u64>` timelines of the same entries.
//! C. A post by an author with 1 M followers: time until every follower has it, and the
//!    delivery lag of small posts meanwhile; against the same appends into plain
//!    per-user arrays.
//!
//! Not a criterion bench: these are whole workloads with their own clocks (criterion
//! measures the micro benches in `log.rs` and `graph.rs`). Sizes: FEEDCORE_BENCH_USERS
//! (default 1,000,000); FEEDCORE_BENCH_ONLY picks scenarios (`a`, `b`, `c`; default all).
//! Run: `cargo bench --bench fanout`.

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "support/figures.rs"]
mod figures;
use figures::Figures;

use feedcore::sim::TwitterGraph;
use feedcore::{Config, Durability, Engine, FollowGraph, GraphConfig, NewNotice, Page, UserId};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn engine_config(users: u32) -> Config {
    Config {
        users_max: users,
        durability: Durability::Buffered,
        following_max: u32::MAX / 2,
        ..Default::default()
    }
}

/// Opens an engine over a bulk-loaded graph and makes every user a reader (the first
/// read of each user builds an empty timeline and turns deliveries on).
fn engine_with_graph(
    dir: &std::path::Path,
    users: u32,
    edges: Vec<(UserId, UserId)>,
) -> (Engine, Duration) {
    let config = engine_config(users);
    let graph_config = GraphConfig {
        users_max: users,
        partitions: config.workers,
        ..Default::default()
    };
    drop(FollowGraph::bulk_load(dir.join("graph"), graph_config, edges).expect("bulk load"));
    let engine = Engine::open(dir, config).expect("open");
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2u32 {
            let engine = &engine;
            s.spawn(move || {
                for u in (t..users).step_by(2) {
                    engine
                        .home_timeline(UserId(u), Page::latest(1))
                        .expect("read");
                }
            });
        }
    });
    (engine, start.elapsed())
}

fn notice(author: u32, i: u64) -> NewNotice {
    NewNotice {
        author: UserId(author),
        body: format!("notice {i} by {author}: {}", "x".repeat(200)),
        ..Default::default()
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn scenario_a(users: u32, fig: &mut Figures) {
    println!("== A. deliveries per second, {users} users, Twitter-like graph");
    let t = Instant::now();
    let edges = TwitterGraph {
        users,
        ..Default::default()
    }
    .edges();
    println!(
        "graph: {} follows generated in {:.1} s",
        edges.len(),
        t.elapsed().as_secs_f64()
    );
    let mut followers: Vec<Vec<u32>> = vec![Vec::new(); users as usize];
    for &(a, b) in &edges {
        followers[b.0 as usize].push(a.0);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine, activate) = engine_with_graph(dir.path(), users, edges);
    println!(
        "every user read once (timeline built) in {:.1} s",
        activate.as_secs_f64()
    );

    // Authors weighted by follower count: popular accounts post more.
    let mut rng = SmallRng::seed_from_u64(7);
    let weights: Vec<f64> = followers.iter().map(|f| f.len() as f64 + 1.0).collect();
    let pick = rand_distr::weighted::WeightedAliasIndex::new(weights).expect("weights");
    use rand_distr::Distribution;
    let posts = 20_000u64;
    let authors: Vec<u32> = (0..posts).map(|_| pick.sample(&mut rng) as u32).collect();
    let recipients: u64 = authors
        .iter()
        .map(|&a| followers[a as usize].len() as u64 + 1)
        .sum();

    // Round 1 starts from empty timelines (every ring grows from its first size);
    // round 2 posts the same authors' notices again into the timelines round 1 filled,
    // closer to a running server's steady state.
    let (cold, _) = fan_out_round(&engine, &authors, users, "round 1, empty timelines");
    let (rate, mut latencies) = fan_out_round(
        &engine,
        &authors,
        users,
        "round 2, timelines holding round 1",
    );
    latencies.sort_unstable();
    println!(
        "home page of 20 with bodies during the round 2 fan-out: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us ({} reads)",
        percentile(&latencies, 0.5) as f64 / 1e3,
        percentile(&latencies, 0.9) as f64 / 1e3,
        percentile(&latencies, 0.99) as f64 / 1e3,
        latencies.last().copied().unwrap_or(0) as f64 / 1e3,
        latencies.len()
    );
    let idle = page_latencies(&engine, users, latencies.len().max(1000));
    println!(
        "the same pages with no fan-out running: p50 {:.1} us, p99 {:.1} us",
        percentile(&idle, 0.5) as f64 / 1e3,
        percentile(&idle, 0.99) as f64 / 1e3,
    );
    let stats = engine.stats();
    println!(
        "timelines: {} entries, {:.2} bytes/entry (accounting; most timelines hold few entries here)",
        stats.timeline_entries, stats.timeline_bytes_per_entry
    );

    // The same recipients, partitioned the same way, into baselines.
    let per_user = (stats.timeline_bytes / 4 / u64::from(users)).max(8) as usize;
    let mut slots = vec![0u32; users as usize * per_user];
    let mut lens = vec![0u32; users as usize];
    let start = Instant::now();
    std::thread::scope(|s| {
        let slots_ptr = SendPtr(slots.as_mut_ptr());
        let lens_ptr = SendPtr(lens.as_mut_ptr());
        for t in 0..2u32 {
            let (authors, followers) = (&authors, &followers);
            s.spawn(move || {
                let (slots, lens) = (slots_ptr, lens_ptr);
                for (i, &a) in authors.iter().enumerate() {
                    for &u in followers[a as usize].iter().chain(std::iter::once(&a)) {
                        if u % 2 != t {
                            continue;
                        }
                        // SAFETY: thread t only touches users u with u % 2 == t.
                        unsafe {
                            let len = &mut *lens.0.add(u as usize);
                            *slots
                                .0
                                .add(u as usize * per_user + (*len as usize % per_user)) = i as u32;
                            *len += 1;
                        }
                    }
                }
            });
        }
    });
    let probe = start.elapsed();
    black_box(&slots);
    drop(slots);
    let probe_rate = recipients as f64 / probe.as_secs_f64();
    println!(
        "baseline random-append probe ({} MB, 2 threads): {:.1} M appends/s; feedcore/probe = {:.2} (round 1), {:.2} (round 2)",
        users as usize * per_user * 4 / 1_000_000,
        probe_rate / 1e6,
        cold / probe_rate,
        rate / probe_rate
    );

    for (round, r) in [
        ("empty timelines", cold),
        ("timelines holding the first round", rate),
    ] {
        fig.add(
            &format!(
                "push fan-out, {users} users, Twitter-like graph, {} posts, {round}",
                authors.len()
            ),
            r / 1e6,
            "M deliveries/s",
            "random-append probe of the same memory, 2 threads",
            probe_rate / 1e6,
            ">= 20 M/s",
        );
    }
    let map: Mutex<HashMap<u32, VecDeque<u64>>> = Mutex::new(HashMap::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2u32 {
            let (authors, followers, map) = (&authors, &followers, &map);
            s.spawn(move || {
                for (i, &a) in authors.iter().enumerate() {
                    for &u in followers[a as usize].iter().chain(std::iter::once(&a)) {
                        if u % 2 != t {
                            continue;
                        }
                        let mut map = map.lock().expect("not poisoned");
                        let q = map.entry(u).or_default();
                        q.push_front(i as u64);
                        q.truncate(800);
                    }
                }
            });
        }
    });
    let mutex = start.elapsed();
    let mutex_rate = recipients as f64 / mutex.as_secs_f64();
    println!(
        "baseline Mutex<HashMap<u32, VecDeque<u64>>> (2 threads): {:.1} M deliveries/s; feedcore/mutex = {:.2} (round 1), {:.2} (round 2)",
        mutex_rate / 1e6,
        cold / mutex_rate,
        rate / mutex_rate
    );
    fig.add(
        "push fan-out, timelines holding the first round, against a locked map",
        rate / 1e6,
        "M deliveries/s",
        "Mutex<HashMap<u32, VecDeque<u64>>>, 2 threads",
        mutex_rate / 1e6,
        ">= 20 M/s",
    );
    // Read latency baseline: a page of 20 from the locked map.
    let mut lat = Vec::new();
    let mut rng = SmallRng::seed_from_u64(9);
    for _ in 0..latencies.len().max(1000) {
        let u = rng.random_range(0..users);
        let t = Instant::now();
        let map = map.lock().expect("not poisoned");
        let page: Vec<u64> = map
            .get(&u)
            .map(|q| q.iter().take(20).copied().collect())
            .unwrap_or_default();
        drop(map);
        black_box(page);
        lat.push(t.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    let us = |v: &[u64], q: f64| percentile(v, q) as f64 / 1e3;
    for (what, q) in [("p50", 0.5), ("p99", 0.99)] {
        fig.add(
            &format!("home page of 20 with bodies while both workers fan out, {what}"),
            us(&latencies, q),
            "us",
            "page of 20 ids from the locked map, idle",
            us(&lat, q),
            if q > 0.9 { "p99 <= 20 us" } else { "" },
        );
        fig.add(
            &format!("home page of 20 with bodies, idle, {what}"),
            us(&idle, q),
            "us",
            "page of 20 ids from the locked map, idle",
            us(&lat, q),
            if q > 0.9 { "p99 <= 20 us" } else { "" },
        );
    }
    println!(
        "baseline page of 20 ids (no bodies) from the locked map, idle: p50 {:.1} us, p99 {:.1} us",
        percentile(&lat, 0.5) as f64 / 1e3,
        percentile(&lat, 0.99) as f64 / 1e3
    );
}

/// Reads `n` home pages of 20 with bodies for random users (seeded as the reader of
/// `fan_out_round`); returns their latencies in nanoseconds, sorted.
fn page_latencies(engine: &Engine, users: u32, n: usize) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(9);
    let mut lat: Vec<u64> = (0..n).map(|_| read_page(engine, &mut rng, users)).collect();
    lat.sort_unstable();
    lat
}

/// One home page of 20 with bodies for a random user; returns its latency in ns.
fn read_page(engine: &Engine, rng: &mut SmallRng, users: u32) -> u64 {
    let u = UserId(rng.random_range(0..users));
    let t = Instant::now();
    let page = engine.home_timeline(u, Page::latest(20)).expect("read");
    let mut bytes = 0;
    for id in &page.ids {
        bytes += engine.notice(*id).map_or(0, |n| n.body().len());
    }
    black_box(bytes);
    t.elapsed().as_nanos() as u64
}

/// Posts one notice per entry of `authors` while a reader pages home timelines of 20
/// with bodies; waits for the fan-out. Returns deliveries per second (posting thread
/// included) and the reader's latencies in nanoseconds.
fn fan_out_round(engine: &Engine, authors: &[u32], users: u32, label: &str) -> (f64, Vec<u64>) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let before = engine.stats().deliveries;
    let (elapsed, latencies) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut rng = SmallRng::seed_from_u64(9);
            let mut lat = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                lat.push(read_page(engine, &mut rng, users));
                std::thread::sleep(Duration::from_micros(200));
            }
            lat
        });
        let start = Instant::now();
        for (i, &a) in authors.iter().enumerate() {
            engine.post(notice(a, i as u64)).expect("post");
        }
        let posting = start.elapsed();
        engine.flush().expect("flush");
        let elapsed = start.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        println!(
            "{label}: posting took {:.2} s, then the fan-out {:.2} s more",
            posting.as_secs_f64(),
            (elapsed - posting).as_secs_f64()
        );
        (elapsed, reader.join().expect("reader"))
    });
    let deliveries = engine.stats().deliveries - before;
    let rate = deliveries as f64 / elapsed.as_secs_f64();
    println!(
        "feedcore push, {label}: {} posts, {deliveries} deliveries in {:.2} s = {:.1} M deliveries/s (posting thread included)",
        authors.len(),
        elapsed.as_secs_f64(),
        rate / 1e6
    );
    (rate, latencies)
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: used only with disjoint index sets per thread (see scenario_a).
unsafe impl<T> Send for SendPtr<T> {}

/// Scenario B's users, each given a full timeline of 800.
const B_USERS: u32 = 50_000;

fn scenario_b(fig: &mut Figures) {
    println!("== B. bytes per entry, {B_USERS} full timelines of 800");
    // Each side runs in a fresh process of this bench: in one process, the allocator
    // hands the second side the memory the first one freed, and the resident-size
    // delta says nothing.
    let run = |part: &str| -> Vec<f64> {
        let out = std::process::Command::new(std::env::current_exe().expect("this bench"))
            .arg("--bench")
            .env("FEEDCORE_BENCH_B_PART", part)
            .output()
            .expect("running scenario B's part");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("B_RESULT "))
            .unwrap_or_else(|| panic!("scenario B part {part} printed no result: {text}"))
            .split_whitespace()
            .map(|v| v.parse().expect("a number"))
            .collect()
    };
    let feedcore = run("feedcore");
    let baseline = run("baseline")[0];
    let (entries, accounted, resident) = (feedcore[0], feedcore[1], feedcore[2]);
    println!(
        "feedcore: {entries} entries, {accounted:.2} bytes/entry by accounting, {resident:.2} resident bytes/entry (RSS delta of the fan-out, includes the 1000 notices' index)"
    );
    println!(
        "baseline Vec<VecDeque<u64>>: {baseline:.2} resident bytes/entry; feedcore/baseline = {:.2} (resident)",
        resident / baseline
    );
    fig.add(
        &format!("timeline memory, {B_USERS} full timelines of 800, resident in a fresh process"),
        resident,
        "resident bytes/entry",
        "Vec<VecDeque<u64>> of the same entries",
        baseline,
        "<= 5",
    );
}

/// One side of scenario B, in its own process; prints `B_RESULT` and the figures.
fn scenario_b_part(part: &str) {
    let users = B_USERS;
    if part == "baseline" {
        let rss_before = resident_bytes();
        let queues: Vec<VecDeque<u64>> = (0..users)
            .map(|_| {
                let mut q = VecDeque::with_capacity(800);
                for i in 0..800u64 {
                    q.push_back(i);
                }
                q
            })
            .collect();
        let rss_after = resident_bytes();
        black_box(&queues);
        let entries = (u64::from(users) * 800) as f64;
        println!(
            "B_RESULT {}",
            rss_after.saturating_sub(rss_before) as f64 / entries
        );
        return;
    }
    let edges: Vec<(UserId, UserId)> = (1..users).map(|u| (UserId(u), UserId(0))).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine, _) = engine_with_graph(dir.path(), users, edges);
    let rss_before = resident_bytes();
    let mem_before = engine.stats();
    for i in 0..1000 {
        engine.post(notice(0, i)).expect("post");
    }
    engine.flush().expect("flush");
    let stats = engine.stats();
    let rss_after = resident_bytes();
    let entries = stats.timeline_entries - mem_before.timeline_entries;
    let ring_bytes = stats.timeline_bytes - mem_before.timeline_bytes;
    println!(
        "B_RESULT {entries} {} {}",
        ring_bytes as f64 / entries as f64,
        rss_after.saturating_sub(rss_before) as f64 / entries as f64
    );
}

fn scenario_c(users: u32, fig: &mut Figures) {
    println!(
        "== C. one post to {} followers, and small posts meanwhile",
        users - 1
    );
    // Everyone follows user 0; users 1..=100 also have 10 followers each.
    let mut edges: Vec<(UserId, UserId)> = (1..users).map(|u| (UserId(u), UserId(0))).collect();
    for a in 1..=100u32 {
        for k in 1..=10u32 {
            edges.push((
                UserId((a * 7919 + k * 104_729) % (users - 1) + 1),
                UserId(a),
            ));
        }
    }
    edges.retain(|(a, b)| a != b);
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine, _) = engine_with_graph(dir.path(), users, edges);
    let start = Instant::now();
    engine.post(notice(0, 0)).expect("post");
    let mut small_lag = Vec::new();
    for a in 1..=100u32 {
        let t = Instant::now();
        let id = engine.post(notice(a, u64::from(a))).expect("post");
        // The author's own timeline gets it at the end of the same delivery.
        loop {
            let page = engine
                .home_timeline(UserId(a), Page::latest(1))
                .expect("read");
            if page.ids.first() == Some(&id) {
                break;
            }
            std::thread::yield_now();
        }
        small_lag.push(t.elapsed().as_micros() as u64);
    }
    engine.flush().expect("flush");
    let big = start.elapsed();
    small_lag.sort_unstable();
    let stats = engine.stats();
    println!(
        "big post delivered to all in {:.0} ms (engine's max lag {:.0} ms); small posts meanwhile: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        big.as_secs_f64() * 1e3,
        stats.delivery_lag_ms_max,
        percentile(&small_lag, 0.5) as f64 / 1e3,
        percentile(&small_lag, 0.99) as f64 / 1e3,
        small_lag.last().copied().unwrap_or(0) as f64 / 1e3
    );
    // Baseline: the same deliveries of the big post as appends into plain per-user
    // arrays, the two halves of the users on two threads (no rings, no rules, no log).
    const SLOTS: usize = 8;
    // Not zero: the allocation is written (faulted in) before the clock starts.
    let mut arrays = vec![u32::MAX; users as usize * SLOTS];
    let start = Instant::now();
    std::thread::scope(|s| {
        for (half, part) in arrays.chunks_mut(users as usize / 2 * SLOTS).enumerate() {
            s.spawn(move || {
                for (u, slot) in part.chunks_mut(SLOTS).enumerate() {
                    slot[(u + half) % SLOTS] = black_box(u as u32);
                }
            });
        }
    });
    let probe = start.elapsed();
    black_box(&arrays);
    println!(
        "baseline: the same {} appends into plain per-user arrays (2 threads): {:.1} ms; feedcore/baseline = {:.1}x the time",
        users - 1,
        probe.as_secs_f64() * 1e3,
        big.as_secs_f64() / probe.as_secs_f64()
    );
    fig.add(
        &format!("one post to {} followers, every follower has it", users - 1),
        big.as_secs_f64() * 1e3,
        "ms",
        "the same appends into plain per-user arrays, 2 threads",
        probe.as_secs_f64() * 1e3,
        "< 1 s",
    );
    fig.add_alone(
        "small posts while that post fans out, p99 until the author's timeline has it",
        percentile(&small_lag, 0.99) as f64 / 1e3,
        "ms",
        "< 10 ms",
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let users: u32 = std::env::var("FEEDCORE_BENCH_USERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    if let Ok(part) = std::env::var("FEEDCORE_BENCH_B_PART") {
        scenario_b_part(&part);
        return;
    }
    // FEEDCORE_BENCH_ONLY=a (or b, c, or several: "ac") runs just those scenarios.
    let only = std::env::var("FEEDCORE_BENCH_ONLY").unwrap_or_else(|_| "abc".into());
    let mut fig = Figures::new("fanout", "cargo bench --bench fanout");
    if only.contains('a') {
        scenario_a(users, &mut fig);
    }
    if only.contains('b') {
        scenario_b(&mut fig);
    }
    if only.contains('c') {
        scenario_c(users, &mut fig);
    }
    if only == "abc" {
        fig.write();
    }
}
