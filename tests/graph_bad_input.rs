//! Guards the follow graph against bad input: every bad call or damaged file gets a
//! clear `Err` and changes nothing. Users at or past `users_max` are `UnknownUser`;
//! self relations, follows past `following_max` and follows across a block (either
//! direction) are `InvalidRelation`; a second open is `Locked`; out-of-range configs
//! are `InvalidConfig`; a flipped byte in a snapshot is `Corrupt` naming that file; a
//! damaged or missing op record with good records after it is `Corrupt` naming the op
//! log and the record's offset; a torn op-log tail (cut mid-record, or garbage after the
//! last record) is cut off at open, leaving the acknowledged ops. `FollowGraph::check`
//! reports each of these, recoverable or not, without changing a byte; `bulk_load`
//! refuses a non-empty directory, unknown users and self edges.

mod graph_common;

use std::fs;
use std::path::{Path, PathBuf};

use feedcore::sim::RelationOp;
use feedcore::{Durability, Error, FollowGraph, GraphConfig, UserId};
use graph_common::{Model, OP_A_OFFSET, OP_RECORD_BYTES, diff, dir_image, files_named};

const USERS_MAX: u32 = 10;
const FOLLOWING_MAX: u32 = 3;

fn config() -> GraphConfig {
    GraphConfig {
        users_max: USERS_MAX,
        following_max: FOLLOWING_MAX,
        partitions: 2,
        durability: Durability::Buffered,
        compact_after_changes: 1_000_000,
    }
}

fn u(id: u32) -> UserId {
    UserId(id)
}

/// Every kind of op between `a` and `b`.
fn all_kinds(a: u32, b: u32) -> [RelationOp; 6] {
    let (a, b) = (u(a), u(b));
    [
        RelationOp::Follow(a, b),
        RelationOp::Unfollow(a, b),
        RelationOp::Block(a, b),
        RelationOp::Unblock(a, b),
        RelationOp::Mute(a, b),
        RelationOp::Unmute(a, b),
    ]
}

/// A graph with some of everything, and its model.
fn populated(dir: &Path) -> (FollowGraph, Model) {
    let graph = FollowGraph::open(dir, config()).unwrap();
    let mut model = Model::new(USERS_MAX, FOLLOWING_MAX);
    let ops = [
        RelationOp::Follow(u(1), u(2)),
        RelationOp::Follow(u(1), u(3)),
        RelationOp::Follow(u(1), u(4)),
        RelationOp::Follow(u(2), u(1)),
        RelationOp::Follow(u(6), u(5)),
        RelationOp::Block(u(5), u(6)),
        RelationOp::Mute(u(7), u(8)),
        RelationOp::Follow(u(7), u(8)),
        RelationOp::Follow(u(9), u(0)),
        RelationOp::Follow(u(8), u(0)),
    ];
    for op in ops {
        assert_eq!(
            op.apply(&graph).unwrap(),
            model.apply(op).unwrap(),
            "{op:?}"
        );
    }
    (graph, model)
}

/// Applies `op`, which must fail as `matches` says, and checks that the graph and its
/// files are as before.
fn refused(graph: &FollowGraph, model: &Model, op: RelationOp, matches: impl Fn(&Error) -> bool) {
    let files = dir_image(graph.dir());
    match op.apply(graph) {
        Err(e) if matches(&e) => {}
        other => panic!("{op:?}: {other:?}"),
    }
    assert!(
        model.clone().apply(op).is_err(),
        "the model refuses {op:?} too"
    );
    diff(graph, model, &[3]).unwrap_or_else(|e| panic!("after {op:?}: {e}"));
    assert!(dir_image(graph.dir()) == files, "{op:?} changed a file");
}

