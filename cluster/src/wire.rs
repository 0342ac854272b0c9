//! The messages nodes send each other on `feedcore.fanout.<p>`: their byte layout,
//! encoding and decoding. Decoding never panics: bad bytes are an `Err` with a reason.

use feedcore::{NewNotice, Scope, UserId};

use crate::partition::GlobalId;

/// Format version of every message; the first byte.
pub(crate) const WIRE_VERSION: u8 = 1;

// Kind tags start at 1 so that a zeroed buffer never decodes as a message.
const KIND_NOTICE: u8 = 1;
const KIND_FOLLOW: u8 = 2;
const KIND_UNFOLLOW: u8 = 3;
const KIND_BLOCK: u8 = 4;
const KIND_UNBLOCK: u8 = 5;
const KIND_DELETE: u8 = 6;
const KIND_BATCH: u8 = 7;

/// At most this many messages in one batch (the count travels as a `u16`).
pub(crate) const BATCH_MESSAGES_MAX: usize = 1024;

// Bits of a notice message's flags byte.
const FLAG_REPLY_TO: u8 = 1;
const FLAG_REPEAT_OF: u8 = 2;
const FLAG_CONVERSATION: u8 = 4;
const FLAG_GROUP: u8 = 8;
/// Sent again for a new follower (or as a reply's referenced notice), not as a new
/// post: its lag is not a delivery lag.
const FLAG_BACKFILL: u8 = 16;
const FLAG_REPLY_TO_AUTHOR: u8 = 32;
const FLAGS_KNOWN: u8 = 63;

/// One notice as it travels: the origin's global id stands for it everywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WireNotice {
    pub(crate) id: GlobalId,
    pub(crate) author: u32,
    pub(crate) created_at_ms: u64,
    /// Origin wall clock at the post, microseconds since the Unix epoch (for the lag).
    pub(crate) sent_at_us: u64,
    pub(crate) scope: Scope,
    pub(crate) backfill: bool,
    pub(crate) reply_to: Option<GlobalId>,
    pub(crate) repeat_of: Option<GlobalId>,
    pub(crate) conversation: Option<u64>,
    pub(crate) group: Option<u32>,
    /// The author of the notice this one answers, sent also when that notice is gone
    /// (deleted at its origin before this copy was made): the receiver keeps the reply
    /// rule without it.
    pub(crate) reply_to_author: Option<u32>,
    pub(crate) mentions: Vec<u32>,
    pub(crate) tags: Vec<String>,
    pub(crate) body: String,
}

impl WireNotice {
    /// The notice to post on the receiving node, with `reply_to` and `repeat_of`
    /// already resolved to that node's local ids (or dropped).
    pub(crate) fn to_new_notice(
        &self,
        reply_to: Option<feedcore::NoticeId>,
        repeat_of: Option<feedcore::NoticeId>,
    ) -> NewNotice {
        NewNotice {
            author: UserId(self.author),
            body: self.body.clone(),
            created_at_ms: self.created_at_ms,
            published: None,
            reply_to,
            // Used by the engine only where `reply_to` is unresolved here.
            reply_to_author: self.reply_to_author.map(UserId),
            repeat_of,
            conversation: self.conversation,
            mentions: self.mentions.iter().map(|&m| UserId(m)).collect(),
            tags: self.tags.clone(),
            // Groups are per node: a group id names a group of its origin's
            // registry, so a copy is stored without its groups.
            group: None,
            groups: Vec::new(),
            scope: self.scope,
            uri: Some(self.id.uri()),
        }
    }
}

/// A message on a partition's subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Store this notice (once, by its uri) under its author's shadow.
    Notice(WireNotice),
    /// `follower` (on another partition) follows `followee` (on the receiver's).
    Follow { follower: u32, followee: u32 },
    /// `follower` stopped following `followee`.
    Unfollow { follower: u32, followee: u32 },
    /// `blocker` blocks `blocked`; one of them is on the receiver's partition.
    Block { blocker: u32, blocked: u32 },
    /// `blocker` lifted its block of `blocked`.
    Unblock { blocker: u32, blocked: u32 },
    /// The notice with this global id was deleted at its origin.
    Delete { id: GlobalId },
    /// Messages for one partition that one publish carries, to be applied in order.
    Batch(Vec<Message>),
}

fn scope_tag(scope: Scope) -> u8 {
    match scope {
        Scope::Public => 1,
        Scope::Followers => 2,
        Scope::Addressees => 3,
    }
}

