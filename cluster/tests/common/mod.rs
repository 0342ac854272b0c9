//! Helpers shared by the cluster's integration tests: starting the NATS cluster (or
//! skipping), paging whole streams, waiting for a cluster to go quiet.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use feedcore::{Engine, NoticeId, Page, TimelinePage};
use feedcore_cluster::Node;
use feedcore_cluster::harness::{NatsCluster, run_dir};

/// Starts a 3-server JetStream cluster for test `name`, or prints why not and
/// returns `None` (the test then passes without running).
pub fn nats_or_skip(name: &str) -> Option<NatsCluster> {
    match NatsCluster::start(run_dir(name)) {
        Ok(cluster) => Some(cluster),
        Err(reason) => {
            eprintln!("SKIP {name}: no NATS JetStream cluster: {reason}");
            None
        }
    }
}

/// Every page of a stream, newest first.
pub fn read_all(
    mut read: impl FnMut(Page) -> Result<TimelinePage, String>,
    limit: usize,
) -> Vec<NoticeId> {
    let mut out = Vec::new();
    let mut page = Some(Page::latest(limit));
    while let Some(p) = page {
        let got = read(p).expect("a page of a stream");
        out.extend(got.ids);
        page = got.next;
    }
    out
}

/// The home timeline of `user` on a single engine, all pages.
pub fn engine_home(engine: &Engine, user: u32) -> Vec<NoticeId> {
    read_all(
        |p| {
            engine
                .home_timeline(feedcore::UserId(user), p)
                .map_err(|e| e.to_string())
        },
        50,
    )
}

/// Waits until every node is idle twice in a row, 100 ms apart, with nothing applied
/// in between; panics after `limit`.
pub fn quiesce(nodes: &[&Node], limit: Duration) {
    let deadline = Instant::now() + limit;
    let applied = |nodes: &[&Node]| -> Vec<(u64, u64, u64)> {
        nodes
            .iter()
            .map(|n| {
                let s = n.stats();
                (s.applied, s.duplicates, s.refused)
            })
            .collect()
    };
    let mut quiet_rounds = 0;
    let mut last = applied(nodes);
    while quiet_rounds < 2 {
        assert!(
            Instant::now() < deadline,
            "the cluster did not go quiet in {limit:?}: {:?}",
            nodes.iter().map(|n| n.stats()).collect::<Vec<_>>()
        );
        for n in nodes {
            n.flush().expect("flushing a node");
        }
        std::thread::sleep(Duration::from_millis(100));
        let now = applied(nodes);
        if nodes.iter().all(|n| n.is_idle()) && now == last {
            quiet_rounds += 1;
        } else {
            quiet_rounds = 0;
        }
        last = now;
    }
}
