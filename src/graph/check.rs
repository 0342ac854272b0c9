//! `FollowGraph::check`: the graph of a directory verified without changing it.

use std::path::Path;

use super::csr::Csr;
use super::follow_graph::FollowGraph;
use super::oplog::{self};
use super::queries::GraphStats;
use super::snapshot_files::list_snapshots_read_only;
use super::version::{Version, apply, load_relations};
use crate::error::{Error, Result};

/// How many times [`FollowGraph::check`] reads a directory whose files keep changing
/// under it (a compaction in another process) before it reports what it found.
const CHECK_ATTEMPTS: u32 = 20;

/// The names of the files under `dir` (its subdirectories too), sorted; empty where
/// it cannot be listed (the check itself then reports why).
fn file_names(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut names = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path.clone());
            }
            names.push(path);
        }
    }
    names.sort_unstable();
    names
}

/// What [`FollowGraph::check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphCheckReport {
    /// Counts of the graph as it would open (the snapshot plus the op logs).
    pub stats: GraphStats,
    /// Ops in the op logs after the snapshot.
    pub ops_replayed: u64,
    /// Everything wrong, recoverable (a torn op-log tail) or not, in the follow graph
    /// and in the relations beside it.
    pub problems: Vec<crate::Problem>,
    /// The groups, lists and tags and their relations, when the directory has them
    /// (a store opened by an [`crate::Engine`]).
    pub relations: Option<super::relations::RelationsCheck>,
}

impl GraphCheckReport {
    /// True when nothing needs an operator.
    pub fn is_sound(&self) -> bool {
        self.problems.iter().all(|p| p.recoverable)
    }
}

impl FollowGraph {
    /// Verifies the graph in `dir` without changing anything (it may be open
    /// elsewhere): the snapshot's checksums and structure, every op record, the seqs;
    /// and, when present, the registry of groups, lists and tags and their relation
    /// stores (the same checks, and that every edge names a registered id).
    ///
    /// A graph open elsewhere may compact while the check reads: a new snapshot is
    /// renamed in and the old snapshot and op logs are removed. A check whose files
    /// changed under it (the directory's file names differ after it from before it)
    /// is run again, up to 20 times; names carry increasing seqs, so
    /// equal names before and after mean no compaction swapped files in between.
    pub fn check(dir: impl AsRef<Path>) -> Result<GraphCheckReport> {
        let dir = dir.as_ref();
        let once = || -> Result<GraphCheckReport> {
            let mut report = Self::check_dir(dir, None, None)?;
            super::relations::check(dir, &mut report)?;
            Ok(report)
        };
        let mut attempt = 1;
        loop {
            let before = file_names(dir);
            let result = once();
            if attempt == CHECK_ATTEMPTS || file_names(dir) == before {
                return result;
            }
            attempt += 1;
        }
    }

    /// Checks the graph or relation store in `dir` alone; with limits, also that every
    /// edge's source is below `from_limit` and its target below `to_limit`.
    pub(crate) fn check_dir(
        dir: &Path,
        from_limit: Option<u32>,
        to_limit: Option<u32>,
    ) -> Result<GraphCheckReport> {
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
        let (mut from_max, mut to_max) = (None::<u32>, None::<u32>);
        for u in 0..version.csr.users.max(users) {
            let base = &version.csr.out_targets()[version.csr.out_range(u)];
            let extra = version.extras.get(u as usize).and_then(|e| e.load_full());
            // The added followees are ascending: the last is the highest.
            let added_max = extra.as_deref().and_then(|e| e.out_add.last());
            if !base.is_empty() || added_max.is_some() {
                from_max = from_max.max(Some(u));
            }
            to_max = to_max.max(base.iter().copied().max()).max(added_max);
        }
        for (side, max, limit) in [
            ("source", from_max, from_limit),
            ("target", to_max, to_limit),
        ] {
            if let (Some(max), Some(limit)) = (max, limit)
                && max >= limit
            {
                report.problems.push(crate::Problem {
                    file: dir.to_path_buf(),
                    offset: 0,
                    reason: format!("an edge's {side} is id {max}; only {limit} are registered"),
                    recoverable: false,
                });
            }
        }
        report.ops_replayed = replay.ops.len() as u64;
        report.stats = stats;
        Ok(report)
    }
}
