//! The follow graph: a mapped CSR snapshot, an overlay of recent changes, an op log
//! that makes changes durable, and a compaction that folds the overlay into a new
//! snapshot while readers and writers go on.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;

use super::GraphConfig;
use super::csr::{Csr, CsrArrays};
use super::extras::{self, Extras, in_key};
use super::neighbors::{Followers, Neighbors, Side};
use super::oplog::{self, Op, OpFile, OpKind};
use crate::dirlock::DirLock;
use crate::error::{Error, IoContext, Result};
use crate::ids::UserId;
use crate::log::Durability;
use crate::log::durable::{self, Durable};

/// A snapshot and the overlay of changes since it: what a reader sees. Replaced whole by
/// a compaction; readers that started on the old one finish on it.
pub(crate) struct Version {
    pub(crate) csr: Csr,
    /// One slot per user id below `users_max`: that user's changes since `csr`.
    pub(crate) extras: Box<[ArcSwapOption<Extras>]>,
}

impl Version {
    fn new(csr: Csr, users_max: u32) -> Version {
        Version {
            csr,
            extras: (0..users_max).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    fn has_following(&self, a: u32, b: u32) -> bool {
        let e = self.extras[a as usize].load();
        match e.as_deref() {
            Some(e) if extras::contains(&e.out_add, b) => true,
            Some(e) if extras::contains(&e.out_del, b) => false,
            _ => self.csr.has_edge(a, b),
        }
    }
}

/// The writer's state. Guarded by `Inner::writer`: graph changes happen one at a time.
struct Writer {
    /// Seq of the last op written.
    seq: u64,
    ops: OpFile,
    /// Counts op files opened by this process, for the durability positions.
    ops_no: u64,
    /// Ops since the current snapshot.
    since_snapshot: u64,
    /// Users whose overlay slot is set in the current version.
    dirty: Vec<u32>,
    /// While a compaction runs: the ops after its freeze point, to replay on its result.
    compacting: Option<Vec<Op>>,
    /// `since_snapshot` at which the next compaction starts (pushed back after a
    /// failed one, so a full disk does not start one per change).
    compact_at: u64,
}

impl Writer {
    /// The durability position of the newest op.
    fn lsn(&self) -> durable::Lsn {
        durable::lsn(self.ops_no as usize, self.ops.len)
    }
}

struct Inner {
    dir: PathBuf,
    config: GraphConfig,
    version: ArcSwap<Version>,
    writer: Mutex<Writer>,
    durable: Durable,
    /// 1 + the highest user id in any relation. Grows only; written by the writer.
    users_seen: AtomicU32,
    /// Why the last background compaction failed, if it did.
    compaction_error: Mutex<Option<String>>,
    /// Held by a compaction from its freeze to the removal of the files it made
    /// obsolete, so that compactions never overlap: one that froze while another was
    /// still removing files would list those files as its own to remove (and fail on
    /// them), and the other's removal of "every snapshot but mine" would delete the
    /// newer snapshot, leaving a snapshot older than the op logs that remain. Taken
    /// before the writer lock, never while joining the compactor thread.
    compaction_running: Mutex<()>,
    _lock: DirLock,
}

/// Follow, block and mute relations between users: compact, durable, and lock-free to
/// read.
///
/// ```
/// use feedcore::{FollowGraph, GraphConfig, UserId};
/// let dir = tempfile::tempdir()?;
/// let graph = FollowGraph::open(dir.path(), GraphConfig::default())?;
/// assert!(graph.follow(UserId(1), UserId(2))?);
/// assert!(graph.is_following(UserId(1), UserId(2)));
/// assert_eq!(graph.followers(UserId(2)).collect::<Vec<_>>(), [UserId(1)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FollowGraph {
    inner: Arc<Inner>,
    compactor: Mutex<Option<JoinHandle<()>>>,
}

fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:016}.csr")
}

fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".csr")?;
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

/// Snapshot files of `dir`, by seq, after removing the temporary files of compactions
/// that never finished (the op logs still hold their changes).
fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(".csr.tmp"))
        {
            fs::remove_file(entry.path())
                .context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    list_snapshots_read_only(dir)
}

impl FollowGraph {
    /// Opens the graph in `dir` (created if missing): maps the newest snapshot and
    /// replays the op log after it. A torn tail of the op log is cut off; damage
    /// anywhere else is [`Error::Corrupt`].
    pub fn open(dir: impl AsRef<Path>, config: GraphConfig) -> Result<FollowGraph> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let lock = DirLock::acquire(&dir)?;
        let snapshots = list_snapshots(&dir)?;
        let csr = match snapshots.last() {
            Some((_, path)) => Csr::open(path, config.users_max)?,
            None => Csr::empty(config.partitions),
        };
        let replay = oplog::replay(&dir, csr.seq)?;
        let version = Version::new(csr, config.users_max);
        let mut dirty = Vec::new();
        let mut users_seen = version.csr.users;
        load_relations(&version, &mut dirty, &mut users_seen);
        for &(seq, op) in &replay.ops {
            check_users(&config, op).map_err(|reason| {
                Error::corrupt(&dir, 0, format!("op {seq} of the op log: {reason}"))
            })?;
            apply(&version, &mut dirty, op);
            users_seen = users_seen.max(op.a.max(op.b) + 1);
        }
        if let Some((path, offset, _)) = &replay.torn {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .context(|| format!("opening {}", path.display()))?;
            file.set_len(*offset)
                .and_then(|()| file.sync_all())
                .context(|| format!("cutting off the torn tail of {}", path.display()))?;
        }
        let ops = match &replay.last_file {
            Some((path, len)) => OpFile::reopen(path, *len)?,
            None => OpFile::create(&dir, replay.last_seq + 1)?,
        };
        for path in &replay.covered {
            fs::remove_file(path)
                .context(|| format!("removing covered op log {}", path.display()))?;
        }
        for (_, path) in snapshots.iter().rev().skip(1) {
            fs::remove_file(path)
                .context(|| format!("removing old snapshot {}", path.display()))?;
        }
        let since_snapshot = replay.ops.len() as u64;
        let compact_at = config.compact_after_changes;
        let inner = Arc::new(Inner {
            dir,
            config,
            version: ArcSwap::from_pointee(version),
            writer: Mutex::new(Writer {
                seq: replay.last_seq,
                ops,
                ops_no: 0,
                since_snapshot,
                dirty,
                compacting: None,
                compact_at,
            }),
            durable: Durable::new(),
            users_seen: AtomicU32::new(users_seen),
            compaction_error: Mutex::new(None),
            compaction_running: Mutex::new(()),
            _lock: lock,
        });
        Ok(FollowGraph {
            inner,
            compactor: Mutex::new(None),
        })
    }

    /// Builds a graph in the new (or empty) directory `dir` straight from a list of
    /// follows, as a CSR snapshot: for simulations and imports. Duplicate edges are
    /// stored once; a self-follow or a user id at or past `users_max` is an error.
    /// `following_max` is not enforced here: imports keep what the source had.
    pub fn bulk_load(
        dir: impl AsRef<Path>,
        config: GraphConfig,
        edges: impl IntoIterator<Item = (UserId, UserId)>,
    ) -> Result<FollowGraph> {
        config.validate()?;
        let dir = dir.as_ref();
        fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let occupied = fs::read_dir(dir)
            .context(|| format!("listing {}", dir.display()))?
            .next()
            .is_some();
        if occupied {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "bulk_load needs an empty directory; {} is not",
                    dir.display()
                ),
            });
        }
        let edges: Vec<(u32, u32)> = edges.into_iter().map(|(a, b)| (a.0, b.0)).collect();
        let mut users = 0u32;
        for &(a, b) in &edges {
            if a >= config.users_max || b >= config.users_max {
                return Err(Error::UnknownUser {
                    user: UserId(a.max(b)),
                    users_max: config.users_max,
                });
            }
            if a == b {
                return Err(Error::InvalidRelation {
                    reason: format!("user {a} follows itself in the edge list"),
                });
            }
            users = users.max(a.max(b) + 1);
        }
        // Counting sort by follower, then sort and deduplicate each following list.
        let mut offsets = vec![0u64; users as usize + 1];
        for &(a, _) in &edges {
            offsets[a as usize + 1] += 1;
        }
        for u in 0..users as usize {
            offsets[u + 1] += offsets[u];
        }
        let mut cursor: Vec<u64> = offsets[..users as usize].to_vec();
        let mut targets = vec![0u32; edges.len()];
        for &(a, b) in &edges {
            targets[cursor[a as usize] as usize] = b;
            cursor[a as usize] += 1;
        }
        drop(edges);
        drop(cursor);
        let mut write = 0usize;
        let mut new_offsets = vec![0u64; users as usize + 1];
        for u in 0..users as usize {
            let (start, end) = (offsets[u] as usize, offsets[u + 1] as usize);
            targets[start..end].sort_unstable();
            let mut last = None;
            for i in start..end {
                let b = targets[i];
                if last != Some(b) {
                    targets[write] = b;
                    write += 1;
                    last = Some(b);
                }
            }
            new_offsets[u + 1] = write as u64;
        }
        targets.truncate(write);
        targets.shrink_to_fit();
        drop(offsets);
        let arrays = CsrArrays::with_followers(users, config.partitions, new_offsets, targets);
        arrays.write(dir, &snapshot_name(0))?;
        drop(arrays);
        FollowGraph::open(dir, config)
    }

    /// The directory of this graph.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &GraphConfig {
        &self.inner.config
    }

    /// `a` follows `b`. `Ok(true)` when the follow is new, `Ok(false)` when `a` already
    /// followed `b`. Following oneself, following across a block (either direction) or
    /// past `following_max` is an error, and changes nothing.
    pub fn follow(&self, a: UserId, b: UserId) -> Result<bool> {
        self.change(Op {
            kind: OpKind::Follow,
            a: a.0,
            b: b.0,
        })
    }

    /// `a` stops following `b`; `Ok(false)` when it did not follow.
    pub fn unfollow(&self, a: UserId, b: UserId) -> Result<bool> {
        self.change(Op {
            kind: OpKind::Unfollow,
            a: a.0,
            b: b.0,
        })
    }

    /// `a` blocks `b`: follows in both directions are removed, and neither sees the
    /// other's notices. `Ok(false)` when `a` already blocked `b`.
    pub fn block(&self, a: UserId, b: UserId) -> Result<bool> {
        self.change(Op {
            kind: OpKind::Block,
            a: a.0,
            b: b.0,
        })
    }

    /// `a` lifts its block of `b` (follows are not restored).
    pub fn unblock(&self, a: UserId, b: UserId) -> Result<bool> {
        self.change(Op {
            kind: OpKind::Unblock,
            a: a.0,
            b: b.0,
        })
    }

    /// `a` mutes `b`: `a` no longer sees `b`'s notices; the follow stays.
    pub fn mute(&self, a: UserId, b: UserId) -> Result<bool> {
        self.change(Op {
            kind: OpKind::Mute,
            a: a.0,
            b: b.0,
        })
    }

    /// `a` unmutes `b`.
    pub fn unmute(&self, a: UserId, b: UserId) -> Result<bool> {
        self.change(Op {
            kind: OpKind::Unmute,
            a: a.0,
            b: b.0,
        })
    }

    fn change(&self, op: Op) -> Result<bool> {
        let inner = &*self.inner;
        inner.durable.check()?;
        check_users(&inner.config, op).map_err(|reason| match reason {
            UserCheck::Unknown(user) => Error::UnknownUser {
                user: UserId(user),
                users_max: inner.config.users_max,
            },
            UserCheck::Same => Error::InvalidRelation {
                reason: format!("user {} cannot {:?} itself", op.a, op.kind),
            },
        })?;
        let mut w = inner.writer.lock();
        let version = inner.version.load_full();
        let (a, b) = (op.a, op.b);
        let slot = |u: u32| version.extras[u as usize].load_full();
        let changes = match op.kind {
            OpKind::Follow => {
                if is_blocked_in(&version, a, b) {
                    return Err(Error::InvalidRelation {
                        reason: format!(
                            "user {a} cannot follow user {b}: there is a block between them"
                        ),
                    });
                }
                if version.has_following(a, b) {
                    false
                } else if following_count_in(&version, a) >= u64::from(inner.config.following_max) {
                    return Err(Error::InvalidRelation {
                        reason: format!(
                            "user {a} already follows {} users, the most allowed",
                            inner.config.following_max
                        ),
                    });
                } else {
                    true
                }
            }
            OpKind::Unfollow => version.has_following(a, b),
            OpKind::Block => !slot(a).is_some_and(|e| extras::contains(&e.blocks, b)),
            OpKind::Unblock => slot(a).is_some_and(|e| extras::contains(&e.blocks, b)),
            OpKind::Mute => !slot(a).is_some_and(|e| extras::contains(&e.mutes, b)),
            OpKind::Unmute => slot(a).is_some_and(|e| extras::contains(&e.mutes, b)),
        };
        if !changes {
            return Ok(false);
        }
        let seq = w.seq + 1;
        if let Err(e) = w.ops.append(seq, op) {
            return Err(inner
                .durable
                .poison(format!("writing to {}", w.ops.path.display()), e));
        }
        w.seq = seq;
        w.since_snapshot += 1;
        let Writer { dirty, .. } = &mut *w;
        apply(&version, dirty, op);
        if let Some(since) = &mut w.compacting {
            since.push(op);
        }
        inner.users_seen.fetch_max(a.max(b) + 1, Ordering::Relaxed);
        let end = w.lsn();
        let compact = w.compacting.is_none() && w.since_snapshot >= w.compact_at;
        drop(w);
        if compact {
            self.start_compaction();
        }
        self.wait_durable(end)?;
        Ok(true)
    }

    fn wait_durable(&self, end: u64) -> Result<()> {
        let inner = &*self.inner;
        let delay = match inner.config.durability {
            Durability::Buffered => return Ok(()),
            Durability::Always => None,
            Durability::GroupCommit { max_delay } => Some(max_delay),
        };
        inner.durable.wait(end, delay, || {
            // A compaction may start a new op file meanwhile; the old one was synced
            // when it was sealed, so syncing the current one covers everything.
            let (target, file, path) = {
                let w = inner.writer.lock();
                (w.lsn(), Arc::clone(&w.ops.file), w.ops.path.clone())
            };
            inner
                .durable
                .sync_file(&file)
                .map(|()| target)
                .map_err(|e| (path.display().to_string(), e))
        })
    }

    /// Makes every change so far durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.durable.check()?;
        let (target, file) = {
            let w = self.inner.writer.lock();
            (w.lsn(), Arc::clone(&w.ops.file))
        };
        match self.inner.durable.sync_file(&file) {
            Ok(()) => {
                self.inner.durable.mark_synced(target);
                Ok(())
            }
            Err(e) => Err(self
                .inner
                .durable
                .poison("fdatasync of the graph op log".into(), e)),
        }
    }

    /// Whether `a` follows `b`.
    pub fn is_following(&self, a: UserId, b: UserId) -> bool {
        if !self.in_range(a) || !self.in_range(b) {
            return false;
        }
        self.inner.version.load().has_following(a.0, b.0)
    }

    /// Whether `a` blocks `b` or `b` blocks `a`.
    pub fn is_blocked(&self, a: UserId, b: UserId) -> bool {
        if !self.in_range(a) || !self.in_range(b) {
            return false;
        }
        is_blocked_in(&self.inner.version.load(), a.0, b.0)
    }

    /// Whether `a` mutes `b`.
    pub fn is_muted(&self, a: UserId, b: UserId) -> bool {
        if !self.in_range(a) || !self.in_range(b) {
            return false;
        }
        let version = self.inner.version.load();
        let e = version.extras[a.0 as usize].load();
        e.as_deref()
            .is_some_and(|e| extras::contains(&e.mutes, b.0))
    }

    fn in_range(&self, u: UserId) -> bool {
        u.0 < self.inner.config.users_max
    }

    /// The users `u` follows, ascending.
    pub fn following(&self, u: UserId) -> Neighbors {
        let version = self.inner.version.load_full();
        if !self.in_range(u) {
            return Neighbors::new(version, None, Side::Out, 0..0, 0..0, 0..0);
        }
        let e = version.extras[u.0 as usize].load_full();
        let (add, del) = e
            .as_deref()
            .map_or((0..0, 0..0), |e| (0..e.out_add.len(), 0..e.out_del.len()));
        let base = version.csr.out_range(u.0);
        Neighbors::new(version, e, Side::Out, base, add, del)
    }

    /// The followers of `u` whose id is `partition` modulo `partitions`, ascending.
    /// When `partitions` is the graph's own ([`FollowGraph::partitions`]), this walks
    /// one contiguous slice of the snapshot (see [`Followers::for_each_chunk`]); any
    /// other count works too, by filtering.
    pub fn followers_in(&self, u: UserId, partition: u32, partitions: u32) -> Followers {
        let version = self.inner.version.load_full();
        let stored = version.csr.partitions;
        if !self.in_range(u) || partition >= partitions {
            return Followers::new(Vec::new());
        }
        // One load of the overlay slot for all the stored partitions merged here: a
        // load per partition could mix two overlay versions into a set of followers
        // that never existed.
        let e = version.extras[u.0 as usize].load_full();
        if partitions == stored {
            return Followers::new(vec![stored_partition(&version, &e, u.0, partition)]);
        }
        Followers::new(
            (0..stored)
                .map(|p| stored_partition(&version, &e, u.0, p).filtered(partitions, partition))
                .collect(),
        )
    }

    /// The partitions the follower lists are grouped by right now (the snapshot's; it
    /// becomes `GraphConfig::partitions` at the next compaction).
    pub fn partitions(&self) -> u32 {
        self.inner.version.load().csr.partitions
    }

    /// The followers of `u`, ascending.
    pub fn followers(&self, u: UserId) -> Followers {
        let version = self.inner.version.load_full();
        if !self.in_range(u) {
            return Followers::new(Vec::new());
        }
        // One load of the overlay slot for every partition (see `followers_in`).
        let e = version.extras[u.0 as usize].load_full();
        Followers::new(
            (0..version.csr.partitions)
                .map(|p| stored_partition(&version, &e, u.0, p))
                .collect(),
        )
    }

    /// How many users follow `u`.
    pub fn follower_count(&self, u: UserId) -> u64 {
        if !self.in_range(u) {
            return 0;
        }
        let version = self.inner.version.load();
        let base = version.csr.in_range(u.0).len() as u64;
        let e = version.extras[u.0 as usize].load();
        e.as_deref().map_or(base, |e| {
            base + e.in_add.len() as u64 - e.in_del.len() as u64
        })
    }

    /// How many users `u` follows.
    pub fn following_count(&self, u: UserId) -> u64 {
        if !self.in_range(u) {
            return 0;
        }
        following_count_in(&self.inner.version.load(), u.0)
    }

    /// 1 + the highest user id that appears in any relation (0 for an empty graph).
    pub fn user_count(&self) -> u32 {
        self.inner.users_seen.load(Ordering::Relaxed)
    }

    /// Counts of the graph's contents and memory.
    pub fn stats(&self) -> GraphStats {
        // The version after the lock: a compaction installs a new version and its
        // `dirty` list together, under the writer lock.
        let w = self.inner.writer.lock();
        let version = self.inner.version.load_full();
        let mut overlay_bytes =
            (version.extras.len() * std::mem::size_of::<ArcSwapOption<Extras>>()) as u64;
        let mut follows = version.csr.out_targets().len() as u64;
        let (mut blocks, mut mutes) = (0u64, 0u64);
        for &u in &w.dirty {
            if let Some(e) = version.extras[u as usize].load().as_deref() {
                overlay_bytes += e.heap_bytes() as u64;
                follows = follows + e.out_add.len() as u64 - e.out_del.len() as u64;
                blocks += e.blocks.len() as u64;
                mutes += e.mutes.len() as u64;
            }
        }
        GraphStats {
            users: self.user_count(),
            follows,
            blocks,
            mutes,
            ops_since_snapshot: w.since_snapshot,
            snapshot_bytes: version.csr.file_bytes(),
            overlay_bytes,
        }
    }

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

    fn start_compaction(&self) {
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

    fn wait_for_compactor(&self) {
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

impl Drop for FollowGraph {
    fn drop(&mut self) {
        self.wait_for_compactor();
        let _ = self.sync();
    }
}

/// Counts of a graph's contents and memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphStats {
    /// 1 + the highest user id in any relation.
    pub users: u32,
    /// Follow edges.
    pub follows: u64,
    /// Blocks.
    pub blocks: u64,
    /// Mutes.
    pub mutes: u64,
    /// Changes in the op log since the snapshot.
    pub ops_since_snapshot: u64,
    /// Bytes of the mapped snapshot file.
    pub snapshot_bytes: u64,
    /// Bytes of the overlay: a slot per user plus the recent changes.
    pub overlay_bytes: u64,
}

enum UserCheck {
    Unknown(u32),
    Same,
}

impl std::fmt::Display for UserCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserCheck::Unknown(u) => write!(f, "user {u} is past users_max"),
            UserCheck::Same => write!(f, "a relation of a user with itself"),
        }
    }
}

