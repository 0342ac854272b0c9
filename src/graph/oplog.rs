//! The graph's op log: every follow, unfollow, block, unblock, mute and unmute, framed
//! and checksummed like notice records, appended to `ops-<first seq>.log` files. A new
//! file starts at every compaction, so whole files are dropped once a snapshot covers
//! them.
//!
//! ```text
//! record: [len: u32 LE = 12][crc32c: u32 LE][version: u8][tag: u8 = 4][seq: u48 LE]
//!         [op: u8][zero: 3][a: u32 LE][b: u32 LE][zero pad: 4]
//! ```

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::fileio;
use crate::log::frame::{self, HEADER_BYTES, Tag};
use crate::log::segment::sync_dir;

const PAYLOAD_BYTES: usize = 12;
/// Bytes one op takes in the file.
pub(crate) const RECORD_BYTES: usize = HEADER_BYTES + 16;
const _: () = assert!(RECORD_BYTES == HEADER_BYTES + PAYLOAD_BYTES.next_multiple_of(frame::ALIGN));

/// What an op does. Values start at 1 so that zeros are never an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum OpKind {
    Follow = 1,
    Unfollow = 2,
    Block = 3,
    Unblock = 4,
    Mute = 5,
    Unmute = 6,
}

impl OpKind {
    fn from_byte(b: u8) -> Option<OpKind> {
        Some(match b {
            1 => OpKind::Follow,
            2 => OpKind::Unfollow,
            3 => OpKind::Block,
            4 => OpKind::Unblock,
            5 => OpKind::Mute,
            6 => OpKind::Unmute,
            _ => return None,
        })
    }
}

/// One graph operation: `a` does `kind` to `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Op {
    pub(crate) kind: OpKind,
    pub(crate) a: u32,
    pub(crate) b: u32,
}

fn encode(seq: u64, op: Op) -> [u8; RECORD_BYTES] {
    let mut payload = [0u8; PAYLOAD_BYTES];
    payload[0] = op.kind as u8;
    payload[4..8].copy_from_slice(&op.a.to_le_bytes());
    payload[8..12].copy_from_slice(&op.b.to_le_bytes());
    let mut record = [0u8; RECORD_BYTES];
    record[..HEADER_BYTES].copy_from_slice(&frame::encode_header(Tag::GraphOp, seq, &payload));
    record[HEADER_BYTES..HEADER_BYTES + PAYLOAD_BYTES].copy_from_slice(&payload);
    record
}

/// Decodes the record at `pos`: `Ok((seq, op))`, or why it is not a valid record.
fn decode(bytes: &[u8], pos: usize) -> Result<(u64, Op), String> {
    let Some(record) = bytes.get(pos..pos + RECORD_BYTES) else {
        return Err(format!(
            "{} bytes left, less than a record",
            bytes.len() - pos
        ));
    };
    let h = frame::decode_header(record);
    if h.len as usize != PAYLOAD_BYTES
        || h.version != frame::VERSION
        || h.tag_byte != Tag::GraphOp as u8
    {
        return Err("not a graph op record header".into());
    }
    let payload = &record[HEADER_BYTES..HEADER_BYTES + PAYLOAD_BYTES];
    if !frame::crc_matches(record, payload) {
        return Err("checksum mismatch".into());
    }
    let kind = OpKind::from_byte(payload[0]).ok_or_else(|| format!("unknown op {}", payload[0]))?;
    let a = u32::from_le_bytes(payload[4..8].try_into().expect("4 bytes"));
    let b = u32::from_le_bytes(payload[8..12].try_into().expect("4 bytes"));
    Ok((h.id, Op { kind, a, b }))
}

/// The file name of the op log that starts at `first_seq`.
pub(crate) fn file_name(first_seq: u64) -> String {
    format!("ops-{first_seq:016}.log")
}

fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("ops-")?.strip_suffix(".log")?;
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

/// Op log files in `dir`, by first seq.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_file_name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The op log file being appended to.
#[derive(Debug)]
pub(crate) struct OpFile {
    pub(crate) path: PathBuf,
    /// Shared with syncing threads, which sync it without holding the writer lock.
    pub(crate) file: Arc<File>,
    /// Bytes written so far: where the next record goes.
    pub(crate) len: u64,
}

impl OpFile {
    /// Creates an empty op log starting at `first_seq` (the directory entry is synced).
    pub(crate) fn create(dir: &Path, first_seq: u64) -> Result<OpFile> {
        let path = dir.join(file_name(first_seq));
        let file = fileio::open(
            OpenOptions::new().read(true).write(true).create_new(true),
            &path,
        )
        .context(|| format!("creating graph op log {}", path.display()))?;
        sync_dir(dir)?;
        Ok(OpFile {
            path,
            file: Arc::new(file),
            len: 0,
        })
    }

    /// Opens an existing op log to append after its first `len` bytes.
    pub(crate) fn reopen(path: &Path, len: u64) -> Result<OpFile> {
        let file = fileio::open(OpenOptions::new().read(true).write(true), path)
            .context(|| format!("opening graph op log {}", path.display()))?;
        Ok(OpFile {
            path: path.to_path_buf(),
            file: Arc::new(file),
            len,
        })
    }

