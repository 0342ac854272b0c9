//! Injected I/O faults, for tests. Every file operation of the notice log and the graph
//! goes through `crate::fileio`, which asks this module first; with no plan installed
//! that is one relaxed atomic load.
//!
//! A [`Plan`] applies to the files under one directory (so tests running in parallel in
//! other directories are not touched): it counts the operations there, fails the N-th
//! with the chosen [`Fault`], and can record every positional write with the bytes it
//! overwrote, so that a test can rebuild the files as a power loss could leave them
//! ([`PlanGuard::power_loss_image`]).
//!
//! Not part of the public API: hidden from the docs, for the crate's own tests.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A file operation, as the seam sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoOp {
    /// Opening or creating a file.
    Open,
    /// A write (positional or sequential).
    Write,
    /// `fdatasync` of a file.
    SyncData,
    /// `fsync` of a file.
    SyncAll,
    /// `fsync` of a directory.
    SyncDir,
    /// A rename.
    Rename,
    /// Truncating or extending a file.
    SetLen,
    /// Reserving a file's blocks (`posix_fallocate`).
    Allocate,
    /// Removing a file.
    Remove,
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with EIO and does nothing.
    Eio,
    /// The operation fails with ENOSPC and does nothing.
    Enospc,
    /// A write writes the first half of its bytes, then fails with EIO; any other
    /// operation fails with EIO.
    ShortWrite,
    /// A rename takes place, then reports EIO (the caller cannot tell it happened); any
    /// other operation fails with EIO.
    TornRename,
}

/// What the seam does with one operation.
pub(crate) enum Outcome {
    /// Carry it out.
    Pass,
    /// Fail it without doing anything.
    Fail(io::Error),
    /// Write only this many bytes, then fail.
    Short(usize, io::Error),
    /// Carry it out, then fail.
    DoThenFail(io::Error),
}

/// One positional write recorded for a power-loss image: the bytes it overwrote.
struct Written {
    path: PathBuf,
    offset: u64,
    old: Vec<u8>,
}

/// A fault plan for the files under one directory; removed when dropped.
pub struct Plan {
    root: PathBuf,
    fault: Fault,
    /// The operation (1-based, counting only `ops`) that fails; 0: none.
    fail_at: u64,
    ops: Option<Vec<IoOp>>,
    calls: AtomicU64,
    injected: Mutex<Option<(IoOp, PathBuf)>>,
    record: bool,
    /// Positional writes since the last sync of their file, in order.
    unsynced: Mutex<Vec<Written>>,
    /// Every operation seen, in order (for tests that want to know the sequence).
    seen: Mutex<Vec<(IoOp, PathBuf)>>,
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static PLANS: Mutex<Vec<Arc<Plan>>> = Mutex::new(Vec::new());

/// A handle on an installed plan; dropping it removes the plan.
pub struct PlanGuard(Arc<Plan>);

impl Plan {
    /// A plan for the files under `root` that fails the `fail_at`-th operation (1-based;
    /// 0: none, only count) with `fault`. Install it with [`Plan::install`].
    pub fn new(root: impl AsRef<Path>, fault: Fault, fail_at: u64) -> Plan {
        Plan {
            root: root.as_ref().to_path_buf(),
            fault,
            fail_at,
            ops: None,
            calls: AtomicU64::new(0),
            injected: Mutex::new(None),
            record: false,
            unsynced: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Counts (and fails) only these operations.
    pub fn only(mut self, ops: &[IoOp]) -> Plan {
        self.ops = Some(ops.to_vec());
        self
    }

    /// Records positional writes and syncs, for [`PlanGuard::power_loss_image`].
    pub fn recording(mut self) -> Plan {
        self.record = true;
        self
    }

    /// Installs the plan until the guard is dropped.
    pub fn install(self) -> PlanGuard {
        let plan = Arc::new(self);
        let mut plans = PLANS.lock().expect("the plan list is never left poisoned");
        assert!(
            plans
                .iter()
                .all(|p| !p.root.starts_with(&plan.root) && !plan.root.starts_with(&p.root)),
            "one plan per directory tree"
        );
        plans.push(Arc::clone(&plan));
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        PlanGuard(plan)
    }
}

impl PlanGuard {
    /// Operations counted so far.
    pub fn calls(&self) -> u64 {
        self.0.calls.load(Ordering::SeqCst)
    }

    /// The operation that was failed, if one was.
    pub fn injected(&self) -> Option<(IoOp, PathBuf)> {
        self.0.injected.lock().expect("never poisoned").clone()
    }

    /// Every operation counted, in order.
    pub fn seen(&self) -> Vec<(IoOp, PathBuf)> {
        self.0.seen.lock().expect("never poisoned").clone()
    }

    /// Copies the files under the plan's directory to `dst` as a power loss now could
    /// leave them: every write since its file's last sync is undone, page by page (4 KiB
    /// pages of the file), where `keep(write_index, page)` says false. Needs a
    /// recording plan. Directory operations are taken to have reached the disk.
    pub fn power_loss_image(
        &self,
        dst: &Path,
        mut keep: impl FnMut(usize, u64) -> bool,
    ) -> io::Result<()> {
        assert!(self.0.record, "power_loss_image needs Plan::recording");
        copy_tree(&self.0.root, dst)?;
        let unsynced = self.0.unsynced.lock().expect("never poisoned");
        let mut files: HashMap<PathBuf, Vec<u8>> = HashMap::new();
        // Newest first, so each page goes back to what it held before the oldest
        // unsynced write that is undone.
        for (i, w) in unsynced.iter().enumerate().rev() {
            let Ok(rel) = w.path.strip_prefix(&self.0.root) else {
                continue;
            };
            let target = dst.join(rel);
            if !files.contains_key(&target) {
                match std::fs::read(&target) {
                    Ok(bytes) => files.insert(target.clone(), bytes),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
            }
            let bytes = files.get_mut(&target).expect("just inserted");
            let end = w.offset + w.old.len() as u64;
            let mut at = w.offset;
            while at < end {
                let page = at / 4096;
                let page_end = ((page + 1) * 4096).min(end);
                if !keep(i, page) {
                    let (from, to) = ((at - w.offset) as usize, (page_end - w.offset) as usize);
                    let (a, b) = (at as usize, page_end as usize);
                    if b <= bytes.len() {
                        bytes[a..b].copy_from_slice(&w.old[from..to]);
                    }
                }
                at = page_end;
            }
        }
        for (path, bytes) in files {
            std::fs::write(path, bytes)?;
        }
        Ok(())
    }

    /// Positional writes not yet covered by a sync of their file.
    pub fn unsynced_writes(&self) -> usize {
        self.0.unsynced.lock().expect("never poisoned").len()
    }
}

impl Drop for PlanGuard {
    fn drop(&mut self) {
        let mut plans = PLANS.lock().expect("never poisoned");
        plans.retain(|p| !Arc::ptr_eq(p, &self.0));
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dst.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), to)?;
        }
    }
    Ok(())
}

fn plan_for(path: &Path) -> Option<Arc<Plan>> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let plans = PLANS.lock().expect("never poisoned");
    plans.iter().find(|p| path.starts_with(&p.root)).cloned()
}