fn check_users(config: &GraphConfig, op: Op) -> Result<(), UserCheck> {
    for u in [op.a, op.b] {
        if u >= config.users_max {
            return Err(UserCheck::Unknown(u));
        }
    }
    if op.a == op.b {
        return Err(UserCheck::Same);
    }
    Ok(())
}

fn is_blocked_in(version: &Version, a: u32, b: u32) -> bool {
    let blocks = |x: u32, y: u32| {
        version.extras[x as usize]
            .load()
            .as_deref()
            .is_some_and(|e| extras::contains(&e.blocks, y))
    };
    blocks(a, b) || blocks(b, a)
}

/// The walk of `u`'s followers in stored partition `partition` of `version`, with `e`,
/// the overlay slot of `u` as the caller loaded it.
fn stored_partition(
    version: &Arc<Version>,
    e: &Option<Arc<Extras>>,
    u: u32,
    partition: u32,
) -> Neighbors {
    let stored = version.csr.partitions;
    let part = |list: &[u32]| {
        let start = list.partition_point(|&x| in_key(x, stored).0 < partition);
        let end = start + list[start..].partition_point(|&x| in_key(x, stored).0 == partition);
        start..end
    };
    let (add, del) = e
        .as_deref()
        .map_or((0..0, 0..0), |e| (part(&e.in_add), part(&e.in_del)));
    let base = version.csr.in_partition_range(u, partition);
    Neighbors::new(Arc::clone(version), e.clone(), Side::In, base, add, del)
}

