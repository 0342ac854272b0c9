//! The follow graph's handle: opening a directory (snapshot, then the op logs replayed
//! onto its overlay), bulk load, and changes made durable through the op log. Reads are
//! in `queries.rs`, compaction in `compaction.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::GraphConfig;
use super::csr::{Csr, CsrArrays};
use super::oplog::{self, Op, OpFile, OpKind};
use super::snapshot_files::{list_snapshots, snapshot_name};
use super::version::{Version, apply, following_count_in, is_blocked_in, load_relations};
use crate::dirlock::DirLock;
use crate::error::{Error, IoContext, Result};
use crate::fileio;
use crate::ids::UserId;
use crate::log::Durability;
use crate::log::durable::{self, Durable};

/// The writer's state. Guarded by `Inner::writer`: graph changes happen one at a time.
pub(super) struct Writer {
    /// Seq of the last op written.
    pub(super) seq: u64,
    pub(super) ops: OpFile,
    /// Counts op files opened by this process, for the durability positions.
    pub(super) ops_no: u64,
    /// Ops since the current snapshot.
    pub(super) since_snapshot: u64,
    /// Users whose overlay slot is set in the current version.
    pub(super) dirty: Vec<u32>,
    /// While a compaction runs: the ops after its freeze point, to replay on its result.
    pub(super) compacting: Option<Vec<Op>>,
    /// `since_snapshot` at which the next compaction starts (pushed back after a
    /// failed one, so a full disk does not start one per change).
    pub(super) compact_at: u64,
}

impl Writer {
    /// The durability position of the newest op.
    pub(super) fn lsn(&self) -> durable::Lsn {
        durable::lsn(self.ops_no as usize, self.ops.len)
    }
}

pub(super) struct Inner {
    pub(super) dir: PathBuf,
    pub(super) config: GraphConfig,
    pub(super) version: ArcSwap<Version>,
    pub(super) writer: Mutex<Writer>,
    pub(super) durable: Durable,
    /// 1 + the highest user id in any relation. Grows only; written by the writer.
    pub(super) users_seen: AtomicU32,
    /// Why the last background compaction failed, if it did.
    pub(super) compaction_error: Mutex<Option<String>>,
    /// Held by a compaction from its freeze to the removal of the files it made
    /// obsolete, so that compactions never overlap: one that froze while another was
    /// still removing files would list those files as its own to remove (and fail on
    /// them), and the other's removal of "every snapshot but mine" would delete the
    /// newer snapshot, leaving a snapshot older than the op logs that remain. Taken
    /// before the writer lock, never while joining the compactor thread.
    pub(super) compaction_running: Mutex<()>,
    /// A relation store (group memberships, list members, tag follows): the two ends
    /// of an edge are in different id spaces (a user and a group, say), so an edge
    /// from an id to the same id is allowed. Blocks and mutes are never written.
    pub(super) relation: bool,
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
    pub(super) inner: Arc<Inner>,
    pub(super) compactor: Mutex<Option<JoinHandle<()>>>,
}

impl FollowGraph {
    /// Opens the graph in `dir` (created if missing): maps the newest snapshot and
    /// replays the op log after it. A torn tail of the op log is cut off; damage
    /// anywhere else is [`Error::Corrupt`].
    pub fn open(dir: impl AsRef<Path>, config: GraphConfig) -> Result<FollowGraph> {
        Self::open_kind(dir.as_ref(), config, false)
    }

    /// Opens a relation store (see `Inner::relation`) in `dir`: the same snapshot, op
    /// log and overlay as a follow graph, for edges between two id spaces.
    pub(crate) fn open_relation(dir: &Path, config: GraphConfig) -> Result<FollowGraph> {
        Self::open_kind(dir, config, true)
    }

    fn open_kind(dir: &Path, config: GraphConfig, relation: bool) -> Result<FollowGraph> {
        config.validate()?;
        let dir = dir.to_path_buf();
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
            check_users(&config, op, relation).map_err(|reason| {
                Error::corrupt(&dir, 0, format!("op {seq} of the op log: {reason}"))
            })?;
            apply(&version, &mut dirty, op);
            users_seen = users_seen.max(op.a.max(op.b) + 1);
        }
        if let Some((path, offset, _)) = &replay.torn {
            let file = fileio::open(fs::OpenOptions::new().write(true), path)
                .context(|| format!("opening {}", path.display()))?;
            fileio::set_len(&file, path, *offset)
                .and_then(|()| fileio::sync_all(&file, path))
                .context(|| format!("cutting off the torn tail of {}", path.display()))?;
        }
        let ops = match &replay.last_file {
            Some((path, len)) => OpFile::reopen(path, *len)?,
            None => OpFile::create(&dir, replay.last_seq + 1)?,
        };
        for path in &replay.covered {
            fileio::remove_file(path)
                .context(|| format!("removing covered op log {}", path.display()))?;
        }
        for (_, path) in snapshots.iter().rev().skip(1) {
            fileio::remove_file(path)
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
            relation,
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
        Self::bulk_load_kind(dir.as_ref(), config, edges, false)
    }

    /// [`FollowGraph::bulk_load`] of a relation store (see `Inner::relation`).
    pub(crate) fn bulk_load_relation(
        dir: &Path,
        config: GraphConfig,
        edges: impl IntoIterator<Item = (UserId, UserId)>,
    ) -> Result<FollowGraph> {
        Self::bulk_load_kind(dir, config, edges, true)
    }

    fn bulk_load_kind(
        dir: &Path,
        config: GraphConfig,
        edges: impl IntoIterator<Item = (UserId, UserId)>,
        relation: bool,
    ) -> Result<FollowGraph> {
        config.validate()?;
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
            if a == b && !relation {
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
        Self::open_kind(dir, config, relation)
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

    pub(super) fn change(&self, op: Op) -> Result<bool> {
        let inner = &*self.inner;
        inner.durable.check()?;
        check_users(&inner.config, op, inner.relation).map_err(|reason| match reason {
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
            OpKind::Block => !slot(a).is_some_and(|e| e.blocks.contains(b)),
            OpKind::Unblock => slot(a).is_some_and(|e| e.blocks.contains(b)),
            OpKind::Mute => !slot(a).is_some_and(|e| e.mutes.contains(b)),
            OpKind::Unmute => slot(a).is_some_and(|e| e.mutes.contains(b)),
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

    pub(super) fn wait_durable(&self, end: u64) -> Result<()> {
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
                .sync_file(&file, &path)
                .map(|()| target)
                .map_err(|e| (path.display().to_string(), e))
        })
    }

    /// Makes every change so far durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.durable.check()?;
        let (target, file, path) = {
            let w = self.inner.writer.lock();
            (w.lsn(), Arc::clone(&w.ops.file), w.ops.path.clone())
        };
        match self.inner.durable.sync_file(&file, &path) {
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
}

impl Drop for FollowGraph {
    fn drop(&mut self) {
        self.wait_for_compactor();
        let _ = self.sync();
    }
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

fn check_users(config: &GraphConfig, op: Op, relation: bool) -> Result<(), UserCheck> {
    for u in [op.a, op.b] {
        if u >= config.users_max {
            return Err(UserCheck::Unknown(u));
        }
    }
    if op.a == op.b && !relation {
        return Err(UserCheck::Same);
    }
    Ok(())
}