#[test]
fn refused_relations_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, model) = populated(dir.path());
    for bad in [USERS_MAX, USERS_MAX + 1, u32::MAX] {
        for (a, b) in [(bad, 1), (1, bad), (bad, bad)] {
            for op in all_kinds(a, b) {
                refused(
                    &graph,
                    &model,
                    op,
                    |e| matches!(e, Error::UnknownUser { user, users_max: USERS_MAX } if user.0 == bad),
                );
            }
        }
    }
    for a in [0, 3, USERS_MAX - 1] {
        for op in all_kinds(a, a) {
            refused(&graph, &model, op, |e| {
                matches!(e, Error::InvalidRelation { .. })
            });
        }
    }
    // User 1 follows FOLLOWING_MAX users already.
    assert_eq!(graph.following_count(u(1)), u64::from(FOLLOWING_MAX));
    for b in [0, 5, 9] {
        refused(&graph, &model, RelationOp::Follow(u(1), u(b)), |e| {
            matches!(e, Error::InvalidRelation { .. })
        });
    }
    // 5 blocks 6: no follow either way.
    for (a, b) in [(5, 6), (6, 5)] {
        refused(&graph, &model, RelationOp::Follow(u(a), u(b)), |e| {
            matches!(e, Error::InvalidRelation { .. })
        });
    }
    // Queries about unknown users answer "nothing", never panic.
    assert!(!graph.is_following(u(u32::MAX), u(1)));
    assert!(!graph.is_blocked(u(5), u(u32::MAX)));
    assert!(!graph.is_muted(u(7), u(USERS_MAX)));
    assert_eq!(graph.followers(u(u32::MAX)).count(), 0);
    assert_eq!(graph.following(u(USERS_MAX)).count(), 0);
    assert_eq!(
        graph.followers_in(u(2), 2, 2).count(),
        0,
        "partition past the count"
    );
    assert_eq!(graph.followers_in(u(2), 0, 0).count(), 0, "zero partitions");
    drop(graph);
    let graph = FollowGraph::open(dir.path(), config()).unwrap();
    diff(&graph, &model, &[3]).unwrap();
}

#[test]
fn a_second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, model) = populated(dir.path());
    let files = dir_image(dir.path());
    match FollowGraph::open(dir.path(), config()) {
        Err(Error::Locked {
            dir: locked,
            lock_file,
        }) => {
            assert_eq!(locked, dir.path());
            assert_eq!(lock_file, dir.path().join("LOCK"));
        }
        other => panic!("second open: {:?}", other.map(|_| ())),
    }
    assert!(FollowGraph::bulk_load(dir.path(), config(), []).is_err());
    assert!(dir_image(dir.path()) == files);
    diff(&graph, &model, &[]).unwrap();
    drop(graph);
    let graph = FollowGraph::open(dir.path(), config()).unwrap();
    diff(&graph, &model, &[]).unwrap();
}

#[test]
fn invalid_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        GraphConfig {
            users_max: 0,
            ..config()
        },
        GraphConfig {
            partitions: 0,
            ..config()
        },
        GraphConfig {
            partitions: 257,
            ..config()
        },
        GraphConfig {
            following_max: 0,
            ..config()
        },
        GraphConfig {
            compact_after_changes: 0,
            ..config()
        },
        GraphConfig {
            users_max: u32::MAX,
            ..config()
        },
    ];
    for (i, config) in bad.into_iter().enumerate() {
        let path = dir.path().join(format!("g{i}"));
        match FollowGraph::open(&path, config.clone()) {
            Err(Error::InvalidConfig { .. }) => {}
            other => panic!("open with {config:?}: {:?}", other.map(|_| ())),
        }
        match FollowGraph::bulk_load(&path, config.clone(), [(u(1), u(2))]) {
            Err(Error::InvalidConfig { .. }) => {}
            other => panic!("bulk_load with {config:?}: {:?}", other.map(|_| ())),
        }
        assert!(
            !path.exists(),
            "a refused config created {}",
            path.display()
        );
    }
    // The edges of the range are fine.
    for partitions in [1, 256] {
        let path = dir.path().join(format!("p{partitions}"));
        let graph = FollowGraph::open(
            &path,
            GraphConfig {
                partitions,
                ..config()
            },
        )
        .unwrap();
        graph.follow(u(1), u(2)).unwrap();
        assert_eq!(graph.followers(u(2)).collect::<Vec<_>>(), [u(1)]);
    }
}

/// Flips bit 6 of the byte at `offset` of `file`.
fn flip(file: &Path, offset: u64) {
    let mut bytes = fs::read(file).unwrap();
    bytes[offset as usize] ^= 0x40;
    fs::write(file, &bytes).unwrap();
}

/// `open` fails with `Corrupt` in `file` at `offset` (any offset when `None`) and
/// changes nothing; `check` reports the same problem as not recoverable and changes
/// nothing either.
fn assert_corrupt(dir: &Path, file: &Path, offset: Option<u64>, what: &str) {
    let files = dir_image(dir);
    match FollowGraph::open(dir, config()) {
        Err(Error::Corrupt {
            file: at,
            offset: found,
            reason,
        }) => {
            assert_eq!(at, file, "{what}: the damaged file ({reason})");
            if let Some(offset) = offset {
                assert_eq!(found, offset, "{what}: the damaged record ({reason})");
            }
        }
        other => panic!("{what}: open gave {:?}", other.map(|_| ())),
    }
    assert!(
        dir_image(dir) == files,
        "{what}: a failed open changed a file"
    );
    let report = FollowGraph::check(dir).unwrap();
    assert!(!report.is_sound(), "{what}: {report:?}");
    assert_eq!(report.problems.len(), 1, "{what}: {report:?}");
    let problem = &report.problems[0];
    assert_eq!(problem.file, file, "{what}: {report:?}");
    if let Some(offset) = offset {
        assert_eq!(problem.offset, offset, "{what}: {report:?}");
    }
    assert!(!problem.recoverable, "{what}: {report:?}");
    assert!(dir_image(dir) == files, "{what}: check changed a file");
}

