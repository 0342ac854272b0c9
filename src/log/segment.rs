//! Segment files: their header, creation (preallocated, then renamed into place), and
//! their read-only map.
//!
//! ```text
//! [magic: 8 = "FEEDSEG\0"][format: u32 LE = 2][index: u32 LE][first_id: u64 LE]
//! [segment_bytes: u64 LE]
//! [synced mark: synced_end u64 LE, crc32c of those 8 bytes u32 LE, 4 zero bytes]
//! [reserved: 12 zero bytes][crc32c of bytes 0..32 and 48..60: u32 LE]
//! [records ... from byte 64][zero tail]
//! ```
//!
//! `first_id` is the id the first notice record of the segment carries (tombstones do
//! not take ids). A segment file is `segment_bytes` long from birth (`posix_fallocate`),
//! so a full disk shows up as an error when a segment is created, never as SIGBUS.
//!
//! The synced mark is the only part of the header written after creation: before each
//! `fdatasync` of the segment the log writes there the end of the records that sync
//! covers, so after a power loss recovery knows which records were never acknowledged
//! as durable (see `scan`). The header checksum leaves it out; it has its own. Format 1
//! (before the mark) had 28 reserved bytes under a checksum of bytes 0..60; it is still
//! read, as a segment with no mark.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, IoContext, Result};
use crate::fileio;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes before the first record.
pub(crate) const SEGMENT_HEADER_BYTES: usize = 64;
const MAGIC: [u8; 8] = *b"FEEDSEG\0";
/// The segment format written by this version.
pub(crate) const FORMAT: u32 = 2;
/// The format before the synced mark, still read.
const FORMAT_UNMARKED: u32 = 1;
/// Where the synced mark lives in the header, and its length.
pub(crate) const MARK_AT: usize = 32;
const MARK_BYTES: usize = 16;
const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(super::frame::ALIGN));

/// The decoded header of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) index: u32,
    pub(crate) first_id: u64,
    pub(crate) segment_bytes: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        b[12..16].copy_from_slice(&self.index.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.segment_bytes.to_le_bytes());
        // Nothing is synced yet but the header itself.
        b[MARK_AT..MARK_AT + MARK_BYTES].copy_from_slice(&encode_mark(SEGMENT_HEADER_BYTES as u64));
        let crc = header_crc(&b);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header; the error says what is wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(format!(
                "file is {} bytes, shorter than a segment header",
                bytes.len()
            ));
        }
        if bytes[0..8] != MAGIC {
            return Err("bad magic: not a feedcore segment".into());
        }
        let crc = u32::from_le_bytes(bytes[60..64].try_into().expect("4 bytes"));
        let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        let expected = match format {
            FORMAT => header_crc(bytes),
            FORMAT_UNMARKED => crc32c::crc32c(&bytes[0..60]),
            _ => {
                return Err(format!(
                    "segment format {format}, this build reads formats {FORMAT_UNMARKED} and {FORMAT}"
                ));
            }
        };
        if expected != crc {
            return Err("segment header checksum mismatch".into());
        }
        let header = SegmentHeader {
            index: u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")),
            first_id: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
            segment_bytes: u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes")),
        };
        if header.segment_bytes != bytes.len() as u64 {
            return Err(format!(
                "header says {} bytes but the file has {}",
                header.segment_bytes,
                bytes.len()
            ));
        }
        if header.first_id == 0 {
            return Err("first id 0 (ids start at 1)".into());
        }
        Ok(header)
    }
}

/// The header checksum of format 2: bytes 0..32 and 48..60 (not the synced mark).
fn header_crc(b: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&b[0..MARK_AT]), &b[MARK_AT + MARK_BYTES..60])
}

/// The synced mark saying that the records before byte `end` were synced.
pub(crate) fn encode_mark(end: u64) -> [u8; MARK_BYTES] {
    let mut m = [0u8; MARK_BYTES];
    m[0..8].copy_from_slice(&end.to_le_bytes());
    let crc = crc32c::crc32c(&m[0..8]);
    m[8..12].copy_from_slice(&crc.to_le_bytes());
    m
}

