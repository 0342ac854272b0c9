//! Streams, whole scenarios, each figure beside a baseline run in the same process:
//!
//! A. A post to a group of 100 k members against a post to 100 k followers: deliveries
//!    per second, rounds alternating on one engine (budget: the group's within 0.8x of
//!    the followers').
//! B. A page of 20 with bodies of a tag's stream with 1 M tagged notices, and of the
//!    public timeline: p50 / p99 / max of the newest page and of a page at a random
//!    depth (budget p99 <= 50 us), beside the same pages read from a plain
//!    `Vec<u64>` of the ids and the log (the cost of the notices alone).
//! C. Bytes per group membership beside bytes per follow edge, each store bulk-loaded
//!    with the same shape (1 M users, 10 and then 20 edges each), snapshot plus overlay.
//!
//! Not a criterion bench: whole workloads with their own clocks. FEEDCORE_BENCH_ONLY
//! picks scenarios (`a`, `b`, `c`; default all); FEEDCORE_BENCH_TAGGED sets B's notices
//! (default 1,000,000). Run: `cargo bench --bench streams`.

#[path = "support/figures.rs"]
mod figures;

use std::hint::black_box;
use std::time::Instant;

use feedcore::{
    Config, Durability, Engine, FollowGraph, GraphConfig, GroupId, NewNotice, NoticeId, Page,
    Strategy, UserId,
};
use figures::Figures;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

fn only(scenario: &str) -> bool {
    std::env::var("FEEDCORE_BENCH_ONLY").map_or(true, |s| s.split(',').any(|x| x == scenario))
}

fn config(users: u32, strategy: Strategy) -> Config {
    Config {
        users_max: users,
        durability: Durability::Buffered,
        following_max: u32::MAX / 2,
        strategy,
        ..Default::default()
    }
}

fn scenario_a(fig: &mut Figures) {
    const AUDIENCE: u32 = 100_000;
    const POSTS: u32 = 40;
    const ROUNDS: u32 = 4;
    // User 0 is followed by 1..=100k; group 0's members are 100k+1..=200k; user
    // 200k+1 posts to the group. Disjoint audiences of the same size, same memory.
    let users = 2 * AUDIENCE + 2;
    let group_author = 2 * AUDIENCE + 1;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(users, Strategy::Push);
    let graph_config = GraphConfig {
        users_max: users,
        partitions: cfg.workers,
        following_max: cfg.following_max,
        ..Default::default()
    };
    let follows = (1..=AUDIENCE).map(|f| (UserId(f), UserId(0)));
    drop(FollowGraph::bulk_load(dir.path().join("graph"), graph_config, follows).unwrap());
    let members = (AUDIENCE + 1..=2 * AUDIENCE).map(|m| (UserId(m), GroupId(0)));
    Engine::bulk_load_groups(dir.path(), &cfg, &[(UserId(0), "big")], members).unwrap();
    let engine = Engine::open(dir.path(), cfg).unwrap();
    for u in 0..users {
        engine.home_timeline(UserId(u), Page::latest(1)).unwrap();
    }
    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for (which, rate) in rates.iter_mut().enumerate() {
            let before = engine.stats().deliveries;
            let started = Instant::now();
            for i in 0..POSTS {
                let notice = if which == 0 {
                    NewNotice {
                        author: UserId(0),
                        body: format!("to my followers, round {round} post {i}"),
                        ..Default::default()
                    }
                } else {
                    NewNotice {
                        author: UserId(group_author),
                        body: format!("to !big, round {round} post {i}"),
                        ..Default::default()
                    }
                };
                engine.post(notice).unwrap();
            }
            engine.flush().unwrap();
            let secs = started.elapsed().as_secs_f64();
            let delivered = engine.stats().deliveries - before;
            assert!(
                delivered >= u64::from(POSTS * AUDIENCE),
                "every member and follower got every post"
            );
            rate.push(delivered as f64 / secs);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let followers = median(&mut rates[0]);
    let group = median(&mut rates[1]);
    println!(
        "A. post to {AUDIENCE} followers: {:.1} M deliveries/s; post to a group of {AUDIENCE} \
         members: {:.1} M deliveries/s; ratio {:.2} (budget >= 0.80); medians of {ROUNDS} \
         alternating rounds of {POSTS} posts",
        followers / 1e6,
        group / 1e6,
        group / followers
    );
    fig.add(
        &format!("post to a group of {AUDIENCE} members"),
        group / 1e6,
        "M deliveries/s",
        &format!("post to {AUDIENCE} followers"),
        followers / 1e6,
        ">= 0.8x",
    );
}

fn quantiles(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    )
}