fn scope_from_tag(tag: u8) -> Option<Scope> {
    match tag {
        1 => Some(Scope::Public),
        2 => Some(Scope::Followers),
        3 => Some(Scope::Addressees),
        _ => None,
    }
}

fn put_gid(out: &mut Vec<u8>, id: GlobalId) {
    out.extend_from_slice(&(id.partition as u16).to_le_bytes());
    out.extend_from_slice(&id.local.0.to_le_bytes());
}

/// Encodes a message. Layouts, all integers little-endian:
///
/// ```text
/// every message:  [version: u8 = 1][kind: u8]
/// notice (1):     [origin: u16][local id: u64][author: u32][created_at_ms: u64]
///                 [sent_at_us: u64][scope: u8][flags: u8]
///                 [reply_to: u16 + u64, if flag 1][repeat_of: u16 + u64, if flag 2]
///                 [conversation: u64, if flag 4][group: u32, if flag 8]
///                 [reply_to_author: u32, if flag 32]
///                 [mentions: u8 count][mention: u32]*
///                 [tags: u8 count]([len: u8][utf-8 bytes])*
///                 [body: the rest, utf-8]
/// follow (2), unfollow (3), block (4), unblock (5):  [a: u32][b: u32]
/// delete (6):     [origin: u16][local id: u64]
/// batch (7):      [count: u16]([len: u32][a message of another kind, whole])*
/// ```
///
/// Lengths fit their fields because the notice passed feedcore's validation at its
/// origin (at most 64 mentions, 32 tags of 140 bytes).
pub(crate) fn encode(message: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(WIRE_VERSION);
    match message {
        Message::Notice(n) => {
            out.push(KIND_NOTICE);
            put_gid(&mut out, n.id);
            out.extend_from_slice(&n.author.to_le_bytes());
            out.extend_from_slice(&n.created_at_ms.to_le_bytes());
            out.extend_from_slice(&n.sent_at_us.to_le_bytes());
            out.push(scope_tag(n.scope));
            let flags = (if n.reply_to.is_some() {
                FLAG_REPLY_TO
            } else {
                0
            }) | (if n.repeat_of.is_some() {
                FLAG_REPEAT_OF
            } else {
                0
            }) | (if n.conversation.is_some() {
                FLAG_CONVERSATION
            } else {
                0
            }) | (if n.group.is_some() { FLAG_GROUP } else { 0 })
                | (if n.backfill { FLAG_BACKFILL } else { 0 })
                | (if n.reply_to_author.is_some() {
                    FLAG_REPLY_TO_AUTHOR
                } else {
                    0
                });
            out.push(flags);
            if let Some(id) = n.reply_to {
                put_gid(&mut out, id);
            }
            if let Some(id) = n.repeat_of {
                put_gid(&mut out, id);
            }
            if let Some(c) = n.conversation {
                out.extend_from_slice(&c.to_le_bytes());
            }
            if let Some(g) = n.group {
                out.extend_from_slice(&g.to_le_bytes());
            }
            if let Some(a) = n.reply_to_author {
                out.extend_from_slice(&a.to_le_bytes());
            }
            debug_assert!(n.mentions.len() <= usize::from(u8::MAX));
            out.push(n.mentions.len().min(255) as u8);
            for m in n.mentions.iter().take(255) {
                out.extend_from_slice(&m.to_le_bytes());
            }
            debug_assert!(n.tags.len() <= usize::from(u8::MAX));
            out.push(n.tags.len().min(255) as u8);
            for t in n.tags.iter().take(255) {
                let bytes = &t.as_bytes()[..t.len().min(255)];
                out.push(bytes.len() as u8);
                out.extend_from_slice(bytes);
            }
            out.extend_from_slice(n.body.as_bytes());
        }
        Message::Follow { follower, followee } => pair(&mut out, KIND_FOLLOW, *follower, *followee),
        Message::Unfollow { follower, followee } => {
            pair(&mut out, KIND_UNFOLLOW, *follower, *followee)
        }
        Message::Block { blocker, blocked } => pair(&mut out, KIND_BLOCK, *blocker, *blocked),
        Message::Unblock { blocker, blocked } => pair(&mut out, KIND_UNBLOCK, *blocker, *blocked),
        Message::Delete { id } => {
            out.push(KIND_DELETE);
            put_gid(&mut out, *id);
        }
        Message::Batch(inner) => {
            let parts: Vec<Vec<u8>> = inner.iter().map(encode).collect();
            return batch(&parts);
        }
    }
    out
}

