//! The outbox: which of this node's own notices are surely published, so that a
//! restarted node republishes exactly the ones that may not be.
//!
//! The notice log is the outbox's content; this module only tracks a mark `W`: every
//! notice this node wrote with an id at or below `W` has had each of its messages
//! stored by JetStream. A post registers a *floor* (the log's next id, read before
//! the append: its id can only be at or above it), then swaps the floor for its id
//! once appended, and the publisher clears the id when its last message is stored. `W`
//! is one below the smallest floor or id still open, or the largest cleared id when
//! nothing is open. The mark is kept in `DIR/cluster/published`:
//!
//! ```text
//! [magic: "FCPUB\0\0\x01" 8 bytes][mark: u64 LE][crc32c of the 16 bytes before: u32 LE]
//! ```
//!
//! written to a temporary file and renamed. A missing or damaged file reads as 0, so
//! the node republishes its whole log: safe (receivers store each notice once, by
//! uri), only slower.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"FCPUB\0\0\x01";
const FILE_BYTES: usize = 20;

#[derive(Default)]
struct State {
    /// Posts in progress: the log's next id before their append, with a count.
    floors: BTreeMap<u64, u32>,
    /// Notices appended whose messages are not all stored yet.
    open: BTreeSet<u64>,
    /// The largest id cleared so far.
    cleared_max: u64,
    /// The mark as last computed (it never goes down).
    mark: u64,
}

/// Tracks the published-up-to mark (see the module docs).
pub(crate) struct Outbox {
    state: Mutex<State>,
    file: PathBuf,
    /// The mark last written to `file`.
    written: Mutex<u64>,
}

impl Outbox {
    /// Opens the mark in `dir` (created if missing).
    pub(crate) fn open(dir: &Path) -> Result<Outbox> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        let file = dir.join("published");
        let mark = match std::fs::read(&file) {
            Ok(bytes) => decode(&bytes).unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(Error::Io {
                    what: format!("reading {}", file.display()),
                    source,
                });
            }
        };
        Ok(Outbox {
            state: Mutex::new(State {
                cleared_max: mark,
                mark,
                ..State::default()
            }),
            file,
            written: Mutex::new(mark),
        })
    }

    /// The mark read at open or computed since.
    pub(crate) fn mark(&self) -> u64 {
        self.state.lock().mark
    }

    /// A post is about to append; `next_id` is the log's next id now.
    pub(crate) fn begin(&self, next_id: u64) {
        *self.state.lock().floors.entry(next_id).or_insert(0) += 1;
    }

    /// The post that began at `floor` appended `id` (or failed, with `None`).
    pub(crate) fn appended(&self, floor: u64, id: Option<u64>) {
        let mut s = self.state.lock();
        if let Some(count) = s.floors.get_mut(&floor) {
            *count -= 1;
            if *count == 0 {
                s.floors.remove(&floor);
            }
        }
        if let Some(id) = id {
            debug_assert!(
                id >= floor,
                "an append's id is at least the next id before it"
            );
            s.open.insert(id);
        }
        Self::advance(&mut s);
    }

    /// Registers a notice found unpublished at open (no floor: the log is not moving).
    pub(crate) fn reopen(&self, id: u64) {
        self.state.lock().open.insert(id);
    }

    /// Every message of notice `id` is stored.
    pub(crate) fn cleared(&self, id: u64) {
        let mut s = self.state.lock();
        s.open.remove(&id);
        s.cleared_max = s.cleared_max.max(id);
        Self::advance(&mut s);
    }

    /// Nothing is in progress or waiting for JetStream.
    pub(crate) fn is_empty(&self) -> bool {
        let s = self.state.lock();
        s.floors.is_empty() && s.open.is_empty()
    }

    fn advance(s: &mut State) {
        let first_open = [s.floors.keys().next(), s.open.iter().next()]
            .into_iter()
            .flatten()
            .min()
            .copied();
        let mark = match first_open {
            Some(first) => first.saturating_sub(1),
            None => s.cleared_max,
        };
        s.mark = s.mark.max(mark);
    }

    /// Writes the mark when it moved since the last write. Not synced: a mark lost to a
    /// power cut only makes the next open republish more.
    pub(crate) fn persist(&self) -> Result<()> {
        let mark = self.mark();
        let mut written = self.written.lock();
        if *written == mark {
            return Ok(());
        }
        let tmp = self.file.with_extension("tmp");
        let io = |what: &str, source| Error::Io {
            what: format!("{what} {}", tmp.display()),
            source,
        };
        std::fs::write(&tmp, encode(mark)).map_err(|e| io("writing", e))?;
        std::fs::rename(&tmp, &self.file).map_err(|e| io("renaming", e))?;
        *written = mark;
        Ok(())
    }
}

fn encode(mark: u64) -> [u8; FILE_BYTES] {
    let mut out = [0u8; FILE_BYTES];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&mark.to_le_bytes());
    let crc = crc32c::crc32c(&out[..16]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != FILE_BYTES || &bytes[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
    if crc32c::crc32c(&bytes[..16]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..16].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_stays_below_every_open_post() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.begin(5);
        outbox.begin(5);
        outbox.appended(5, Some(6)); // the second post got 6 first
        outbox.cleared(6);
        assert_eq!(outbox.mark(), 4, "the post that began at 5 is still open");
        outbox.appended(5, Some(5));
        assert_eq!(outbox.mark(), 4);
        outbox.cleared(5);
        assert_eq!(outbox.mark(), 6);
        assert!(outbox.is_empty());
        outbox.begin(9);
        outbox.appended(9, None);
        assert_eq!(outbox.mark(), 6, "a failed post clears nothing");
        outbox.persist().unwrap();
        drop(outbox);
        assert_eq!(Outbox::open(dir.path()).unwrap().mark(), 6);
    }

    #[test]
    fn a_damaged_mark_reads_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.begin(1);
        outbox.appended(1, Some(3));
        outbox.cleared(3);
        outbox.persist().unwrap();
        let file = dir.path().join("published");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[9] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(Outbox::open(dir.path()).unwrap().mark(), 0);
        std::fs::write(&file, b"short").unwrap();
        assert_eq!(Outbox::open(dir.path()).unwrap().mark(), 0);
    }
}
