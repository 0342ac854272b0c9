//! The outbox's counts, live ([`Engine::stats`](crate::Engine::stats)) or read from a
//! store's file without opening it (`feedcore stats`, `feedcore check`).

use std::path::Path;

use super::file::{self, DIR_NAME, FILE_NAME};
use super::fold::Folded;
use crate::error::{Error, Result};
use crate::log::Problem;

/// Counts of the delivery outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxStats {
    /// Deliveries recorded and not handed out (due now, or waiting for a retry).
    pub pending: u64,
    /// Deliveries handed out and neither acked nor failed yet.
    pub in_flight: u64,
    /// Of the pending, those waiting for a retry after a failure.
    pub failed: u64,
    /// Servers marked unavailable (failing for 7 days).
    pub unavailable_servers: u64,
    /// Deliveries dropped because their server was unavailable.
    pub dropped: u64,
    /// Deliveries acked since open.
    pub acked: u64,
    /// Failures reported since open.
    pub failures: u64,
    /// Bytes the in-memory queue holds.
    pub queue_bytes: u64,
    /// Bytes of the outbox file.
    pub file_bytes: u64,
}

/// What reading a store's outbox file found: its counts (nothing is in flight in a
/// file), and a torn tail or damage if any.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OutboxReport {
    /// The counts.
    pub stats: OutboxStats,
    /// Records read.
    pub records: u64,
    /// A torn tail (recoverable: opening cuts it off) or damage (not recoverable).
    pub problems: Vec<Problem>,
}

impl OutboxReport {
    /// Reads the outbox of the store directory `store` without changing it; `None`
    /// when the store has none.
    pub fn check(store: impl AsRef<Path>) -> Result<Option<OutboxReport>> {
        let path = store.as_ref().join(DIR_NAME).join(FILE_NAME);
        if !path.exists() {
            return Ok(None);
        }
        let mut folded = Folded::default();
        let mut out = OutboxReport::default();
        match file::read(&path, |r| folded.apply(r)) {
            Ok(read) => {
                out.records = read.records;
                if let Some((offset, reason)) = read.torn {
                    out.problems.push(Problem {
                        file: path.clone(),
                        offset,
                        reason: format!("torn tail of the outbox ({reason}); opening cuts it off"),
                        recoverable: true,
                    });
                }
            }
            Err(Error::Corrupt {
                file,
                offset,
                reason,
            }) => out.problems.push(Problem {
                file,
                offset,
                reason,
                recoverable: false,
            }),
            Err(e) => return Err(e),
        }
        out.stats = OutboxStats {
            pending: folded.pending.len() as u64,
            failed: folded.pending.values().filter(|p| p.0 > 0).count() as u64,
            unavailable_servers: folded.servers.values().filter(|s| s.unavailable).count() as u64,
            dropped: folded.dropped,
            file_bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
            ..OutboxStats::default()
        };
        Ok(Some(out))
    }

    /// Whether nothing is damaged (a torn tail is fine).
    pub fn is_sound(&self) -> bool {
        self.problems.iter().all(|p| p.recoverable)
    }
}