fn following_count_in(version: &Version, u: u32) -> u64 {
    let base = version.csr.out_range(u).len() as u64;
    let e = version.extras[u as usize].load();
    e.as_deref().map_or(base, |e| {
        base + e.out_add.len() as u64 - e.out_del.len() as u64
    })
}

/// Replaces `u`'s overlay slot with a modified copy. Only the writer (or a single
/// thread building a version nobody reads yet) calls this.
fn modify(version: &Version, dirty: &mut Vec<u32>, u: u32, f: impl FnOnce(&mut Extras)) {
    let slot = &version.extras[u as usize];
    let current = slot.load_full();
    if current.is_none() {
        dirty.push(u);
    }
    let mut next = current.as_deref().cloned().unwrap_or_default();
    f(&mut next);
    slot.store(Some(Arc::new(next)));
}

fn set_edge(version: &Version, dirty: &mut Vec<u32>, a: u32, b: u32, present: bool) {
    let in_snapshot = version.csr.has_edge(a, b);
    if version.has_following(a, b) == present {
        return;
    }
    let partitions = version.csr.partitions;
    modify(version, dirty, a, |e| {
        e.set_following(b, present, in_snapshot)
    });
    modify(version, dirty, b, |e| {
        e.set_follower(a, present, in_snapshot, partitions)
    });
}

