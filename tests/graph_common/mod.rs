//! Helpers shared by the follow-graph integration tests: a plain model of the graph's
//! rules (one `BTreeSet<(u32, u32)>` per relation), a comparison of a live graph with
//! it, the op-log layout as the tests see it, and an `open` that waits out a lock held
//! by a forked child for a moment. Not a test itself; each test file uses what it needs.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use feedcore::sim::RelationOp;
use feedcore::{Error, FollowGraph, GraphConfig, UserId};

/// Bytes of one op-log record: `[len u32][crc u32][version u8][tag u8][seq u48]
/// [op u8][zero 3][a u32][b u32][zero 4]`, records back to back from offset 0.
pub const OP_RECORD_BYTES: u64 = 32;
/// Offset of the `a` field inside an op record (covered by the checksum).
pub const OP_A_OFFSET: u64 = 20;

/// Why the model refuses an op, mirroring the graph's error variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Error::UnknownUser`.
    UnknownUser,
    /// `Error::InvalidRelation`.
    InvalidRelation,
}

/// The graph's rules over plain sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    pub users_max: u32,
    pub following_max: u32,
    /// `(follower, followee)`.
    pub follows: BTreeSet<(u32, u32)>,
    /// `(blocker, blocked)`.
    pub blocks: BTreeSet<(u32, u32)>,
    /// `(muter, muted)`.
    pub mutes: BTreeSet<(u32, u32)>,
    /// 1 + the highest id of any op that changed something, or of a bulk-loaded edge:
    /// the most `user_count` may say.
    pub users_seen: u32,
}

impl Model {
    pub fn new(users_max: u32, following_max: u32) -> Model {
        Model {
            users_max,
            following_max,
            follows: BTreeSet::new(),
            blocks: BTreeSet::new(),
            mutes: BTreeSet::new(),
            users_seen: 0,
        }
    }

    /// The model of `bulk_load(edges)` (duplicates once, `following_max` not enforced).
    pub fn bulk_loaded(
        users_max: u32,
        following_max: u32,
        edges: impl IntoIterator<Item = (u32, u32)>,
    ) -> Model {
        let mut m = Model::new(users_max, following_max);
        for (a, b) in edges {
            assert!(a != b && a < users_max && b < users_max, "a valid edge");
            m.follows.insert((a, b));
            m.users_seen = m.users_seen.max(a.max(b) + 1);
        }
        m
    }

    pub fn following(&self, u: u32) -> Vec<u32> {
        self.follows
            .range((u, 0)..=(u, u32::MAX))
            .map(|&(_, b)| b)
            .collect()
    }

    pub fn followers(&self, u: u32) -> Vec<u32> {
        self.follows
            .iter()
            .filter(|&&(_, b)| b == u)
            .map(|&(a, _)| a)
            .collect()
    }

    fn is_blocked(&self, a: u32, b: u32) -> bool {
        self.blocks.contains(&(a, b)) || self.blocks.contains(&(b, a))
    }

    /// Applies `op` by the rules: `Ok(changed)` or the refusal (which changes nothing).
    pub fn apply(&mut self, op: RelationOp) -> Result<bool, Refusal> {
        let (a, b) = match op {
            RelationOp::Follow(a, b)
            | RelationOp::Unfollow(a, b)
            | RelationOp::Block(a, b)
            | RelationOp::Unblock(a, b)
            | RelationOp::Mute(a, b)
            | RelationOp::Unmute(a, b) => (a.0, b.0),
        };
        if a >= self.users_max || b >= self.users_max {
            return Err(Refusal::UnknownUser);
        }
        if a == b {
            return Err(Refusal::InvalidRelation);
        }
        let changed = match op {
            RelationOp::Follow(..) => {
                if self.is_blocked(a, b) {
                    return Err(Refusal::InvalidRelation);
                }
                if self.follows.contains(&(a, b)) {
                    false
                } else if self.following(a).len() >= self.following_max as usize {
                    return Err(Refusal::InvalidRelation);
                } else {
                    self.follows.insert((a, b))
                }
            }
            RelationOp::Unfollow(..) => self.follows.remove(&(a, b)),
            RelationOp::Block(..) => {
                let new = self.blocks.insert((a, b));
                if new {
                    self.follows.remove(&(a, b));
                    self.follows.remove(&(b, a));
                }
                new
            }
            RelationOp::Unblock(..) => self.blocks.remove(&(a, b)),
            RelationOp::Mute(..) => self.mutes.insert((a, b)),
            RelationOp::Unmute(..) => self.mutes.remove(&(a, b)),
        };
        if changed {
            self.users_seen = self.users_seen.max(a.max(b) + 1);
        }
        Ok(changed)
    }
}

/// The graph's answer to `op` in the model's terms; any other error is a test failure.
pub fn graph_apply(graph: &FollowGraph, op: RelationOp) -> Result<bool, Refusal> {
    match op.apply(graph) {
        Ok(changed) => Ok(changed),
        Err(Error::UnknownUser { .. }) => Err(Refusal::UnknownUser),
        Err(Error::InvalidRelation { .. }) => Err(Refusal::InvalidRelation),
        Err(e) => panic!("{op:?}: unexpected error {e}"),
    }
}

fn ids(list: impl Iterator<Item = UserId>) -> Vec<u32> {
    list.map(|u| u.0).collect()
}

/// Checks that `ids` is strictly ascending (no duplicates).
pub fn ascending(ids: &[u32]) -> Result<(), String> {
    match ids.windows(2).find(|w| w[0] >= w[1]) {
        Some(w) => Err(format!("not strictly ascending: {} then {}", w[0], w[1])),
        None => Ok(()),
    }
}

