//! Record framing: the 16-byte header in front of every record, and its checksum.
//!
//! ```text
//! [len: u32 LE][crc32c: u32 LE][version: u8][tag: u8][id: u48 LE][payload: len bytes][zero pad to 16]
//! ```
//!
//! * `len` counts payload bytes only and is never 0, so a zero header reads as "end of
//!   log": a preallocated, zero-filled segment tail is never mistaken for a record.
//! * `crc32c` covers `len`, then bytes 8..16 of the header, then the payload; not the
//!   padding. A scrubbed (deleted) notice keeps its original `crc32c`, which then no
//!   longer matches: such records are recognised by their tag and vouched for by a
//!   tombstone instead (see `scan`).
//! * `id` is the notice id for notice and scrubbed records, the deleted notice's id for a
//!   tombstone. 48 bits are 2.8e14 notices.
//! * Records start 16-byte aligned, so the rkyv payload after the header is 16-byte
//!   aligned in the map.

/// Bytes in a record header.
pub(crate) const HEADER_BYTES: usize = 16;
/// Records and payloads start at multiples of this.
pub(crate) const ALIGN: usize = 16;
/// The record format version of every record but one kind: tombstones, scrubbed
/// records, graph ops, registry entries, outbox records, and notices addressed to at most one group.
pub(crate) const VERSION: u8 = 1;
/// The record format version of a notice addressed to two or more groups: its payload
/// is a `StoredNoticeV2` archive (see `notice.rs`).
pub(crate) const VERSION_GROUPS: u8 = 2;
/// The record format version of a notice with an explicit time it is placed by: its
/// payload is a `StoredNoticeV3` archive (see `notice.rs` and `order.rs`).
pub(crate) const VERSION_PUBLISHED: u8 = 3;

/// Whether a header's version byte is one this build reads for `tag` (a notice, and
/// the scrubbed record a deleted notice becomes, may be of either version; everything
/// else is of [`VERSION`]).
pub(crate) fn version_known(version: u8, tag_byte: u8) -> bool {
    version == VERSION
        || ((version == VERSION_GROUPS || version == VERSION_PUBLISHED)
            && (tag_byte == Tag::Notice as u8 || tag_byte == Tag::Scrubbed as u8))
}
/// The largest id a header can carry.
pub(crate) const ID_MAX: u64 = (1 << 48) - 1;

const _: () = assert!(HEADER_BYTES.is_multiple_of(ALIGN));

/// What a record holds. Tags start at 1 so that zero is never a valid tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    /// An rkyv-archived `StoredNotice`.
    Notice = 1,
    /// The deletion of notice `id`; payload: the id again, u64 LE.
    Tombstone = 2,
    /// A deleted notice whose payload has been (or is being) overwritten with zeros.
    Scrubbed = 3,
    /// A follow-graph operation (in the graph's op log, never in a notice segment).
    GraphOp = 4,
    /// A group, list or tag registered (in the graph's registry, never in a notice
    /// segment).
    Registry = 5,
    /// A federation outbox record (in the engine's outbox file, never in a notice
    /// segment).
    Outbox = 6,
}

impl Tag {
    pub(crate) fn from_byte(byte: u8) -> Option<Tag> {
        match byte {
            1 => Some(Tag::Notice),
            2 => Some(Tag::Tombstone),
            3 => Some(Tag::Scrubbed),
            4 => Some(Tag::GraphOp),
            5 => Some(Tag::Registry),
            6 => Some(Tag::Outbox),
            _ => None,
        }
    }
}

/// Byte offset of the tag inside a header (the scrub rewrites this byte alone).
pub(crate) const TAG_OFFSET: usize = 9;

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: u32,
    pub(crate) crc: u32,
    pub(crate) version: u8,
    pub(crate) tag_byte: u8,
    pub(crate) id: u64,
}

/// Bytes a record with `len` payload bytes takes in a segment, header and padding included.
pub(crate) fn record_bytes(len: usize) -> usize {
    HEADER_BYTES + len.div_ceil(ALIGN) * ALIGN
}

fn checksum(header: &[u8; HEADER_BYTES], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&header[0..4]);
    let crc = crc32c::crc32c_append(crc, &header[8..16]);
    crc32c::crc32c_append(crc, payload)
}

/// Builds the header for `payload`, of format [`VERSION`].
pub(crate) fn encode_header(tag: Tag, id: u64, payload: &[u8]) -> [u8; HEADER_BYTES] {
    encode_header_version(tag, VERSION, id, payload)
}

