//! Guards the follow graph's observable behaviour against a plain model: random
//! sequences of follow, unfollow, block, unblock, mute and unmute (including self
//! relations, users past `users_max`, follows across blocks and past a small
//! `following_max`), explicit `compact()`, and reopen (with `FollowGraph::check` on the
//! closed directory and, sometimes, another partition count), run beside one
//! `BTreeSet<(u32, u32)>` per relation. Every call's answer must match the model's, and
//! after every step every user's followers, following, `followers_in` for every
//! partition (of the stored count and of 1, 2 and 3), counts, `is_following`,
//! `is_blocked`, `is_muted` and `stats()` must too. Some cases start from a bulk load,
//! and some compact in the background every 7 changes, so walks run across snapshot,
//! overlay and a compaction in flight.

mod graph_common;

use feedcore::sim::RelationOp;
use feedcore::{Durability, FollowGraph, GraphConfig, UserId};
use graph_common::{Model, diff, graph_apply};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const USERS_MAX: u32 = 12;
const FOLLOWING_MAX: u32 = 4;
/// Partition counts every `followers_in` comparison covers besides the stored one.
const PARTITION_COUNTS: [u32; 3] = [1, 2, 3];

#[derive(Clone, Debug)]
enum Step {
    Op(RelationOp),
    Compact,
    /// Drop, `FollowGraph::check`, open again with this partition count.
    Reopen {
        partitions: u32,
    },
}

fn relation_op() -> impl Strategy<Value = RelationOp> {
    // Ids up to USERS_MAX, one past the last valid one, so some ops name an unknown
    // user; a == b happens about one time in thirteen.
    (0..6u8, 0..=USERS_MAX, 0..=USERS_MAX).prop_map(|(kind, a, b)| {
        let (a, b) = (UserId(a), UserId(b));
        match kind {
            0 => RelationOp::Follow(a, b),
            1 => RelationOp::Unfollow(a, b),
            2 => RelationOp::Block(a, b),
            3 => RelationOp::Unblock(a, b),
            4 => RelationOp::Mute(a, b),
            _ => RelationOp::Unmute(a, b),
        }
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        // Follows dominate so that following_max is reached.
        30 => (0..USERS_MAX, 0..USERS_MAX)
            .prop_map(|(a, b)| Step::Op(RelationOp::Follow(UserId(a), UserId(b)))),
        60 => relation_op().prop_map(Step::Op),
        4 => Just(Step::Compact),
        4 => (1..=3u32).prop_map(|partitions| Step::Reopen { partitions }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    partitions: u32,
    compact_after_changes: u64,
    /// Bulk-loaded first when not empty (self edges are dropped).
    edges: Vec<(u32, u32)>,
    steps: Vec<Step>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1..=3u32,
        prop_oneof![Just(7u64), Just(1_000_000)],
        prop_oneof![
            Just(Vec::new()),
            prop::collection::vec((0..USERS_MAX, 0..USERS_MAX), 0..30),
        ],
        prop::collection::vec(step(), 1..80),
    )
        .prop_map(|(partitions, compact_after_changes, edges, steps)| Case {
            partitions,
            compact_after_changes,
            edges: edges.into_iter().filter(|(a, b)| a != b).collect(),
            steps,
        })
}

fn config(partitions: u32, compact_after_changes: u64) -> GraphConfig {
    GraphConfig {
        users_max: USERS_MAX,
        following_max: FOLLOWING_MAX,
        partitions,
        durability: Durability::Buffered,
        compact_after_changes,
    }
}

fn run(case: Case) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph");
    let mut config = config(case.partitions, case.compact_after_changes);
    let mut model = Model::bulk_loaded(USERS_MAX, FOLLOWING_MAX, case.edges.iter().copied());
    let mut graph = if case.edges.is_empty() {
        FollowGraph::open(&path, config.clone()).unwrap()
    } else {
        let edges = case.edges.iter().map(|&(a, b)| (UserId(a), UserId(b)));
        FollowGraph::bulk_load(&path, config.clone(), edges).unwrap()
    };
    diff(&graph, &model, &PARTITION_COUNTS).map_err(TestCaseError::fail)?;
    for (i, step) in case.steps.into_iter().enumerate() {
        match step {
            Step::Op(op) => {
                let got = graph_apply(&graph, op);
                let want = model.apply(op);
                prop_assert_eq!(got, want, "step {}: {:?}", i, op);
            }
            Step::Compact => {
                graph
                    .compact()
                    .map_err(|e| TestCaseError::fail(format!("step {i}: compact: {e}")))?;
                prop_assert_eq!(graph.stats().ops_since_snapshot, 0, "step {}", i);
            }
            Step::Reopen { partitions } => {
                drop(graph);
                let report = FollowGraph::check(&path)
                    .map_err(|e| TestCaseError::fail(format!("step {i}: check: {e}")))?;
                prop_assert!(report.problems.is_empty(), "step {}: {:?}", i, report);
                let counts = (
                    report.stats.follows,
                    report.stats.blocks,
                    report.stats.mutes,
                );
                let want = (
                    model.follows.len() as u64,
                    model.blocks.len() as u64,
                    model.mutes.len() as u64,
                );
                prop_assert_eq!(counts, want, "step {}: check's counts", i);
                config.partitions = partitions;
                graph = FollowGraph::open(&path, config.clone())
                    .map_err(|e| TestCaseError::fail(format!("step {i}: open: {e}")))?;
            }
        }
        diff(&graph, &model, &PARTITION_COUNTS)
            .map_err(|e| TestCaseError::fail(format!("after step {i}: {e}")))?;
    }
    prop_assert_eq!(graph.compaction_error(), None);
    drop(graph);
    let graph = FollowGraph::open(&path, config).unwrap();
    diff(&graph, &model, &PARTITION_COUNTS)
        .map_err(|e| TestCaseError::fail(format!("after the last reopen: {e}")))?;
    Ok(())
}

/// The sequences that once failed (`compact()` with no change since the last
/// compaction, or since a bulk load or an open, tried to create the op log file that
/// was already there), run on every test run whatever proptest draws.
#[test]
fn compactions_without_changes_in_between() {
    let follow = |a, b| Step::Op(RelationOp::Follow(UserId(a), UserId(b)));
    let steps = vec![
        Step::Compact,
        Step::Compact,
        follow(1, 2),
        Step::Compact,
        Step::Compact,
        Step::Reopen { partitions: 3 },
        Step::Compact,
        follow(2, 1),
        Step::Reopen { partitions: 2 },
        Step::Compact,
    ];
    for edges in [Vec::new(), vec![(3, 4), (4, 3), (5, 3)]] {
        run(Case {
            partitions: 2,
            compact_after_changes: 1_000_000,
            edges,
            steps: steps.clone(),
        })
        .unwrap();
    }
    // A background compaction after 7 changes, then explicit ones with none between.
    let mut steps: Vec<Step> = (1..=7).map(|b| follow(0, b % 4 + 1)).collect();
    steps.extend((5..=8).map(|a| follow(a, 0)));
    steps.extend([Step::Compact, Step::Compact]);
    run(Case {
        partitions: 1,
        compact_after_changes: 7,
        edges: Vec::new(),
        steps,
    })
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 150,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn graph_agrees_with_the_model(case in case()) {
        run(case)?;
    }
}
