//! Guards lock-free reads of the follow graph while it changes and compacts: two writer
//! threads follow and unfollow (and mute) on disjoint follower ranges of a bulk-loaded
//! graph, a toggler flips one user's followers between `{}`, `{X}` and `{Y}`, a third
//! thread runs `compact()` now and then (background compactions run too), and two
//! readers walk `followers`, `followers_in` (stored and other partition counts, by
//! iterator and by chunk), `following` and the counts of the hot users all along. Every
//! walk must be strictly ascending with ids below `users_max`, in the right partition,
//! hold every follower that is never removed and none that never follows; the toggled
//! user's followers must never be `{X, Y}`, a set that never existed. Every writer call
//! must answer as its own model does. Afterwards the graph equals the model, also after
//! reopen.

mod graph_common;

use std::collections::BTreeSet;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use feedcore::sim::RelationOp;
use feedcore::{Durability, FollowGraph, GraphConfig, UserId};
use graph_common::{Model, ascending, diff, graph_apply};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const USERS_MAX: u32 = 1024;
/// Users 0..HOT are followed by most others.
const HOT: u32 = 4;
/// The toggled user and its two would-be followers: one in each of the 2 stored
/// partitions, both in the same partition of 3.
const TOGGLED: u32 = 4;
const X: u32 = 6;
const Y: u32 = 9;
const _: () = assert!(X % 2 != Y % 2 && X % 3 == Y % 3);
/// Followers owned by the writers: writer `w` owns `OWNED[w]`.
const OWNED: [std::ops::Range<u32>; 2] = [12..516, 516..USERS_MAX];
/// Ops per writer.
const WRITER_OPS: usize = 30_000;
/// Explicit compactions while the writers run.
const COMPACTIONS: usize = 30;

/// Followers of hot users by `a % 4`: 0 follows every hot user from the bulk load on
/// and is never removed; 1 and 2 are followed and unfollowed at random (1 from the
/// bulk load on); 3 never follows a hot user.
fn stable(a: u32) -> bool {
    a >= OWNED[0].start && a.is_multiple_of(4)
}

fn churn(a: u32) -> bool {
    a >= OWNED[0].start && (a % 4 == 1 || a % 4 == 2)
}

fn config() -> GraphConfig {
    GraphConfig {
        users_max: USERS_MAX,
        partitions: 2,
        durability: Durability::Buffered,
        compact_after_changes: 2000,
        ..Default::default()
    }
}

fn base_edges() -> Vec<(u32, u32)> {
    (OWNED[0].start..USERS_MAX)
        .filter(|&a| a % 4 <= 1)
        .flat_map(|a| (0..HOT).map(move |h| (a, h)))
        .collect()
}

/// Checks one walk of `h`'s followers restricted to `partition` of `partitions`
/// (`partitions` 1: all of them).
fn check_followers(h: u32, walked: &[u32], partition: u32, partitions: u32) -> Result<(), String> {
    ascending(walked)?;
    let seen: BTreeSet<u32> = walked.iter().copied().collect();
    for &a in walked {
        if a >= USERS_MAX || a % partitions != partition {
            return Err(format!(
                "follower {a} of {h} in partition {partition} of {partitions}"
            ));
        }
        if !stable(a) && !churn(a) {
            return Err(format!(
                "{a} never followed {h}, yet is among its followers"
            ));
        }
    }
    if let Some(missing) = (OWNED[0].start..USERS_MAX)
        .filter(|&a| stable(a) && a % partitions == partition)
        .find(|a| !seen.contains(a))
    {
        return Err(format!("{missing} always follows {h}, yet is missing"));
    }
    Ok(())
}

fn read_once(graph: &FollowGraph, rng: &mut SmallRng) -> Result<(), String> {
    let h = rng.random_range(0..HOT);
    let user = UserId(h);
    let all: Vec<u32> = graph.followers(user).map(|u| u.0).collect();
    check_followers(h, &all, 0, 1)?;
    let mut chunked = Vec::new();
    graph
        .followers(user)
        .for_each_chunk(|c| chunked.extend_from_slice(c));
    check_followers(h, &chunked, 0, 1)?;
    for partitions in [2, 3] {
        for p in 0..partitions {
            let walked: Vec<u32> = graph
                .followers_in(user, p, partitions)
                .map(|u| u.0)
                .collect();
            check_followers(h, &walked, p, partitions)?;
            let mut chunked = Vec::new();
            graph
                .followers_in(user, p, partitions)
                .for_each_chunk(|c| chunked.extend_from_slice(c));
            check_followers(h, &chunked, p, partitions)?;
        }
    }
    let count = graph.follower_count(user);
    let (low, high) = (OWNED[0].start..USERS_MAX).fold((0, 0), |(low, high), a| {
        (
            low + u64::from(stable(a)),
            high + u64::from(stable(a) || churn(a)),
        )
    });
    if !(low..=high).contains(&count) {
        return Err(format!(
            "follower_count({h}) = {count}, outside {low}..={high}"
        ));
    }

    let a = rng.random_range(OWNED[0].start..USERS_MAX);
    let following: Vec<u32> = graph.following(UserId(a)).map(|u| u.0).collect();
    ascending(&following)?;
    let want_low: Vec<u32> = if stable(a) {
        (0..HOT).collect()
    } else {
        Vec::new()
    };
    let ok = match a % 4 {
        0 => following == want_low,
        3 => following.is_empty(),
        _ => following.iter().all(|&b| b < HOT),
    };
    if !ok {
        return Err(format!("following({a}) = {following:?}"));
    }
    let count = graph.following_count(UserId(a));
    if count > u64::from(HOT) {
        return Err(format!("following_count({a}) = {count}"));
    }

    // The toggled user: {}, {X} or {Y}, never both.
    let toggled: Vec<u32> = graph.followers(UserId(TOGGLED)).map(|u| u.0).collect();
    if !matches!(toggled.as_slice(), [] | [X] | [Y]) {
        return Err(format!(
            "followers({TOGGLED}) = {toggled:?}, a set that never existed"
        ));
    }
    // X and Y are in different stored partitions but the same one of 3, so this walk
    // merges two stored partitions too.
    let toggled: Vec<u32> = graph
        .followers_in(UserId(TOGGLED), X % 3, 3)
        .map(|u| u.0)
        .collect();
    if !matches!(toggled.as_slice(), [] | [X] | [Y]) {
        return Err(format!(
            "followers_in({TOGGLED}, {}, 3) = {toggled:?}, a set that never existed",
            X % 3
        ));
    }
    Ok(())
}