fn scenario_b(fig: &mut Figures) {
    let tagged: u64 = std::env::var("FEEDCORE_BENCH_TAGGED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let users = 10_000u32;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), config(users, Strategy::Pull)).unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    let started = Instant::now();
    let mut ids = Vec::with_capacity(tagged as usize);
    for i in 0..tagged {
        let id = engine
            .post(NewNotice {
                author: UserId(rng.random_range(0..users)),
                body: format!("notice {i} about #rust, a body of some length like a real one"),
                tags: vec!["rust".into()],
                ..Default::default()
            })
            .unwrap();
        ids.push(id.0);
    }
    println!(
        "B. {tagged} tagged public notices posted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let reader = UserId(1);
    let reads = 20_000;
    let mut bytes = 0usize;
    // p99 in microseconds per stream name and depth (newest, random).
    let mut p99s: Vec<(String, [f64; 2])> = Vec::new();
    let mut measure = |name: &str, read: &dyn Fn(Page) -> Vec<NoticeId>| {
        let mut p99 = [0.0; 2];
        for deep in [false, true] {
            let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
            let mut rng = SmallRng::seed_from_u64(9);
            for _ in 0..reads {
                let page = Page {
                    max_id: deep.then(|| NoticeId(rng.random_range(21..=tagged))),
                    ..Page::latest(20)
                };
                let t = Instant::now();
                for id in read(page) {
                    bytes += engine.notice(id).map_or(0, |n| n.body().len());
                }
                h.record((t.elapsed().as_nanos() as u64).max(1)).unwrap();
            }
            p99[usize::from(deep)] = h.value_at_quantile(0.99) as f64 / 1000.0;
            let depth = if deep { "random depth" } else { "newest" };
            println!(
                "   {name}, {depth} page of 20 with bodies: {}",
                quantiles(&h)
            );
        }
        p99s.push((name.to_string(), p99));
    };
    measure("tag stream", &|p| {
        engine.tag_timeline(reader, "rust", p).unwrap().ids
    });
    measure("public timeline", &|p| {
        engine.public_timeline(reader, p).unwrap().ids
    });
    measure("baseline: Vec<u64> of the ids, same log reads", &|p| {
        let end = p
            .max_id
            .map_or(ids.len(), |m| ids.partition_point(|&i| i < m.0));
        ids[end.saturating_sub(20)..end]
            .iter()
            .rev()
            .map(|&i| NoticeId(i))
            .collect()
    });
    black_box(bytes);
    let base = p99s[2].1;
    for (name, p99) in &p99s[..2] {
        for (d, depth) in ["newest", "random depth"].iter().enumerate() {
            fig.add(
                &format!("{name}, {depth} page of 20 with bodies, p99 ({tagged} tagged)"),
                p99[d],
                "us",
                "the ids from a plain Vec, same log reads",
                base[d],
                "<= 50 us",
            );
        }
    }
}

fn scenario_c(fig: &mut Figures) {
    for per_user in [10, 20] {
        scenario_c_with(per_user, fig);
    }
}

fn scenario_c_with(per_user: u32, fig: &mut Figures) {
    let users = 1_000_000u32;
    let groups = 100_000u32;
    let mut rng = SmallRng::seed_from_u64(5);
    let mut edges = Vec::with_capacity((users * per_user) as usize);
    for u in 0..users {
        for k in 0..per_user {
            // Distinct targets per user: a stride through the id space.
            edges.push((
                u,
                (u.wrapping_mul(7919) + k * 9973 + rng.random_range(0..9973)) % users,
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(users, Strategy::Push);
    let graph_config = GraphConfig {
        users_max: users,
        partitions: cfg.workers,
        following_max: cfg.following_max,
        ..Default::default()
    };
    let follows: Vec<(UserId, UserId)> = edges
        .iter()
        .filter(|(a, b)| a != b)
        .map(|&(a, b)| (UserId(a), UserId(b)))
        .collect();
    drop(FollowGraph::bulk_load(dir.path().join("graph"), graph_config, follows).unwrap());
    let names: Vec<String> = (0..groups).map(|g| format!("g{g}")).collect();
    let group_list: Vec<(UserId, &str)> = names.iter().map(|n| (UserId(0), n.as_str())).collect();
    let memberships = edges.iter().map(|&(u, t)| (UserId(u), GroupId(t % groups)));
    Engine::bulk_load_groups(dir.path(), &cfg, &group_list, memberships).unwrap();
    let engine = Engine::open(dir.path(), cfg).unwrap();
    let g = engine.graph().stats();
    let s = engine.streams_stats();
    let follow_bytes = (g.snapshot_bytes + g.overlay_bytes) as f64 / g.follows as f64;
    let member_bytes = s.membership_bytes as f64 / s.memberships as f64;
    println!(
        "C. {users} users, up to {per_user} edges each: follow edge {follow_bytes:.2} B \
         ({} follows); membership {member_bytes:.2} B ({} memberships of {groups} groups); \
         budget <= 10 B; snapshot plus overlay, both directions",
        g.follows, s.memberships
    );
    fig.add(
        &format!("bytes per group membership, {per_user} a user, 1 M users"),
        member_bytes,
        "B",
        "bytes per follow edge, same shape",
        follow_bytes,
        "<= 10 B",
    );
}

fn main() {
    let mut fig = Figures::new("streams", "cargo bench --bench streams");
    if only("a") {
        scenario_a(&mut fig);
    }
    if only("b") {
        scenario_b(&mut fig);
    }
    if only("c") {
        scenario_c(&mut fig);
    }
    fig.write();
}
