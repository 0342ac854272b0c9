//! Offline verification and statistics of a log directory (`feedcore check`,
//! `feedcore stats`): the recovery scan, reported instead of acted on.

use std::path::Path;

use super::frame::Tag;
use super::recover::{self, Problem};
use crate::error::Result;

/// Counts of a log's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// Notices appended, deleted ones included (the last id).
    pub notices: u64,
    /// Notices deleted.
    pub deleted: u64,
    /// Segment files.
    pub segments: usize,
    /// Bytes of all segment files (preallocated, so the last one is mostly zeros).
    pub segment_bytes_total: u64,
}

/// What [`NoticeLog::check`](crate::NoticeLog::check) found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Counts of what was read.
    pub stats: LogStats,
    /// Bytes taken by records (headers and padding included).
    pub record_bytes: u64,
    /// Every record verified: frame, checksum, archive, id.
    pub records_checked: u64,
    /// Everything wrong, damage and recoverable findings alike, in file order.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// True when nothing needs an operator: no problem, or only problems that opening
    /// the log repairs by itself (a torn tail, an unfinished scrub).
    pub fn is_sound(&self) -> bool {
        self.problems.iter().all(|p| p.recoverable)
    }
}

pub(crate) fn check_dir(dir: &Path) -> Result<CheckReport> {
    let scan = recover::scan_dir(dir, false)?;
    let mut report = CheckReport {
        problems: scan.problems,
        ..Default::default()
    };
    report.stats.segments = scan.segments.len();
    for found in &scan.segments {
        report.stats.segment_bytes_total += found.segment.len() as u64;
        report.stats.notices = found.scan.next_id - 1;
        report.record_bytes += found.scan.end - super::segment::SEGMENT_HEADER_BYTES as u64;
        report.records_checked += found.scan.records.len() as u64;
        report.stats.deleted += found
            .scan
            .records
            .iter()
            .filter(|r| r.tag != Tag::Tombstone && scan.tombstoned.contains(&r.id))
            .count() as u64;
    }
    Ok(report)
}
