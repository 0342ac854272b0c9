//! The outbox file's records, framed like the notice log's (`log/frame.rs`: length,
//! CRC-32C, version 1, tag 6, the record's sequence number in the 48-bit id field).
//!
//! ```text
//! payload: [op: u8][kind: u8][attempt: u16 LE][server: u32 LE][notice: u64 LE][value: u64 LE]
//!          then, for op 1 (enqueue) only: [count: u32 LE][count x server: u32 LE]
//! ```
//!
//! `kind` is 1 for a create, 2 for a delete (0 where no delivery is named). For an
//! enqueue, `server` holds the notice's author and the servers follow; for a failure
//! `value` is the time the delivery is due again (ms since the Unix epoch); for a
//! server that starts failing, the time it started.

use crate::log::frame::{self, HEADER_BYTES, Tag};

/// Bytes of a payload before an enqueue's server list.
pub(crate) const FIXED_BYTES: usize = 24;
/// At most this many servers in one enqueue record.
pub(crate) const SERVERS_PER_RECORD_MAX: usize = 1 << 20;

/// Whether a delivery carries a notice or its deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryKind {
    /// The notice itself (an ActivityPub `Create`).
    Create,
    /// The notice's deletion (an ActivityPub `Delete`).
    Delete,
}

impl DeliveryKind {
    pub(crate) fn byte(self) -> u8 {
        match self {
            DeliveryKind::Create => 1,
            DeliveryKind::Delete => 2,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<DeliveryKind> {
        match b {
            1 => Some(DeliveryKind::Create),
            2 => Some(DeliveryKind::Delete),
            _ => None,
        }
    }
}

/// One record of the outbox file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Deliveries of `notice` (by `author`) to each of `servers`, attempt 0, due now.
    Enqueue {
        notice: u64,
        author: u32,
        kind: DeliveryKind,
        servers: Vec<u32>,
    },
    /// The delivery is done (acked, or dropped because its notice is gone).
    Done {
        notice: u64,
        server: u32,
        kind: DeliveryKind,
    },
    /// The delivery failed for the `attempt`-th time and is due again at `due_ms`.
    Failed {
        notice: u64,
        server: u32,
        kind: DeliveryKind,
        attempt: u16,
        due_ms: u64,
    },
    /// The server failed a delivery at `since_ms` after its last success.
    ServerFailing { server: u32, since_ms: u64 },
    /// The server took a delivery again.
    ServerOk { server: u32 },
    /// The server failed for 7 days: its pending deliveries are dropped, and no new
    /// ones are recorded for it.
    ServerUnavailable { server: u32 },
    /// The operator says the server is back.
    ServerRecovered { server: u32 },
    /// Every pending create of `notice` is dropped (the notice was deleted).
    Cancel { notice: u64 },
    /// Every local notice up to `notice` was examined for remote followers.
    Mark { notice: u64 },
}

impl Record {
    fn op(&self) -> u8 {
        match self {
            Record::Enqueue { .. } => 1,
            Record::Done { .. } => 2,
            Record::Failed { .. } => 3,
            Record::ServerFailing { .. } => 4,
            Record::ServerOk { .. } => 5,
            Record::ServerUnavailable { .. } => 6,
            Record::ServerRecovered { .. } => 7,
            Record::Cancel { .. } => 8,
            Record::Mark { .. } => 9,
        }
    }
}

/// Appends the framed record `r` with sequence number `seq` to `out`.
pub(crate) fn encode(seq: u64, r: &Record, out: &mut Vec<u8>) {
    let (kind, attempt, server, notice, value) = match *r {
        Record::Enqueue {
            notice,
            author,
            kind,
            ..
        } => (kind.byte(), 0, author, notice, 0),
        Record::Done {
            notice,
            server,
            kind,
        } => (kind.byte(), 0, server, notice, 0),
        Record::Failed {
            notice,
            server,
            kind,
            attempt,
            due_ms,
        } => (kind.byte(), attempt, server, notice, due_ms),
        Record::ServerFailing { server, since_ms } => (0, 0, server, 0, since_ms),
        Record::ServerOk { server }
        | Record::ServerUnavailable { server }
        | Record::ServerRecovered { server } => (0, 0, server, 0, 0),
        Record::Cancel { notice } | Record::Mark { notice } => (0, 0, 0, notice, 0),
    };
    let mut payload = Vec::with_capacity(FIXED_BYTES);
    payload.extend_from_slice(&[r.op(), kind]);
    payload.extend_from_slice(&attempt.to_le_bytes());
    payload.extend_from_slice(&server.to_le_bytes());
    payload.extend_from_slice(&notice.to_le_bytes());
    payload.extend_from_slice(&value.to_le_bytes());
    if let Record::Enqueue { servers, .. } = r {
        payload.reserve(4 + 4 * servers.len());
        payload.extend_from_slice(&(servers.len() as u32).to_le_bytes());
        for s in servers {
            payload.extend_from_slice(&s.to_le_bytes());
        }
    }
    frame_payload(seq, &payload, out);
}

/// Appends `payload` framed as outbox record `seq` to `out`.
pub(crate) fn frame_payload(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&frame::encode_header(Tag::Outbox, seq, payload));
    out.extend_from_slice(payload);
    out.resize(start + frame::record_bytes(payload.len()), 0);
}