/// Builds the header for `payload`, of format `version`.
pub(crate) fn encode_header_version(
    tag: Tag,
    version: u8,
    id: u64,
    payload: &[u8],
) -> [u8; HEADER_BYTES] {
    debug_assert!(
        version_known(version, tag as u8),
        "a version this build reads"
    );
    assert!(!payload.is_empty(), "a record payload is never empty");
    assert!(id <= ID_MAX, "ids fit in 48 bits");
    let len = u32::try_from(payload.len()).expect("payloads are bounded by the segment size");
    let mut header = [0u8; HEADER_BYTES];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[8] = version;
    header[TAG_OFFSET] = tag as u8;
    header[10..16].copy_from_slice(&id.to_le_bytes()[0..6]);
    let crc = checksum(&header, payload);
    header[4..8].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Reads the header fields at the start of `bytes` (at least [`HEADER_BYTES`] long).
pub(crate) fn decode_header(bytes: &[u8]) -> Header {
    let mut id = [0u8; 8];
    id[0..6].copy_from_slice(&bytes[10..16]);
    Header {
        len: u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")),
        crc: u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")),
        version: bytes[8],
        tag_byte: bytes[TAG_OFFSET],
        id: u64::from_le_bytes(id),
    }
}

/// Whether the header's checksum matches `payload`.
pub(crate) fn crc_matches(header_bytes: &[u8], payload: &[u8]) -> bool {
    let header: &[u8; HEADER_BYTES] = header_bytes[..HEADER_BYTES]
        .try_into()
        .expect("a header slice is HEADER_BYTES long");
    checksum(header, payload) == decode_header(header).crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let payload = b"some payload bytes";
        let header = encode_header(Tag::Notice, 123_456_789, payload);
        let decoded = decode_header(&header);
        assert_eq!(decoded.len, payload.len() as u32);
        assert_eq!(decoded.version, VERSION);
        assert_eq!(Tag::from_byte(decoded.tag_byte), Some(Tag::Notice));
        assert_eq!(decoded.id, 123_456_789);
        assert!(crc_matches(&header, payload));
    }

    #[test]
    fn every_flipped_bit_breaks_the_checksum() {
        let payload = b"0123456789abcdef-payload";
        let header = encode_header(Tag::Tombstone, ID_MAX, payload);
        for byte in (0..HEADER_BYTES).filter(|b| !(4..8).contains(b)) {
            for bit in 0..8 {
                let mut h = header;
                h[byte] ^= 1 << bit;
                assert!(!crc_matches(&h, payload), "flip of byte {byte} bit {bit}");
            }
        }
        let mut p = *payload;
        p[3] ^= 1;
        assert!(!crc_matches(&header, &p));
    }

    #[test]
    fn a_zero_header_is_never_a_record() {
        let zero = [0u8; HEADER_BYTES];
        let decoded = decode_header(&zero);
        assert_eq!(decoded.len, 0);
        assert_eq!(Tag::from_byte(decoded.tag_byte), None);
    }

    #[test]
    fn records_are_padded_to_the_alignment() {
        assert_eq!(record_bytes(1), 32);
        assert_eq!(record_bytes(16), 32);
        assert_eq!(record_bytes(17), 48);
    }
}

/// What [`scan_records`] found, besides the records it handed over.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    /// Records read.
    pub(crate) records: u64,
    /// Bytes of valid records: where the next one goes.
    pub(crate) valid_len: u64,
    /// A torn tail: its offset and why it does not decode.
    pub(crate) torn: Option<(u64, String)>,
}

/// Reads the framed records of `bytes` (the file `path`, of `what` records) in order:
/// `decode(bytes, pos)` gives a record's sequence number, the record and its length,
/// and `each(pos, record)` takes it (an error from it stops the scan). Sequence
/// numbers must run from 1 without a gap. A record that does not decode is a torn
/// tail when no valid record follows it, and [`Error::Corrupt`] when one does. Used
/// by the append-only side files: the registry and the outbox.
pub(crate) fn scan_records<T>(
    path: &std::path::Path,
    bytes: &[u8],
    what: &str,
    decode: impl Fn(&[u8], usize) -> Result<(u64, T, usize), String>,
    mut each: impl FnMut(u64, T) -> crate::Result<()>,
) -> crate::Result<Scanned> {
    let mut out = Scanned::default();
    let mut pos = 0usize;
    while pos < bytes.len() {
        match decode(bytes, pos) {
            Ok((seq, record, total)) => {
                let due = out.records + 1;
                if seq != due {
                    return Err(crate::Error::corrupt(
                        path,
                        pos as u64,
                        format!("{what} record {seq} where {due} is due"),
                    ));
                }
                each(pos as u64, record)?;
                out.records += 1;
                pos += total;
            }
            Err(reason) => {
                let valid_after = (pos + ALIGN..bytes.len())
                    .step_by(ALIGN)
                    .find(|&q| decode(bytes, q).is_ok());
                if let Some(q) = valid_after {
                    return Err(crate::Error::corrupt(
                        path,
                        pos as u64,
                        format!("{reason}; a valid {what} record follows at byte {q}"),
                    ));
                }
                out.torn = Some((pos as u64, reason));
                break;
            }
        }
    }
    out.valid_len = pos as u64;
    Ok(out)
}