/// Called by the seam before `op` on `path` (`len`: the bytes of a write).
pub(crate) fn before(op: IoOp, path: &Path, len: usize) -> Outcome {
    let Some(plan) = plan_for(path) else {
        return Outcome::Pass;
    };
    if plan.ops.as_ref().is_some_and(|ops| !ops.contains(&op)) {
        return Outcome::Pass;
    }
    let n = plan.calls.fetch_add(1, Ordering::SeqCst) + 1;
    plan.seen
        .lock()
        .expect("never poisoned")
        .push((op, path.to_path_buf()));
    if n != plan.fail_at {
        return Outcome::Pass;
    }
    *plan.injected.lock().expect("never poisoned") = Some((op, path.to_path_buf()));
    let eio = || io::Error::from_raw_os_error(libc::EIO);
    match (plan.fault, op) {
        (Fault::Enospc, _) => Outcome::Fail(io::Error::from_raw_os_error(libc::ENOSPC)),
        (Fault::ShortWrite, IoOp::Write) => Outcome::Short(len / 2, eio()),
        (Fault::TornRename, IoOp::Rename) => Outcome::DoThenFail(eio()),
        _ => Outcome::Fail(eio()),
    }
}

/// Whether positional writes under `path` are recorded (the seam then reads the old
/// bytes first and calls `written`).
pub(crate) fn recording(path: &Path) -> bool {
    plan_for(path).is_some_and(|p| p.record)
}

/// Records a positional write that overwrote `old` at `offset` of `path`.
pub(crate) fn written(path: &Path, offset: u64, old: Vec<u8>) {
    if let Some(plan) = plan_for(path) {
        plan.unsynced.lock().expect("never poisoned").push(Written {
            path: path.to_path_buf(),
            offset,
            old,
        });
    }
}

/// Records that `path` was synced: its earlier writes survive a power loss.
pub(crate) fn synced(path: &Path) {
    if let Some(plan) = plan_for(path)
        && plan.record
    {
        plan.unsynced
            .lock()
            .expect("never poisoned")
            .retain(|w| w.path != path);
    }
}
