//! Reading a whole log directory back: the segment scans plus the rules that span
//! segments (contiguous indices and ids, tombstones that vouch for scrubbed records).
//! `NoticeLog::open` acts on the result; `NoticeLog::check` only reports it.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::frame::Tag;
use super::scan::{self, SegmentScan, Tail};
use super::segment::{self, Segment};
use crate::error::{IoContext, Result};

/// A finding of a scan: where, what, and whether recovery repairs it by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file it is in.
    pub file: PathBuf,
    /// Byte offset in that file.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// True when opening the log repairs it without losing an acknowledged notice (a
    /// torn tail, an unfinished scrub); false for damage that needs an operator.
    pub recoverable: bool,
}

/// A segment as found on disk.
pub(crate) struct Found {
    pub(crate) segment: Segment,
    pub(crate) scan: SegmentScan,
}

/// Everything a scan of the directory learned.
pub(crate) struct DirScan {
    pub(crate) segments: Vec<Found>,
    pub(crate) tombstoned: HashSet<u64>,
    pub(crate) problems: Vec<Problem>,
}

impl DirScan {
    /// The first problem that recovery must not repair by itself.
    pub(crate) fn first_damage(&self) -> Option<&Problem> {
        self.problems.iter().find(|p| !p.recoverable)
    }
}

/// Lists the segment files of `dir` in index order. With `clean_tmp`, removes the
/// temporary files of segment creations that a crash interrupted.
pub(crate) fn list_segments(dir: &Path, clean_tmp: bool) -> Result<Vec<(u32, PathBuf)>> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(index) = segment::parse_file_name(name) {
            found.push((index, entry.path()));
        } else if clean_tmp && name.ends_with(".seg.tmp") {
            // Never renamed into place, so never held an acknowledged record.
            crate::fileio::remove_file(&entry.path())
                .context(|| format!("removing unfinished segment {}", entry.path().display()))?;
        }
    }
    found.sort();
    Ok(found)
}

/// Scans every segment of `dir`. I/O errors are errors; damage is listed in `problems`.
pub(crate) fn scan_dir(dir: &Path, writable: bool) -> Result<DirScan> {
    let files = list_segments(dir, writable)?;
    let mut out = DirScan {
        segments: Vec::with_capacity(files.len()),
        tombstoned: HashSet::new(),
        problems: Vec::new(),
    };
    let count = files.len();
    let mut next_id = 1u64;
    for (position, (index, path)) in files.into_iter().enumerate() {
        let last = position + 1 == count;
        let damage = |offset: u64, reason: String| Problem {
            file: path.clone(),
            offset,
            reason,
            recoverable: false,
        };
        if index as usize != position + 1 {
            out.problems.push(damage(
                0,
                format!(
                    "segment {index} found where segment {} is due (a segment file is missing)",
                    position + 1
                ),
            ));
            break;
        }
        let segment = match Segment::open(&path, writable) {
            Ok(segment) => segment,
            Err(crate::Error::Corrupt { offset, reason, .. }) => {
                out.problems.push(damage(offset, reason));
                break;
            }
            Err(e) => return Err(e),
        };
        let scan = match scan::scan_segment(segment.bytes_quiescent()) {
            Ok(scan) => scan,
            Err((offset, reason)) => {
                out.problems.push(damage(offset, reason));
                break;
            }
        };
        if scan.header.index != index {
            out.problems.push(damage(
                0,
                format!(
                    "header says segment {} but the file name says {index}",
                    scan.header.index
                ),
            ));
            break;
        }
        if scan.header.first_id != next_id {
            out.problems.push(damage(
                0,
                format!(
                    "segment starts at id {} where id {next_id} is due",
                    scan.header.first_id
                ),
            ));
            break;
        }
        next_id = scan.next_id;
        for record in &scan.records {
            if record.tag == Tag::Tombstone {
                out.tombstoned.insert(record.id);
            }
        }
        let stop = match &scan.tail {
            Tail::Clean => false,
            Tail::Torn { bytes, reason } => {
                out.problems.push(Problem {
                    file: path.clone(),
                    offset: scan.end,
                    reason: if last {
                        format!("torn tail of {bytes} bytes ({reason}); recovery cuts it off")
                    } else {
                        format!("{bytes} bad bytes at the end of a sealed segment ({reason})")
                    },
                    recoverable: last,
                });
                !last
            }
            Tail::Corrupt { offset, reason } => {
                out.problems.push(damage(*offset, reason.clone()));
                true
            }
        };
        out.segments.push(Found { segment, scan });
        if stop {
            break;
        }
    }
    // Scrubbed records need a tombstone to vouch for them: a stray tag byte must not
    // silently delete a notice. Tombstoned notices not yet scrubbed are finished by
    // recovery.
    for found in &out.segments {
        for record in &found.scan.records {
            let tombstoned = out.tombstoned.contains(&record.id);
            let problem = match record.tag {
                Tag::Scrubbed if !tombstoned => Some((
                    format!(
                        "notice {} is marked scrubbed but no tombstone deletes it",
                        record.id
                    ),
                    false,
                )),
                Tag::Scrubbed if record.scrub_unfinished => Some((
                    format!(
                        "scrub of deleted notice {} was interrupted; recovery finishes it",
                        record.id
                    ),
                    true,
                )),
                Tag::Notice if tombstoned => Some((
                    format!(
                        "deleted notice {} is not scrubbed yet; recovery scrubs it",
                        record.id
                    ),
                    true,
                )),
                _ => None,
            };
            if let Some((reason, recoverable)) = problem {
                out.problems.push(Problem {
                    file: found.segment.path.clone(),
                    offset: record.offset,
                    reason,
                    recoverable,
                });
            }
        }
    }
    Ok(out)
}