/// Applies one op to a version's overlay. Ops are idempotent: applying one again, or on
/// a base that already has its effect, changes nothing.
fn apply(version: &Version, dirty: &mut Vec<u32>, op: Op) {
    let (a, b) = (op.a, op.b);
    match op.kind {
        OpKind::Follow => set_edge(version, dirty, a, b, true),
        OpKind::Unfollow => set_edge(version, dirty, a, b, false),
        OpKind::Block => {
            set_edge(version, dirty, a, b, false);
            set_edge(version, dirty, b, a, false);
            modify(version, dirty, a, |e| {
                extras::insert(&mut e.blocks, b);
            });
        }
        OpKind::Unblock => modify(version, dirty, a, |e| {
            extras::remove(&mut e.blocks, b);
        }),
        OpKind::Mute => modify(version, dirty, a, |e| {
            extras::insert(&mut e.mutes, b);
        }),
        OpKind::Unmute => modify(version, dirty, a, |e| {
            extras::remove(&mut e.mutes, b);
        }),
    }
}

/// Loads a snapshot's blocks and mutes into a fresh version's overlay.
fn load_relations(version: &Version, dirty: &mut Vec<u32>, users_seen: &mut u32) {
    for &[a, b] in version.csr.blocks() {
        modify(version, dirty, a, |e| e.blocks.push(b));
        *users_seen = (*users_seen).max(a.max(b) + 1);
    }
    for &[a, b] in version.csr.mutes() {
        modify(version, dirty, a, |e| e.mutes.push(b));
        *users_seen = (*users_seen).max(a.max(b) + 1);
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
        if let Err(e) = w.ops.file.sync_data() {
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
            fs::remove_file(&old).context(|| format!("removing old snapshot {}", old.display()))?;
        }
    }
    for old in job.old_ops {
        fs::remove_file(&old).context(|| format!("removing compacted op log {}", old.display()))?;
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
            Some(e) => {
                let mut add = e.out_add.iter().peekable();
                for &b in base {
                    while let Some(&&x) = add.peek() {
                        if x >= b {
                            break;
                        }
                        targets.push(x);
                        add.next();
                    }
                    if !extras::contains(&e.out_del, b) {
                        targets.push(b);
                    }
                }
                targets.extend(add);
                blocks.extend(e.blocks.iter().map(|&b| [u, b]));
                mutes.extend(e.mutes.iter().map(|&b| [u, b]));
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

/// Snapshot files of `dir` by seq, changing nothing (temporary files are ignored).
fn list_snapshots_read_only(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_snapshot_name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}