/// Decodes the record at `pos`: `Ok((seq, record, bytes it takes))`, or why not.
pub(crate) fn decode(bytes: &[u8], pos: usize) -> Result<(u64, Record, usize), String> {
    let Some(head) = bytes.get(pos..).and_then(|b| b.get(..HEADER_BYTES)) else {
        return Err("less than a header left".into());
    };
    let h = frame::decode_header(head);
    if h.version != frame::VERSION || h.tag_byte != Tag::Outbox as u8 {
        return Err("not an outbox record header".into());
    }
    let len = h.len as usize;
    if !(FIXED_BYTES..=FIXED_BYTES + 4 + 4 * SERVERS_PER_RECORD_MAX).contains(&len) {
        return Err(format!("record length {len} out of range"));
    }
    let total = frame::record_bytes(len);
    if bytes.len() - pos < total {
        return Err("record runs past the end of the file".into());
    }
    let payload = &bytes[pos + HEADER_BYTES..pos + HEADER_BYTES + len];
    if !frame::crc_matches(head, payload) {
        return Err("checksum mismatch".into());
    }
    let u16_at = |at: usize| u16::from_le_bytes([payload[at], payload[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(payload[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
    let (op, kind_byte, attempt) = (payload[0], payload[1], u16_at(2));
    let (server, notice, value) = (u32_at(4), u64_at(8), u64_at(16));
    let kind = || DeliveryKind::from_byte(kind_byte).ok_or(format!("unknown kind {kind_byte}"));
    let fixed = |r: Record| {
        if len == FIXED_BYTES {
            Ok(r)
        } else {
            Err(format!("op {op} with {len} payload bytes"))
        }
    };
    let record = match op {
        1 => {
            let count = payload
                .get(FIXED_BYTES..FIXED_BYTES + 4)
                .map(|_| u32_at(FIXED_BYTES));
            let Some(count) = count.filter(|&c| FIXED_BYTES + 4 + 4 * c as usize == len) else {
                return Err("enqueue server count does not match the record length".into());
            };
            let servers = (0..count as usize)
                .map(|i| u32_at(FIXED_BYTES + 4 + 4 * i))
                .collect();
            Record::Enqueue {
                notice,
                author: server,
                kind: kind()?,
                servers,
            }
        }
        2 => fixed(Record::Done {
            notice,
            server,
            kind: kind()?,
        })?,
        3 => fixed(Record::Failed {
            notice,
            server,
            kind: kind()?,
            attempt,
            due_ms: value,
        })?,
        4 => fixed(Record::ServerFailing {
            server,
            since_ms: value,
        })?,
        5 => fixed(Record::ServerOk { server })?,
        6 => fixed(Record::ServerUnavailable { server })?,
        7 => fixed(Record::ServerRecovered { server })?,
        8 => fixed(Record::Cancel { notice })?,
        9 => fixed(Record::Mark { notice })?,
        _ => return Err(format!("unknown op {op}")),
    };
    Ok((h.id, record, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let records = [
            Record::Enqueue {
                notice: 7,
                author: 3,
                kind: DeliveryKind::Create,
                servers: vec![0, 5, 9],
            },
            Record::Done {
                notice: 7,
                server: 5,
                kind: DeliveryKind::Delete,
            },
            Record::Failed {
                notice: 7,
                server: 9,
                kind: DeliveryKind::Create,
                attempt: 3,
                due_ms: 1 << 40,
            },
            Record::ServerFailing {
                server: 2,
                since_ms: 99,
            },
            Record::ServerOk { server: 2 },
            Record::ServerUnavailable { server: 2 },
            Record::ServerRecovered { server: 2 },
            Record::Cancel { notice: 4 },
            Record::Mark { notice: 12 },
        ];
        for (i, r) in records.iter().enumerate() {
            let mut bytes = Vec::new();
            encode(i as u64 + 1, r, &mut bytes);
            assert_eq!(bytes.len() % frame::ALIGN, 0);
            assert_eq!(
                decode(&bytes, 0),
                Ok((i as u64 + 1, r.clone(), bytes.len()))
            );
            let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
            for at in 0..HEADER_BYTES + len {
                let mut damaged = bytes.clone();
                damaged[at] ^= 0x10;
                assert!(decode(&damaged, 0).is_err(), "flip at byte {at} of {r:?}");
            }
            assert!(decode(&bytes[..bytes.len() - 1], 0).is_err());
        }
    }
}
