//! `FollowGraph::check`: the graph of a directory verified without changing it.

use std::path::Path;

use super::csr::Csr;
use super::follow_graph::FollowGraph;
use super::oplog::{self};
use super::queries::GraphStats;
use super::snapshot_files::list_snapshots_read_only;
use super::version::{Version, apply, load_relations};
use crate::error::{Error, Result};

/// What [`FollowGraph::check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphCheckReport {
    /// Counts of the graph as it would open (the snapshot plus the op logs).
    pub stats: GraphStats,
    /// Ops in the op logs after the snapshot.
    pub ops_replayed: u64,
    /// Everything wrong, recoverable (a torn op-log tail) or not.
    pub problems: Vec<crate::Problem>,
}

impl GraphCheckReport {
    /// True when nothing needs an operator.
    pub fn is_sound(&self) -> bool {
        self.problems.iter().all(|p| p.recoverable)
    }
}

impl FollowGraph {
    /// Verifies the graph in `dir` without changing anything (it may be open
    /// elsewhere): the snapshot's checksums and structure, every op record, the seqs.
    pub fn check(dir: impl AsRef<Path>) -> Result<GraphCheckReport> {
        let dir = dir.as_ref();
        let mut report = GraphCheckReport::default();
        let as_problem = |e: Error| match e {
            Error::Corrupt {
                file,
                offset,
                reason,
            } => Ok(crate::Problem {
                file,
                offset,
                reason,
                recoverable: false,
            }),
            other => Err(other),
        };
        let snapshots = list_snapshots_read_only(dir)?;
        let csr = match snapshots.last() {
            Some((_, path)) => match Csr::open(path, u32::MAX - 1) {
                Ok(csr) => csr,
                Err(e) => {
                    report.problems.push(as_problem(e)?);
                    return Ok(report);
                }
            },
            None => Csr::empty(1),
        };
        let replay = match oplog::replay(dir, csr.seq) {
            Ok(replay) => replay,
            Err(e) => {
                report.problems.push(as_problem(e)?);
                return Ok(report);
            }
        };
        if let Some((file, offset, reason)) = &replay.torn {
            report.problems.push(crate::Problem {
                file: file.clone(),
                offset: *offset,
                reason: format!("torn tail of the op log ({reason}); opening cuts it off"),
                recoverable: true,
            });
        }
        let users = replay
            .ops
            .iter()
            .map(|(_, op)| op.a.max(op.b) + 1)
            .fold(csr.users, u32::max);
        let snapshot_bytes = csr.file_bytes();
        let version = Version::new(csr, users);
        let mut dirty = Vec::new();
        let mut users_seen = version.csr.users;
        load_relations(&version, &mut dirty, &mut users_seen);
        for &(_, op) in &replay.ops {
            apply(&version, &mut dirty, op);
        }
        let mut stats = GraphStats {
            users,
            follows: version.csr.out_targets().len() as u64,
            ops_since_snapshot: replay.ops.len() as u64,
            snapshot_bytes,
            ..Default::default()
        };
        dirty.sort_unstable();
        dirty.dedup();
        for u in dirty {
            if let Some(e) = version.extras[u as usize].load().as_deref() {
                stats.follows = stats.follows + e.out_add.len() as u64 - e.out_del.len() as u64;
                stats.blocks += e.blocks.len() as u64;
                stats.mutes += e.mutes.len() as u64;
                stats.overlay_bytes += e.heap_bytes() as u64;
            }
        }
        report.ops_replayed = replay.ops.len() as u64;
        report.stats = stats;
        Ok(report)
    }
}