/// The synced mark of a segment whose header decodes: the end of the records its last
/// `fdatasync` began with (at least the header's end). `None` for a format 1 segment,
/// or a mark that is damaged or points outside the segment: then nothing is known.
pub(crate) fn synced_mark(bytes: &[u8]) -> Option<u64> {
    let format = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    if format != FORMAT {
        return None;
    }
    let m = bytes.get(MARK_AT..MARK_AT + MARK_BYTES)?;
    let end = u64::from_le_bytes(m[0..8].try_into().ok()?);
    let crc = u32::from_le_bytes(m[8..12].try_into().ok()?);
    (crc == crc32c::crc32c(&m[0..8])
        && (SEGMENT_HEADER_BYTES as u64..=bytes.len() as u64).contains(&end))
    .then_some(end)
}

/// The file name of segment `index`.
pub(crate) fn file_name(index: u32) -> String {
    format!("{index:08}.seg")
}

/// Parses a segment file name back into its index.
pub(crate) fn parse_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// An open segment: the file (for writes and fsync) and its read-only map.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) header: SegmentHeader,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// The format of its header: a format 1 segment has no room for a synced mark.
    format: u32,
    /// The synced mark this process last wrote (0: none), so an unchanged mark is not
    /// written again. Written by whoever writes the mark (the sync leader, `sync`, a
    /// seal, open); a stale value only costs a rewrite of the same bytes.
    marked: AtomicU64,
    map: Mmap,
}

impl Segment {
    /// Opens an existing segment file and maps it (read-only map; the file itself is
    /// opened for writing when `writable`).
    pub(crate) fn open(path: &Path, writable: bool) -> Result<Segment> {
        let file = fileio::open(OpenOptions::new().read(true).write(writable), path)
            .context(|| format!("opening segment {}", path.display()))?;
        let map = map_file(&file, path)?;
        let header = SegmentHeader::decode(&map).map_err(|r| Error::corrupt(path, 0, r))?;
        let format = u32::from_le_bytes(map[8..12].try_into().expect("4 bytes"));
        Ok(Segment {
            header,
            path: path.to_path_buf(),
            file,
            format,
            marked: AtomicU64::new(0),
            map,
        })
    }

    /// Creates segment `header.index` in `dir`: a temporary file is preallocated,
    /// given its header, synced, renamed into place, and the directory synced, so a
    /// segment file under its final name always has a whole header.
    pub(crate) fn create(dir: &Path, header: SegmentHeader) -> Result<Segment> {
        let path = dir.join(file_name(header.index));
        let tmp = dir.join(format!("{}.tmp", file_name(header.index)));
        let build = || -> Result<File> {
            let file = fileio::open(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true),
                &tmp,
            )
            .context(|| format!("creating segment {}", tmp.display()))?;
            fileio::preallocate(&file, &tmp, header.segment_bytes).context(|| {
                format!(
                    "preallocating {} bytes for {}",
                    header.segment_bytes,
                    tmp.display()
                )
            })?;
            fileio::write_all_at(&file, &tmp, &header.encode(), 0)
                .context(|| format!("writing segment header of {}", tmp.display()))?;
            fileio::sync_all(&file, &tmp)
                .context(|| format!("syncing new segment {}", tmp.display()))?;
            fileio::rename(&tmp, &path)
                .context(|| format!("renaming {} into place", tmp.display()))?;
            sync_dir(dir)?;
            Ok(file)
        };
        let file = match build() {
            Ok(file) => file,
            Err(e) => {
                // Nothing refers to the temporary file; removing it gives back the space.
                let _ = fileio::remove_file(&tmp);
                return Err(e);
            }
        };
        let map = map_file(&file, &path)?;
        Ok(Segment {
            header,
            path,
            file,
            format: FORMAT,
            marked: AtomicU64::new(SEGMENT_HEADER_BYTES as u64),
            map,
        })
    }

    /// Records in the header that the records before byte `end` are about to be synced
    /// Records in the header that the records before byte `end` are on disk (call it
    /// only once a completed sync covered them; the next sync makes the mark durable).
    /// Nothing for a format 1 segment: its header has no mark, and those bytes are
    /// under its checksum; nothing either when the mark already says `end`.
    pub(crate) fn mark_synced(&self, end: u64) -> io::Result<()> {
        if self.format != FORMAT || self.marked.load(Ordering::Relaxed) == end {
            return Ok(());
        }
        fileio::write_all_at(&self.file, &self.path, &encode_mark(end), MARK_AT as u64)?;
        self.marked.store(end, Ordering::Relaxed);
        Ok(())
    }

    /// The mark last written by this process (0: none yet).
    pub(crate) fn marked(&self) -> u64 {
        self.marked.load(Ordering::Relaxed)
    }

    /// The segment's size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The whole map as a slice, for recovery and checks before any writer runs.
    ///
    /// Only call this while no write into this segment can happen (during `open`,
    /// before the log is shared), so the slice's bytes do not change while borrowed.
    pub(crate) fn bytes_quiescent(&self) -> &[u8] {
        &self.map
    }

    /// A pointer to byte `offset` of the map, for reading published records.
    pub(crate) fn ptr_at(&self, offset: usize) -> *const u8 {
        assert!(offset <= self.map.len(), "offset inside the segment");
        // SAFETY: `offset <= len`, so the result stays inside (or one past) the map.
        unsafe { self.map.as_ptr().add(offset) }
    }
}

