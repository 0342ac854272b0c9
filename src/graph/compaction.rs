//! Compaction: the overlay folded into a new snapshot while readers and writers go on;
//! the op files it made obsolete removed once the snapshot is in.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::csr::{Csr, CsrArrays};
use super::extras::Extras;
use super::follow_graph::{FollowGraph, Inner, Writer};
use super::oplog::{self, OpFile};
use super::snapshot_files::{list_snapshots, snapshot_name};
use super::version::{Version, apply, load_relations};
use crate::error::{IoContext, Result};
use crate::fileio;

impl FollowGraph {
    /// Folds every change so far into a new snapshot and waits for it. Readers and
    /// writers go on meanwhile. (Compaction also starts by itself in the background
    /// after `compact_after_changes` changes.)
    pub fn compact(&self) -> Result<()> {
        self.wait_for_compactor();
        // A background compaction started after the wait finishes first.
        let _running = self.inner.compaction_running.lock();
        let job = {
            let mut w = self.inner.writer.lock();
            assert!(
                w.compacting.is_none(),
                "every compaction holds compaction_running from its freeze to its end"
            );
            freeze(&self.inner, &mut w)?
        };
        compact(&self.inner, job)
    }

    pub(super) fn start_compaction(&self) {
        let mut handle = self.compactor.lock();
        if handle.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Some(old) = handle.take() {
            let _ = old.join();
        }
        let inner = Arc::clone(&self.inner);
        *handle = Some(std::thread::spawn(move || {
            // An explicit `compact()` is running; if the changes after its freeze
            // reach the threshold too, the next change starts another one.
            let Some(_running) = inner.compaction_running.try_lock() else {
                return;
            };
            let job = {
                let mut w = inner.writer.lock();
                if w.compacting.is_some() {
                    return;
                }
                freeze(&inner, &mut w)
            };
            let outcome = job.and_then(|job| compact(&inner, job));
            *inner.compaction_error.lock() = outcome.err().map(|e| e.to_string());
        }));
    }

    pub(super) fn wait_for_compactor(&self) {
        if let Some(handle) = self.compactor.lock().take() {
            let _ = handle.join();
        }
    }

    /// Why the last background compaction failed, if it did (it is retried after the
    /// next `compact_after_changes` changes; nothing is lost meanwhile).
    pub fn compaction_error(&self) -> Option<String> {
        self.inner.compaction_error.lock().clone()
    }
}

/// What a compaction works from: the version and the overlay as of `seq`.
struct Job {
    version: Arc<Version>,
    frozen: Vec<(u32, Arc<Extras>)>,
    seq: u64,
    users: u32,
    old_ops: Vec<PathBuf>,
}

/// Under the writer lock: notes the freeze point, starts recording later ops, and
/// starts a new op file so that whole files can be dropped once the snapshot is in.
fn freeze(inner: &Inner, w: &mut Writer) -> Result<Job> {
    let version = inner.version.load_full();
    let frozen = w
        .dirty
        .iter()
        .filter_map(|&u| version.extras[u as usize].load_full().map(|e| (u, e)))
        .collect();
    // An empty current op file (no change since the last freeze or open) already
    // starts at `w.seq + 1`: it stays the current file, and creating it again would
    // fail (EEXIST).
    let reuse_current = w.ops.len == 0;
    let old_ops: Vec<PathBuf> = oplog::list(&inner.dir)?
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| !(reuse_current && *p == w.ops.path))
        .collect();
    if !reuse_current {
        // Seal the current op file: synced, so `wait_durable` callers on it are covered.
        if let Err(e) = fileio::sync_data(&w.ops.file, &w.ops.path) {
            return Err(inner
                .durable
                .poison(format!("fdatasync of {}", w.ops.path.display()), e));
        }
        inner.durable.mark_synced(w.lsn());
        w.ops = OpFile::create(&inner.dir, w.seq + 1)?;
        w.ops_no += 1;
    }
    w.compacting = Some(Vec::new());
    Ok(Job {
        version,
        frozen,
        seq: w.seq,
        users: inner.users_seen.load(Ordering::Relaxed),
        old_ops,
    })
}

/// Builds and installs the snapshot of `job`; on failure, the current version stays
/// and the op logs still hold every change.
fn compact(inner: &Inner, job: Job) -> Result<()> {
    let built = build_snapshot(inner, &job);
    let mut w = inner.writer.lock();
    let since = w.compacting.take().unwrap_or_default();
    let (path, csr) = match built {
        Ok(done) => done,
        Err(e) => {
            w.compact_at = w.since_snapshot + inner.config.compact_after_changes;
            return Err(e);
        }
    };
    let version = Version::new(csr, inner.config.users_max);
    let mut dirty = Vec::new();
    let mut users_seen = 0;
    load_relations(&version, &mut dirty, &mut users_seen);
    for &op in &since {
        apply(&version, &mut dirty, op);
    }
    inner.version.store(Arc::new(version));
    w.dirty = dirty;
    w.since_snapshot = since.len() as u64;
    w.compact_at = inner.config.compact_after_changes;
    drop(w);
    // The new snapshot is durable and installed: older files hold nothing it lacks.
    for (_, old) in list_snapshots(&inner.dir)? {
        if old != path {
            fileio::remove_file(&old)
                .context(|| format!("removing old snapshot {}", old.display()))?;
        }
    }
    for old in job.old_ops {
        fileio::remove_file(&old)
            .context(|| format!("removing compacted op log {}", old.display()))?;
    }
    Ok(())
}

fn build_snapshot(inner: &Inner, job: &Job) -> Result<(PathBuf, Csr)> {
    let csr = &job.version.csr;
    let users = job.users.max(csr.users);
    let mut frozen: Vec<Option<&Extras>> = vec![None; users as usize];
    for (u, e) in &job.frozen {
        if (*u as usize) < frozen.len() {
            frozen[*u as usize] = Some(e);
        }
    }
    let mut offsets = Vec::with_capacity(users as usize + 1);
    offsets.push(0u64);
    let mut targets = Vec::with_capacity(csr.out_targets().len());
    let (mut blocks, mut mutes) = (Vec::new(), Vec::new());
    for u in 0..users {
        let base = &csr.out_targets()[csr.out_range(u)];
        match frozen[u as usize] {
            None => targets.extend_from_slice(base),
            // Only blocks or mutes, or follows of this user as a followee.
            Some(e) if e.out_add.is_empty() && e.out_del.is_empty() => {
                targets.extend_from_slice(base);
                blocks.extend(e.blocks.iter().map(|b| [u, b]));
                mutes.extend(e.mutes.iter().map(|b| [u, b]));
            }
            Some(e) => {
                let mut add = e.out_add.iter().peekable();
                for &b in base {
                    while let Some(&x) = add.peek() {
                        if x >= b {
                            break;
                        }
                        targets.push(x);
                        add.next();
                    }
                    if !e.out_del.contains(b) {
                        targets.push(b);
                    }
                }
                targets.extend(add);
                blocks.extend(e.blocks.iter().map(|b| [u, b]));
                mutes.extend(e.mutes.iter().map(|b| [u, b]));
            }
        }
        offsets.push(targets.len() as u64);
    }
    let mut arrays = CsrArrays::with_followers(users, inner.config.partitions, offsets, targets);
    arrays.seq = job.seq;
    arrays.blocks = blocks;
    arrays.mutes = mutes;
    let path = arrays.write(&inner.dir, &snapshot_name(job.seq))?;
    drop(arrays);
    let csr = Csr::open(&path, inner.config.users_max)?;
    Ok((path, csr))
}