/// A batch of already encoded messages (none a batch itself), at most
/// [`BATCH_MESSAGES_MAX`] of them.
pub(crate) fn batch<B: AsRef<[u8]>>(parts: &[B]) -> Vec<u8> {
    debug_assert!(parts.len() <= BATCH_MESSAGES_MAX);
    let bytes: usize = parts.iter().map(|p| p.as_ref().len() + 4).sum();
    let mut out = Vec::with_capacity(4 + bytes);
    out.push(WIRE_VERSION);
    out.push(KIND_BATCH);
    out.extend_from_slice(&(parts.len().min(BATCH_MESSAGES_MAX) as u16).to_le_bytes());
    for part in parts.iter().take(BATCH_MESSAGES_MAX) {
        let part = part.as_ref();
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn pair(out: &mut Vec<u8>, kind: u8, a: u32, b: u32) {
    out.push(kind);
    out.extend_from_slice(&a.to_le_bytes());
    out.extend_from_slice(&b.to_le_bytes());
}

/// A cursor over a message's bytes; every read checks the length.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "message ends at byte {} inside {what} (needs {n} bytes from {})",
                    self.bytes.len(),
                    self.pos
                )
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn gid(&mut self, what: &str) -> Result<GlobalId, String> {
        let partition = u32::from(self.u16(what)?);
        let local = self.u64(what)?;
        if local == 0 {
            return Err(format!("{what}: notice ids start at 1"));
        }
        Ok(GlobalId::new(partition, feedcore::NoticeId(local)))
    }

    fn pair(&mut self) -> Result<(u32, u32), String> {
        Ok((self.u32("first user")?, self.u32("second user")?))
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }

    fn end(&self) -> Result<(), String> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(format!(
                "{} bytes past the end of the message",
                self.bytes.len() - self.pos
            ))
        }
    }
}

