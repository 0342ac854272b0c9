//! Reading a segment's bytes back: the recovery scan, shared by `open`, `check` and the
//! fuzz targets. Pure: it takes bytes and says what they hold, it changes nothing.
//!
//! The rule it implements (the durability contract): a bad record is a *torn tail* when
//! no valid record follows it anywhere in the segment, or when it lies past the
//! segment's synced mark (the records from there on were written after the last
//! `fdatasync` began: none was acknowledged as durable, and a power loss may keep a
//! later one and lose an earlier one); then recovery may cut it off, with everything
//! after it. A bad record followed by a valid one before the mark (or in a segment with
//! no mark) is corruption and is reported with its offset, never skipped.

use rkyv::util::AlignedVec;

use super::frame::{self, HEADER_BYTES, Tag};
use super::segment::{self, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::notice;

/// One well-formed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordInfo {
    /// Byte offset of the record header in the segment.
    pub(crate) offset: u64,
    pub(crate) tag: Tag,
    /// The notice id (for a tombstone: the id it deletes).
    pub(crate) id: u64,
    /// Payload bytes.
    pub(crate) len: u32,
    /// For a scrubbed record: whether the payload still holds non-zero bytes (a scrub
    /// that a crash interrupted; recovery finishes it).
    pub(crate) scrub_unfinished: bool,
}

/// What follows the last good record of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Only zeros.
    Clean,
    /// `bytes` bytes of garbage from `end`, with no valid record after them, or past
    /// the synced mark: writes that a crash cut short. Recovery zeroes them.
    Torn { bytes: u64, reason: String },
    /// A bad record at `offset` with a valid record after it, or a record that is
    /// well-formed but inconsistent with the ones before it.
    Corrupt { offset: u64, reason: String },
}

/// The result of scanning one segment.
#[derive(Clone, Debug)]
pub(crate) struct SegmentScan {
    pub(crate) header: SegmentHeader,
    pub(crate) records: Vec<RecordInfo>,
    /// Offset just past the last good record: where the next record goes.
    pub(crate) end: u64,
    /// The id the next notice record after this segment must carry.
    pub(crate) next_id: u64,
    pub(crate) tail: Tail,
}

enum Step {
    /// A zero header: the end of the written part.
    End,
    Record(RecordInfo, usize),
    /// Not a record (torn or damaged); whether it is a torn tail depends on what follows.
    Bad(String),
    /// A well-formed record that contradicts the log (wrong id, ...): always corrupt.
    Inconsistent(String),
}

/// Scans a whole segment file's bytes. `Err` carries the offset and reason of a header
/// that cannot be read at all.
pub(crate) fn scan_segment(bytes: &[u8]) -> Result<SegmentScan, (u64, String)> {
    let header = SegmentHeader::decode(bytes).map_err(|reason| (0, reason))?;
    let synced = segment::synced_mark(bytes);
    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut next_id = header.first_id;
    let mut scratch = AlignedVec::<16>::new();
    let tail = loop {
        if pos + HEADER_BYTES > bytes.len() {
            // Too little room for another header: the segment is full; whatever is left
            // must be zero.
            break tail_after(bytes, pos, synced, "bytes after the last record".into());
        }
        match read_record(bytes, pos, next_id, &mut scratch) {
            Step::End => {
                break tail_after(bytes, pos, synced, "non-zero bytes after the end".into());
            }
            Step::Record(info, total) => {
                if matches!(info.tag, Tag::Notice | Tag::Scrubbed) {
                    next_id += 1;
                }
                records.push(info);
                pos += total;
            }
            Step::Bad(reason) => break bad_at(bytes, pos, synced, reason),
            Step::Inconsistent(reason) => {
                break Tail::Corrupt {
                    offset: pos as u64,
                    reason,
                };
            }
        }
    };
    Ok(SegmentScan {
        header,
        records,
        end: pos as u64,
        next_id,
        tail,
    })
}

/// Bytes from `pos` on are past the last good record: zeros are a clean end, anything
/// else is a torn tail unless a valid record follows (see `bad_at`).
fn tail_after(bytes: &[u8], pos: usize, synced: Option<u64>, reason: String) -> Tail {
    match last_nonzero(&bytes[pos.min(bytes.len())..]) {
        None => Tail::Clean,
        Some(_) => bad_at(bytes, pos, synced, reason),
    }
}

