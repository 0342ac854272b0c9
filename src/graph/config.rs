//! The follow graph's configuration.

use crate::error::{Error, Result};
use crate::log::Durability;

/// Configuration of a [`FollowGraph`](crate::FollowGraph).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphConfig {
    /// User ids run from 0 to `users_max - 1`. Memory is sized by it: 8 bytes per user
    /// for the overlay of recent changes, plus 16 per user in each snapshot. Default
    /// 1,048,576.
    pub users_max: u32,
    /// The most users one user may follow (Mastodon's 7,500 by default).
    pub following_max: u32,
    /// Fan-out partitions: each user's followers are stored grouped by
    /// `follower % partitions`, so the fan-out worker of one partition walks one
    /// contiguous slice. Set it to the number of fan-out workers. Default 2.
    pub partitions: u32,
    /// When a follow, block or mute counts as done.
    pub durability: Durability,
    /// Changes after which the graph compacts its log into a new snapshot, in the
    /// background. Default 1,000,000.
    pub compact_after_changes: u64,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            users_max: 1 << 20,
            following_max: 7500,
            partitions: 2,
            durability: Durability::default(),
            compact_after_changes: 1_000_000,
        }
    }
}

impl GraphConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidConfig { reason });
        if self.users_max == 0 || self.users_max > u32::MAX - 1 {
            return bad(format!(
                "users_max is {}; it must be 1 to {}",
                self.users_max,
                u32::MAX - 1
            ));
        }
        if self.following_max == 0 {
            return bad("following_max must be at least 1".into());
        }
        if !(1..=256).contains(&self.partitions) {
            return bad(format!(
                "partitions is {}; it must be 1 to 256",
                self.partitions
            ));
        }
        // Op files stay far below the 4 GiB the durability positions allow.
        if !(1..=100_000_000).contains(&self.compact_after_changes) {
            return bad(format!(
                "compact_after_changes is {}; it must be 1 to 100,000,000",
                self.compact_after_changes
            ));
        }
        Ok(())
    }
}
