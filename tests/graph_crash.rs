//! Guards the follow graph's durability across real process crashes: `feedcore load
//! --graph-ops ... --durability always --print-acks` is killed with SIGKILL at a random
//! moment, round after round on the same graph, each round with its own seed. After
//! each kill, `feedcore check` must find the graph sound, and the reopened graph must
//! equal the model of every earlier round plus this round's acknowledged prefix: the
//! `k` ops the child printed, or `k + 1` (the op in flight may or may not have landed),
//! nothing else. One variant runs with the default compaction threshold; the other
//! passes the hidden `--compact-after 20`, so the kills also land in the middle of
//! background compactions (snapshot writes, op-log switches, file removals).

mod common;
mod graph_common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use feedcore::sim::random_relation_ops;
use feedcore::{FollowGraph, GraphConfig};
use graph_common::{Model, diff, files_named, open_graph};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const USERS: u32 = 200;
const ROUNDS: u64 = 24;
/// Partition counts every comparison covers besides the stored one.
const PARTITION_COUNTS: [u32; 2] = [2, 3];

/// The two tests run one at a time: a child spawned by one would hold a copy of the
/// other's lock file descriptor between its fork and its exec, and the other's child
/// could then find the graph locked.
static SERIAL: Mutex<()> = Mutex::new(());

fn config() -> GraphConfig {
    // What `feedcore load` opens the graph with, but for the compaction threshold,
    // which only matters to the writer.
    GraphConfig {
        users_max: USERS,
        ..Default::default()
    }
}

/// Starts `feedcore load` on `store` with `seed`, kills it with SIGKILL after
/// `delay_ms`, and returns how many ops it acknowledged (`op K` lines, K from 1).
fn load_and_kill(store: &Path, seed: u64, delay_ms: u64, compact_after: Option<u64>) -> u64 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_feedcore"));
    cmd.arg("load")
        .arg(store)
        .args(["--graph-ops", "2000000", "--users", &USERS.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--durability", "always", "--print-acks"]);
    if let Some(n) = compact_after {
        cmd.args(["--compact-after", &n.to_string()]);
    }
    let lines = common::kill_after(&mut cmd, delay_ms, &format!("seed {seed}"));
    let mut acked = 0;
    for line in lines {
        let n: u64 = line
            .strip_prefix("op ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("seed {seed}: unexpected output line {line:?}"));
        assert_eq!(n, acked + 1, "seed {seed}: acks in order");
        acked = n;
    }
    acked
}

fn crash_rounds(base_seed: u64, compact_after: Option<u64>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let store = tempfile::tempdir().unwrap();
    let graph_dir = store.path().join("graph");
    let mut rng = SmallRng::seed_from_u64(base_seed);
    let mut model = Model::new(USERS, config().following_max);
    let mut acked_total = 0;
    let mut in_flight_landed = 0;
    for round in 0..ROUNDS {
        let seed = base_seed * 1000 + round;
        let delay_ms = rng.random_range(20..300);
        let acked = load_and_kill(store.path(), seed, delay_ms, compact_after);
        acked_total += acked;
        let when =
            format!("round {round} (seed {seed}, killed after {delay_ms} ms, {acked} acked)");
        common::check_sound(store.path(), &when);

        // The model after the acknowledged prefix, and after one op more.
        let mut ops = random_relation_ops(USERS, seed);
        let mut after_acked = model.clone();
        for op in ops.by_ref().take(acked as usize) {
            let _ = after_acked.apply(op);
        }
        let mut after_next = after_acked.clone();
        let _ = after_next.apply(ops.next().expect("the sequence is endless"));

        let graph = open_graph(&graph_dir, config()).unwrap();
        model = match diff(&graph, &after_acked, &PARTITION_COUNTS) {
            Ok(()) => after_acked,
            Err(without) => match diff(&graph, &after_next, &PARTITION_COUNTS) {
                Ok(()) => {
                    in_flight_landed += 1;
                    after_next
                }
                Err(with) => panic!(
                    "{when}: the graph is neither the acknowledged prefix ({without}) nor \
                     one op more ({with})"
                ),
            },
        };
        drop(graph);
    }
    common::check_sound(store.path(), "after the last round");
    assert!(
        acked_total > ROUNDS,
        "the children acknowledged only {acked_total} ops in {ROUNDS} rounds: nothing was tested"
    );
    if compact_after.is_some() {
        assert!(
            !files_named(&graph_dir, "snapshot-").is_empty(),
            "no compaction ran"
        );
    }
    // Once more with a handle of our own, after a full, clean reopen.
    let graph = FollowGraph::open(&graph_dir, config()).unwrap();
    diff(&graph, &model, &PARTITION_COUNTS).unwrap();
    eprintln!(
        "{ROUNDS} rounds, {acked_total} ops acknowledged, the op in flight landed {in_flight_landed} times; \
         {} follows, {} blocks, {} mutes",
        model.follows.len(),
        model.blocks.len(),
        model.mutes.len()
    );
}

#[test]
fn sigkill_keeps_the_acknowledged_prefix() {
    crash_rounds(1, None);
}

#[test]
fn sigkill_during_background_compactions_keeps_the_acknowledged_prefix() {
    crash_rounds(2, Some(20));
}