#[test]
fn a_damaged_snapshot_is_corrupt_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, model) = populated(dir.path());
    graph.compact().unwrap();
    drop(graph);
    let snapshot = files_named(dir.path(), "snapshot-");
    assert_eq!(snapshot.len(), 1, "one snapshot after compact()");
    let snapshot = &snapshot[0];
    let pristine = fs::read(snapshot).unwrap();
    let len = pristine.len() as u64;
    // Header fields (users at 16, edges at 24, seq at 32, the header checksum at 60),
    // the first and last body bytes, and the middle.
    for at in [16, 24, 32, 60, 64, len / 2, len - 1] {
        flip(snapshot, at);
        assert_corrupt(dir.path(), snapshot, None, &format!("snapshot byte {at}"));
        flip(snapshot, at);
    }
    fs::write(snapshot, b"not a snapshot").unwrap();
    assert_corrupt(dir.path(), snapshot, Some(0), "a short file");
    fs::write(snapshot, &pristine[..pristine.len() - 8]).unwrap();
    assert_corrupt(dir.path(), snapshot, None, "a truncated snapshot");
    // Nothing was lost on the way: the repaired file opens to the same graph.
    fs::write(snapshot, &pristine).unwrap();
    let graph = FollowGraph::open(dir.path(), config()).unwrap();
    diff(&graph, &model, &[3]).unwrap();
}

/// A graph of `ops` follows, one op-log record each, closed; with its model.
fn op_log_of(dir: &Path, ops: usize) -> (PathBuf, Vec<RelationOp>) {
    let graph = FollowGraph::open(dir, config()).unwrap();
    let list: Vec<RelationOp> = (0..ops as u32)
        .map(|i| RelationOp::Follow(u(i % USERS_MAX), u((i / USERS_MAX + i + 1) % USERS_MAX)))
        .filter(|op| op.apply(&graph).unwrap())
        .collect();
    assert_eq!(list.len(), ops, "every follow is new");
    graph.sync().unwrap();
    drop(graph);
    let logs = files_named(dir, "ops-");
    assert_eq!(logs.len(), 1);
    assert_eq!(
        fs::metadata(&logs[0]).unwrap().len(),
        ops as u64 * OP_RECORD_BYTES
    );
    (logs[0].clone(), list)
}

fn model_of(ops: &[RelationOp]) -> Model {
    let mut model = Model::new(USERS_MAX, FOLLOWING_MAX);
    for &op in ops {
        model.apply(op).unwrap();
    }
    model
}

#[test]
fn a_damaged_op_record_before_good_ones_is_corrupt_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, ops) = op_log_of(dir.path(), 9);
    let pristine = fs::read(&log).unwrap();
    // Length, checksum, version, tag, seq, op kind, a, b: every checked field.
    let fields = [0, 4, 8, 9, 10, 16, OP_A_OFFSET, 24];
    for record in [0u64, 4, 7] {
        for field in fields {
            let at = record * OP_RECORD_BYTES + field;
            flip(&log, at);
            assert_corrupt(
                dir.path(),
                &log,
                Some(record * OP_RECORD_BYTES),
                &format!("record {record}, byte {field}"),
            );
            fs::write(&log, &pristine).unwrap();
        }
    }
    // A record missing from the middle: the seqs have a gap.
    let mut cut = pristine.clone();
    cut.drain(4 * OP_RECORD_BYTES as usize..5 * OP_RECORD_BYTES as usize);
    fs::write(&log, &cut).unwrap();
    assert_corrupt(
        dir.path(),
        &log,
        Some(4 * OP_RECORD_BYTES),
        "a missing record",
    );
    // A record twice: a seq repeats.
    let mut doubled = pristine.clone();
    doubled.splice(
        5 * OP_RECORD_BYTES as usize..5 * OP_RECORD_BYTES as usize,
        pristine[4 * OP_RECORD_BYTES as usize..5 * OP_RECORD_BYTES as usize].to_vec(),
    );
    fs::write(&log, &doubled).unwrap();
    assert_corrupt(
        dir.path(),
        &log,
        Some(5 * OP_RECORD_BYTES),
        "a repeated record",
    );

    fs::write(&log, &pristine).unwrap();
    let graph = FollowGraph::open(dir.path(), config()).unwrap();
    diff(&graph, &model_of(&ops), &[3]).unwrap();
}

