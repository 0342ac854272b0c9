//! Guards what survives a power loss: the files are rebuilt as the disk could hold them
//! when the power failed in the middle of an `fdatasync` (every write since its file's
//! last completed sync kept or lost page by page, at random), and reopened. Nothing
//! acknowledged as durable may be lost, the store must open (records that were never
//! acknowledged are a torn tail, whatever survived after them), and damage to what was
//! synced must be `Corrupt`, never cut silently.

use std::path::Path;

use feedcore::faults::{Fault, IoOp, Plan};
use feedcore::{
    Durability, Error, FollowGraph, GraphConfig, LogConfig, NewNotice, NoticeId, NoticeLog, UserId,
};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("a directory in /dev/shm")
    } else {
        tempfile::tempdir().expect("a temporary directory")
    }
}

fn body(i: usize) -> String {
    // Bodies of about 1.5 KiB: a record spans pages, and a page holds parts of several.
    format!("notice {i:03} {}", "y".repeat(1500 + i * 37 % 700))
}

fn log_config() -> LogConfig {
    LogConfig {
        durability: Durability::Always,
        segment_bytes: feedcore::SEGMENT_BYTES_MIN,
        ..Default::default()
    }
}

#[test]
fn a_power_loss_during_any_sync_of_the_log_loses_nothing_acknowledged() {
    // How many syncs the scenario runs, with nothing failed.
    let count = {
        let dir = scratch();
        let plan = Plan::new(dir.path(), Fault::Eio, 0)
            .only(&[IoOp::SyncData])
            .install();
        run_log(dir.path(), 40);
        plan.calls()
    };
    assert!(count >= 10, "a sync a batch at least ({count})");
    let mut images = 0;
    for fail_at in 1..=count {
        for seed in 0..3u64 {
            let dir = scratch();
            // The power fails during sync `fail_at`: it does not complete, and nothing
            // after it reaches the disk (the log is poisoned and writes no more).
            let guard = Plan::new(dir.path(), Fault::Eio, fail_at)
                .only(&[IoOp::SyncData])
                .recording()
                .install();
            let acked = run_log(dir.path(), 40);
            assert!(guard.injected().is_some(), "sync {fail_at} is reached");
            let image = scratch();
            let mut rng = SmallRng::seed_from_u64(seed * 1000 + fail_at);
            guard
                .power_loss_image(image.path(), |_, _| rng.random_bool(0.5))
                .expect("the image is written");
            drop(guard);
            let what = format!("power loss during sync {fail_at} (seed {seed})");
            let log = NoticeLog::open(image.path(), log_config())
                .unwrap_or_else(|e| panic!("{what}: the log does not open: {e}"));
            for (id, b) in &acked {
                let got = log.get(NoticeId(*id));
                assert_eq!(
                    got.as_ref().map(|n| n.body()),
                    Some(b.as_str()),
                    "{what}: acknowledged notice {id} lost"
                );
            }
            for n in log.iter_from(NoticeId(1)) {
                assert_eq!(
                    n.body(),
                    body(n.id().0 as usize - 1),
                    "{what}: notice {}",
                    n.id()
                );
            }
            images += 1;
        }
    }
    println!("{images} power-loss images of the log, {count} syncs");
}

/// Appends `n` notices in batches of four, buffered, with a `sync` after each batch
/// (so each sync covers several records); returns the acknowledged ones (id, body):
/// those of the batches whose sync returned.
fn run_log(dir: &Path, n: usize) -> Vec<(u64, String)> {
    let mut acked = Vec::new();
    let config = LogConfig {
        durability: Durability::Buffered,
        ..log_config()
    };
    let Ok(log) = NoticeLog::open(dir, config) else {
        return acked;
    };
    for first in (0..n).step_by(4) {
        let batch: Vec<NewNotice> = (first..(first + 4).min(n))
            .map(|i| NewNotice {
                author: UserId(1),
                body: body(i),
                ..Default::default()
            })
            .collect();
        let Ok(ids) = log.append_batch(&batch) else {
            break;
        };
        if log.sync().is_err() {
            break;
        }
        acked.extend(ids.iter().zip(batch).map(|(id, n)| (id.0, n.body)));
    }
    acked
}

#[test]
fn damage_to_synced_records_after_a_power_loss_is_corrupt() {
    let dir = scratch();
    let acked = run_log(dir.path(), 30);
    assert_eq!(acked.len(), 30);
    // Every append was synced and the close brought the mark up to the end: a flipped
    // byte in an early record is damage to acknowledged data.
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .min()
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[64 + 16 + 100] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    match NoticeLog::open(dir.path(), log_config()) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, 64),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(log) => panic!("opened with {} notices instead of refusing", log.len()),
    }
}

/// Follows one pair after another until one fails; returns the acknowledged pairs.
fn run_graph(dir: &Path) -> Vec<(u32, u32)> {
    let config = GraphConfig {
        users_max: 100,
        durability: Durability::Always,
        ..Default::default()
    };
    let mut acked = Vec::new();
    let Ok(graph) = FollowGraph::open(dir, config) else {
        return acked;
    };
    for a in 0..30u32 {
        match graph.follow(UserId(a), UserId(a + 50)) {
            Ok(_) => acked.push((a, a + 50)),
            Err(_) => break,
        }
    }
    acked
}

#[test]
fn a_power_loss_during_any_sync_of_the_graph_loses_nothing_acknowledged() {
    let count = {
        let dir = scratch();
        let plan = Plan::new(dir.path(), Fault::Eio, 0)
            .only(&[IoOp::SyncData])
            .install();
        run_graph(dir.path());
        plan.calls()
    };
    assert!(count >= 30, "a sync a follow ({count})");
    for fail_at in 1..=count {
        for seed in 0..3u64 {
            let dir = scratch();
            let guard = Plan::new(dir.path(), Fault::Eio, fail_at)
                .only(&[IoOp::SyncData])
                .recording()
                .install();
            let acked = run_graph(dir.path());
            let image = scratch();
            let mut rng = SmallRng::seed_from_u64(seed * 1000 + fail_at);
            guard
                .power_loss_image(image.path(), |_, _| rng.random_bool(0.5))
                .expect("the image is written");
            drop(guard);
            let what = format!("power loss during graph sync {fail_at} (seed {seed})");
            let graph = FollowGraph::open(
                image.path(),
                GraphConfig {
                    users_max: 100,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{what}: the graph does not open: {e}"));
            for &(a, b) in &acked {
                assert!(
                    graph.is_following(UserId(a), UserId(b)),
                    "{what}: acknowledged follow {a} -> {b} lost"
                );
            }
        }
    }
}