/// A bad record at `pos`: a torn tail when no valid record follows, or when `pos` is
/// at or past the synced mark `synced`; corruption otherwise.
fn bad_at(bytes: &[u8], pos: usize, synced: Option<u64>, reason: String) -> Tail {
    let reason = match valid_record_after(bytes, pos) {
        None => reason,
        Some(valid) => match synced {
            Some(mark) if pos as u64 >= mark => format!(
                "{reason}; a valid record follows at byte {valid}, but from here on the \
                 segment lies past its synced mark (byte {mark})"
            ),
            _ => {
                return Tail::Corrupt {
                    offset: pos as u64,
                    reason: format!("{reason}; a valid record follows at byte {valid}"),
                };
            }
        },
    };
    let garbage_end = pos + last_nonzero(&bytes[pos..]).map_or(0, |i| i + 1);
    Tail::Torn {
        bytes: (garbage_end - pos) as u64,
        reason,
    }
}

fn read_record(bytes: &[u8], pos: usize, next_id: u64, scratch: &mut AlignedVec<16>) -> Step {
    let head = &bytes[pos..pos + HEADER_BYTES];
    if head.iter().all(|&b| b == 0) {
        return Step::End;
    }
    let h = frame::decode_header(head);
    if h.len == 0 {
        return Step::Bad("record length 0".into());
    }
    let total = frame::record_bytes(h.len as usize);
    if total > bytes.len() - pos {
        return Step::Bad(format!("record length {} runs past the segment end", h.len));
    }
    if !frame::version_known(h.version, h.tag_byte) {
        return Step::Bad(format!("unknown record version {}", h.version));
    }
    let Some(tag) = Tag::from_byte(h.tag_byte)
        .filter(|t| !matches!(t, Tag::GraphOp | Tag::Registry | Tag::Outbox))
    else {
        return Step::Bad(format!("unknown record tag {}", h.tag_byte));
    };
    let payload = &bytes[pos + HEADER_BYTES..pos + HEADER_BYTES + h.len as usize];
    let mut info = RecordInfo {
        offset: pos as u64,
        tag,
        id: h.id,
        len: h.len,
        scrub_unfinished: false,
    };
    match tag {
        Tag::Notice => {
            if !frame::crc_matches(head, payload) {
                return Step::Bad("checksum mismatch".into());
            }
            let aligned = if payload.as_ptr().align_offset(16) == 0 {
                payload
            } else {
                scratch.clear();
                scratch.extend_from_slice(payload);
                &scratch[..]
            };
            if let Err(reason) = notice::check_archived(aligned, h.version) {
                return Step::Inconsistent(reason);
            }
            if h.id != next_id {
                return Step::Inconsistent(format!(
                    "notice record carries id {} where id {next_id} is due",
                    h.id
                ));
            }
        }
        Tag::Tombstone => {
            if !frame::crc_matches(head, payload) {
                return Step::Bad("checksum mismatch".into());
            }
            if payload.len() != 8
                || u64::from_le_bytes(payload.try_into().expect("8 bytes")) != h.id
            {
                return Step::Inconsistent("tombstone payload does not repeat its id".into());
            }
            if h.id == 0 || h.id >= next_id {
                return Step::Inconsistent(format!(
                    "tombstone for notice {} which is not before it",
                    h.id
                ));
            }
        }
        Tag::Scrubbed => {
            if h.id != next_id {
                return Step::Inconsistent(format!(
                    "scrubbed record carries id {} where id {next_id} is due",
                    h.id
                ));
            }
            info.scrub_unfinished = last_nonzero(payload).is_some();
        }
        Tag::GraphOp | Tag::Registry | Tag::Outbox => unreachable!("filtered out above"),
    }
    Step::Record(info, total)
}