/// Damage done to an op log's bytes.
type Damage = fn(&mut Vec<u8>);

#[test]
fn a_torn_op_log_tail_is_cut_at_open() {
    let acked = 6;
    let cases: [(&str, Damage); 6] = [
        ("cut mid-record", |b| b.truncate(b.len() - 12)),
        ("cut after the header", |b| b.truncate(b.len() - 16)),
        ("cut to one byte", |b| b.truncate(b.len() - 31)),
        ("garbage", |b| {
            b.truncate(b.len() - 32);
            b.extend_from_slice(&[0xab; 32]);
        }),
        ("zeros", |b| {
            b.truncate(b.len() - 32);
            b.extend_from_slice(&[0; 45]);
        }),
        ("a record with a bad checksum", |b| {
            let n = b.len();
            b[n - 32 + 4] ^= 1;
        }),
    ];
    for (what, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        // One op more than acknowledged: the op in flight when the process died.
        let (log, ops) = op_log_of(dir.path(), acked + 1);
        let mut bytes = fs::read(&log).unwrap();
        damage(&mut bytes);
        fs::write(&log, &bytes).unwrap();
        let files = dir_image(dir.path());
        let report = FollowGraph::check(dir.path()).unwrap();
        assert!(report.is_sound(), "{what}: {report:?}");
        assert_eq!(report.problems.len(), 1, "{what}: {report:?}");
        let problem = &report.problems[0];
        assert!(problem.recoverable, "{what}: {report:?}");
        assert_eq!(problem.file, log, "{what}");
        assert_eq!(problem.offset, acked as u64 * OP_RECORD_BYTES, "{what}");
        assert_eq!(report.ops_replayed, acked as u64, "{what}");
        assert!(
            dir_image(dir.path()) == files,
            "{what}: check changed a file"
        );

        let model = model_of(&ops[..acked]);
        let graph = FollowGraph::open(dir.path(), config()).unwrap();
        diff(&graph, &model, &[3]).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            fs::metadata(&log).unwrap().len(),
            acked as u64 * OP_RECORD_BYTES,
            "{what}: the tail is cut off"
        );
        // Later ops land after the cut and survive the next open.
        let mut model = model;
        let op = RelationOp::Mute(u(3), u(4));
        assert!(op.apply(&graph).unwrap());
        model.apply(op).unwrap();
        drop(graph);
        let report = FollowGraph::check(dir.path()).unwrap();
        assert!(report.problems.is_empty(), "{what}: {report:?}");
        let graph = FollowGraph::open(dir.path(), config()).unwrap();
        diff(&graph, &model, &[3]).unwrap_or_else(|e| panic!("{what}, reopened: {e}"));
    }
}

#[test]
fn bulk_load_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let edges = |list: &[(u32, u32)]| list.iter().map(|&(a, b)| (u(a), u(b))).collect::<Vec<_>>();

    let path = dir.path().join("unknown");
    match FollowGraph::bulk_load(&path, config(), edges(&[(1, 2), (3, USERS_MAX)])) {
        Err(Error::UnknownUser {
            user,
            users_max: USERS_MAX,
        }) => assert_eq!(user, u(USERS_MAX)),
        other => panic!("unknown user: {:?}", other.map(|_| ())),
    }
    assert!(
        dir_image(&path).is_empty(),
        "a refused bulk load wrote files"
    );
    match FollowGraph::bulk_load(&path, config(), edges(&[(1, 2), (4, 4)])) {
        Err(Error::InvalidRelation { .. }) => {}
        other => panic!("self edge: {:?}", other.map(|_| ())),
    }
    assert!(
        dir_image(&path).is_empty(),
        "a refused bulk load wrote files"
    );
    // The same directory takes a good load afterwards; following_max is not enforced.
    let good = [(1, 2), (1, 3), (1, 4), (1, 5), (2, 1), (1, 2)];
    let graph = FollowGraph::bulk_load(&path, config(), edges(&good)).unwrap();
    let model = Model::bulk_loaded(USERS_MAX, FOLLOWING_MAX, good);
    diff(&graph, &model, &[3]).unwrap();
    drop(graph);

    // A directory with anything in it, a graph included.
    let files = dir_image(&path);
    assert!(FollowGraph::bulk_load(&path, config(), edges(&[(7, 8)])).is_err());
    assert!(dir_image(&path) == files);
    let other = dir.path().join("occupied");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("notes.txt"), b"keep me").unwrap();
    assert!(FollowGraph::bulk_load(&other, config(), edges(&[(7, 8)])).is_err());
    assert_eq!(dir_image(&other).len(), 1);
    let graph = FollowGraph::open(&path, config()).unwrap();
    diff(&graph, &model, &[3]).unwrap();
}
