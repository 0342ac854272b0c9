//! `FollowGraph::check` run on a directory whose graph is
//! open and compacting in another thread: every report is sound and no check fails,
//! though compaction renames a new snapshot in and removes the old one and its op logs
//! between the check's listing and its reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use feedcore::{Durability, FollowGraph, GraphConfig, UserId};

#[test]
fn check_while_compaction_swaps_files_reports_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = GraphConfig {
        users_max: 2_000,
        partitions: 2,
        durability: Durability::Buffered,
        // Compaction only when asked.
        compact_after_changes: 100_000_000,
        ..Default::default()
    };
    let graph = Arc::new(FollowGraph::open(dir.path(), config).unwrap());
    for a in 0..2_000u32 {
        for k in 1..6 {
            graph
                .follow(UserId(a), UserId((a + k * 37) % 2_000))
                .unwrap();
        }
    }
    graph.sync().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let compactions = {
        let (graph, stop) = (Arc::clone(&graph), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            let mut a = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // A few changes each time, so every compaction has ops to take in.
                for _ in 0..20 {
                    graph
                        .follow(UserId(a % 2_000), UserId((a * 7 + 1) % 2_000))
                        .unwrap();
                    a += 1;
                }
                graph.sync().unwrap();
                graph.compact().unwrap();
                n += 1;
            }
            n
        })
    };
    let mut checks = 0;
    let started = std::time::Instant::now();
    while checks < 300 || started.elapsed().as_secs() < 1 {
        let report = FollowGraph::check(dir.path())
            .unwrap_or_else(|e| panic!("check {checks} failed during compaction: {e}"));
        assert!(
            report.problems.iter().all(|p| p.recoverable),
            "check {checks} found damage during compaction: {:?}",
            report.problems
        );
        assert!(report.stats.follows >= 10_000, "{:?}", report.stats);
        checks += 1;
        if checks >= 3_000 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let compacted = compactions.join().unwrap();
    assert!(
        compacted > 10,
        "compaction ran during the checks ({compacted} times)"
    );
}
