//! The log's configuration.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::notice::BODY_BYTES_MAX_DEFAULT;

/// When an append counts as done (see the README's durability table).
///
/// ```
/// use feedcore::{Durability, LogConfig};
/// use std::time::Duration;
/// let every_append = LogConfig { durability: Durability::Always, ..Default::default() };
/// let batched = Durability::GroupCommit { max_delay: Duration::from_micros(500) };
/// assert_ne!(every_append.durability, batched);
/// assert!(matches!(LogConfig::default().durability, Durability::GroupCommit { .. }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every append returns after its record is on disk (`fdatasync`). Concurrent
    /// appenders share one `fdatasync` when they arrive together.
    Always,
    /// Appends return after their record is on disk, but the thread that syncs waits up
    /// to `max_delay` first when other appenders are in flight, so that one
    /// `fdatasync` covers many of them (PostgreSQL's `commit_delay`).
    GroupCommit {
        /// How long the syncing thread waits for company.
        max_delay: Duration,
    },
    /// Appends return once the record is in the OS page cache: a process crash loses
    /// nothing, a power loss may lose the newest notices. `NoticeLog::sync` makes
    /// everything durable.
    Buffered,
}

impl Default for Durability {
    fn default() -> Self {
        Durability::GroupCommit {
            max_delay: Duration::from_micros(200),
        }
    }
}

/// Configuration of a [`NoticeLog`](crate::NoticeLog).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Size of each segment file, preallocated at creation: 64 KiB to 4 GiB, a
    /// multiple of 4096. Default 64 MiB.
    pub segment_bytes: u64,
    /// When an append counts as done.
    pub durability: Durability,
    /// Largest notice body in bytes. Default 5000.
    pub body_bytes_max: usize,
}

/// The smallest segment allowed.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// The largest segment allowed (offsets in the index are 32-bit).
pub const SEGMENT_BYTES_MAX: u64 = (1 << 32) - 4096;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
            durability: Durability::default(),
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
        }
    }
}

impl LogConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes)
            || !self.segment_bytes.is_multiple_of(4096)
        {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "segment_bytes is {}; it must be a multiple of 4096 from {SEGMENT_BYTES_MIN} to {SEGMENT_BYTES_MAX}",
                    self.segment_bytes
                ),
            });
        }
        // A notice at the limits (body, 32 tags, 64 mentions, uri) must fit a segment
        // with room to spare; a quarter of the segment is the ceiling.
        if self.body_bytes_max == 0 || self.body_bytes_max as u64 > self.segment_bytes / 4 {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "body_bytes_max is {}; it must be from 1 to a quarter of segment_bytes ({})",
                    self.body_bytes_max,
                    self.segment_bytes / 4
                ),
            });
        }
        Ok(())
    }
}