    /// Writes one op; the caller poisons on error.
    pub(crate) fn append(&mut self, seq: u64, op: Op) -> std::io::Result<()> {
        fileio::write_all_at(&self.file, &self.path, &encode(seq, op), self.len)?;
        self.len += RECORD_BYTES as u64;
        Ok(())
    }
}

/// What reading the op logs found.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Ops after the snapshot, in seq order.
    pub(crate) ops: Vec<(u64, Op)>,
    /// The last op seq in the logs (or the snapshot's, when no op follows it).
    pub(crate) last_seq: u64,
    /// The last file and the length of its valid part, to append after.
    pub(crate) last_file: Option<(PathBuf, u64)>,
    /// A torn tail of the last file: offset and reason.
    pub(crate) torn: Option<(PathBuf, u64, String)>,
    /// Files wholly covered by the snapshot.
    pub(crate) covered: Vec<PathBuf>,
}

/// Reads every op log of `dir`, keeping the ops after `snapshot_seq`. A bad record with
/// a valid one after it, or a gap in the seqs, is corruption; a bad tail of the last
/// file is torn (the caller cuts it off).
pub(crate) fn replay(dir: &Path, snapshot_seq: u64) -> Result<Replay> {
    let files = list(dir)?;
    let mut out = Replay {
        last_seq: snapshot_seq,
        ..Default::default()
    };
    let count = files.len();
    let mut expected: Option<u64> = None;
    for (i, (first_seq, path)) in files.into_iter().enumerate() {
        let last_file = i + 1 == count;
        let bytes =
            fs::read(&path).context(|| format!("reading graph op log {}", path.display()))?;
        let mut pos = 0usize;
        let mut file_last_seq = None;
        while pos < bytes.len() {
            match decode(&bytes, pos) {
                Ok((seq, op)) => {
                    let due = expected.unwrap_or(first_seq);
                    if seq != due {
                        return Err(Error::corrupt(
                            &path,
                            pos as u64,
                            format!("op seq {seq} where {due} is due"),
                        ));
                    }
                    expected = Some(seq + 1);
                    file_last_seq = Some(seq);
                    if seq > snapshot_seq {
                        out.ops.push((seq, op));
                        out.last_seq = seq;
                    }
                    pos += RECORD_BYTES;
                }
                Err(reason) => {
                    let valid_after = (pos + frame::ALIGN..bytes.len())
                        .step_by(frame::ALIGN)
                        .find(|&q| decode(&bytes, q).is_ok());
                    if let Some(q) = valid_after {
                        return Err(Error::corrupt(
                            &path,
                            pos as u64,
                            format!("{reason}; a valid op record follows at byte {q}"),
                        ));
                    }
                    if !last_file {
                        return Err(Error::corrupt(
                            &path,
                            pos as u64,
                            format!("{reason} in an op log that is not the last"),
                        ));
                    }
                    out.torn = Some((path.clone(), pos as u64, reason));
                    break;
                }
            }
        }
        if file_last_seq.is_some_and(|s| s <= snapshot_seq) && !last_file {
            out.covered.push(path.clone());
        }
        if last_file {
            out.last_file = Some((path, pos as u64));
        }
    }
    if let Some(due) = expected
        && due <= snapshot_seq
    {
        // The logs end before the snapshot: fine, the snapshot covers them.
        out.last_seq = snapshot_seq;
    }
    if let Some(&(seq, _)) = out.ops.first()
        && seq != snapshot_seq + 1
    {
        return Err(Error::corrupt(
            dir,
            0,
            format!("the snapshot covers ops up to {snapshot_seq} but the op logs resume at {seq}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let op = Op {
            kind: OpKind::Block,
            a: 7,
            b: 4_000_000_000,
        };
        let record = encode(42, op);
        assert_eq!(decode(&record, 0), Ok((42, op)));
        for byte in 0..RECORD_BYTES - 4 {
            let mut damaged = record;
            damaged[byte] ^= 0x01;
            if (4..8).contains(&byte) || byte >= HEADER_BYTES + PAYLOAD_BYTES {
                continue; // the crc itself, and the padding
            }
            assert!(decode(&damaged, 0).is_err(), "flip in byte {byte}");
        }
    }

    #[test]
    fn replay_cuts_a_torn_tail_and_refuses_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = OpFile::create(dir.path(), 1).unwrap();
        let op = |a| Op {
            kind: OpKind::Follow,
            a,
            b: a + 1,
        };
        for seq in 1..=3 {
            f.append(seq, op(seq as u32)).unwrap();
        }
        f.file.write_all_at(&encode(4, op(4))[..20], f.len).unwrap();
        let r = replay(dir.path(), 0).unwrap();
        assert_eq!(r.ops.len(), 3);
        assert_eq!(r.last_seq, 3);
        assert!(r.torn.is_some());
        assert_eq!(r.last_file.as_ref().unwrap().1, 3 * RECORD_BYTES as u64);
        let r = replay(dir.path(), 2).unwrap();
        assert_eq!(r.ops, vec![(3, op(3))]);

        // Damage before a good record: corruption.
        let mut bytes = fs::read(&f.path).unwrap();
        bytes[HEADER_BYTES + 5] ^= 1;
        fs::write(&f.path, &bytes).unwrap();
        assert!(matches!(
            replay(dir.path(), 0),
            Err(Error::Corrupt { offset: 0, .. })
        ));
    }
}