/// Every query of `graph` against `model`: per user the following and follower walks
/// (iterators and chunks), `followers_in` for every partition of the stored count and
/// of each of `partition_counts`, the counts, every pair's `is_following`,
/// `is_blocked`, `is_muted`, then `stats()` and `user_count()`. The first difference,
/// in words.
pub fn diff(graph: &FollowGraph, model: &Model, partition_counts: &[u32]) -> Result<(), String> {
    let n = model.users_max;
    let mut counts = partition_counts.to_vec();
    counts.push(graph.partitions());
    for u in 0..n {
        let user = UserId(u);
        let following = ids(graph.following(user));
        let want_following = model.following(u);
        if following != want_following {
            return Err(format!(
                "following({u}) = {following:?}, model {want_following:?}"
            ));
        }
        let followers = ids(graph.followers(user));
        let want_followers = model.followers(u);
        if followers != want_followers {
            return Err(format!(
                "followers({u}) = {followers:?}, model {want_followers:?}"
            ));
        }
        let mut chunked = Vec::new();
        graph
            .followers(user)
            .for_each_chunk(|c| chunked.extend_from_slice(c));
        if chunked != want_followers {
            return Err(format!(
                "followers({u}).for_each_chunk = {chunked:?}, model {want_followers:?}"
            ));
        }
        let mut chunked = Vec::new();
        graph
            .following(user)
            .for_each_chunk(|c| chunked.extend_from_slice(c));
        if chunked != want_following {
            return Err(format!(
                "following({u}).for_each_chunk = {chunked:?}, model {want_following:?}"
            ));
        }
        for &parts in &counts {
            for p in 0..parts {
                let want: Vec<u32> = want_followers
                    .iter()
                    .copied()
                    .filter(|x| x % parts == p)
                    .collect();
                let walked = ids(graph.followers_in(user, p, parts));
                if walked != want {
                    return Err(format!(
                        "followers_in({u}, {p}, {parts}) = {walked:?}, model {want:?}"
                    ));
                }
                let mut chunked = Vec::new();
                graph
                    .followers_in(user, p, parts)
                    .for_each_chunk(|c| chunked.extend_from_slice(c));
                if chunked != want {
                    return Err(format!(
                        "followers_in({u}, {p}, {parts}).for_each_chunk = {chunked:?}, model {want:?}"
                    ));
                }
            }
            if graph.followers_in(user, parts, parts).next().is_some() {
                return Err(format!("followers_in({u}, {parts}, {parts}) is not empty"));
            }
        }
        if graph.follower_count(user) != want_followers.len() as u64 {
            return Err(format!(
                "follower_count({u}) = {}, model {}",
                graph.follower_count(user),
                want_followers.len()
            ));
        }
        if graph.following_count(user) != want_following.len() as u64 {
            return Err(format!(
                "following_count({u}) = {}, model {}",
                graph.following_count(user),
                want_following.len()
            ));
        }
        for v in 0..n {
            let other = UserId(v);
            let checks = [
                (
                    "is_following",
                    graph.is_following(user, other),
                    model.follows.contains(&(u, v)),
                ),
                (
                    "is_blocked",
                    graph.is_blocked(user, other),
                    model.is_blocked(u, v),
                ),
                (
                    "is_muted",
                    graph.is_muted(user, other),
                    model.mutes.contains(&(u, v)),
                ),
            ];
            for (what, got, want) in checks {
                if got != want {
                    return Err(format!("{what}({u}, {v}) = {got}, model {want}"));
                }
            }
        }
    }
    // Past users_max: nothing, and no panic.
    let past = UserId(n);
    if graph.followers(past).next().is_some()
        || graph.following(past).next().is_some()
        || graph.follower_count(past) != 0
        || graph.is_following(UserId(0), past)
        || graph.is_blocked(past, UserId(0))
    {
        return Err(format!("user {n} (past users_max) has relations"));
    }
    let stats = graph.stats();
    let want = (
        model.follows.len() as u64,
        model.blocks.len() as u64,
        model.mutes.len() as u64,
    );
    if (stats.follows, stats.blocks, stats.mutes) != want {
        return Err(format!(
            "stats (follows, blocks, mutes) = {:?}, model {want:?}",
            (stats.follows, stats.blocks, stats.mutes)
        ));
    }
    // user_count grows only; it lies between the highest id in a relation now and the
    // highest id ever in a relation.
    let in_use = model
        .follows
        .iter()
        .chain(&model.blocks)
        .chain(&model.mutes)
        .map(|&(a, b)| a.max(b) + 1)
        .max()
        .unwrap_or(0);
    let users = graph.user_count();
    if users < in_use || users > model.users_seen {
        return Err(format!(
            "user_count() = {users}, outside {in_use}..={}",
            model.users_seen
        ));
    }
    Ok(())
}

/// `FollowGraph::open`, retried while it reports `Locked` for up to five seconds.
///
/// The directory lock is an `flock` on an open file description. When another test in
/// the same binary spawns a child process, the child holds a copy of every descriptor
/// of this process from its fork until its exec, so for that moment a graph this test
/// has just dropped still counts as open.
pub fn open_graph(dir: &Path, config: GraphConfig) -> Result<FollowGraph, Error> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match FollowGraph::open(dir, config.clone()) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

/// The files of `dir` whose name starts with `prefix`, sorted.
pub fn files_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("the graph directory is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

/// Every file of `dir` but the lock file, with its bytes: to show that something
/// changed nothing on disk.
pub fn dir_image(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
        .expect("the graph directory is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "LOCK"))
        .map(|p| {
            let bytes = fs::read(&p).expect("readable");
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}