fn map_file(file: &File, path: &Path) -> Result<Mmap> {
    // SAFETY: the file belongs to a directory this process holds the lock of (or that
    // `check` only reads), and feedcore never truncates a segment while it is mapped.
    // Bytes that change after mapping (appends into the zero tail, scrubs of deleted
    // records) are only read as slices after they are published, and scrubbed only
    // once no reader can hold them (see `NoticeLog::delete`).
    unsafe { MmapOptions::new().map(file) }.context(|| format!("mapping {}", path.display()))
}

/// Makes the directory entries of `dir` durable (after a create or a rename).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fileio::sync_dir(dir).context(|| format!("syncing directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4 KiB segment file with the header of segment `index`, starting at `first_id`.
    fn file_with(index: u32, first_id: u64) -> (SegmentHeader, Vec<u8>) {
        let header = SegmentHeader {
            index,
            first_id,
            segment_bytes: 4096,
        };
        let mut file = vec![0u8; 4096];
        file[..SEGMENT_HEADER_BYTES].copy_from_slice(&header.encode());
        (header, file)
    }

    #[test]
    fn header_round_trips_and_refuses_damage() {
        let (header, file) = file_with(7, 1234);
        assert_eq!(SegmentHeader::decode(&file), Ok(header));
        assert_eq!(synced_mark(&file), Some(SEGMENT_HEADER_BYTES as u64));
        for byte in 0..SEGMENT_HEADER_BYTES {
            let mut damaged = file.clone();
            damaged[byte] ^= 0x10;
            if (MARK_AT..MARK_AT + MARK_BYTES).contains(&byte) {
                // The mark has its own checksum: a damaged mark is no mark, the
                // header still reads.
                assert_eq!(SegmentHeader::decode(&damaged), Ok(header), "byte {byte}");
                if byte < MARK_AT + 12 {
                    assert_eq!(synced_mark(&damaged), None, "byte {byte}");
                }
            } else {
                assert!(SegmentHeader::decode(&damaged).is_err(), "byte {byte}");
            }
        }
        assert!(SegmentHeader::decode(&file[..4000]).is_err());
    }

    #[test]
    fn the_synced_mark_round_trips_and_stays_inside_the_segment() {
        let (_, mut file) = file_with(1, 1);
        file[MARK_AT..MARK_AT + MARK_BYTES].copy_from_slice(&encode_mark(1000));
        assert_eq!(synced_mark(&file), Some(1000));
        file[MARK_AT..MARK_AT + MARK_BYTES].copy_from_slice(&encode_mark(5000));
        assert_eq!(synced_mark(&file), None, "past the end");
        file[MARK_AT..MARK_AT + MARK_BYTES].copy_from_slice(&encode_mark(8));
        assert_eq!(synced_mark(&file), None, "inside the header");
    }

    #[test]
    fn a_format_1_header_still_reads_without_a_mark() {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_UNMARKED.to_le_bytes());
        b[12..16].copy_from_slice(&3u32.to_le_bytes());
        b[16..24].copy_from_slice(&77u64.to_le_bytes());
        b[24..32].copy_from_slice(&4096u64.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        let mut file = vec![0u8; 4096];
        file[..SEGMENT_HEADER_BYTES].copy_from_slice(&b);
        let header = SegmentHeader::decode(&file).unwrap();
        assert_eq!((header.index, header.first_id), (3, 77));
        assert_eq!(synced_mark(&file), None);
        file[8] = 9;
        assert!(
            SegmentHeader::decode(&file)
                .unwrap_err()
                .contains("format 9")
        );
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("00000042.seg.tmp"), None);
    }
}