/// A writer's ops: follows and unfollows of hot users by its churn followers, and some
/// mutes, which never touch follows.
fn writer_ops(w: usize) -> Vec<RelationOp> {
    let mut rng = SmallRng::seed_from_u64(100 + w as u64);
    (0..WRITER_OPS)
        .map(|_| {
            let a = loop {
                let a = rng.random_range(OWNED[w].clone());
                if churn(a) {
                    break UserId(a);
                }
            };
            let h = UserId(rng.random_range(0..HOT));
            match rng.random_range(0..10) {
                0..5 => RelationOp::Follow(a, h),
                5..9 => RelationOp::Unfollow(a, h),
                _ => RelationOp::Mute(a, h),
            }
        })
        .collect()
}

#[test]
fn readers_see_consistent_walks_while_writers_and_compactions_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph");
    let base = base_edges();
    let graph = FollowGraph::bulk_load(
        &path,
        config(),
        base.iter().map(|&(a, b)| (UserId(a), UserId(b))),
    )
    .unwrap();
    let base_model = Model::bulk_loaded(USERS_MAX, config().following_max, base.iter().copied());
    let ops: [Vec<RelationOp>; 2] = [writer_ops(0), writer_ops(1)];
    let writers_done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let toggles = AtomicU64::new(0);
    let start = Barrier::new(6);

    std::thread::scope(|s| {
        let graph = &graph;
        let writers: Vec<_> = ops
            .iter()
            .enumerate()
            .map(|(w, ops)| {
                let mut model = base_model.clone();
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    for (i, &op) in ops.iter().enumerate() {
                        let got = graph_apply(graph, op);
                        let want = model.apply(op);
                        assert_eq!(got, want, "writer {w}, op {i}: {op:?}");
                    }
                })
            })
            .collect();
        let toggler = s.spawn(|| {
            start.wait();
            let (t, x, y) = (UserId(TOGGLED), UserId(X), UserId(Y));
            while !writers_done.load(Ordering::Relaxed) {
                assert!(graph.follow(x, t).unwrap());
                assert!(graph.unfollow(x, t).unwrap());
                assert!(graph.follow(y, t).unwrap());
                assert!(graph.unfollow(y, t).unwrap());
                toggles.fetch_add(1, Ordering::Relaxed);
            }
        });
        let compactor = s.spawn(|| {
            start.wait();
            for _ in 0..COMPACTIONS {
                std::thread::sleep(Duration::from_millis(15));
                graph.compact().unwrap();
            }
        });
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (start, writers_done, reads) = (&start, &writers_done, &reads);
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(200 + r);
                    start.wait();
                    while !writers_done.load(Ordering::Relaxed) {
                        if let Err(e) = read_once(graph, &mut rng) {
                            panic!("reader {r}: {e}");
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let outcome: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        let compacted = compactor.join();
        writers_done.store(true, Ordering::Relaxed);
        let toggled = toggler.join();
        let read = readers.into_iter().map(|r| r.join()).collect::<Vec<_>>();
        // Report the first failure after every thread stopped.
        for result in outcome.into_iter().chain([compacted, toggled]).chain(read) {
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let reads = reads.into_inner();
    eprintln!(
        "{reads} reads, {} toggle cycles, {} ops per writer",
        toggles.into_inner(),
        WRITER_OPS
    );
    assert!(reads > 100, "the readers hardly ran ({reads} reads)");
    assert_eq!(graph.compaction_error(), None);

    let mut model = base_model;
    for op in ops.iter().flatten() {
        model.apply(*op).unwrap();
    }
    // The toggled user ends with no followers, but X and Y followed it.
    model.users_seen = model.users_seen.max(Y + 1);
    diff(&graph, &model, &[2, 3]).unwrap();
    drop(graph);
    let graph = FollowGraph::open(&path, config()).unwrap();
    diff(&graph, &model, &[2, 3]).unwrap();
    graph.compact().unwrap();
    diff(&graph, &model, &[2, 3]).unwrap();
}