/// The offset of the first record after `pos` that is valid on its own (well framed,
/// checksum right; for a scrubbed record, an all-zero payload).
fn valid_record_after(bytes: &[u8], pos: usize) -> Option<u64> {
    let limit = pos + last_nonzero(&bytes[pos..])? + 1;
    let mut q = pos + frame::ALIGN;
    while q < limit && q + HEADER_BYTES <= bytes.len() {
        let head = &bytes[q..q + HEADER_BYTES];
        let h = frame::decode_header(head);
        let sane = h.len != 0
            && frame::version_known(h.version, h.tag_byte)
            && frame::record_bytes(h.len as usize) <= bytes.len() - q;
        if sane {
            let payload = &bytes[q + HEADER_BYTES..q + HEADER_BYTES + h.len as usize];
            let valid = match Tag::from_byte(h.tag_byte) {
                Some(Tag::Notice | Tag::Tombstone) => frame::crc_matches(head, payload),
                Some(Tag::Scrubbed) => last_nonzero(payload).is_none(),
                Some(Tag::GraphOp | Tag::Registry | Tag::Outbox) | None => false,
            };
            if valid {
                return Some(q as u64);
            }
        }
        q += frame::ALIGN;
    }
    None
}

/// Index of the last non-zero byte, word by word (the zero tail can be 64 MiB).
pub(crate) fn last_nonzero(bytes: &[u8]) -> Option<usize> {
    let words = bytes.len() / 8;
    let (body, rest) = bytes.split_at(words * 8);
    if let Some(i) = rest.iter().rposition(|&b| b != 0) {
        return Some(body.len() + i);
    }
    let w = body
        .chunks_exact(8)
        .rposition(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")) != 0)?;
    let i = body[w * 8..w * 8 + 8].iter().rposition(|&b| b != 0)?;
    Some(w * 8 + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::notice::{Limits, NewNotice, encode, validate};

    const SEG: usize = 4096;

    struct Builder {
        bytes: Vec<u8>,
        pos: usize,
        next_id: u64,
    }

    impl Builder {
        fn new() -> Self {
            let mut bytes = vec![0u8; SEG];
            let header = SegmentHeader {
                index: 1,
                first_id: 1,
                segment_bytes: SEG as u64,
            };
            bytes[..SEGMENT_HEADER_BYTES].copy_from_slice(&header.encode());
            Builder {
                bytes,
                pos: SEGMENT_HEADER_BYTES,
                next_id: 1,
            }
        }

        fn push(&mut self, tag: Tag, id: u64, payload: &[u8]) -> usize {
            let at = self.pos;
            let header = frame::encode_header(tag, id, payload);
            self.bytes[at..at + HEADER_BYTES].copy_from_slice(&header);
            self.bytes[at + HEADER_BYTES..at + HEADER_BYTES + payload.len()]
                .copy_from_slice(payload);
            self.pos += frame::record_bytes(payload.len());
            // Synced as written, unless a test says otherwise.
            self.mark(self.pos);
            at
        }

        /// Sets the synced mark to `end`.
        fn mark(&mut self, end: usize) {
            let mark = segment::encode_mark(end as u64);
            self.bytes[segment::MARK_AT..segment::MARK_AT + mark.len()].copy_from_slice(&mark);
        }

        fn notice(&mut self, body: &str) -> usize {
            let n = NewNotice {
                author: UserId(1),
                body: body.into(),
                ..Default::default()
            };
            let (bytes, _) = encode(
                validate(
                    &n,
                    Limits {
                        body_bytes_max: 5000,
                    },
                )
                .unwrap(),
                None,
            );
            let id = self.next_id;
            self.next_id += 1;
            self.push(Tag::Notice, id, &bytes)
        }
    }

    #[test]
    fn a_clean_segment_scans_whole() {
        let mut b = Builder::new();
        b.notice("one");
        b.notice("two");
        b.push(Tag::Tombstone, 1, &1u64.to_le_bytes());
        let scan = scan_segment(&b.bytes).unwrap();
        assert_eq!(scan.tail, Tail::Clean);
        assert_eq!(scan.records.len(), 3);
        assert_eq!(scan.next_id, 3);
        assert_eq!(scan.end, b.pos as u64);
    }

    #[test]
    fn a_cut_last_record_is_a_torn_tail() {
        let mut b = Builder::new();
        b.notice("one");
        let last = b.notice("two, the one that is cut");
        let full = b.pos;
        let written = last + HEADER_BYTES + frame::decode_header(&b.bytes[last..]).len as usize;
        for cut in last + 1..written {
            if b.bytes[cut..written].iter().all(|&x| x == 0) {
                continue; // zeroing zeros changes nothing: the record is still whole
            }
            let mut bytes = b.bytes.clone();
            bytes[cut..full].fill(0);
            let scan = scan_segment(&bytes).unwrap();
            assert_eq!(scan.records.len(), 1, "cut at {cut}");
            assert_eq!(scan.end, last as u64);
            assert!(
                matches!(scan.tail, Tail::Torn { .. }),
                "cut at {cut}: {:?}",
                scan.tail
            );
        }
    }

    #[test]
    fn damage_before_a_good_record_is_corruption() {
        let mut b = Builder::new();
        let first = b.notice("one");
        b.notice("two");
        b.bytes[first + HEADER_BYTES + 2] ^= 0xff;
        let scan = scan_segment(&b.bytes).unwrap();
        assert!(
            matches!(scan.tail, Tail::Corrupt { offset, .. } if offset == first as u64),
            "{:?}",
            scan.tail
        );
    }

    #[test]
    fn damage_past_the_synced_mark_is_a_torn_tail_though_good_records_follow() {
        // A power loss kept a later unsynced record and lost (or tore) an earlier one.
        let mut b = Builder::new();
        b.notice("one, synced");
        let synced = b.pos;
        let lost = b.notice("two, written after the sync");
        let kept = b.notice("three, written after the sync");
        b.mark(synced);
        for (what, damage) in [("zeroed", 0u8), ("torn", 0x5a)] {
            let mut bytes = b.bytes.clone();
            bytes[lost..kept].fill(damage);
            let scan = scan_segment(&bytes).unwrap();
            assert_eq!(scan.records.len(), 1, "{what}");
            assert_eq!(scan.end, lost as u64, "{what}");
            match &scan.tail {
                // Everything from the lost record on is cut, the later record too.
                Tail::Torn { bytes: cut, .. } => {
                    let cut_end = lost + *cut as usize;
                    assert!(cut_end > kept && cut_end <= b.pos, "{what}: cut {cut}");
                    assert!(bytes[cut_end..].iter().all(|&x| x == 0), "{what}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        // The same damage before the mark is corruption.
        let mut bytes = b.bytes.clone();
        b.mark(kept);
        bytes[..SEGMENT_HEADER_BYTES].copy_from_slice(&b.bytes[..SEGMENT_HEADER_BYTES]);
        bytes[lost..kept].fill(0);
        let scan = scan_segment(&bytes).unwrap();
        assert!(
            matches!(scan.tail, Tail::Corrupt { offset, .. } if offset == lost as u64),
            "{:?}",
            scan.tail
        );
        // And so it is with a damaged mark: nothing is known about what was synced.
        bytes[segment::MARK_AT] ^= 1;
        let scan = scan_segment(&bytes).unwrap();
        assert!(matches!(scan.tail, Tail::Corrupt { .. }), "{:?}", scan.tail);
    }

    #[test]
    fn garbage_after_the_end_is_torn() {
        let mut b = Builder::new();
        b.notice("one");
        let end = b.pos;
        b.bytes[end + 100..end + 200].fill(0xab);
        let scan = scan_segment(&b.bytes).unwrap();
        assert_eq!(scan.end, end as u64);
        assert!(
            matches!(scan.tail, Tail::Torn { bytes: 200, .. }),
            "{:?}",
            scan.tail
        );
    }

    #[test]
    fn a_wrong_id_is_corruption_even_at_the_tail() {
        let mut b = Builder::new();
        b.notice("one");
        b.next_id = 5;
        b.notice("skips ids");
        let scan = scan_segment(&b.bytes).unwrap();
        assert!(matches!(scan.tail, Tail::Corrupt { .. }), "{:?}", scan.tail);
    }

    #[test]
    fn last_nonzero_finds_the_last_byte() {
        let mut v = vec![0u8; 1000];
        assert_eq!(last_nonzero(&v), None);
        v[3] = 1;
        assert_eq!(last_nonzero(&v), Some(3));
        v[998] = 1;
        assert_eq!(last_nonzero(&v), Some(998));
        v[999] = 1;
        assert_eq!(last_nonzero(&v), Some(999));
    }
}
