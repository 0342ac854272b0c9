//! Random sequences of graph operations, for tests and the crash harness: a process
//! that applies them and a process that checks the result agree on the sequence from
//! the seed alone.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::error::Result;
use crate::graph::FollowGraph;
use crate::ids::UserId;

/// One change of the follow graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelationOp {
    /// `.0` follows `.1`.
    Follow(UserId, UserId),
    /// `.0` unfollows `.1`.
    Unfollow(UserId, UserId),
    /// `.0` blocks `.1`.
    Block(UserId, UserId),
    /// `.0` unblocks `.1`.
    Unblock(UserId, UserId),
    /// `.0` mutes `.1`.
    Mute(UserId, UserId),
    /// `.0` unmutes `.1`.
    Unmute(UserId, UserId),
}

impl RelationOp {
    /// Applies it to `graph`, as the graph's own method of the same name.
    pub fn apply(self, graph: &FollowGraph) -> Result<bool> {
        match self {
            RelationOp::Follow(a, b) => graph.follow(a, b),
            RelationOp::Unfollow(a, b) => graph.unfollow(a, b),
            RelationOp::Block(a, b) => graph.block(a, b),
            RelationOp::Unblock(a, b) => graph.unblock(a, b),
            RelationOp::Mute(a, b) => graph.mute(a, b),
            RelationOp::Unmute(a, b) => graph.unmute(a, b),
        }
    }
}

/// An endless, seeded sequence of operations among users `0..users` (at least 2):
/// mostly follows, then unfollows, and a few blocks, unblocks, mutes and unmutes. Never
/// a relation of a user with itself.
pub fn random_relation_ops(users: u32, seed: u64) -> impl Iterator<Item = RelationOp> {
    assert!(users >= 2, "operations need two distinct users");
    let mut rng = SmallRng::seed_from_u64(seed);
    std::iter::repeat_with(move || {
        let a = rng.random_range(0..users);
        let b = (a + rng.random_range(1..users)) % users;
        let (a, b) = (UserId(a), UserId(b));
        match rng.random_range(0..100) {
            0..60 => RelationOp::Follow(a, b),
            60..80 => RelationOp::Unfollow(a, b),
            80..85 => RelationOp::Block(a, b),
            85..90 => RelationOp::Unblock(a, b),
            90..95 => RelationOp::Mute(a, b),
            _ => RelationOp::Unmute(a, b),
        }
    })
}
