//! The engine's configuration and its clock.

use std::time::Duration;

pub use crate::clock::Clock;

use crate::error::{Error, Result};
use crate::fanout::Strategy;
use crate::graph::GraphConfig;
use crate::log::{Durability, LogConfig};
use crate::notice::BODY_BYTES_MAX_DEFAULT;

/// Configuration of an [`Engine`](crate::Engine). `Config::default()` works.
#[derive(Clone, Debug)]
pub struct Config {
    /// User ids run from 0 to `users_max - 1`; memory is sized by it (about 90 bytes a
    /// user before any entry: 50 for home timelines and the per-author and mention
    /// lists, 40 for the group, tag and list relations and streams). Groups, lists
    /// and tags each have ids below it too. Default 1,048,576.
    pub users_max: u32,
    /// Remote accounts ([`Engine::register_remote`](crate::Engine::register_remote))
    /// the store can hold, and remote servers too. Remote accounts take the user ids
    /// from `users_max` up (`users_max + k` for the `k`-th registered), so they never
    /// collide with local users; memory for the follow graph, the per-author lists and
    /// the strategies' state is sized by `users_max + remote_users_max`. Default
    /// 65,536.
    pub remote_users_max: u32,
    /// The most users one user may follow. Default 7500 (Mastodon's).
    pub following_max: u32,
    /// Entries kept per home timeline. Default 800 (Twitter's and Mastodon's).
    pub timeline_capacity: u32,
    /// The largest `Page::limit`. Default 200.
    pub page_limit_max: usize,
    /// Users who have not read for this long get no deliveries; their next read
    /// rebuilds their timeline. Default 7 days (Mastodon's).
    pub active_window: Duration,
    /// Largest notice body in bytes. Default 5000.
    pub body_bytes_max: usize,
    /// When a post (and a follow, block, mute) counts as done.
    pub durability: Durability,
    /// Size of each notice-log segment file. Default 64 MiB.
    pub segment_bytes: u64,
    /// Fan-out worker threads; each owns the timelines of the users whose id is its
    /// number modulo `workers`. Default 2.
    pub workers: u32,
    /// Followers delivered to in one go before a worker turns to other posts, so a post
    /// by an account with millions of followers never starves small ones. Default
    /// 32,768: about 1 to 3 ms of a worker's time, so a small post waits a few
    /// milliseconds at most behind a big one. Smaller chunks cut that wait but cost
    /// throughput: a post split into chunks reaches the users of its later chunks
    /// after newer posts did, and each such late id is inserted in order, shifting
    /// the newer entries (with 4,096, 41% of the deliveries of a Twitter-like burst
    /// arrived out of order and fan-out ran at a third of the speed).
    pub fanout_chunk: usize,
    /// The clock. Default: the system clock.
    pub clock: Clock,
    /// The timeline strategy. Default: push.
    pub strategy: Strategy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            users_max: 1 << 20,
            remote_users_max: 1 << 16,
            following_max: 7500,
            timeline_capacity: 800,
            page_limit_max: 200,
            active_window: Duration::from_secs(7 * 24 * 3600),
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            durability: Durability::default(),
            segment_bytes: LogConfig::default().segment_bytes,
            workers: 2,
            fanout_chunk: 32768,
            clock: Clock::system(),
            strategy: Strategy::default(),
        }
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidConfig { reason });
        if !(1..=1 << 16).contains(&self.timeline_capacity) {
            return bad(format!(
                "timeline_capacity is {}; it must be 1 to 65536",
                self.timeline_capacity
            ));
        }
        if self.page_limit_max == 0 {
            return bad("page_limit_max must be at least 1".into());
        }
        if !(1..=64).contains(&self.workers) {
            return bad(format!("workers is {}; it must be 1 to 64", self.workers));
        }
        if self.fanout_chunk == 0 {
            return bad("fanout_chunk must be at least 1".into());
        }
        match self.strategy {
            Strategy::Selective { push_threshold }
                if !(push_threshold.is_finite() && push_threshold > 0.0) =>
            {
                return bad(format!(
                    "push_threshold is {push_threshold}; it must be a positive number"
                ));
            }
            Strategy::Lossy {
                follows_reasonable: 0,
            } => {
                return bad("follows_reasonable must be at least 1".into());
            }
            _ => {}
        }
        if u64::from(self.users_max) + u64::from(self.remote_users_max) > u64::from(u32::MAX - 1) {
            return bad(format!(
                "users_max {} plus remote_users_max {} is past {}",
                self.users_max,
                self.remote_users_max,
                u32::MAX - 1
            ));
        }
        self.log_config().validate()?;
        self.graph_config().validate()
    }

    /// Local and remote user ids together: `users_max + remote_users_max`.
    pub(crate) fn users_total(&self) -> u32 {
        self.users_max + self.remote_users_max
    }

    /// The follow graph's configuration: local and remote users.
    pub(crate) fn follow_graph_config(&self) -> GraphConfig {
        GraphConfig {
            users_max: self.users_total(),
            ..self.graph_config()
        }
    }

    pub(crate) fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            durability: self.durability,
            body_bytes_max: self.body_bytes_max,
        }
    }

    pub(crate) fn graph_config(&self) -> GraphConfig {
        GraphConfig {
            users_max: self.users_max,
            following_max: self.following_max,
            partitions: self.workers,
            durability: self.durability,
            ..GraphConfig::default()
        }
    }
}