/// Decodes a message, or says why the bytes are not one.
pub(crate) fn decode(bytes: &[u8]) -> Result<Message, String> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8("version")?;
    if version != WIRE_VERSION {
        return Err(format!(
            "wire version {version}; this node reads {WIRE_VERSION}"
        ));
    }
    let kind = r.u8("kind")?;
    let message = match kind {
        KIND_NOTICE => {
            let id = r.gid("notice id")?;
            let author = r.u32("author")?;
            let created_at_ms = r.u64("created_at_ms")?;
            let sent_at_us = r.u64("sent_at_us")?;
            let tag = r.u8("scope")?;
            let scope = scope_from_tag(tag).ok_or_else(|| format!("unknown scope tag {tag}"))?;
            let flags = r.u8("flags")?;
            if flags & !FLAGS_KNOWN != 0 {
                return Err(format!("unknown flags {flags:#x}"));
            }
            let reply_to = if flags & FLAG_REPLY_TO != 0 {
                Some(r.gid("reply_to")?)
            } else {
                None
            };
            let repeat_of = if flags & FLAG_REPEAT_OF != 0 {
                Some(r.gid("repeat_of")?)
            } else {
                None
            };
            let conversation = if flags & FLAG_CONVERSATION != 0 {
                Some(r.u64("conversation")?)
            } else {
                None
            };
            let group = if flags & FLAG_GROUP != 0 {
                Some(r.u32("group")?)
            } else {
                None
            };
            let reply_to_author = if flags & FLAG_REPLY_TO_AUTHOR != 0 {
                Some(r.u32("reply_to_author")?)
            } else {
                None
            };
            let count = r.u8("mention count")?;
            let mut mentions = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                mentions.push(r.u32("mention")?);
            }
            let count = r.u8("tag count")?;
            let mut tags = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let len = r.u8("tag length")?;
                let bytes = r.take(usize::from(len), "tag")?;
                let tag = std::str::from_utf8(bytes).map_err(|e| format!("tag: {e}"))?;
                tags.push(tag.to_owned());
            }
            let body = std::str::from_utf8(r.rest())
                .map_err(|e| format!("body: {e}"))?
                .to_owned();
            Message::Notice(WireNotice {
                id,
                author,
                created_at_ms,
                sent_at_us,
                scope,
                backfill: flags & FLAG_BACKFILL != 0,
                reply_to,
                repeat_of,
                conversation,
                group,
                reply_to_author,
                mentions,
                tags,
                body,
            })
        }
        KIND_FOLLOW => {
            let (follower, followee) = r.pair()?;
            Message::Follow { follower, followee }
        }
        KIND_UNFOLLOW => {
            let (follower, followee) = r.pair()?;
            Message::Unfollow { follower, followee }
        }
        KIND_BLOCK => {
            let (blocker, blocked) = r.pair()?;
            Message::Block { blocker, blocked }
        }
        KIND_UNBLOCK => {
            let (blocker, blocked) = r.pair()?;
            Message::Unblock { blocker, blocked }
        }
        KIND_DELETE => Message::Delete {
            id: r.gid("notice id")?,
        },
        KIND_BATCH => {
            let count = r.u16("batch count")?;
            let mut inner = Vec::with_capacity(usize::from(count).min(BATCH_MESSAGES_MAX));
            for i in 0..count {
                let len = r.u32("batch entry length")? as usize;
                let part = r.take(len, "batch entry")?;
                if part.get(1) == Some(&KIND_BATCH) {
                    return Err(format!("batch entry {i} is a batch"));
                }
                inner.push(decode(part).map_err(|e| format!("batch entry {i}: {e}"))?);
            }
            Message::Batch(inner)
        }
        other => return Err(format!("unknown message kind {other}")),
    };
    r.end()?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use feedcore::NoticeId;

    fn notice() -> WireNotice {
        WireNotice {
            id: GlobalId::new(2, NoticeId(77)),
            author: 9,
            created_at_ms: 1_700_000_000_000,
            sent_at_us: 1_700_000_000_000_123,
            scope: Scope::Followers,
            backfill: true,
            reply_to: Some(GlobalId::new(1, NoticeId(5))),
            repeat_of: None,
            conversation: Some(44),
            group: Some(3),
            reply_to_author: Some(12),
            mentions: vec![1, 2, 400_000],
            tags: vec!["rust".into(), "héllo".into()],
            body: "hello @1 @2 #rust".into(),
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let messages = [
            Message::Notice(notice()),
            Message::Notice(WireNotice {
                reply_to: None,
                repeat_of: Some(GlobalId::new(0, NoticeId(1))),
                conversation: None,
                group: None,
                reply_to_author: None,
                mentions: vec![],
                tags: vec![],
                body: String::new(),
                backfill: false,
                ..notice()
            }),
            Message::Follow {
                follower: 1,
                followee: u32::MAX,
            },
            Message::Unfollow {
                follower: 7,
                followee: 8,
            },
            Message::Block {
                blocker: 3,
                blocked: 4,
            },
            Message::Unblock {
                blocker: 4,
                blocked: 3,
            },
            Message::Delete {
                id: GlobalId::new(65535, NoticeId(u64::MAX)),
            },
            Message::Batch(vec![
                Message::Notice(notice()),
                Message::Follow {
                    follower: 1,
                    followee: 2,
                },
            ]),
            Message::Batch(vec![]),
        ];
        for m in messages {
            let bytes = encode(&m);
            assert_eq!(decode(&bytes), Ok(m.clone()), "{bytes:?}");
        }
    }

    #[test]
    fn a_plain_notice_costs_its_body_plus_40_bytes() {
        let n = WireNotice {
            reply_to: None,
            conversation: None,
            group: None,
            reply_to_author: None,
            mentions: vec![],
            tags: vec![],
            body: "x".repeat(100),
            ..notice()
        };
        assert_eq!(
            encode(&Message::Notice(n)).len(),
            100 + 2 + 10 + 4 + 8 + 8 + 2 + 2
        );
    }

    #[test]
    fn every_truncation_and_garbage_is_an_error_not_a_panic() {
        let bytes = encode(&Message::Notice(notice()));
        // The body is the rest of the message, so cuts inside it decode (to a shorter
        // body) unless they split a UTF-8 sequence; every cut before it must fail.
        let body_start = bytes.len() - notice().body.len();
        for cut in 0..body_start {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
        for kind in [KIND_FOLLOW, KIND_DELETE] {
            let m = [WIRE_VERSION, kind, 1, 2, 3];
            assert!(decode(&m).is_err());
        }
        assert!(decode(&[2, KIND_FOLLOW, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[WIRE_VERSION, 0]).is_err());
        assert!(decode(&[WIRE_VERSION, 99]).is_err());
        let mut extra = encode(&Message::Follow {
            follower: 1,
            followee: 2,
        });
        extra.push(0);
        assert!(decode(&extra).is_err());
        let nested = batch(&[encode(&Message::Batch(vec![]))]);
        assert!(decode(&nested).is_err(), "a batch inside a batch");
        let mut long = batch(&[encode(&Message::Follow {
            follower: 1,
            followee: 2,
        })]);
        long[4] = 200; // an entry length past the end
        assert!(decode(&long).is_err());
        // Every byte flipped in turn: an error or some message, never a panic.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xa5;
            let _ = decode(&b);
        }
    }
}
